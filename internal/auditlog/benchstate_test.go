package auditlog

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/scope"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
	"golang.org/x/mod/sumdb/note"
)

// stateEntries is the size of BenchmarkVerifyState's log
// (AIRLOCK_BENCH_LOG_ENTRIES overrides it).
func stateEntries() int {
	if n, err := strconv.Atoi(os.Getenv("AIRLOCK_BENCH_LOG_ENTRIES")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

var stateFixture struct {
	once sync.Once
	path string
	dir  string
	n    int64
	err  error
}

// BenchmarkVerifyState measures `audit verify` with its state check over a
// 1,000,000-entry log shaped like a gateway's: grants of 1,000 gateway
// calls each (requested, decided, activated, one session started, the
// calls, the session ended, the grant expired), with grant and session rows
// consistent with it. It verifies the tree and checkpoints, derives every
// grant and session from the entries, and compares every row.
func BenchmarkVerifyState(b *testing.B) {
	s, v := stateKey(b)
	want := stateEntries()
	stateFixture.once.Do(func() {
		// The log takes minutes to write, so it is cached under the temp
		// dir between runs, named by its size and generator version.
		stateFixture.path = filepath.Join(os.TempDir(), fmt.Sprintf("airlock-bench-state-%s-%d.db", stateGenerator, want))
		if n, err := cachedStateLog(stateFixture.path, v); err == nil {
			stateFixture.n = n
			return
		}
		dir, err := os.MkdirTemp("", "auditlog-bench-state")
		if err != nil {
			stateFixture.err = err
			return
		}
		stateFixture.dir = dir
		tmp := filepath.Join(dir, "airlock.db")
		st := openSQLite(b, tmp)
		l, err := Open(context.Background(), st, s, Options{Origin: "airlock/bench", JournalDir: filepath.Join(dir, "journal"), JournalKey: []byte("bench journal key of 32 bytes..."), Rows: review.StoreRows})
		if err != nil {
			stateFixture.err = err
			return
		}
		stateFixture.n, stateFixture.err = writeStateLog(l, want)
		if err := l.Close(); stateFixture.err == nil {
			stateFixture.err = err
		}
		if err := st.Close(); stateFixture.err == nil {
			stateFixture.err = err
		}
		if stateFixture.err == nil {
			stateFixture.err = os.Rename(tmp, stateFixture.path)
		}
	})
	if stateFixture.err != nil {
		b.Fatal(stateFixture.err)
	}
	st := openSQLite(b, stateFixture.path)
	ctx := context.Background()
	b.ResetTimer()
	var entries int64
	start, cpu0 := time.Now(), cpuTime()
	for range b.N {
		rep, err := VerifyWith(ctx, st, v, VerifyOptions{State: review.NewChecker(st)})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.OK || !rep.Rows || rep.Entries != stateFixture.n {
			b.Fatalf("report %+v", rep)
		}
		entries += rep.Entries
	}
	el, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	b.ReportMetric(float64(entries)/el.Seconds(), "entries/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(entries), "cpu-ns/entry")
}

// stateGenerator changes whenever writeStateLog or the schema changes, so a
// stale cached log is never reused.
const stateGenerator = "v3"

// stateKey is a fixed key (from a fixed seed), so that a cached log
// verifies in a later run.
func stateKey(b *testing.B) (note.Signer, note.Verifier) {
	skey, vkey, err := note.GenerateKey(bytes.NewReader(bytes.Repeat([]byte("airlock bench state key seed...."), 4)), "airlock-bench")
	if err != nil {
		b.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		b.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		b.Fatal(err)
	}
	return s, v
}

// cachedStateLog returns the size of the cached log at path, if it exists
// and verifies with v.
func cachedStateLog(path string, v note.Verifier) (int64, error) {
	if _, err := os.Stat(path); err != nil {
		return 0, err
	}
	st, err := sqlitestore.Open(context.Background(), path)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	c, err := st.LatestCheckpoint(context.Background())
	if err != nil {
		return 0, err
	}
	if _, err := openCheckpoint(c.Note, v); err != nil {
		return 0, err
	}
	return c.Size, nil
}

// writeStateLog writes grants of 1,000 calls until the log holds about n
// entries, 16 grants at a time, with their rows.
func writeStateLog(l *Log, n int) (int64, error) {
	const calls = 1000
	grants := max(1, n/(calls+6))
	sc, err := scope.Parse([]string{"s3:GetObject arn:aws:s3:::logs/app/*"})
	if err != nil {
		return 0, err
	}
	t0 := time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errc := make(chan error, grants)
	sem := make(chan struct{}, 16)
	for gi := range grants {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := writeStateGrant(l, gi, calls, sc, t0.Add(time.Duration(gi)*time.Second)); err != nil {
				errc <- err
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return 0, err
	}
	return l.Size(), nil
}

func writeStateGrant(l *Log, gi, calls int, sc scope.Scope, at time.Time) error {
	ctx := context.Background()
	id := fmt.Sprintf("g_bench%08d", gi)
	sid := fmt.Sprintf("s_bench%08d", gi)
	dec := model.PolicyDecision{Outcome: "auto", PolicySetHash: "sha256:bench", PolicyIDs: []string{"triage"}, Explanation: "permitted", At: at}
	g := model.Grant{ID: id, Identity: "log-triage-bot", IdentityKind: model.Agent, Owner: "sre-team", Target: "aws-prod", TargetKind: "aws",
		Account: "111122223333", RequestedScope: sc, GrantedScope: sc, Reason: "bench", Duration: 10 * time.Minute,
		Status: model.Active, RequestedAt: at, DecideBy: at.Add(time.Hour), DecidedAt: at, StartedAt: at, ExpiresAt: at.Add(10 * time.Minute),
		Decision: dec, CredentialID: "AKIA" + id, CredentialFingerprint: "sha256:" + id}
	err := l.Do(ctx, func(ctx context.Context, tx store.Tx) ([]Event, error) {
		return stateGrantStart(g, sid, "bench"), tx.CreateGrant(ctx, g)
	})
	if err != nil {
		return err
	}
	ses := model.Session{ID: sid, GrantID: id, Identity: g.Identity, Target: g.Target, Client: "bench", StartedAt: at}
	var tally review.Tally
	for i := range calls {
		c := gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: fmt.Sprintf("arn:aws:s3:::logs/app/%d.log", i%7),
			Allowed: i%50 != 0, Params: map[string]string{"key": fmt.Sprintf("app/%d.log", i)}, BytesOut: int64(100 + i)}
		if err := l.Append(ctx, Event{Type: "session.call", GrantID: id, SessionID: sid, Actor: g.Identity, Data: c}); err != nil {
			return err
		}
		ses = review.CountCall(ses, &tally, c)
	}
	ses.EndedAt = at.Add(5 * time.Minute)
	g.Status, g.EndedAt, g.EndReason, g.EndedBy, g.EndComment = model.Expired, g.ExpiresAt, "expired", "airlock", "reached its expiry time"
	return l.Do(ctx, func(ctx context.Context, tx store.Tx) ([]Event, error) {
		if err := tx.PutSession(ctx, ses); err != nil {
			return nil, err
		}
		return stateGrantEnd(g, ses), tx.UpdateGrant(ctx, g)
	})
}

// stateGrantStart are the entries of grant g's request, decision and
// activation by policy, and of the start of its session sid.
func stateGrantStart(g model.Grant, sid, client string) []Event {
	at, id, sc := g.RequestedAt, g.ID, g.GrantedScope
	return []Event{
		{Type: "grant.requested", Time: at, GrantID: id, Actor: g.Identity, Data: map[string]any{
			"identity": g.Identity, "identity_kind": g.IdentityKind, "owner": g.Owner, "target": g.Target, "target_kind": g.TargetKind,
			"account": g.Account, "scope": g.RequestedScope.Strings(), "duration": g.Duration.String(), "reason": g.Reason, "extends": "", "decide_by": g.DecideBy}},
		{Type: "grant.decided", Time: at, GrantID: id, Actor: "policy", Data: g.Decision},
		{Type: "grant.activated", Time: at, GrantID: id, Actor: "policy", Data: map[string]any{
			"granted_scope": sc.Strings(), "started_at": g.StartedAt, "expires_at": g.ExpiresAt,
			"credential_id": g.CredentialID, "credential_fingerprint": g.CredentialFingerprint}},
		{Type: "session.started", Time: at, GrantID: id, SessionID: sid, Actor: g.Identity, Data: map[string]any{"client": client, "target": g.Target}},
	}
}

// stateGrantEnd are the entries of the end of session ses (its summary)
// and of its grant g's expiry.
func stateGrantEnd(g model.Grant, ses model.Session) []Event {
	return []Event{
		{Type: "session.ended", Time: ses.EndedAt, GrantID: g.ID, SessionID: ses.ID, Actor: g.Identity, Data: map[string]any{
			"calls": ses.Calls, "denied": ses.Denied, "bytes_in": ses.BytesIn, "bytes_out": ses.BytesOut}},
		{Type: "grant.expired", Time: g.EndedAt, GrantID: g.ID, Actor: "airlock", Data: map[string]any{
			"at": g.EndedAt, "by": "airlock", "reason": g.EndComment, "status": g.Status}},
	}
}
