package awsgw

import (
	"net/http"
	"strings"
	"testing"
)

// TestNotReadyIsRetryable: while the control plane cannot vouch for
// credentials (a replica whose store is down re-reading its grants), a
// caller holding a live grant's secret gets 503 ServiceUnavailable, which
// the SDKs retry, not "grant … is no longer active" (403 AccessDenied,
// which they do not, and which is false); nothing reaches the upstream;
// without the secret the key is unknown, as before; and once ready the
// same credentials work.
func TestNotReadyIsRetryable(t *testing.T) {
	e := newEnv(t)
	g := e.grant(walkScope)
	e.up.put("logs/app/a.txt", []byte("a"))
	e.auth.SetReady(false)
	st, body := do(t, e.signed(g, http.MethodGet, "/logs/app/a.txt", nil))
	if er := parseErr(t, body); st != http.StatusServiceUnavailable || er.Code != "ServiceUnavailable" || !strings.Contains(er.Message, g.ID) {
		t.Fatalf("live grant, control plane not ready: %d %+v, want 503 ServiceUnavailable", st, er)
	}
	st, body = do(t, e.signedWith(g.CredentialID, "not-the-secret", g.SessionToken, http.MethodGet, "/logs/app/a.txt"))
	if er := parseErr(t, body); er.Code != "InvalidAccessKeyId" || strings.Contains(er.Message, g.ID) {
		t.Fatalf("wrong secret, not ready: %d %+v", st, er)
	}
	if n := len(e.up.seen()); n != 0 {
		t.Fatalf("upstream saw %d requests while not ready", n)
	}
	e.auth.SetReady(true)
	if st, body := do(t, e.signed(g, http.MethodGet, "/logs/app/a.txt", nil)); st != 200 {
		t.Fatalf("ready again: %d %s", st, body)
	}
	// An ended grant is still told apart from a replica that is not ready.
	e.auth.End(g, "revoked")
	e.auth.SetReady(false)
	st, body = do(t, e.signed(g, http.MethodGet, "/logs/app/a.txt", nil))
	if er := parseErr(t, body); er.Code != "AccessDenied" || !strings.Contains(er.Message, "was revoked") {
		t.Fatalf("revoked grant, not ready: %d %+v", st, er)
	}
}
