package authority

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/sessions"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
)

// newAuthority returns an Authority whose Recorder writes to a SQLite log
// of its own (no journal: every append a store transaction), with o's
// hooks.
func newAuthority(t *testing.T, o Options) *Authority {
	t.Helper()
	ctx, dir := context.Background(), t.TempDir()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	signer, _, err := auditlog.LoadOrCreateKey(dir, "authority-test")
	if err != nil {
		t.Fatal(err)
	}
	l, err := auditlog.Open(ctx, st, signer, auditlog.Options{Origin: "airlock/authority-test", Rows: review.StoreRows})
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return time.Now().UTC() }
	rec, err := sessions.New(sessions.Options{Log: l, Store: st, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.Close(); l.Close(); st.Close() })
	o.Now, o.Recorder = now, rec
	n := 0
	o.NewSessionID = func() string { n++; return "s_" + string(rune('a'+n)) }
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func live(id, cred, secret string) *gateway.Grant {
	return gateway.NewGrant(gateway.Info{ID: id, Identity: "bot", Target: "aws-prod", CredentialID: cred, Secret: secret, ExpiresAt: time.Now().Add(time.Hour)})
}

func TestAuthorityAnswersFromWhatTheLifecycleAdds(t *testing.T) {
	a := newAuthority(t, Options{})
	var seen []string
	a.Subscribe(func(g *gateway.Grant) { seen = append(seen, g.ID) })
	g := live("g_1", "AKID1", "s3cr3t")
	a.Add(g, &model.Instance{})
	if len(seen) != 1 || seen[0] != "g_1" {
		t.Fatalf("subscriber saw %v, want g_1", seen)
	}
	if got, err := a.Authenticate("AKID1", "s3cr3t"); err != nil || got != g {
		t.Fatalf("Authenticate: %v, %v", got, err)
	}
	for _, c := range [][2]string{{"AKID1", "s3cr3T"}, {"AKID1", ""}, {"AKID2", "s3cr3t"}} {
		if _, err := a.Authenticate(c[0], c[1]); !errors.Is(err, gateway.ErrNoGrant) {
			t.Errorf("Authenticate(%q, %q): %v, want ErrNoGrant", c[0], c[1], err)
		}
	}
	// A late subscriber is told of the grants already active.
	var late int
	a.Subscribe(func(*gateway.Grant) { late++ })
	if late != 1 {
		t.Fatalf("a late subscriber was told of %d grants, want 1", late)
	}
	if a.From("g_1") == nil || len(a.IDs()) != 1 || a.Grant("g_1") != g {
		t.Fatal("the grant's instance, ids or record are not held")
	}
	// Cut off: Done closes at once, and nothing answers for it any more.
	if a.CutOff("g_1", "revoked") != g {
		t.Fatal("CutOff did not return the grant")
	}
	select {
	case <-g.Done():
	default:
		t.Fatal("Done is open after CutOff")
	}
	if _, err := a.Lookup("AKID1"); !errors.Is(err, gateway.ErrNoGrant) {
		t.Fatalf("Lookup after CutOff: %v", err)
	}
	if a.From("g_1") != nil || len(a.IDs()) != 0 || a.CutOff("g_1", "again") != nil {
		t.Fatal("a cut-off grant is still held")
	}
}

func TestAuthorityHooks(t *testing.T) {
	var ready atomic.Bool
	var misses atomic.Int32
	refusal := &gateway.RefusedError{Reason: "the credential moved"}
	var a *Authority
	a = newAuthority(t, Options{
		Ready: ready.Load,
		Miss: func(cred string) *gateway.Grant {
			misses.Add(1)
			if cred != "AKELSEWHERE" {
				return nil
			}
			g := live("g_2", cred, "x")
			a.Add(g, nil)
			return g
		},
		Admit: func(ctx context.Context, g *gateway.Grant, client, sid string) error {
			if client == "10.9.9.9" {
				return refusal
			}
			return nil
		},
	})
	// Not ready: refused without asking anything.
	if _, err := a.Lookup("AKELSEWHERE"); !errors.Is(err, gateway.ErrNoGrant) || misses.Load() != 0 {
		t.Fatalf("Lookup while not ready: %v (%d misses)", err, misses.Load())
	}
	ready.Store(true)
	g, err := a.Lookup("AKELSEWHERE")
	if err != nil || g.ID != "g_2" || misses.Load() != 1 {
		t.Fatalf("Lookup of a grant activated elsewhere: %v, %v (%d misses)", g, err, misses.Load())
	}
	if _, err := a.Lookup("AKELSEWHERE"); err != nil || misses.Load() != 1 {
		t.Fatalf("a second Lookup asked again (%d misses): %v", misses.Load(), err)
	}
	// Admit refuses a session; a live grant's session starts and is
	// recorded; an ended grant's does not start.
	ctx := context.Background()
	if _, err := a.StartSession(ctx, g, "10.9.9.9"); !errors.As(err, &refusal) {
		t.Fatalf("StartSession from a moved client: %v", err)
	}
	ses, err := a.StartSession(ctx, g, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := ses.Request(ctx, gateway.Call{Action: "s3:GetObject", Allowed: true}); err != nil {
		t.Fatal(err)
	}
	if err := ses.End(ctx); err != nil {
		t.Fatal(err)
	}
	a.CutOff("g_2", "ended")
	if _, err := a.StartSession(ctx, g, "127.0.0.1"); !errors.Is(err, gateway.ErrNoGrant) {
		t.Fatalf("StartSession under an ended grant: %v", err)
	}
	// An expired grant is refused even before anything cuts it off.
	old := gateway.NewGrant(gateway.Info{ID: "g_3", CredentialID: "AKOLD", Secret: "x", ExpiresAt: time.Now().Add(-time.Second)})
	a.Add(old, nil)
	if _, err := a.Lookup("AKOLD"); !errors.Is(err, gateway.ErrNoGrant) {
		t.Fatalf("Lookup of an expired grant: %v", err)
	}
}
