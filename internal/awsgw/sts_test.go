package awsgw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/scope"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// fakeSTS answers AssumeRole as STS does (query protocol, XML), after
// verifying the caller's SigV4 signature, and remembers each call.
type fakeSTS struct {
	srv   *httptest.Server
	up    *fakeS3
	mu    sync.Mutex
	calls []url.Values
}

func newFakeSTS(t *testing.T, up *fakeS3) *fakeSTS {
	t.Helper()
	f := &fakeSTS{up: up}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSTS) serve(w http.ResponseWriter, r *http.Request) {
	// Services other than S3 sign the body's digest without sending it in
	// x-amz-content-sha256; the verifier (S3's) takes it from there.
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sum := sha256.Sum256(raw)
	r.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
	r.Body = io.NopCloser(bytes.NewReader(raw))
	v := sigv4.Verifier{Service: "sts", Lookup: func(id string) (string, string, error) {
		if id != upstreamAK {
			return "", "", s3err.New(s3err.InvalidAccessKeyID, "unknown")
		}
		return upstreamSK, "", nil
	}}
	auth, err := v.Verify(r)
	if err != nil {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>%s</Message></Error></ErrorResponse>`, err)
		return
	}
	body, err := io.ReadAll(auth.Body(r.Body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("Action") != "AssumeRole" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.calls = append(f.calls, form)
	n := len(f.calls)
	f.mu.Unlock()
	ak, sk, tok := fmt.Sprintf("ASIATEMP%d", n), fmt.Sprintf("temp-secret-%d", n), fmt.Sprintf("temp-token-%d", n)
	f.up.addKey(ak, sk, tok)
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleResult>
<SourceIdentity>%s</SourceIdentity>
<AssumedRoleUser><Arn>arn:aws:sts::111122223333:assumed-role/airlock/%s</Arn><AssumedRoleId>AROA:%s</AssumedRoleId></AssumedRoleUser>
<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s</SecretAccessKey><SessionToken>%s</SessionToken><Expiration>%s</Expiration></Credentials>
<PackedPolicySize>10</PackedPolicySize>
</AssumeRoleResult>
<ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>
</AssumeRoleResponse>`, form.Get("SourceIdentity"), form.Get("RoleSessionName"), form.Get("RoleSessionName"), ak, sk, tok,
		time.Now().Add(15*time.Minute).UTC().Format(time.RFC3339))
}

func (f *fakeSTS) assumed() []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.calls...)
}

func TestAssumeRolePerGrant(t *testing.T) {
	var sts *fakeSTS
	e := newEnv(t, func(o *Options) {
		sts = newFakeSTS(t, nil)
		o.Targets[0].RoleARN = "arn:aws:iam::111122223333:role/airlock-gateway"
		o.Targets[0].STSEndpoint = sts.srv.URL
	})
	sts.up = e.up
	g := e.grant(walkScope)
	e.up.put("logs/app/a.txt", []byte("via role"))
	cl := e.client(g)
	for range 2 {
		out, err := cl.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a.txt")})
		if err != nil {
			t.Fatalf("GetObject: %v", errCode(err))
		}
		b, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if string(b) != "via role" {
			t.Fatalf("body %q", b)
		}
	}
	calls := sts.assumed()
	if len(calls) != 1 {
		t.Fatalf("%d AssumeRole calls for one grant, want 1 (cached)", len(calls))
	}
	c := calls[0]
	if c.Get("RoleArn") != "arn:aws:iam::111122223333:role/airlock-gateway" || c.Get("RoleSessionName") != g.ID ||
		c.Get("SourceIdentity") != "log-triage-bot" || c.Get("DurationSeconds") != "900" {
		t.Fatalf("AssumeRole parameters: %v", c)
	}
	var pol iamPolicy
	if err := json.Unmarshal([]byte(c.Get("Policy")), &pol); err != nil {
		t.Fatalf("policy is not JSON: %v: %s", err, c.Get("Policy"))
	}
	want := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":["arn:aws:s3:::logs/app/*"]},` +
		`{"Effect":"Allow","Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::logs"],"Condition":{"StringLike":{"s3:prefix":"app/*"}}}]}`
	if c.Get("Policy") != want {
		t.Fatalf("policy\n got %s\nwant %s", c.Get("Policy"), want)
	}
	for _, s := range e.up.seen() {
		if s.Auth.AccessKeyID != "ASIATEMP1" || s.Header.Get("X-Amz-Security-Token") != "temp-token-1" {
			t.Fatalf("upstream signed with %q token %q", s.Auth.AccessKeyID, s.Header.Get("X-Amz-Security-Token"))
		}
	}
	// A second grant gets its own role session.
	g2 := e.grant("s3:GetObject arn:aws:s3:::logs/app/a.txt")
	if _, err := e.client(g2).GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a.txt")}); err != nil {
		t.Fatalf("second grant: %v", errCode(err))
	}
	if calls := sts.assumed(); len(calls) != 2 || calls[1].Get("RoleSessionName") != g2.ID {
		t.Fatalf("calls: %v", calls)
	}
}

func TestAssumeRoleFailure(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not allowed to assume</Message></Error><RequestId>x</RequestId></ErrorResponse>`)
		}))
		t.Cleanup(sts.Close)
		o.Targets[0].RoleARN = "arn:aws:iam::111122223333:role/airlock-gateway"
		o.Targets[0].STSEndpoint = sts.URL
	})
	g := e.grant(walkScope)
	_, err := e.client(g).GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a.txt")})
	if got := errCode(err); !strings.HasPrefix(got, "ServiceUnavailable: Airlock could not assume the target's role for grant "+g.ID) {
		t.Fatalf("got %q", got)
	}
	if len(e.up.seen()) != 0 {
		t.Fatal("the call reached the upstream")
	}
	res := e.results(g, 1)
	if res[0].Status != "503" || !strings.Contains(res[0].Error, "assume") {
		t.Fatalf("result: %+v", res[0])
	}
}

// TestAssumeRoleWithoutCredentials: an AssumeRole answer that parses but
// lacks a credential (absent or empty) is STS's failure, 503, not the
// gateway's own (500), and nothing reaches the upstream.
func TestAssumeRoleWithoutCredentials(t *testing.T) {
	const exp = "<Expiration>2099-01-01T00:00:00Z</Expiration>"
	for _, c := range []struct{ name, creds string }{
		{"none", ""},
		{"empty key", "<Credentials><AccessKeyId></AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken>t</SessionToken>" + exp + "</Credentials>"},
		{"empty secret", "<Credentials><AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey></SecretAccessKey><SessionToken>t</SessionToken>" + exp + "</Credentials>"},
		{"empty token", "<Credentials><AccessKeyId>ASIAX</AccessKeyId><SecretAccessKey>s</SecretAccessKey><SessionToken></SessionToken>" + exp + "</Credentials>"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) {
				sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/xml")
					io.WriteString(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>`+c.creds+
						`</AssumeRoleResult><ResponseMetadata><RequestId>x</RequestId></ResponseMetadata></AssumeRoleResponse>`)
				}))
				t.Cleanup(sts.Close)
				o.Targets[0].RoleARN = "arn:aws:iam::111122223333:role/airlock-gateway"
				o.Targets[0].STSEndpoint = sts.URL
			})
			g := e.grant(walkScope)
			_, err := e.client(g).GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a.txt")})
			if got := errCode(err); !strings.HasPrefix(got, "ServiceUnavailable: STS answered AssumeRole for grant "+g.ID+" without credentials") {
				t.Fatalf("got %q", got)
			}
			if len(e.up.seen()) != 0 {
				t.Fatal("the call reached the upstream")
			}
		})
	}
}

func TestSessionPolicy(t *testing.T) {
	cases := []struct {
		scope []string
		want  string
	}{
		{[]string{"s3:GetObject arn:aws:s3:::logs/app/*"},
			`[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::logs/app/*"]}]`},
		{[]string{"s3:ListBucket arn:aws:s3:::logs"},
			`[{"Effect":"Allow","Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::logs"]}]`},
		{[]string{"s3:ListBucket,s3:ListBucketVersions arn:aws:s3:::logs/a?b$c*"},
			`[{"Effect":"Allow","Action":["s3:ListBucket","s3:ListBucketVersions"],"Resource":["arn:aws:s3:::logs"],"Condition":{"StringLike":{"s3:prefix":"a${?}b${$}c*"}}}]`},
		// A listing without a prefix has no s3:prefix for a condition to
		// match: the whole bucket is the bucket ARN, unconditioned.
		{[]string{"s3:ListBucket,s3:GetObject arn:aws:s3:::logs/*"},
			`[{"Effect":"Allow","Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::logs"]},{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::logs/*"]}]`},
		{[]string{"s3:ListBucket arn:aws:s3:::log*"},
			`[{"Effect":"Allow","Action":["s3:ListBucket"],"Resource":["arn:aws:s3:::log*"]}]`},
		{[]string{"s3:GetObject arn:aws:s3:::a/x", "s3:PutObject arn:aws:s3:::a/x", "s3:ListAllMyBuckets *"},
			`[{"Effect":"Allow","Action":["s3:GetObject","s3:PutObject"],"Resource":["arn:aws:s3:::a/x"]},{"Effect":"Allow","Action":["s3:ListAllMyBuckets"],"Resource":["*"]}]`},
	}
	for _, tc := range cases {
		sc, err := scope.Parse(tc.scope)
		if err != nil {
			t.Fatal(err)
		}
		got, err := SessionPolicy(sc)
		if err != nil {
			t.Fatal(err)
		}
		want := `{"Version":"2012-10-17","Statement":` + tc.want + `}`
		if got != want {
			t.Errorf("%v:\n got %s\nwant %s", tc.scope, got, want)
		}
	}
}

func TestRoleDuration(t *testing.T) {
	for _, tc := range []struct {
		remaining time.Duration
		want      int32
	}{
		{time.Minute, 900}, {15 * time.Minute, 900}, {20*time.Minute + 500*time.Millisecond, 1201},
		{time.Hour, 3600}, {5 * time.Hour, 3600}, {-time.Minute, 900},
	} {
		if got := roleDuration(tc.remaining); got != tc.want {
			t.Errorf("roleDuration(%v) = %d, want %d", tc.remaining, got, tc.want)
		}
	}
}

func TestSTSName(t *testing.T) {
	for in, want := range map[string]string{
		"log-triage-bot": "log-triage-bot", "g_abc": "g_abc", "a": "a_", "with space/and:colon": "with_space_and_colon",
		strings.Repeat("x", 70): strings.Repeat("x", 64),
	} {
		if got := stsName(in); got != want || !stsNameRE.MatchString(got) {
			t.Errorf("stsName(%q) = %q, want %q", in, got, want)
		}
	}
}
