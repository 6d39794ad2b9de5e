package grants_test

import (
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestSubscribe: a subscriber sees grants already active at once and later
// activations as they happen, each exactly once, with the credentials'
// session token; a revoke closes Done on the same *gateway.Grant.
func TestSubscribe(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	before := h.request(bot, autoReq("10m"), model.Active)

	var mu sync.Mutex
	seen := map[string]*gateway.Grant{}
	count := map[string]int{}
	h.Svc.Authority().Subscribe(func(g *gateway.Grant) {
		mu.Lock()
		defer mu.Unlock()
		seen[g.ID] = g
		count[g.ID]++
	})
	after := h.request(bot, autoReq("10m"), model.Active)

	mu.Lock()
	defer mu.Unlock()
	for _, id := range []string{before.ID, after.ID} {
		if count[id] != 1 {
			t.Errorf("%s seen %d times, want 1", id, count[id])
		}
	}
	h.Svc.SetEndpoint(awsProd, grants.Endpoint{URL: "http://127.0.0.1:8701", Region: "us-east-1"})
	c := h.creds(bot, after.ID)
	if c.Endpoint == nil || c.Endpoint.URL != "http://127.0.0.1:8701" {
		t.Errorf("credentials endpoint %+v", c.Endpoint)
	}
	g := seen[after.ID]
	if g.SessionToken == "" || g.SessionToken != c.SessionToken || !strings.HasPrefix(c.SessionToken, "AIRLOCK") {
		t.Errorf("session token: gateway %q, credentials %q", g.SessionToken, c.SessionToken)
	}
	if c.SessionToken == c.SecretAccessKey || strings.Contains(c.SessionToken, c.SecretAccessKey) {
		t.Error("session token derived too close to the secret")
	}
	if _, err := h.Svc.Revoke(h.ctx, h.id(alice), after.ID, "test"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.Done():
	default:
		t.Fatal("revoke did not close Done on the subscribed grant")
	}
	if g.EndReason() != "revoked" {
		t.Errorf("end reason %q", g.EndReason())
	}
}

// TestReject: a refused attempt lands in the log with no secret.
func TestReject(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	err := h.Svc.Authority().Reject(h.ctx, gateway.Rejection{Gateway: "aws", Target: awsProd, Client: "127.0.0.1:1", CredentialID: "AKALNOPE", Reason: "InvalidAccessKeyId"})
	if err != nil {
		t.Fatal(err)
	}
	es := h.entriesOfType("gateway.rejected")
	if len(es) != 1 {
		t.Fatalf("%d gateway.rejected entries, want 1", len(es))
	}
	d := entryData(t, es[0])
	if d["credential_id"] != "AKALNOPE" || d["reason"] != "InvalidAccessKeyId" || d["gateway"] != "aws" {
		t.Errorf("entry data %v", d)
	}
	h.verifyLog()
}

// TestUsedCountsAlso: a call's other checks (a copy's source) count as
// scope used; a denied call's do not.
func TestUsedCountsAlso(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, autoReq("10m"), model.Active)
	c := h.creds(bot, g.ID)
	gg, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey)
	if err != nil {
		t.Fatal(err)
	}
	ses, err := h.Svc.Authority().StartSession(h.ctx, gg, "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, call := range []gateway.Call{
		{Kind: "request", Action: "s3:PutObject", Resource: "arn:aws:s3:::logs/app/copy", Also: []string{"s3:GetObject arn:aws:s3:::logs/app/src"}, Allowed: true},
		{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/x", Also: []string{"s3:PutObject arn:aws:s3:::logs/app/y"}, Allowed: false},
	} {
		if err := gatewaytest.Record(h.ctx, ses, call); err != nil {
			t.Fatal(err)
		}
	}
	rec := h.session(ses.ID)
	want := []string{"s3:PutObject arn:aws:s3:::logs/app/copy", "s3:GetObject arn:aws:s3:::logs/app/src"}
	if !slices.Equal(rec.Used, want) || rec.Calls != 1 || rec.Denied != 1 {
		t.Errorf("used %v calls %d denied %d; want %v, 1, 1", rec.Used, rec.Calls, rec.Denied, want)
	}
}
