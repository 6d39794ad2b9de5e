package awsgw

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// unsignedScope covers everything the added headers would need, so that
// only the missing signature can refuse them.
const unsignedScope = "s3:GetObject,s3:PutObject,s3:PutObjectTagging,s3:GetObjectTagging arn:aws:s3:::logs/app/*"

// notSigned is S3's refusal of a request with unsigned x-amz-* headers.
type notSigned struct {
	Code, Message, HeadersNotSigned string
}

func expectNotSigned(t *testing.T, st int, body []byte, header string) {
	t.Helper()
	var er notSigned
	if err := xml.Unmarshal(body, &er); err != nil {
		t.Fatalf("status %d, not an S3 error: %q", st, body)
	}
	if st != 403 || er.Code != "AccessDenied" || er.Message != "There were headers present in the request which were not signed" || !strings.Contains(er.HeadersNotSigned, header) {
		t.Fatalf("status %d %+v, want 403 AccessDenied naming %s in HeadersNotSigned", st, er, header)
	}
}

// Headers added to a correctly signed request after signing must not take
// effect: versitygw, behind the gateway, must store no tag, no metadata
// and no copy.
func TestUnsignedAmzHeadersRefused(t *testing.T) {
	d := newDiskEnv(t)
	ctx := context.Background()
	d.putDirect("app/obj.txt", "original")
	d.putDirect("app/src.txt", "source")
	g := d.grant(unsignedScope)

	t.Run("x-amz-tagging", func(t *testing.T) {
		req := d.signed(g, http.MethodPut, "/logs/app/obj.txt", []byte("replaced"))
		req.Header.Set("X-Amz-Tagging", "owner=attacker")
		st, body := do(t, req)
		tags, err := d.direct.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("logs"), Key: aws.String("app/obj.txt")})
		if err == nil && len(tags.TagSet) > 0 {
			t.Errorf("versitygw stored the unsigned tag: %+v", tags.TagSet)
		}
		expectNotSigned(t, st, body, "x-amz-tagging")
	})
	t.Run("x-amz-meta-foo", func(t *testing.T) {
		req := d.signed(g, http.MethodPut, "/logs/app/obj.txt", []byte("replaced"))
		req.Header.Set("X-Amz-Meta-Foo", "planted")
		st, body := do(t, req)
		head, err := d.direct.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/obj.txt")})
		if err != nil {
			t.Fatalf("HeadObject on versitygw: %v", errCode(err))
		}
		if v, ok := head.Metadata["foo"]; ok {
			t.Errorf("versitygw stored unsigned metadata foo=%q", v)
		}
		expectNotSigned(t, st, body, "x-amz-meta-foo")
	})
	t.Run("x-amz-copy-source", func(t *testing.T) {
		// Signed as an empty PutObject; the header makes it a CopyObject.
		req := d.signed(g, http.MethodPut, "/logs/app/dst.txt", nil)
		req.Header.Set("X-Amz-Copy-Source", "logs/app/src.txt")
		st, body := do(t, req)
		if got, err := d.direct.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/dst.txt")}); err == nil {
			b, _ := io.ReadAll(got.Body)
			got.Body.Close()
			t.Errorf("versitygw has app/dst.txt = %q after a request with an unsigned copy source", b)
		}
		expectNotSigned(t, st, body, "x-amz-copy-source")
	})
	t.Run("presigned", func(t *testing.T) {
		ps := s3.NewPresignClient(d.client(g))
		u, err := ps.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/obj.txt")}, s3.WithPresignExpires(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPut, u.URL, strings.NewReader("replaced"))
		req.Header.Set("X-Amz-Tagging", "owner=attacker")
		req.Header.Set("X-Amz-Meta-Foo", "planted")
		st, body := do(t, req)
		expectNotSigned(t, st, body, "x-amz-meta-foo")
		expectNotSigned(t, st, body, "x-amz-tagging")
	})
	// Nothing above replaced the object.
	got, err := d.direct.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/obj.txt")})
	if err != nil {
		t.Fatalf("GetObject on versitygw: %v", errCode(err))
	}
	b, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if string(b) != "original" {
		t.Fatalf("app/obj.txt is %q after refused requests", b)
	}
	// Each refusal is on record with the grant and the header names.
	rj := d.auth.Rejections()
	if len(rj) != 4 {
		t.Fatalf("%d rejections recorded, want 4: %+v", len(rj), rj)
	}
	for _, r := range rj {
		if r.GrantID != g.ID || !strings.Contains(r.Reason, "not signed") || !strings.Contains(r.Reason, "x-amz-") {
			t.Fatalf("rejection record %+v", r)
		}
	}
}

// The same headers, signed, work: the check refuses only what the client
// did not sign.
func TestSignedAmzHeadersForwarded(t *testing.T) {
	d := newDiskEnv(t)
	ctx := context.Background()
	g := d.grant(unsignedScope)
	cl := d.client(g)
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/signed.txt"), Body: strings.NewReader("x"),
		Tagging: aws.String("team=sre"), Metadata: map[string]string{"foo": "bar"}}); err != nil {
		t.Fatalf("PutObject with signed tagging and metadata: %v", errCode(err))
	}
	head, err := d.direct.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/signed.txt")})
	if err != nil || head.Metadata["foo"] != "bar" {
		t.Fatalf("HeadObject on versitygw: %v %v", errCode(err), head)
	}
	tags, err := d.direct.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("logs"), Key: aws.String("app/signed.txt")})
	if err != nil || len(tags.TagSet) != 1 || aws.ToString(tags.TagSet[0].Key) != "team" {
		t.Fatalf("tags on versitygw: %v %+v", errCode(err), tags)
	}
	// A presigned URL that signed its metadata as a header.
	ps := s3.NewPresignClient(cl)
	u, err := ps.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/pre.txt"), Metadata: map[string]string{"foo": "pre"}}, s3.WithPresignExpires(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, u.URL, strings.NewReader("pre"))
	for k, v := range u.SignedHeader {
		if !strings.EqualFold(k, "host") {
			req.Header[k] = v
		}
	}
	if st, body := do(t, req); st != 200 {
		t.Fatalf("presigned PUT with its signed headers: %d %s", st, body)
	}
	var nf *types.NotFound
	if _, err := d.direct.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/pre.txt")}); errors.As(err, &nf) {
		t.Fatal("the presigned PUT stored nothing")
	}
}

// A header spelled with '_' instead of '-' is not an x-amz-* header to Go
// (nor to the mapper, nor to the unsigned-header check), but servers that
// keep headers CGI-style read it as one: Ceph RGW stores both
// "x-amz-copy-source" and "X_amz_copy_source" as HTTP_X_AMZ_COPY_SOURCE
// (rgw_asio_client.cc), the later one winning. Forwarded, it would turn a
// PutObject the grant allows into a CopyObject from any object the target's
// keys can read, set an ACL without s3:PutObjectAcl, or replace the
// gateway's own x-amz-content-sha256. None of them may reach the upstream.
func TestUnderscoredHeadersNotForwarded(t *testing.T) {
	e := newEnv(t)
	g := e.grant("s3:PutObject arn:aws:s3:::logs/app/*")
	req := e.signed(g, http.MethodPut, "/logs/app/dst.txt", []byte("x"))
	for k, v := range map[string]string{
		"X_amz_copy_source":                 "/logs/secret.txt",
		"X_amz_acl":                         "public-read",
		"X_amz_bypass_governance_retention": "true",
		"X_amz_content_sha256":              "UNSIGNED-PAYLOAD",
		"x_amz_tagging":                     "owner=attacker",
	} {
		req.Header[k] = []string{v}
	}
	st, body := do(t, req)
	if st != 200 {
		t.Fatalf("status %d: %s", st, body)
	}
	seen := e.up.seen()
	last := seen[len(seen)-1]
	// What a CGI-style server makes of the headers it received.
	cgi := map[string]string{}
	for k, vs := range last.Header {
		cgi["HTTP_"+strings.ToUpper(strings.ReplaceAll(k, "-", "_"))] = strings.Join(vs, ",")
	}
	for _, name := range []string{"HTTP_X_AMZ_COPY_SOURCE", "HTTP_X_AMZ_ACL", "HTTP_X_AMZ_TAGGING", "HTTP_X_AMZ_BYPASS_GOVERNANCE_RETENTION"} {
		if v, ok := cgi[name]; ok {
			t.Errorf("the upstream received %s = %q, which the grant's check never saw", name, v)
		}
	}
	if v := cgi["HTTP_X_AMZ_CONTENT_SHA256"]; v != last.Header.Get("X-Amz-Content-Sha256") {
		t.Errorf("the upstream reads x-amz-content-sha256 as %q, not the gateway's %q", v, last.Header.Get("X-Amz-Content-Sha256"))
	}
	for k := range last.Header {
		if strings.Contains(k, "_") {
			t.Errorf("header %q was forwarded", k)
		}
	}

	// User metadata may have an '_' in its key (S3 keeps it): a signed
	// x-amz-meta-* header stays metadata whatever a server makes of it.
	meta := http.Header{"X-Amz-Meta-Key_with_underscore": {"underscore-ok"}}
	st, body = do(t, e.signedHeader(g, http.MethodPut, "/logs/app/meta.txt", []byte("x"), meta))
	if st != 200 {
		t.Fatalf("metadata with an underscore: status %d: %s", st, body)
	}
	seen = e.up.seen()
	if v := seen[len(seen)-1].Header.Get("X-Amz-Meta-Key_with_underscore"); v != "underscore-ok" {
		t.Errorf("the metadata header with an underscore reached the upstream as %q", v)
	}
}
