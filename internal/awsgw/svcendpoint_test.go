package awsgw

import (
	"net/http"
	"testing"
)

func TestServiceEndpoint(t *testing.T) {
	mk := func(region string, eps map[string]string) *target {
		tt, err := newTarget(Target{Name: "t", Region: region, AccessKeyID: "AK", SecretAccessKey: "SK", Endpoints: eps}, http.DefaultTransport)
		if err != nil {
			t.Fatal(err)
		}
		return tt
	}
	for _, tc := range []struct {
		region, service string
		eps             map[string]string
		url, signing    string
	}{
		{"us-east-1", "dynamodb", nil, "https://dynamodb.us-east-1.amazonaws.com", "us-east-1"},
		{"eu-west-1", "logs", nil, "https://logs.eu-west-1.amazonaws.com", "eu-west-1"},
		{"eu-west-1", "sts", nil, "https://sts.eu-west-1.amazonaws.com", "eu-west-1"},
		{"eu-west-1", "iam", nil, "https://iam.amazonaws.com", "us-east-1"},
		{"cn-north-1", "ssm", nil, "https://ssm.cn-north-1.amazonaws.com.cn", "cn-north-1"},
		{"cn-northwest-1", "iam", nil, "https://iam.cn-north-1.amazonaws.com.cn", "cn-north-1"},
		{"us-gov-west-1", "iam", nil, "https://iam.us-gov-west-1.amazonaws.com", "us-gov-west-1"},
		{"eu-west-1", "dynamodb", map[string]string{"dynamodb": "http://127.0.0.1:8000/"}, "http://127.0.0.1:8000", "eu-west-1"},
	} {
		u, signing := mk(tc.region, tc.eps).serviceEndpoint(tc.service)
		if u.String() != tc.url || signing != tc.signing {
			t.Errorf("%s in %s: %s signed for %s, want %s for %s", tc.service, tc.region, u, signing, tc.url, tc.signing)
		}
	}
	for _, eps := range []map[string]string{{"s3": "http://x"}, {"Dyn": "http://x"}, {"logs": "ftp://x"}, {"logs": "http://x/path"}, {"logs": "http://u:p@x"}} {
		if _, err := newTarget(Target{Name: "t", Region: "us-east-1", AccessKeyID: "AK", SecretAccessKey: "SK", Endpoints: eps}, http.DefaultTransport); err == nil {
			t.Errorf("endpoints %v accepted", eps)
		}
	}
}
