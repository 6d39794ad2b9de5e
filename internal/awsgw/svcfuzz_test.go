package awsgw

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// FuzzServiceErrorCode: an upstream's error answer (header and body, both
// the network's) yields a bounded code without a ':' suffix or '#'
// namespace.
func FuzzServiceErrorCode(f *testing.F) {
	f.Add("", []byte(`{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"x"}`))
	f.Add("ValidationException:http://internal.amazon.com/coral/com.amazon.coral.validate/", []byte(`{}`))
	f.Add("", []byte(`<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code></Error></ErrorResponse>`))
	f.Add("", []byte(`{"code":"ThrottlingException"}`))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		code := serviceErrorCode(header, body)
		if len(code) > 64 || strings.ContainsAny(code, ":#") {
			t.Fatalf("code %q", code)
		}
	})
}

// FuzzServiceErrorShape: whatever a request's Authorization header, query
// and protocol headers say, the service chosen for an error's shape is a
// valid signing name, anyService or none, and the answer is well-formed
// with the code in its header.
func FuzzServiceErrorShape(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00", "", "DynamoDB_20120810.GetItem", "application/x-amz-json-1.0", "msg")
	f.Add("AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/sts/aws4_request", "", "", "application/x-www-form-urlencoded", "<&>")
	f.Add("Credential=a/b/c/ec2/e", "", "", "application/x-www-form-urlencoded", "m")
	f.Add("Credential=a/b/c/Bad.Svc/e", "", "", "", "m")
	f.Add("", "Action=GetCallerIdentity&X-Amz-Credential=AK%2F20260101%2Fus-east-1%2Fsts%2Faws4_request", "", "", "m")
	f.Add("", "X-Amz-Credential=a/b/c/%zz/e&X-Amz-Credential=x", "", "", "m")
	f.Add("", "", "", "application/x-www-form-urlencoded; charset=utf-8", "m")
	f.Fuzz(func(t *testing.T, authz, query, target, ct, msg string) {
		r := httptest.NewRequest("POST", "/", nil)
		r.URL.RawQuery = query
		r.Header.Set("Authorization", authz)
		r.Header.Set("X-Amz-Target", target)
		r.Header.Set("Content-Type", ct)
		svc := errorService(r)
		if svc != "" && svc != anyService && !sigv4.ValidService(svc) {
			t.Fatalf("service %q", svc)
		}
		if svc == "" {
			svc = "dynamodb"
		}
		w := httptest.NewRecorder()
		writeServiceError(w, r, svc, s3err.New(s3err.AccessDenied, "%s", msg), "RID")
		if w.Code != http.StatusForbidden {
			t.Fatalf("status %d", w.Code)
		}
		if p := requestProtocol(r); p != protoQuery && w.Header().Get("X-Amzn-Errortype") == "" {
			t.Fatalf("%s error without x-amzn-ErrorType", p)
		}
		if utf8.ValidString(msg) && !strings.Contains(w.Body.String(), "RID") && requestProtocol(r) == protoQuery {
			t.Fatalf("query error without its request id: %s", w.Body)
		}
	})
}
