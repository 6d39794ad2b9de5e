package pggw

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
)

// waitDerived waits until the gateway has derived n verifiers in all.
func waitDerived(t testing.TB, e *env, n int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.gw.scram.derived.Load() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := e.gw.scram.derived.Load(); got != n {
		t.Fatalf("%d SCRAM verifiers derived, want %d", got, n)
	}
}

// A grant's SCRAM verifier is derived once, when the grant becomes active,
// and never at a login: neither for its holder's logins nor for failed
// attempts, with its credential or with a name no grant holds. So a client
// that sends a proof of zeros (no work on its side) cannot make the
// gateway run PBKDF2, and the salt a name is offered does not change from
// one attempt to the next, for a credential as for a name that is not one.
func TestSCRAMVerifierDerivedOncePerGrant(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	waitDerived(t, e, 1) // at activation, before any login

	for range 3 {
		c := e.connect(g, "")
		var n int
		if err := c.QueryRow(ctxT(t, 10*time.Second), "select count(*) from customers").Scan(&n); err != nil {
			t.Fatal(err)
		}
		c.Close(context.Background())
	}
	salts := map[string][]string{}
	for _, user := range []string{g.CredentialID, "AKALNOSUCHCRED00001", "AKALNOSUCHCRED00002"} {
		for range 3 {
			salt, err := badSCRAMSalt(e.addr.String(), user, e.db)
			if err != nil {
				t.Fatalf("%s: %v", user, err)
			}
			salts[user] = append(salts[user], salt)
		}
	}
	if got := e.gw.scram.derived.Load(); got != 1 {
		t.Fatalf("%d SCRAM verifiers derived after 3 logins and 9 failed attempts, want 1 (the grant's, at activation)", got)
	}
	for user, s := range salts {
		if s[0] == "" || s[1] != s[0] || s[2] != s[0] {
			t.Errorf("%s was offered salts %q, want one salt every time", user, s)
		}
	}
	if a, b, c := salts[g.CredentialID][0], salts["AKALNOSUCHCRED00001"][0], salts["AKALNOSUCHCRED00002"][0]; a == b || a == c || b == c {
		t.Errorf("names share a salt: %q %q %q", a, b, c)
	}
}

// A grant the gateway does not serve (another target's) gets its verifier
// at its first login, once; the holder who proves the secret then learns
// why it is refused. When the grant ends, the verifier is forgotten.
func TestSCRAMVerifierOtherTargetsAndEnd(t *testing.T) {
	e := newEnv(t, nil)
	aws := e.auth.Add(gatewaytest.Spec{Target: "aws-prod", TargetKind: "aws", Scope: []string{"s3:GetObject arn:aws:s3:::b/*"}})
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	waitDerived(t, e, 1)
	for range 3 {
		if err := badSCRAM(e.addr.String(), aws.CredentialID, e.db); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.gw.scram.derived.Load(); got != 2 {
		t.Fatalf("%d SCRAM verifiers derived, want 2 (the served grant's, and the other target's at its first attempt)", got)
	}
	e.auth.End(g, "revoked")
	deadline := time.Now().Add(10 * time.Second)
	for e.gw.scram.has(g) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if e.gw.scram.has(g) {
		t.Fatal("an ended grant's verifier is still kept")
	}
}

// The verifiers kept for grants the gateway does not serve are bounded:
// past maxLazyVerifiers, ended grants' go first, and a new one is derived
// without being kept when all are live.
func TestSCRAMVerifierLazyBound(t *testing.T) {
	vs := newVerifiers()
	live := make([]*gateway.Grant, 0, maxLazyVerifiers)
	for i := range maxLazyVerifiers {
		gr := gateway.NewGrant(gateway.Info{ID: fmt.Sprintf("g_%d", i), Secret: "s", ExpiresAt: time.Now().Add(time.Hour)})
		live = append(live, gr)
		if _, known, err := vs.forLogin("u", gr); err != nil || !known {
			t.Fatal(known, err)
		}
	}
	extra := gateway.NewGrant(gateway.Info{ID: "extra", Secret: "s", ExpiresAt: time.Now().Add(time.Hour)})
	if _, _, err := vs.forLogin("u", extra); err != nil {
		t.Fatal(err)
	}
	if vs.has(extra) || len(vs.m) != maxLazyVerifiers {
		t.Fatalf("over the bound: %d kept, extra kept %v", len(vs.m), vs.has(extra))
	}
	live[0].End("revoked")
	if _, _, err := vs.forLogin("u", extra); err != nil {
		t.Fatal(err)
	}
	if !vs.has(extra) || vs.has(live[0]) || len(vs.m) != maxLazyVerifiers {
		t.Fatalf("an ended grant's verifier was not swept for a live one: %d kept, extra %v, ended %v", len(vs.m), vs.has(extra), vs.has(live[0]))
	}
	if got := vs.derived.Load(); got != maxLazyVerifiers+2 {
		t.Fatalf("%d derived, want %d", got, maxLazyVerifiers+2)
	}
}

// BenchmarkSCRAMFlood measures what a failed SCRAM attempt (a proof of
// zeros, which costs the client nothing) costs this process, the client
// side included: for an active grant's credential and for a name no grant
// holds. cpu-µs/attempt is the figure to compare.
func BenchmarkSCRAMFlood(b *testing.B) {
	e := newEnv(b, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	waitDerived(b, e, 1)
	for _, bc := range []struct{ name, user string }{{"grant", g.CredentialID}, {"unknown", "AKALNOSUCHCRED00001"}} {
		b.Run(bc.name, func(b *testing.B) {
			cpu0 := cpuTime(b)
			for b.Loop() {
				if err := badSCRAM(e.addr.String(), bc.user, e.db); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/attempt")
		})
	}
}
