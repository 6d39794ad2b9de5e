package awsgw

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

const walkScope = "s3:GetObject,s3:ListBucket,s3:PutObject arn:aws:s3:::logs/app/*"

func TestAllowedGetListPut(t *testing.T) {
	e := newEnv(t)
	g := e.grant(walkScope)
	cl := e.client(g)
	ctx := context.Background()

	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a.txt"), Body: strings.NewReader("hello")}); err != nil {
		t.Fatalf("PutObject: %v", errCode(err))
	}
	if b, _ := e.up.object("logs/app/a.txt"); string(b) != "hello" {
		t.Fatalf("upstream holds %q, want hello", b)
	}
	out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a.txt")})
	if err != nil {
		t.Fatalf("GetObject: %v", errCode(err))
	}
	b, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(b) != "hello" {
		t.Fatalf("GetObject body %q", b)
	}
	lst, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("logs"), Prefix: aws.String("app/")})
	if err != nil {
		t.Fatalf("ListObjectsV2: %v", errCode(err))
	}
	if len(lst.Contents) != 1 || *lst.Contents[0].Key != "app/a.txt" {
		t.Fatalf("list: %+v", lst.Contents)
	}

	reqs := e.requests(g)
	want := []struct{ action, resource string }{
		{"s3:PutObject", "arn:aws:s3:::logs/app/a.txt"},
		{"s3:GetObject", "arn:aws:s3:::logs/app/a.txt"},
		{"s3:ListBucket", "arn:aws:s3:::logs/app/*"},
	}
	if len(reqs) != len(want) {
		t.Fatalf("recorded %d requests, want %d: %+v", len(reqs), len(want), reqs)
	}
	for i, w := range want {
		if reqs[i].Action != w.action || reqs[i].Resource != w.resource || !reqs[i].Allowed {
			t.Errorf("request %d = %s %s allowed=%v, want %s %s allowed", i, reqs[i].Action, reqs[i].Resource, reqs[i].Allowed, w.action, w.resource)
		}
	}
	if reqs[0].Params["key"] != "app/a.txt" || reqs[2].Params["prefix"] != "app/" {
		t.Errorf("params: %v / %v", reqs[0].Params, reqs[2].Params)
	}
	res := e.results(g, 3)
	if res[0].Status != "200" || res[0].BytesIn != 5 || res[1].BytesOut != 5 || res[1].Status != "200" {
		t.Errorf("results: %+v", res)
	}
	for _, r := range res {
		if r.Duration <= 0 {
			t.Errorf("result without duration: %+v", r)
		}
	}
	// One session for the grant, however many calls and connections.
	if n := len(e.auth.Sessions()); n != 1 {
		t.Errorf("%d sessions, want 1", n)
	}
	// The upstream saw the gateway's keys, never the grant's.
	for _, s := range e.up.seen() {
		if s.Auth.AccessKeyID != upstreamAK || s.Header.Get("X-Amz-Security-Token") != "" {
			t.Errorf("upstream saw key %q token %q", s.Auth.AccessKeyID, s.Header.Get("X-Amz-Security-Token"))
		}
	}
}

func TestDenied(t *testing.T) {
	e := newEnv(t)
	g := e.grant(walkScope)
	e.up.put("logs/secret.txt", []byte("s3cr3t"))
	e.up.put("logs/app/a.txt", []byte("a"))
	cl := e.client(g)
	ctx := context.Background()

	cases := []struct {
		name string
		call func() error
		want string
	}{
		{"read outside the prefix", func() error {
			_, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("secret.txt")})
			return err
		}, "AccessDenied: s3:GetObject on arn:aws:s3:::logs/secret.txt is outside grant " + g.ID + " (scope: " + walkScope + ")"},
		{"list outside the prefix", func() error {
			_, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("logs"), Prefix: aws.String("ap")})
			return err
		}, "AccessDenied: s3:ListBucket on arn:aws:s3:::logs/ap* is outside grant " + g.ID},
		{"list the whole bucket", func() error {
			_, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("logs")})
			return err
		}, "AccessDenied: s3:ListBucket on arn:aws:s3:::logs/* is outside grant"},
		{"copy source outside the prefix", func() error {
			_, err := cl.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/copy.txt"), CopySource: aws.String("logs/secret.txt")})
			return err
		}, "AccessDenied: s3:GetObject on arn:aws:s3:::logs/secret.txt is outside grant"},
		{"delete not granted", func() error {
			_, err := cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a.txt")})
			return err
		}, "AccessDenied: s3:DeleteObject on arn:aws:s3:::logs/app/a.txt is outside grant"},
		{"another bucket", func() error {
			_, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("other"), Key: aws.String("app/x"), Body: strings.NewReader("x")})
			return err
		}, "AccessDenied: s3:PutObject on arn:aws:s3:::other/app/x is outside grant"},
		{"unmapped operation", func() error {
			_, err := cl.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String("logs")})
			return err
		}, "GetBucketPolicy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.up.seen())
			err := tc.call()
			if got := errCode(err); !strings.Contains(got, tc.want) {
				t.Fatalf("error %q, want it to contain %q", got, tc.want)
			}
			if n := len(e.up.seen()); n != before {
				t.Fatalf("a denied call reached the upstream: %+v", e.up.seen()[before:])
			}
		})
	}
	if _, ok := e.up.object("logs/app/copy.txt"); ok {
		t.Error("the copy happened")
	}
	reqs := e.requests(g)
	if len(reqs) != len(cases) {
		t.Fatalf("recorded %d requests, want %d: %+v", len(reqs), len(cases), reqs)
	}
	for _, r := range reqs {
		if r.Allowed || r.Error == "" {
			t.Errorf("denied call recorded as %+v", r)
		}
	}
	if reqs[3].Resource != "arn:aws:s3:::logs/secret.txt" || !slices.Contains(reqs[3].Also, "s3:PutObject arn:aws:s3:::logs/app/copy.txt") {
		t.Errorf("copy record: %+v", reqs[3])
	}
}

func TestDeleteBatchMixingKeys(t *testing.T) {
	e := newEnv(t)
	g := e.grant("s3:DeleteObject arn:aws:s3:::logs/app/*")
	e.up.put("logs/app/a", []byte("a"))
	e.up.put("logs/app/b", []byte("b"))
	e.up.put("logs/secret", []byte("s"))
	cl := e.client(g)
	del := func(keys ...string) error {
		var objs []types.ObjectIdentifier
		for _, k := range keys {
			objs = append(objs, types.ObjectIdentifier{Key: aws.String(k)})
		}
		_, err := cl.DeleteObjects(context.Background(), &s3.DeleteObjectsInput{Bucket: aws.String("logs"), Delete: &types.Delete{Objects: objs}})
		return err
	}
	if got := errCode(del("app/a", "secret", "app/b")); !strings.Contains(got, "AccessDenied: s3:DeleteObject on arn:aws:s3:::logs/secret is outside grant") {
		t.Fatalf("mixed batch: %q", got)
	}
	for _, k := range []string{"logs/app/a", "logs/app/b", "logs/secret"} {
		if _, ok := e.up.object(k); !ok {
			t.Errorf("%s was deleted by a refused batch", k)
		}
	}
	if err := del("app/a", "app/b"); err != nil {
		t.Fatalf("allowed batch: %v", errCode(err))
	}
	if _, ok := e.up.object("logs/app/a"); ok {
		t.Error("app/a survived an allowed batch")
	}
	reqs := e.requests(g)
	if len(reqs) != 2 || reqs[0].Allowed || !reqs[1].Allowed || !slices.Equal(reqs[1].Also, []string{"s3:DeleteObject arn:aws:s3:::logs/app/b"}) {
		t.Fatalf("records: %+v", reqs)
	}
}

func TestEncodedPaths(t *testing.T) {
	e := newEnv(t)
	g := e.grant("s3:GetObject,s3:PutObject arn:aws:s3:::logs/app/*")
	e.up.put("logs/secret.txt", []byte("s"))
	denied := []string{
		"/logs/app/..%2Fsecret.txt",
		"/logs/app/%2e%2e/secret.txt",
		"/logs/app/../secret.txt",
		"/logs/app%2F..%2Fsecret.txt",
		"/logs/%61pp/../secret.txt",
		"/logs/app/%252e%252e/secret.txt",
		"//logs/app/x",
		"/logs/app/x+y",
		"/logs%2Fapp/x",
	}
	for _, p := range denied {
		t.Run(p, func(t *testing.T) {
			before := len(e.up.seen())
			st, body := do(t, e.signed(g, http.MethodGet, p, nil))
			if st < 400 {
				t.Fatalf("status %d: %s", st, body)
			}
			for _, s := range e.up.seen()[before:] {
				if !strings.HasPrefix(s.Path, "/logs/app/") || strings.Contains(s.Path, "..") {
					t.Fatalf("upstream was asked for %q", s.Path)
				}
			}
		})
	}
	// Encodings that do stay inside the prefix reach the upstream as
	// exactly the key that was authorized.
	allowed := map[string]string{
		"/logs/app/sp%20ace.txt":  "logs/app/sp ace.txt",
		"/logs/app/a%2Fb.txt":     "logs/app/a/b.txt",
		"/logs/app/%E2%82%AC.txt": "logs/app/€.txt",
		"/logs/app/q%3Fx%26y%3D1": "logs/app/q?x&y=1",
		"/logs/app/%70lain.txt":   "logs/app/plain.txt",
		"/logs/app/sub/..dots..":  "logs/app/sub/..dots..",
		"/logs/app/percent%2520x": "logs/app/percent%20x",
	}
	for p, key := range allowed {
		t.Run(p, func(t *testing.T) {
			st, body := do(t, e.signed(g, http.MethodPut, p, []byte("v")))
			if st != 200 {
				t.Fatalf("status %d: %s", st, body)
			}
			if b, ok := e.up.object(key); !ok || string(b) != "v" {
				t.Fatalf("upstream has no %q", key)
			}
		})
	}
}

func TestVirtualHostedGoesPathStyleUpstream(t *testing.T) {
	e := newEnv(t)
	g := e.grant("s3:GetObject arn:aws:s3:::logs/app/*")
	e.up.put("logs/app/a.txt", []byte("va"))
	req := e.signedHost(g, http.MethodGet, "logs.s3.gw.test", "/app/a.txt")
	st, body := do(t, req)
	if st != 200 || string(body) != "va" {
		t.Fatalf("status %d body %q", st, body)
	}
	s := e.up.seen()
	if len(s) != 1 || s[0].Path != "/logs/app/a.txt" {
		t.Fatalf("upstream saw %+v", s)
	}
	req = e.signedHost(g, http.MethodGet, "logs.s3.gw.test", "/secret.txt")
	if st, body := do(t, req); st != 403 || !strings.Contains(parseErr(t, body).Message, "arn:aws:s3:::logs/secret.txt") {
		t.Fatalf("status %d body %s", st, body)
	}
}

func TestPresigned(t *testing.T) {
	e := newEnv(t)
	g := e.grant("s3:GetObject arn:aws:s3:::logs/app/*")
	e.up.put("logs/app/a.txt", []byte("pre"))
	ps := s3.NewPresignClient(e.client(g))
	u, err := ps.PresignGetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a.txt")}, s3.WithPresignExpires(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	get := func() (int, []byte) {
		req, _ := http.NewRequest(http.MethodGet, u.URL, nil)
		return do(t, req)
	}
	if st, body := get(); st != 200 || string(body) != "pre" {
		t.Fatalf("presigned GET: %d %q", st, body)
	}
	if s := e.up.seen(); strings.Contains(s[0].Query, "X-Amz-") {
		t.Fatalf("presign parameters reached the upstream: %q", s[0].Query)
	}
	if r := e.requests(g); len(r) != 1 || r[0].Params["presigned"] != "true" {
		t.Fatalf("records: %+v", r)
	}
	// The URL's own expiry is an hour away; the grant's end caps it.
	e.auth.End(g, "expired")
	st, body := get()
	if er := parseErr(t, body); st != 400 || er.Code != "ExpiredToken" || !strings.Contains(er.Message, "grant "+g.ID+" expired at") || !strings.Contains(er.Message, "presigned") {
		t.Fatalf("presigned GET after expiry: %d %+v", st, er)
	}
}

func TestBodyFailingItsDigestIsNotStored(t *testing.T) {
	e := newEnv(t)
	g := e.grant(walkScope)
	req := e.signed(g, http.MethodPut, "/logs/app/tampered", []byte("what was signed"))
	req.Body = io.NopCloser(strings.NewReader("what was sent!!"))
	st, body := do(t, req)
	if er := parseErr(t, body); st != 400 || er.Code != "XAmzContentSHA256Mismatch" {
		t.Fatalf("%d %+v", st, er)
	}
	if _, ok := e.up.object("logs/app/tampered"); ok {
		t.Fatal("a body that failed its digest was stored upstream")
	}
	res := e.results(g, 1)
	if !strings.HasPrefix(res[0].Error, "XAmzContentSHA256Mismatch") {
		t.Fatalf("result: %+v", res[0])
	}
}
