package awsgw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// These tests attack the gateway with identifiers that a posix-backed S3
// server (versitygw) joins into file paths, and check on versitygw's own
// disk that nothing outside the grant's prefix was touched.

// disk is a gateway in front of a real versitygw whose data directory the
// test can inspect.
type disk struct {
	*env
	vgw    *testenv.S3
	direct *s3.Client
}

func newDiskEnv(t *testing.T) *disk {
	t.Helper()
	vgw := testenv.Versity(t)
	e := newEnv(t, func(o *Options) {
		o.Targets[0].Endpoint = vgw.URL
		o.Targets[0].AccessKeyID, o.Targets[0].SecretAccessKey = vgw.AccessKeyID, vgw.SecretAccessKey
	})
	direct := s3.New(s3.Options{Region: testRegion, BaseEndpoint: aws.String(vgw.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(vgw.AccessKeyID, vgw.SecretAccessKey, ""), RetryMaxAttempts: 1})
	if _, err := direct.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("logs")}); err != nil {
		t.Fatalf("CreateBucket on versitygw: %v", errCode(err))
	}
	return &disk{env: e, vgw: vgw, direct: direct}
}

// path is where versitygw keeps bucket/rel on its disk.
func (d *disk) path(rel string) string {
	return filepath.Join(d.vgw.Dir, "logs", filepath.FromSlash(rel))
}

func (d *disk) putDirect(key, body string) {
	d.t.Helper()
	if _, err := d.direct.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
		d.t.Fatalf("PutObject %s on versitygw: %v", key, errCode(err))
	}
}

func (d *disk) exists(rel string) bool {
	_, err := os.Stat(d.path(rel))
	return err == nil
}

// mpScope lets a grant do everything a multipart upload needs, under app/.
const mpScope = "s3:GetObject,s3:PutObject,s3:ListBucket,s3:ListBucketMultipartUploads,s3:ListMultipartUploadParts,s3:AbortMultipartUpload arn:aws:s3:::logs/app/*"

// expectRefused checks a status and code and that the call never reached
// the upstream as an allowed call: the grant's recording has no allowed
// request for it.
func expectRefused(t *testing.T, e *env, g *gateway.Grant, st int, body []byte, wantStatus int, wantCode string) {
	t.Helper()
	if st != wantStatus {
		t.Fatalf("status %d, want %d: %s", st, wantStatus, body)
	}
	if er := parseErr(t, body); er.Code != wantCode {
		t.Fatalf("code %q (%s), want %q", er.Code, er.Message, wantCode)
	}
	reqs := e.requests(g)
	if len(reqs) == 0 {
		t.Fatal("the refused call was not recorded")
	}
	if last := reqs[len(reqs)-1]; last.Allowed {
		t.Fatalf("the refused call was recorded as allowed: %+v", last)
	}
}

func TestUploadIDTraversalAbortDeletesNothing(t *testing.T) {
	d := newDiskEnv(t)
	d.putDirect("victimdir/keep.txt", "precious")
	g := d.grant(mpScope)
	st, body := do(t, d.signed(g, http.MethodDelete, "/logs/app/rt/x?uploadId=..%2F..%2F..%2Fvictimdir", nil))
	if !d.exists("victimdir/keep.txt") {
		t.Fatalf("versitygw deleted logs/victimdir through the gateway (status %d %s)", st, body)
	}
	expectRefused(t, d.env, g, st, body, 400, "InvalidArgument")
}

func TestUploadIDTraversalUploadPartWritesNothing(t *testing.T) {
	d := newDiskEnv(t)
	d.putDirect("victim3/existing", "x") // makes logs/victim3 a directory
	g := d.grant(mpScope)
	st, body := do(t, d.signed(g, http.MethodPut, "/logs/app/rt/x?partNumber=7&uploadId=..%2F..%2F..%2Fvictim3", []byte("planted")))
	if d.exists("victim3/7") {
		t.Fatalf("UploadPart wrote logs/victim3/7 outside the prefix (status %d %s)", st, body)
	}
	expectRefused(t, d.env, g, st, body, 400, "InvalidArgument")
	// The raw form, '/' unescaped in the query, is the same attack.
	st, body = do(t, d.signed(g, http.MethodPut, "/logs/app/rt/x?partNumber=7&uploadId=../../../victim3", []byte("planted")))
	if d.exists("victim3/7") {
		t.Fatalf("UploadPart wrote logs/victim3/7 outside the prefix (status %d %s)", st, body)
	}
	expectRefused(t, d.env, g, st, body, 400, "InvalidArgument")
}

// An upload the bucket's owner started on a key outside the grant, reached
// through a crafted uploadId that climbs into its directory.
func TestUploadIDOfAnotherKeyViaTraversal(t *testing.T) {
	d := newDiskEnv(t)
	ctx := context.Background()
	mp, err := d.direct.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String("private/report.bin")})
	if err != nil {
		t.Fatalf("CreateMultipartUpload on versitygw: %v", errCode(err))
	}
	secret := bytes.Repeat([]byte("S"), 5<<20)
	up, err := d.direct.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("logs"), Key: aws.String("private/report.bin"), UploadId: mp.UploadId,
		PartNumber: aws.Int32(1), Body: bytes.NewReader(secret)})
	if err != nil {
		t.Fatalf("UploadPart on versitygw: %v", errCode(err))
	}
	crafted := url.QueryEscape(fmt.Sprintf("../%x/%s", sha256.Sum256([]byte("private/report.bin")), aws.ToString(mp.UploadId)))
	g := d.grant(mpScope)

	st, body := do(t, d.signed(g, http.MethodGet, "/logs/app/rt/x?uploadId="+crafted, nil))
	if st == 200 {
		t.Errorf("ListParts listed another key's upload: %s", body)
	} else {
		expectRefused(t, d.env, g, st, body, 400, "InvalidArgument")
	}
	complete := []byte(fmt.Sprintf(`<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag></Part></CompleteMultipartUpload>`, aws.ToString(up.ETag)))
	st, body = do(t, d.signed(g, http.MethodPost, "/logs/app/rt/x?uploadId="+crafted, complete))
	if d.exists("app/rt/x") {
		t.Errorf("CompleteMultipartUpload completed another key's upload into the prefix (status %d)", st)
	} else {
		expectRefused(t, d.env, g, st, body, 400, "InvalidArgument")
	}
	st, body = do(t, d.signed(g, http.MethodDelete, "/logs/app/rt/x?uploadId="+crafted, nil))
	expectRefused(t, d.env, g, st, body, 400, "InvalidArgument")
	// The owner's upload is intact.
	parts, err := d.direct.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("logs"), Key: aws.String("private/report.bin"), UploadId: mp.UploadId})
	if err != nil || len(parts.Parts) != 1 {
		t.Fatalf("the owner's upload was damaged: %v, %d parts", errCode(err), len(parts.Parts))
	}
}

// An uploadId used with another key than the one it was created for,
// without any traversal: the gateway refuses it itself (NoSuchUpload, as S3
// answers for an upload id of another key) and nothing is forwarded.
func TestUploadIDBoundToItsKey(t *testing.T) {
	d := newDiskEnv(t)
	ctx := context.Background()
	g := d.grant(mpScope)
	cl := d.client(g)
	// One upload started through the gateway for app/a, one started by the
	// owner directly (so the gateway never saw it) for app/b.
	mine, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String("app/a")})
	if err != nil {
		t.Fatalf("CreateMultipartUpload through the gateway: %v", errCode(err))
	}
	theirs, err := d.direct.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String("app/b")})
	if err != nil {
		t.Fatalf("CreateMultipartUpload on versitygw: %v", errCode(err))
	}
	for _, tc := range []struct{ what, key, id string }{
		{"created for app/a, used on app/other", "app/other", aws.ToString(mine.UploadId)},
		{"created by the owner directly", "app/b", aws.ToString(theirs.UploadId)},
	} {
		t.Run(tc.what, func(t *testing.T) {
			p := "/logs/" + tc.key + "?uploadId=" + url.QueryEscape(tc.id)
			calls := []struct {
				method, path string
				body         []byte
			}{
				{http.MethodGet, p, nil},                              // ListParts
				{http.MethodPut, p + "&partNumber=1", []byte("part")}, // UploadPart
				{http.MethodPost, p, []byte(`<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>"x"</ETag></Part></CompleteMultipartUpload>`)},
				{http.MethodDelete, p, nil}, // AbortMultipartUpload
			}
			for _, c := range calls {
				st, body := do(t, d.signed(g, c.method, c.path, c.body))
				expectRefused(t, d.env, g, st, body, 404, "NoSuchUpload")
			}
			// UploadPartCopy too.
			st, body := do(t, d.signedCopy(g, p+"&partNumber=2", "logs/app/src"))
			expectRefused(t, d.env, g, st, body, 404, "NoSuchUpload")
		})
	}
	// Both uploads still exist upstream, untouched.
	for key, id := range map[string]*string{"app/a": mine.UploadId, "app/b": theirs.UploadId} {
		if _, err := d.direct.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("logs"), Key: aws.String(key), UploadId: id}); err != nil {
			t.Fatalf("upload of %s: %v", key, errCode(err))
		}
	}
	// The gateway's own upload works for its own key.
	if _, err := cl.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("logs"), Key: aws.String("app/a"), UploadId: mine.UploadId,
		PartNumber: aws.Int32(1), Body: strings.NewReader("part one")}); err != nil {
		t.Fatalf("UploadPart on the upload's own key: %v", errCode(err))
	}
	if _, err := cl.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String("app/a"), UploadId: mine.UploadId}); err != nil {
		t.Fatalf("AbortMultipartUpload on the upload's own key: %v", errCode(err))
	}
}

// signedCopy is an UploadPartCopy signed with its copy source.
func (e *env) signedCopy(g *gateway.Grant, rawPath, source string) *http.Request {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodPut, e.srv.URL+rawPath, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("X-Amz-Copy-Source", source)
	sum := sha256.Sum256(nil)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	creds := aws.Credentials{AccessKeyID: g.CredentialID, SecretAccessKey: g.Secret, SessionToken: g.SessionToken}
	if err := signer.SignHTTP(context.Background(), creds, req, hash, "s3", testRegion, time.Now()); err != nil {
		e.t.Fatal(err)
	}
	return req
}

// A second grant of the same identity continues an upload while a grant
// that used it is live; another identity's grant cannot; once every grant
// that used it has ended, nobody can.
func TestUploadIDAcrossGrants(t *testing.T) {
	d := newDiskEnv(t)
	ctx := context.Background()
	g1 := d.grant(mpScope)
	mp, err := d.client(g1).CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String("app/long")})
	if err != nil {
		t.Fatalf("CreateMultipartUpload: %v", errCode(err))
	}
	// Part 1 has S3's minimum size; the last part may be small, and so is
	// every refused one (a refusal does not read the body, and a client
	// still sending megabytes may see the connection reset, not the answer).
	part := func(g *gateway.Grant, n int32) error {
		size := 5 << 20
		if n > 1 {
			size = 1000
		}
		_, err := d.client(g).UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("logs"), Key: aws.String("app/long"), UploadId: mp.UploadId,
			PartNumber: aws.Int32(n), Body: bytes.NewReader(bytes.Repeat([]byte{byte('0' + n)}, size))})
		return err
	}
	if err := part(g1, 1); err != nil {
		t.Fatalf("UploadPart under the creating grant: %v", errCode(err))
	}
	other := d.auth.Add(gatewaytest.Spec{Identity: "another-bot", Target: testTarget, TargetKind: "aws", Account: testAccount, Scope: []string{mpScope}})
	if err := part(other, 2); !strings.HasPrefix(errCode(err), "NoSuchUpload") {
		t.Fatalf("another identity continued the upload: %v", errCode(err))
	}
	g2 := d.grant(mpScope) // same identity, same target
	if err := part(g2, 2); err != nil {
		t.Fatalf("UploadPart under a second grant of the same identity: %v", errCode(err))
	}
	d.auth.End(g1, "expired")
	// g2 used the upload, so it lives on with g2.
	out, err := d.client(g2).CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String("app/long"), UploadId: mp.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: etagOf(t, d, mp.UploadId, 1)}, {PartNumber: aws.Int32(2), ETag: etagOf(t, d, mp.UploadId, 2)}}}})
	if err != nil {
		t.Fatalf("CompleteMultipartUpload under the second grant: %v", errCode(err))
	}
	if aws.ToString(out.Key) != "app/long" {
		t.Fatalf("completed %q", aws.ToString(out.Key))
	}

	// Once every grant that used an upload has ended, it is gone.
	mp2, err := d.client(g2).CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String("app/long2")})
	if err != nil {
		t.Fatalf("CreateMultipartUpload: %v", errCode(err))
	}
	d.auth.End(g2, "revoked")
	g3 := d.grant(mpScope)
	_, err = d.client(g3).AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String("app/long2"), UploadId: mp2.UploadId})
	if !strings.HasPrefix(errCode(err), "NoSuchUpload") {
		t.Fatalf("an upload outlived the grants that used it: %v", errCode(err))
	}
}

// etagOf asks versitygw for a part's ETag.
func etagOf(t *testing.T, d *disk, id *string, n int32) *string {
	t.Helper()
	parts, err := d.direct.ListParts(context.Background(), &s3.ListPartsInput{Bucket: aws.String("logs"), Key: aws.String("app/long"), UploadId: id})
	if err != nil {
		t.Fatalf("ListParts on versitygw: %v", errCode(err))
	}
	for _, p := range parts.Parts {
		if aws.ToInt32(p.PartNumber) == n {
			return p.ETag
		}
	}
	t.Fatalf("part %d not found", n)
	return nil
}
