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

// Whom an ACL grants access to and which retention a write sets are
// recorded with the call, not just that it set some: "acl=grant" alone
// hid that an object was made readable by everyone.
func TestACLGrantsAndRetentionRecorded(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant("s3:PutObject,s3:PutObjectAcl,s3:PutObjectRetention,s3:PutObjectLegalHold arn:aws:s3:::logs/app/*")
	allUsers := `uri="http://acs.amazonaws.com/groups/global/AllUsers"`
	put := http.Header{
		"X-Amz-Grant-Read":                    {allUsers},
		"X-Amz-Grant-Full-Control":            {`id="other-account"`},
		"X-Amz-Object-Lock-Mode":              {"COMPLIANCE"},
		"X-Amz-Object-Lock-Retain-Until-Date": {"2099-01-01T00:00:00Z"},
		"X-Amz-Object-Lock-Legal-Hold":        {"ON"},
	}
	do(t, e.signedHeader(g, http.MethodPut, "/logs/app/acl.txt", []byte("x"), put))
	do(t, e.signedHeader(g, http.MethodPut, "/logs/app/acl.txt?acl", nil, http.Header{"X-Amz-Grant-Write-Acp": {allUsers}}))
	recs := e.requests(g)
	if len(recs) != 2 {
		t.Fatalf("%d records: %+v", len(recs), recs)
	}
	want := []map[string]string{
		{"acl": "grant", "grant_read": allUsers, "grant_full_control": `id="other-account"`, "object_lock_mode": "COMPLIANCE",
			"object_lock_retain_until_date": "2099-01-01T00:00:00Z", "object_lock_legal_hold": "ON"},
		{"acl": "grant", "grant_write_acp": allUsers},
	}
	for i, w := range want {
		for k, v := range w {
			if got := recs[i].Params[k]; got != v {
				t.Errorf("%s: param %s = %q, want %q (params %v)", recs[i].Params["operation"], k, got, v, recs[i].Params)
			}
		}
	}
}
