package awsgw

import (
	"net/http"
	"testing"
)

// A virtual-hosted request names its bucket in the Host and its key in
// the path. When the mapper refuses one, its record must still name that
// bucket: read as path-style, "/app/x" would be bucket "app", and the
// review would show an attempt on a bucket the agent never addressed.
func TestRefusedVirtualHostedCallRecordsItsBucket(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant("s3:GetObject,s3:PutObject arn:aws:s3:::logs/app/*")
	cases := []struct{ method, path, resource string }{
		{http.MethodPut, "/app/x?renameObject", "arn:aws:s3:::logs/app/x"}, // refused operation
		{http.MethodGet, "/app/x?foo=1", "arn:aws:s3:::logs/app/x"},        // unknown parameter
		{http.MethodPut, "/app/../secret.txt", "arn:aws:s3:::logs/app/../secret.txt"},
		{http.MethodGet, "/?foo", "arn:aws:s3:::logs"},
	}
	for _, c := range cases {
		if st, body := do(t, e.signedHost(g, c.method, "logs.s3.gw.test", c.path)); st < 400 {
			t.Fatalf("%s %s: status %d: %s", c.method, c.path, st, body)
		}
	}
	// Path-style, the path names the bucket, as before.
	if st, body := do(t, e.signed(g, http.MethodGet, "/logs/app/x?foo=1", nil)); st < 400 {
		t.Fatalf("path-style: status %d: %s", st, body)
	}
	recs := e.requests(g)
	if len(recs) != len(cases)+1 {
		t.Fatalf("%d records, want %d: %+v", len(recs), len(cases)+1, recs)
	}
	for i, c := range cases {
		if r := recs[i]; r.Allowed || r.Action != "s3:unmapped" || r.Resource != c.resource || r.Params["bucket"] != "logs" {
			t.Errorf("%s %s recorded as %s %s %v, want resource %s and bucket logs", c.method, c.path, r.Action, r.Resource, r.Params, c.resource)
		}
	}
	if r := recs[len(cases)]; r.Resource != "arn:aws:s3:::logs/app/x" {
		t.Errorf("path-style call recorded on %s", r.Resource)
	}
}
