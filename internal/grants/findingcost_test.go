package grants_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
)

// sessionCountingStore counts the session rows that the log's write
// transactions read to sum grants' usage: the Usage.Sessions of every
// grant that Grant, GrantByCredential and OpenGrants answer with. The
// reads that need no usage (store.GrantStatusTx, store.GrantRecordTx) are
// passed on to the store's own, or, where it has none, answered through
// Grant and counted as such.
type sessionCountingStore struct {
	store.Store
	read *atomic.Int64
}

func (s sessionCountingStore) Begin(ctx context.Context) (store.Tx, error) {
	tx, err := s.Store.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return sessionCountingTx{Tx: tx, read: s.read}, nil
}

type sessionCountingTx struct {
	store.Tx
	read *atomic.Int64
}

func (t sessionCountingTx) Grant(ctx context.Context, id string) (model.Grant, error) {
	g, err := t.Tx.Grant(ctx, id)
	t.read.Add(int64(g.Usage.Sessions))
	return g, err
}

func (t sessionCountingTx) GrantByCredential(ctx context.Context, credentialID string) (model.Grant, error) {
	g, err := t.Tx.GrantByCredential(ctx, credentialID)
	t.read.Add(int64(g.Usage.Sessions))
	return g, err
}

func (t sessionCountingTx) OpenGrants(ctx context.Context) ([]model.Grant, error) {
	gs, err := t.Tx.OpenGrants(ctx)
	for _, g := range gs {
		t.read.Add(int64(g.Usage.Sessions))
	}
	return gs, err
}

func (t sessionCountingTx) GrantStatus(ctx context.Context, id string) (model.GrantStatus, error) {
	if gs, ok := t.Tx.(store.GrantStatusTx); ok {
		return gs.GrantStatus(ctx, id)
	}
	g, err := t.Grant(ctx, id)
	return g.Status, err
}

func (t sessionCountingTx) GrantRecord(ctx context.Context, id string) (model.Grant, error) {
	if gr, ok := t.Tx.(store.GrantRecordTx); ok {
		return gr.GrantRecord(ctx, id)
	}
	return t.Grant(ctx, id)
}

// sessionReadsStore counts the session rows that the service's reads
// outside the log's writer sum into grants' usage: the Usage.Sessions of
// every grant that Grant and Grants answer with. GrantRecord, which reads
// none, is the store's own, and so is every optional method the service
// looks for (the concrete store is embedded).
type sessionReadsStore struct {
	*sqlitestore.Store
	read *atomic.Int64
}

func (s sessionReadsStore) Grant(ctx context.Context, id string) (model.Grant, error) {
	g, err := s.Store.Grant(ctx, id)
	s.read.Add(g.Usage.Sessions)
	return g, err
}

func (s sessionReadsStore) Grants(ctx context.Context, f store.GrantFilter) ([]model.Grant, error) {
	gs, err := s.Store.Grants(ctx, f)
	for _, g := range gs {
		s.read.Add(g.Usage.Sessions)
	}
	return gs, err
}

// sessionsHarness is a harness whose log's store counts the session rows
// the log's write transactions read (in read), with an active grant of
// bot's, requested from 10.0.0.1, that has n sessions already.
func sessionsHarness(t *testing.T, n int) (*harness, model.Grant, *atomic.Int64) {
	t.Helper()
	h, g, read, _ := countedSessionsHarness(t, n)
	return h, g, read
}

// countedSessionsHarness is sessionsHarness that also counts, in outside,
// the session rows the service's own reads (outside the log's writer)
// sum into usage.
func countedSessionsHarness(t *testing.T, n int) (h *harness, g model.Grant, read, outside *atomic.Int64) {
	t.Helper()
	read, outside = new(atomic.Int64), new(atomic.Int64)
	h = newHarness(t, harnessOptions{Manual: true, FindingsWindow: 10 * time.Minute,
		LogStore: func(st store.Store) store.Store { return sessionCountingStore{st, read} },
		Store:    func(st store.Store) store.Store { return sessionReadsStore{st.(*sqlitestore.Store), outside} }})
	g, err := h.Svc.Request(h.ctx, h.botFrom("10.0.0.1"), autoReq("15m"))
	if err != nil || g.Status != model.Active {
		t.Fatalf("request: %v, %v", g.Status, err)
	}
	putSessions(t, h.ctx, h.St, g.ID, "s_before", n, h.fake.Now())
	read.Store(0)
	outside.Store(0)
	return h, g, read, outside
}

// putSessions stores n sessions of grant id, started at, with ids
// prefix_0 … prefix_n-1, one call each and a scope pair of its own, in one
// transaction of st.
func putSessions(t testing.TB, ctx context.Context, st store.Store, id, prefix string, n int, at time.Time) {
	t.Helper()
	tx, err := st.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		s := model.Session{ID: fmt.Sprintf("%s_%d", prefix, i), GrantID: id, StartedAt: at, Calls: 1,
			Used: []string{fmt.Sprintf("s3:GetObject arn:aws:s3:::logs/%d", i)}}
		if err := tx.PutSession(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// Issuing a grant's credentials checks in the log's writer that the grant
// is still active (appendWhileActive) by its status alone, on SQLite too:
// its write transaction had no store.GrantStatusTx, so the check read the
// grant with its usage, summed over every session of the grant (2,000 rows
// here), in the writer that every gateway's records wait on. So did the
// shared log's check before a gateway record (auditlog's checkLive).
func TestCredentialsReadNoSessionsInTheWriter(t *testing.T) {
	h, g, read := sessionsHarness(t, 2000)
	h.creds(bot, g.ID)
	if n := read.Load(); n != 0 {
		t.Errorf("issuing credentials read %d session rows in the log's writer, want 0", n)
	}
}

// A finding on a grant reads none of the grant's sessions in the log's
// writer, however many it has. recordFinding read the grant with its
// usage (summed over every session of the grant) inside the writer, which
// every gateway's records wait on: a grant of n sessions whose credentials
// were used from new addresses cost n rows per finding there, quadratic
// over its findings (58 % of console's TestFindingsPageBounded's CPU). The
// grant here has 2,000 sessions: 22 findings read 44,231 rows before.
func TestFindingReadsNoSessionsInTheWriter(t *testing.T) {
	const sessions = 2000
	h, g, read := sessionsHarness(t, sessions)
	gg, err := h.Svc.Authority().Lookup(g.CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	// Past MaxGrantFindings too: those are on the log only, and the grant
	// is read to know it.
	const moved = grants.MaxGrantFindings + 2
	var started []interface{ End(context.Context) error }
	for i := range moved {
		ses, err := h.Svc.Authority().StartSession(h.ctx, gg, fmt.Sprintf("10.9.0.%d:4000 aws-cli/2", i+1))
		if err != nil {
			t.Fatal(err)
		}
		started = append(started, ses)
	}
	if n := read.Load(); n != 0 {
		t.Errorf("%d sessions started from new addresses, each a finding, read %d session rows in the log's writer, want 0", moved, n)
	}
	for _, ses := range started {
		if err := ses.End(h.ctx); err != nil {
			t.Fatal(err)
		}
	}

	// The findings were recorded as before: the first MaxGrantFindings on
	// the grant, every one on the log.
	if fs := h.grant(g.ID).Findings; len(fs) != grants.MaxGrantFindings {
		t.Errorf("grant holds %d findings, want %d", len(fs), grants.MaxGrantFindings)
	}
	page, err := h.Svc.Findings(h.ctx, h.id(alice), grants.FindingsQuery{Limit: grants.MaxFindingsPage})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Findings) != moved {
		t.Errorf("%d findings on the log, want %d", len(page.Findings), moved)
	}
	if u := h.grant(g.ID).Usage; u.Sessions != sessions+moved {
		t.Errorf("grant's usage: %d sessions, want %d (the record written back without its usage lost none)", u.Sessions, sessions+moved)
	}
}

// Requesting an extension checks again, in the log's writer, that the
// grant it extends is still active (request), by its status alone: the
// check read the grant with its usage, summed over every session of the
// grant (2,000 rows here), in the writer that every gateway's records
// wait on, once per extension asked for.
func TestExtensionReadsNoSessionsInTheWriter(t *testing.T) {
	h, g, read := sessionsHarness(t, 2000)
	ext, err := h.Svc.Request(h.ctx, h.botFrom("10.0.0.1"), grants.RequestInput{Target: awsProd, Scope: []string{appLogs}, Duration: "15m", Reason: "more time", Extends: g.ID})
	if err != nil || ext.Extends != g.ID {
		t.Fatalf("extension: %+v, %v", ext, err)
	}
	if n := read.Load(); n != 0 {
		t.Errorf("requesting an extension read %d session rows in the log's writer, want 0", n)
	}
}

// Revoking, ending or expiring a grant reads none of its sessions in the
// log's writer, and a revoke or end still answers with its usage.
// transitionTx read the grant with tx.Grant, which sums the usage over
// every session of the grant (2,000 rows here), in the writer that every
// gateway's records wait on; it reads the record alone there now, and
// Revoke and End read the usage after the commit.
func TestEndingReadsNoSessionsInTheWriter(t *testing.T) {
	const sessions = 2000
	for _, c := range []struct {
		name   string
		end    func(h *harness, id string) (model.Grant, error)
		status model.GrantStatus
		// answers: end's grant is the caller's answer, with the usage.
		answers bool
	}{
		{"revoke", func(h *harness, id string) (model.Grant, error) {
			return h.Svc.Revoke(h.ctx, h.id(alice), id, "suspicious")
		}, model.Revoked, true},
		{"end", func(h *harness, id string) (model.Grant, error) {
			return h.Svc.End(h.ctx, h.id(bot), id, "done")
		}, model.Ended, true},
		{"expiry", func(h *harness, id string) (model.Grant, error) {
			h.fake.Advance(16 * time.Minute)
			return h.waitStatus(id, model.Expired, 10*time.Second), nil
		}, model.Expired, false},
		{"agent disabled", func(h *harness, id string) (model.Grant, error) {
			if _, err := h.Svc.DisableAgent(h.ctx, h.id(alice), bot, "compromised"); err != nil {
				return model.Grant{}, err
			}
			return h.grant(id), nil
		}, model.Revoked, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, g, read := sessionsHarness(t, sessions)
			out, err := c.end(h, g.ID)
			if err != nil || out.Status != c.status {
				t.Fatalf("%s: %v, %v", c.name, out.Status, err)
			}
			if n := read.Load(); n != 0 {
				t.Errorf("%s read %d session rows in the log's writer, want 0", c.name, n)
			}
			// The answer carries the grant's usage, as before.
			if u := out.Usage; c.answers && (u.Sessions != sessions || u.Calls != sessions || len(u.ScopeUsed) != sessions) {
				t.Errorf("%s answered usage %d sessions, %d calls, %d scope used; want %d of each", c.name, u.Sessions, u.Calls, len(u.ScopeUsed), sessions)
			}
			// And the record, written back from a read without usage,
			// lost none of it (usage is the sessions').
			if u := h.grant(g.ID).Usage; u.Sessions != sessions || u.Calls != sessions {
				t.Errorf("after the %s the grant's usage is %d sessions, %d calls; want %d", c.name, u.Sessions, u.Calls, sessions)
			}
		})
	}
}

// The reads before a decision, a revoke or an end, outside the log's
// writer, read the grant's record alone (store.Store.GrantRecord): they
// read its holder, target, status and times, never its usage, but read
// it with Grant, which sums the usage over every session of the grant
// (2,000 here). Nor do the listings of the grants a disable or a
// policy reload sweeps (store.GrantFilter.RecordsOnly): each grant is
// read again on its own before it is ended, and the listing summed the
// usage of every grant listed. What is left is the read of the usage a
// revoke or end answers with, once, after its commit.
func TestDecisionReadsNoSessionsOutsideTheWriter(t *testing.T) {
	const sessions = 2000
	for _, c := range []struct {
		name string
		// do acts on g, the grant of 2,000 sessions.
		do   func(t *testing.T, h *harness, g model.Grant)
		want int64
	}{
		{"extension requested", func(t *testing.T, h *harness, g model.Grant) {
			h.request(bot, extends(g.ID, allLogs, "15m"), model.Pending) // request's first check
		}, 0},
		{"extension approved", func(t *testing.T, h *harness, g model.Grant) {
			ext := h.request(bot, extends(g.ID, allLogs, "15m"), model.Pending)
			if _, err := h.Svc.Approve(h.ctx, h.id(alice), ext.ID, "ok"); err != nil { // extendsRevoked
				t.Fatal(err)
			}
		}, 0},
		{"revoke", func(t *testing.T, h *harness, g model.Grant) {
			if _, err := h.Svc.Revoke(h.ctx, h.id(alice), g.ID, "suspicious"); err != nil { // getForDecision
				t.Fatal(err)
			}
		}, sessions},
		{"end", func(t *testing.T, h *harness, g model.Grant) {
			if _, err := h.Svc.End(h.ctx, h.id(bot), g.ID, "done"); err != nil { // getForDecision
				t.Fatal(err)
			}
		}, sessions},
		{"agent disabled", func(t *testing.T, h *harness, g model.Grant) {
			// Neither its listing of the agent's open grants nor the
			// re-read of each under its lock (endOpen).
			if _, err := h.Svc.DisableAgent(h.ctx, h.id(alice), bot, "compromised"); err != nil {
				t.Fatal(err)
			}
			if st := h.grant(g.ID).Status; st != model.Revoked {
				t.Fatalf("after the disable the grant is %s", st)
			}
		}, 0},
		{"policy reload that keeps the grant", func(t *testing.T, h *harness, g model.Grant) {
			if err := h.Svc.ReloadPolicies(h.ctx, "SIGHUP"); err != nil {
				t.Fatal(err)
			}
			if st := h.grant(g.ID).Status; st != model.Active {
				t.Fatalf("after the reload the grant is %s", st)
			}
		}, 0},
		{"policy reload that revokes the grant", func(t *testing.T, h *harness, g model.Grant) {
			h.writePolicy("test.cedar", testPolicies+forbidProd)
			if err := h.Svc.ReloadPolicies(h.ctx, "SIGHUP"); err != nil {
				t.Fatal(err)
			}
			if st := h.grant(g.ID).Status; st != model.Revoked {
				t.Fatalf("after the forbid the grant is %s", st)
			}
		}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, g, _, outside := countedSessionsHarness(t, sessions)
			c.do(t, h, g)
			if n := outside.Load(); n != c.want {
				t.Errorf("%s read %d session rows outside the log's writer, want %d", c.name, n, c.want)
			}
		})
	}
}
