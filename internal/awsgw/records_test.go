package awsgw

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/airlock-dev/airlock/internal/gateway"
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

// The same grants sent as an AccessControlPolicy body, as the SDKs' and
// boto3's AccessControlPolicy parameter sends them, were recorded as
// nothing at all: the record of a PutBucketAcl that made the bucket
// readable by everyone did not say so.
func TestACLBodyGranteesRecorded(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant("s3:PutBucketAcl arn:aws:s3:::logs", "s3:PutObject,s3:PutObjectAcl arn:aws:s3:::logs/app/*")
	cl := e.client(g)
	ctx := context.Background()
	const allUsers = "http://acs.amazonaws.com/groups/global/AllUsers"
	acp := &types.AccessControlPolicy{
		Owner: &types.Owner{ID: aws.String(upstreamAK)},
		Grants: []types.Grant{
			{Grantee: &types.Grantee{Type: types.TypeGroup, URI: aws.String(allUsers)}, Permission: types.PermissionRead},
			{Grantee: &types.Grantee{Type: types.TypeCanonicalUser, ID: aws.String("other-account")}, Permission: types.PermissionFullControl},
		},
	}
	// The upstream's answer does not matter here (versitygw refuses ACLs
	// under its default object ownership): the record is written first.
	_, _ = cl.PutBucketAcl(ctx, &s3.PutBucketAclInput{Bucket: aws.String("logs"), AccessControlPolicy: acp})
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/acl.txt"), Body: strings.NewReader("x")}); err != nil {
		t.Fatalf("PutObject: %v", errCode(err))
	}
	_, _ = cl.PutObjectAcl(ctx, &s3.PutObjectAclInput{Bucket: aws.String("logs"), Key: aws.String("app/acl.txt"), AccessControlPolicy: acp})
	var acls []gateway.Call
	for _, c := range e.requests(g) {
		if op := c.Params["operation"]; op == "PutBucketAcl" || op == "PutObjectAcl" {
			acls = append(acls, c)
		}
	}
	if len(acls) != 2 {
		t.Fatalf("%d ACL records, want 2: %+v", len(acls), e.requests(g))
	}
	for _, c := range acls {
		if !c.Allowed {
			t.Errorf("%s was refused: %s", c.Params["operation"], c.Error)
		}
		for k, v := range map[string]string{"acl": "grant", "grant_read": `uri="` + allUsers + `"`, "grant_full_control": `id="other-account"`} {
			if got := c.Params[k]; got != v {
				t.Errorf("%s: param %s = %q, want %q (params %v)", c.Params["operation"], k, got, v, c.Params)
			}
		}
	}
}

// A retention or legal hold set by PutObjectRetention or
// PutObjectLegalHold, in the body, was recorded as nothing at all, while
// the same settings made by a write's x-amz-object-lock-* headers are
// recorded: a COMPLIANCE retention until 2099 went into the log as a bare
// PutObjectRetention.
func TestLockBodyRecorded(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant("s3:PutObjectRetention,s3:PutObjectLegalHold arn:aws:s3:::logs/app/*")
	cl := e.client(g)
	ctx := context.Background()
	until := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	// The upstream's answers do not matter here (the bucket has no object
	// lock): each record is written before the call is forwarded.
	_, _ = cl.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: aws.String("logs"), Key: aws.String("app/locked.txt"),
		Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeCompliance, RetainUntilDate: &until}})
	_, _ = cl.PutObjectLegalHold(ctx, &s3.PutObjectLegalHoldInput{Bucket: aws.String("logs"), Key: aws.String("app/locked.txt"),
		LegalHold: &types.ObjectLockLegalHold{Status: types.ObjectLockLegalHoldStatusOn}})
	recs := e.requests(g)
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2: %+v", len(recs), recs)
	}
	want := []map[string]string{
		{"operation": "PutObjectRetention", "object_lock_mode": "COMPLIANCE", "object_lock_retain_until_date": "2099-01-01T00:00:00Z"},
		{"operation": "PutObjectLegalHold", "object_lock_legal_hold": "ON"},
	}
	for i, w := range want {
		if !recs[i].Allowed {
			t.Errorf("%s was refused: %s", w["operation"], recs[i].Error)
		}
		for k, v := range w {
			if got := recs[i].Params[k]; got != v {
				t.Errorf("%s: param %s = %q, want %q (params %v)", w["operation"], k, got, v, recs[i].Params)
			}
		}
	}
}

// Tags set by PutObjectTagging or PutBucketTagging, in the body, were
// recorded as nothing at all, while a write's x-amz-tagging header is
// recorded: tags decide what tag-based policies allow.
func TestTagBodyRecorded(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant("s3:PutBucketTagging arn:aws:s3:::logs", "s3:PutObject,s3:PutObjectTagging arn:aws:s3:::logs/app/*")
	cl := e.client(g)
	ctx := context.Background()
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/t.txt"), Body: strings.NewReader("x")}); err != nil {
		t.Fatalf("PutObject: %v", errCode(err))
	}
	tags := &types.Tagging{TagSet: []types.Tag{{Key: aws.String("public"), Value: aws.String("true")}, {Key: aws.String("owner"), Value: aws.String("a b+c/d")}}}
	if _, err := cl.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: aws.String("logs"), Key: aws.String("app/t.txt"), Tagging: tags}); err != nil {
		t.Fatalf("PutObjectTagging: %v", errCode(err))
	}
	if _, err := cl.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String("logs"), Tagging: tags}); err != nil {
		t.Fatalf("PutBucketTagging: %v", errCode(err))
	}
	got, err := cl.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("logs"), Key: aws.String("app/t.txt")})
	if err == nil {
		t.Fatalf("GetObjectTagging outside the grant answered %d tags", len(got.TagSet))
	}
	var n int
	for _, c := range e.requests(g) {
		if op := c.Params["operation"]; op == "PutObjectTagging" || op == "PutBucketTagging" {
			n++
			if want := "public=true&owner=a+b%2Bc%2Fd"; c.Params["tagging"] != want {
				t.Errorf("%s: tagging = %q, want %q (params %v)", op, c.Params["tagging"], want, c.Params)
			}
		}
	}
	if n != 2 {
		t.Fatalf("%d tagging records, want 2", n)
	}
}

// A DeleteObjects that names versions destroys them, where one that does
// not only hides its keys behind delete markers. DeleteObject records the
// version it deletes; DeleteObjects recorded its keys but not which
// versions went.
func TestDeleteObjectsVersionsRecorded(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant("s3:DeleteObject,s3:DeleteObjectVersion arn:aws:s3:::logs/app/*")
	cl := e.client(g)
	// The upstream's answer does not matter here (versitygw's bucket is
	// not versioned): the record is written before the call is forwarded.
	_, _ = cl.DeleteObjects(context.Background(), &s3.DeleteObjectsInput{Bucket: aws.String("logs"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{
		{Key: aws.String("app/a")}, {Key: aws.String("app/b"), VersionId: aws.String("v2")}}}})
	recs := e.requests(g)
	if len(recs) != 1 || !recs[0].Allowed {
		t.Fatalf("records: %+v", recs)
	}
	if got, want := recs[0].Params["version_ids"], "\nv2"; got != want {
		t.Errorf("version_ids = %q, want %q (params %v)", got, want, recs[0].Params)
	}
	if got := recs[0].Params["keys"]; got != "app/a\napp/b" {
		t.Errorf("keys = %q", got)
	}
}

// An SSE-C key (x-amz-server-side-encryption-customer-key, and its
// copy-source twin) travels to the upstream in a header and nowhere else:
// no record of an allowed, denied or rejected call and no log line holds
// it, nor its MD5 (a fingerprint of the key), whatever the call's fate.
func TestSSECustomerKeyNeverRecorded(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant(walkScope)
	cl := e.client(g)
	ctx := context.Background()
	key := "0123456789abcdef0123456789abcdef"
	b64 := base64.StdEncoding.EncodeToString([]byte(key))
	sum := md5.Sum([]byte(key))
	md5b64 := base64.StdEncoding.EncodeToString(sum[:])
	sse := func(in *s3.PutObjectInput) *s3.PutObjectInput {
		in.SSECustomerAlgorithm, in.SSECustomerKey, in.SSECustomerKeyMD5 = aws.String("AES256"), aws.String(b64), aws.String(md5b64)
		return in
	}
	// Allowed, then denied (outside the prefix).
	_, _ = cl.PutObject(ctx, sse(&s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/ssec.bin"), Body: strings.NewReader("x")}))
	_, _ = cl.PutObject(ctx, sse(&s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("other/ssec.bin"), Body: strings.NewReader("x")}))
	_, _ = cl.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/copy.bin"), CopySource: aws.String("logs/app/ssec.bin"),
		CopySourceSSECustomerAlgorithm: aws.String("AES256"), CopySourceSSECustomerKey: aws.String(b64), CopySourceSSECustomerKeyMD5: aws.String(md5b64)})
	// Rejected: a wrong secret, and a header left unsigned.
	_, _ = e.clientWith(g.CredentialID, "wrong-secret", g.SessionToken).PutObject(ctx, sse(&s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/ssec.bin"), Body: strings.NewReader("x")}))
	req := e.signed(g, http.MethodGet, "/logs/app/ssec.bin", nil)
	req.Header.Set("X-Amz-Server-Side-Encryption-Customer-Key", b64)
	if st, _ := do(t, req); st != http.StatusForbidden {
		t.Fatalf("an unsigned SSE-C key header: status %d", st)
	}
	if n := len(e.auth.Calls(g.ID)); n < 4 {
		t.Fatalf("only %d records: the calls did not get as far as this test needs", n)
	}
	if n := len(e.auth.Rejections()); n != 2 {
		t.Fatalf("%d rejections, want 2", n)
	}
	recorded, err := json.Marshal([]any{e.auth.Calls(g.ID), e.auth.Rejections()})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{key, b64, md5b64} {
		if strings.Contains(string(recorded), s) || strings.Contains(e.logText(), s) {
			t.Errorf("%q is in the records or the log:\n%s\n%s", s, recorded, e.logText())
		}
	}
}

// A bucket policy or configuration set by its body (PutBucketPolicy,
// PutBucketVersioning, PutObjectLockConfiguration, PutBucketCors, ...)
// was recorded as a bare operation name: a policy opening the bucket to
// everyone, or versioning suspended, left no trace of what it set.
func TestConfigBodyRecorded(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant("s3:PutBucketPolicy,s3:PutBucketVersioning,s3:PutBucketObjectLockConfiguration,s3:PutBucketCORS,s3:PutLifecycleConfiguration arn:aws:s3:::logs")
	cl := e.client(g)
	ctx := context.Background()
	policy := `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::logs/*"}]}`
	// Most of the upstream's answers do not matter here (versitygw runs
	// without versioning or object lock): each record is written before
	// the call is forwarded.
	_, errPolicy := cl.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String("logs"), Policy: aws.String(policy)})
	_, _ = cl.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("logs"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended}})
	_, _ = cl.PutObjectLockConfiguration(ctx, &s3.PutObjectLockConfigurationInput{Bucket: aws.String("logs"), ObjectLockConfiguration: &types.ObjectLockConfiguration{
		ObjectLockEnabled: types.ObjectLockEnabledEnabled, Rule: &types.ObjectLockRule{DefaultRetention: &types.DefaultRetention{Mode: types.ObjectLockRetentionModeCompliance, Years: aws.Int32(100)}}}})
	_, errCors := cl.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: aws.String("logs"), CORSConfiguration: &types.CORSConfiguration{
		CORSRules: []types.CORSRule{{AllowedMethods: []string{"PUT"}, AllowedOrigins: []string{"*"}}}}})
	_, _ = cl.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: aws.String("logs"), LifecycleConfiguration: &types.BucketLifecycleConfiguration{
		Rules: []types.LifecycleRule{{ID: aws.String("gone"), Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("")}, Expiration: &types.LifecycleExpiration{Days: aws.Int32(1)}}}}})
	for name, err := range map[string]error{"PutBucketPolicy": errPolicy, "PutBucketCors": errCors} {
		if err != nil {
			t.Errorf("%s: %v", name, errCode(err)) // versitygw takes these: the gateway must still forward them
		}
	}
	want := map[string][2]string{
		"PutBucketPolicy":                 {"policy", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::logs/*"}]}`},
		"PutBucketVersioning":             {"configuration", "<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>"},
		"PutObjectLockConfiguration":      {"configuration", "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Years>100</Years></DefaultRetention></Rule></ObjectLockConfiguration>"},
		"PutBucketCors":                   {"configuration", "<CORSConfiguration><CORSRule><AllowedMethod>PUT</AllowedMethod><AllowedOrigin>*</AllowedOrigin></CORSRule></CORSConfiguration>"},
		"PutBucketLifecycleConfiguration": {"configuration", "<LifecycleConfiguration><Rule><Expiration><Days>1</Days></Expiration><Filter><Prefix></Prefix></Filter><ID>gone</ID><Status>Enabled</Status></Rule></LifecycleConfiguration>"},
	}
	recs := e.requests(g)
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d: %+v", len(recs), len(want), recs)
	}
	for _, c := range recs {
		op := c.Params["operation"]
		w, ok := want[op]
		if !ok {
			t.Errorf("unexpected record %s", op)
			continue
		}
		if !c.Allowed {
			t.Errorf("%s was refused: %s", op, c.Error)
		}
		if got := c.Params[w[0]]; got != w[1] {
			t.Errorf("%s: %s = %q, want %q", op, w[0], got, w[1])
		}
	}
}

// A PutBucketVersioning or DeleteObject authenticated by x-amz-mfa was
// recorded without a sign of it: the device is recorded now, the
// one-time code (a credential) nowhere.
func TestMFASerialRecorded(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant("s3:PutBucketVersioning arn:aws:s3:::logs", "s3:DeleteObjectVersion arn:aws:s3:::logs/app/*")
	cl := e.client(g)
	ctx := context.Background()
	const serial, code = "arn:aws:iam::111122223333:mfa/root", "918273"
	// The upstream's answers do not matter here: each record is written
	// before the call is forwarded.
	_, _ = cl.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("logs"), MFA: aws.String(serial + " " + code),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended, MFADelete: types.MFADeleteDisabled}})
	_, _ = cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a.txt"), VersionId: aws.String("v1"), MFA: aws.String(serial + " " + code)})
	recs := e.requests(g)
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2: %+v", len(recs), recs)
	}
	for _, c := range recs {
		if got := c.Params["mfa_serial"]; got != serial {
			t.Errorf("%s: mfa_serial = %q, want %q", c.Params["operation"], got, serial)
		}
		if s := fmt.Sprintf("%+v", c); strings.Contains(s, code) {
			t.Errorf("%s: the record holds the one-time code: %s", c.Params["operation"], s)
		}
	}
}
