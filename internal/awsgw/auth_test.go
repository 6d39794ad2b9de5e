package awsgw

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
)

func TestAuthFailures(t *testing.T) {
	e := newEnv(t)
	g := e.grant(walkScope)
	other := e.grant(walkScope)
	e.up.put("logs/app/a.txt", []byte("a"))
	get := func(ak, sk, token string) string {
		_, err := e.clientWith(ak, sk, token).GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a.txt")})
		return errCode(err)
	}
	cases := []struct {
		name, ak, sk, token, want string
	}{
		{"wrong secret", g.CredentialID, g.Secret + "x", g.SessionToken, "SignatureDoesNotMatch"},
		{"another grant's secret", g.CredentialID, other.Secret, g.SessionToken, "SignatureDoesNotMatch"},
		{"another grant's token", g.CredentialID, g.Secret, other.SessionToken, "InvalidToken"},
		{"no session token", g.CredentialID, g.Secret, "", "InvalidToken"},
		{"unknown key", "AKALNOSUCHKEY000000", g.Secret, g.SessionToken, "InvalidAccessKeyId"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := get(tc.ak, tc.sk, tc.token); !strings.HasPrefix(got, tc.want) {
				t.Fatalf("got %q, want %s", got, tc.want)
			}
		})
	}
	if n := len(e.up.seen()); n != 0 {
		t.Fatalf("%d refused requests reached the upstream", n)
	}
	rj := e.auth.Rejections()
	if len(rj) != len(cases) {
		t.Fatalf("%d rejections recorded, want %d: %+v", len(rj), len(cases), rj)
	}
	for i, r := range rj {
		if r.Gateway != "aws" || r.CredentialID != cases[i].ak || !strings.HasPrefix(r.Reason, cases[i].want) {
			t.Errorf("rejection %d: %+v", i, r)
		}
		for _, secret := range []string{g.Secret, other.Secret, g.SessionToken, other.SessionToken} {
			if strings.Contains(r.Reason, secret) || strings.Contains(r.Client, secret) {
				t.Errorf("rejection %d holds a secret", i)
			}
		}
	}
	if rj[0].GrantID != g.ID || rj[4].GrantID != "" {
		t.Errorf("grant ids in rejections: %q, %q", rj[0].GrantID, rj[4].GrantID)
	}
	if len(e.requests(g)) != 0 {
		t.Error("an unauthenticated call was recorded in the grant's session")
	}
}

func TestReplayAfterEnd(t *testing.T) {
	for _, tc := range []struct {
		reason, code, msg string
	}{
		{"revoked", "AccessDenied", "was revoked"},
		{"expired", "ExpiredToken", "expired at"},
		{"ended", "AccessDenied", "has ended (ended)"},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			e := newEnv(t)
			g := e.grant(walkScope)
			e.up.put("logs/app/a.txt", []byte("a"))
			req := e.signed(g, http.MethodGet, "/logs/app/a.txt", nil)
			replay := req.Clone(context.Background())
			if st, _ := do(t, req); st != 200 {
				t.Fatalf("first call: %d", st)
			}
			e.auth.End(g, tc.reason)
			replay.Body = http.NoBody
			st, body := do(t, replay)
			er := parseErr(t, body)
			if er.Code != tc.code || !strings.Contains(er.Message, "grant "+g.ID+" ") || !strings.Contains(er.Message, tc.msg) {
				t.Fatalf("replay: %d %+v", st, er)
			}
			// Without the secret, an ended grant's key is just unknown.
			st, body = do(t, e.signedWith(g.CredentialID, "not-the-secret", g.SessionToken, http.MethodGet, "/logs/app/a.txt"))
			if er := parseErr(t, body); er.Code != "InvalidAccessKeyId" || strings.Contains(er.Message, g.ID) {
				t.Fatalf("ended key, wrong secret: %d %+v", st, er)
			}
			if n := len(e.up.seen()); n != 1 {
				t.Fatalf("upstream saw %d requests, want 1", n)
			}
			rj := e.auth.Rejections()
			if len(rj) != 2 || rj[0].GrantID != g.ID || !strings.Contains(rj[0].Reason, tc.msg) {
				t.Fatalf("rejections: %+v", rj)
			}
			eventually(t, "the session to end", func() bool { return e.auth.Sessions()[0].Ended() })
		})
	}
}

func TestExpiryByClock(t *testing.T) {
	// The grant's expiry passes on the gateway's clock before the control
	// plane has noticed: the call is refused anyway.
	now := time.Now()
	e := newEnv(t, func(o *Options) { o.Clock = clock.Func(func() time.Time { return now }) })
	g := e.grant(walkScope)
	e.up.put("logs/app/a.txt", []byte("a"))
	now = g.ExpiresAt.Add(time.Second)
	// Signed at the gateway's time, so the skew check passes.
	req := e.signedAt(g, http.MethodGet, "/logs/app/a.txt", now)
	st, body := do(t, req)
	if er := parseErr(t, body); st != 400 || er.Code != "ExpiredToken" {
		t.Fatalf("%d %+v", st, er)
	}
	if len(e.up.seen()) != 0 {
		t.Fatal("an expired call reached the upstream")
	}
}

func TestWrongTarget(t *testing.T) {
	e := newEnv(t)
	pg := e.auth.Add(gatewaytest.Spec{Target: "orders-db", TargetKind: "postgres", Scope: []string{"pg:select orders.public.*"}})
	unknown := e.auth.Add(gatewaytest.Spec{Target: "aws-other", TargetKind: "aws", Scope: []string{walkScope}})
	for _, gr := range []struct{ id, ak, sk, tok, target string }{
		{pg.ID, pg.CredentialID, pg.Secret, pg.SessionToken, "orders-db"},
		{unknown.ID, unknown.CredentialID, unknown.Secret, unknown.SessionToken, "aws-other"},
	} {
		st, body := do(t, e.signedWith(gr.ak, gr.sk, gr.tok, http.MethodGet, "/logs/app/a.txt"))
		if er := parseErr(t, body); st != 403 || er.Code != "AccessDenied" || !strings.Contains(er.Message, gr.target) {
			t.Fatalf("%s: %d %+v", gr.target, st, er)
		}
	}
	if rj := e.auth.Rejections(); len(rj) != 2 || rj[0].GrantID != pg.ID || rj[1].Target != "aws-other" {
		t.Fatalf("rejections: %+v", rj)
	}
	if len(e.up.seen()) != 0 || len(e.auth.Sessions()) != 0 {
		t.Fatal("a call for another target got through")
	}
}

func TestRecordFailureRefusesCall(t *testing.T) {
	e := newEnv(t)
	g := e.grant(walkScope)
	e.up.put("logs/app/a.txt", []byte("a"))
	cl := e.client(g)
	get := func() string {
		_, err := cl.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a.txt")})
		return errCode(err)
	}
	// Before any session: the session start cannot be recorded.
	e.auth.FailRecords(true)
	if got := get(); !strings.HasPrefix(got, "ServiceUnavailable") {
		t.Fatalf("no session: %q", got)
	}
	e.auth.FailRecords(false)
	if got := get(); got != "" {
		t.Fatalf("after recovery: %q", got)
	}
	// With a session: the call's own record fails. A read travels
	// upstream while its record is written (durable before disclosure),
	// and its answer is withheld; a write is not forwarded at all.
	e.auth.FailRecords(true)
	if got := get(); !strings.HasPrefix(got, "ServiceUnavailable: Airlock could not record this call, so its answer was withheld") {
		t.Fatalf("record failure: %q", got)
	}
	_, err := cl.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/new"), Body: strings.NewReader("n")})
	if !strings.HasPrefix(errCode(err), "ServiceUnavailable") {
		t.Fatalf("put with record failure: %v", errCode(err))
	}
	e.auth.FailRecords(false)
	for _, s := range e.up.seen() {
		if s.Method != http.MethodGet {
			t.Fatalf("upstream saw %+v: only reads may travel before their record is durable", s)
		}
	}
	if _, ok := e.up.object("logs/app/new"); ok {
		t.Fatal("an unrecorded put reached the upstream")
	}
	if !strings.Contains(e.logText(), "recording a call failed") {
		t.Errorf("the failure was not logged: %s", e.logText())
	}
}
