package awsgw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// fuzzGetQuery are the parameters a GetObject may carry without becoming
// another operation.
var fuzzGetQuery = map[string]bool{
	"response-content-type": true, "response-content-language": true, "response-expires": true,
	"response-cache-control": true, "response-content-disposition": true, "response-content-encoding": true,
	"partNumber": true, "x-id": true,
}

// FuzzGatewayScope sends requests of fuzzed method, path, query, one
// header and body, correctly signed with a grant that may only read
// logs/app/*, through the gateway to an upstream that records what
// reaches it. Whatever the request, the upstream only ever sees a GET or
// HEAD of an object under /logs/app/ (the key "app/" included) with no
// parameter that would make it another operation (a version, an ACL,
// tags, an upload): a request the scope does not allow never leaves the
// gateway.
func FuzzGatewayScope(f *testing.F) {
	e := newEnv(f)
	g := e.grant("s3:GetObject arn:aws:s3:::logs/app/*")
	e.up.put("logs/app/a.log", []byte("hello"))
	e.up.put("logs/secret", []byte("secret"))
	client := &http.Client{Transport: e.srv.Client().Transport, Timeout: 10 * time.Second}
	f.Add("GET", "logs/app/a.log", "", "", "", []byte(nil))
	f.Add("HEAD", "logs/app/a.log", "partNumber=1&response-content-type=text%2Fplain", "Range", "bytes=0-1", []byte(nil))
	f.Add("GET", "logs/app/../secret", "x-id=GetObject", "", "", []byte(nil))
	f.Add("GET", "logs/app%2F..%2Fsecret", "", "", "", []byte(nil))
	f.Add("GET", "logs/app/a.log", "versionId=1", "", "", []byte(nil))
	f.Add("GET", "logs/app/a.log", "acl", "", "", []byte(nil))
	f.Add("GET", "logs", "prefix=app/", "", "", []byte(nil))
	f.Add("PUT", "logs/app/b", "", "X-Amz-Copy-Source", "/logs/secret", []byte("x"))
	f.Add("POST", "logs", "delete", "Content-Type", "application/xml", []byte("<Delete><Object><Key>app/a.log</Key></Object></Delete>"))
	f.Add("GET", "logs/app/a.log", "tagging&x-id=GetObject", "", "", []byte(nil))
	f.Fuzz(func(t *testing.T, method, path, query, hname, hval string, body []byte) {
		if len(body) > 1<<12 || strings.ContainsAny(path, "?#") || strings.Contains(query, "#") {
			return
		}
		rawURL := e.srv.URL + "/" + path
		if query != "" {
			rawURL += "?" + query
		}
		req, err := http.NewRequest(method, rawURL, bytes.NewReader(body))
		if err != nil || req.URL.Host != strings.TrimPrefix(e.srv.URL, "http://") {
			return
		}
		if hname != "" {
			if !isToken(hname) || strings.ContainsAny(hval, "\r\n\x00") {
				return
			}
			if k := http.CanonicalHeaderKey(hname); k == "Authorization" || k == "Host" || k == "Content-Length" || k == "Transfer-Encoding" {
				return
			}
			req.Header.Set(hname, hval)
		}
		sum := sha256.Sum256(body)
		hash := hex.EncodeToString(sum[:])
		req.Header.Set("X-Amz-Content-Sha256", hash)
		signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
		creds := aws.Credentials{AccessKeyID: g.CredentialID, SecretAccessKey: g.Secret, SessionToken: g.SessionToken}
		if err := signer.SignHTTP(context.Background(), creds, req, hash, "s3", testRegion, time.Now()); err != nil {
			return
		}
		if !g.Live(time.Now()) {
			t.Fatalf("the grant ended: %s", g.EndReason())
		}
		before := len(e.up.seen())
		resp, err := client.Do(req)
		if err != nil {
			if strings.Contains(err.Error(), "Client.Timeout") {
				t.Fatalf("no answer in 10 s: %v", err)
			}
			return // a request Go's client will not send
		}
		if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)); err != nil && strings.Contains(err.Error(), "Client.Timeout") {
			t.Fatalf("the answer (%d) did not end in 10 s: %v", resp.StatusCode, err)
		}
		resp.Body.Close()
		for _, s := range e.up.seen()[before:] {
			if s.Method != "GET" && s.Method != "HEAD" {
				t.Fatalf("upstream received %s %s?%s", s.Method, s.RawPath, s.Query)
			}
			// The key "app/" itself (a folder's marker object) is in
			// scope: "logs/app/*" covers it, the "*" matching nothing, as
			// in IAM (scope.Match).
			if !strings.HasPrefix(s.Path, "/logs/app/") {
				t.Fatalf("upstream received %s of %q (%s)", s.Method, s.Path, s.RawPath)
			}
			q, err := url.ParseQuery(s.Query)
			if err != nil {
				t.Fatalf("upstream received a malformed query %q", s.Query)
			}
			for k := range q {
				if !fuzzGetQuery[k] && !strings.HasPrefix(strings.ToLower(k), "x-amz-") {
					t.Fatalf("upstream received %s %s with parameter %q (%s)", s.Method, s.RawPath, k, s.Query)
				}
			}
		}
	})
}
