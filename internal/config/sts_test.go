package config

import (
	"strings"
	"testing"
)

// TestSTSEndpointPlainHTTP: an STS answer to AssumeRole holds the role's
// temporary secret key and session token. Over plain http on a network
// anyone on the path would read them, so sts_endpoint is https://, or
// http:// to a loopback address (an emulator on the machine).
func TestSTSEndpointPlainHTTP(t *testing.T) {
	const target = "data_dir: d\npolicies: policies\ntargets:\n  - name: s3\n    kind: aws\n    account: \"111122223333\"\n" +
		"    credentials: {role_arn: \"arn:aws:iam::111122223333:role/airlock-gateway\"}\n    sts_endpoint: "
	for _, ep := range []string{"http://sts.internal:8080", "http://10.0.0.5", "HTTP://sts.example.com"} {
		inConfigDir(t)
		_, err := Parse("airlock.yaml", []byte(target+ep+"\n"))
		if err == nil || !strings.Contains(err.Error(), "targets[0].sts_endpoint: plain http:// is allowed only to a loopback address") {
			t.Errorf("sts_endpoint %s: %v", ep, err)
		}
	}
	for _, ep := range []string{"https://sts.us-east-1.amazonaws.com", "http://127.0.0.1:4566", "http://localhost:4566", "http://[::1]:4566"} {
		inConfigDir(t)
		if _, err := Parse("airlock.yaml", []byte(target+ep+"\n")); err != nil {
			t.Errorf("sts_endpoint %s: %v", ep, err)
		}
	}
}
