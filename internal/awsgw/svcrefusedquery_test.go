package awsgw

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestServiceRefusedQueryNotRecorded: a Query-protocol call may carry
// its parameters in the query string of a GET. The record of a refused
// one keeps the parameters' names and its Action, never their values,
// which can be secrets: IAM ChangePassword's passwords, the web identity
// token of an AssumeRoleWithWebIdentity.
func TestServiceRefusedQueryNotRecorded(t *testing.T) {
	e := newSvcEnv(t)
	g := e.grant("sts:GetCallerIdentity *")
	for _, tc := range []struct{ service, query, action string }{
		{"iam", "Action=ChangePassword&Version=2010-05-08&OldPassword=old-s3cr3t-pw&NewPassword=new-s3cr3t-pw", "Action=ChangePassword"},
		{"sts", "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fx&RoleSessionName=a&WebIdentityToken=eyJ.s3cr3t-token.sig", "Action=AssumeRoleWithWebIdentity"},
	} {
		if status, _, _ := e.rawRequest(t, g, "GET", "/?"+tc.query, tc.service, testRegion, "", nil, nil); status != http.StatusForbidden {
			t.Fatalf("%s: status %d, want 403", tc.action, status)
		}
		rec := e.lastRequest(t, g)
		if rec.Allowed || rec.Action != tc.service+":unmapped" {
			t.Fatalf("%s: record %+v", tc.action, rec)
		}
		q := rec.Params["query"]
		if !strings.Contains(q, tc.action) || !strings.Contains(q, "Version=") {
			t.Errorf("%s: recorded query %q does not say what was called", tc.action, q)
		}
		b, _ := json.Marshal(rec)
		if strings.Contains(string(b), "s3cr3t") {
			t.Errorf("%s: the record holds a secret parameter's value: %s", tc.action, b)
		}
	}
	e.upstreamSaw(t, "sts", 0)
}
