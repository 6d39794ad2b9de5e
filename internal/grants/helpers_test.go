package grants_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/findings"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
)

// Identities of the test world.
const (
	bot   = "triage-bot" // agent, owner sre-team
	bot2  = "ops-bot"    // second agent, owner sre-team
	alice = "alice"      // human, sre-leads (may approve aws-prod)
	bob   = "bob"        // human, no groups (may approve nothing)
	carol = "carol"      // human, sre-leads (second permitted approver)
	dave  = "dave"       // human, dbas (may approve orders-db only)
)

// Targets of the test world.
const (
	awsProd  = "aws-prod"
	awsDev   = "aws-dev"
	ordersDB = "orders-db"
	account  = "111122223333"
)

// Scopes of the test world.
const (
	appLogs  = "s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*" // auto ≤ 900s
	allLogs  = "s3:GetObject arn:aws:s3:::logs/*"                   // human ≤ 3600s
	auditLog = "s3:GetObject arn:aws:s3:::audit/*"                  // humans of sre-leads, human approval
	billing  = "s3:GetObject arn:aws:s3:::billing/*"                // nobody
)

// testPolicies are internal/demo's three, plus a human-requestable one for
// sre-leads, a postgres one approved by a group nobody is in, and one for
// aws-dev.
const testPolicies = `@id("triage-reads-app-logs")
@approval("auto")
permit (principal in Group::"sre-team", action in [Action::"s3:GetObject", Action::"s3:ListBucket"], resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/app/*" && context.duration_seconds <= 900 };

@id("sre-reads-all-logs-with-approval")
@approval("human")
permit (principal in Group::"sre-team", action in [Action::"s3:GetObject", Action::"s3:ListBucket"], resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/*" && context.duration_seconds <= 3600 };

@id("leads-read-audit")
@approval("human")
permit (principal in Group::"sre-leads", action == Action::"s3:GetObject", resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::audit/*" && context.duration_seconds <= 3600 };

@id("sre-select-orders")
@approval("human")
permit (principal in Group::"sre-team", action == Action::"pg:select", resource == Target::"orders-db");

@id("sre-dev-anything")
@approval("auto")
permit (principal in Group::"sre-team", action, resource == Target::"aws-dev");

@id("leads-approve-sre-agents")
permit (principal in Group::"sre-leads", action == Action::"approve", resource == Target::"aws-prod");

@id("dbas-approve-orders")
permit (principal in Group::"dbas", action == Action::"approve", resource == Target::"orders-db");
`

var testTargets = []grants.Target{
	{Name: awsProd, Kind: "aws", Account: account},
	{Name: awsDev, Kind: "aws", Account: "444455556666"},
	{Name: ordersDB, Kind: "postgres", Account: account, Database: "orders"},
}

// testClock is the service clock: the real clock plus an adjustable offset,
// or frozen at a given instant. Timers still run on real time, so moving the
// clock lets a test look at an instant (say, ExpiresAt) before the timer for
// it fires, or pretend that time passed while the service was stopped.
type testClock struct {
	off    atomic.Int64
	frozen atomic.Pointer[time.Time]
}

func (c *testClock) Now() time.Time {
	if f := c.frozen.Load(); f != nil {
		return *f
	}
	return time.Now().Add(time.Duration(c.off.Load()))
}

func (c *testClock) Advance(d time.Duration) { c.off.Add(int64(d)) }
func (c *testClock) Freeze(t time.Time)      { c.frozen.Store(&t) }
func (c *testClock) Unfreeze()               { c.frozen.Store(nil) }

// errorLog counts error-level records of the service's logger.
type errorLog struct {
	mu   sync.Mutex
	msgs []string
}

func (e *errorLog) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (e *errorLog) Handle(_ context.Context, r slog.Record) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		msg += " " + a.Key + "=" + a.Value.String()
		return true
	})
	e.msgs = append(e.msgs, msg)
	return nil
}
func (e *errorLog) WithAttrs([]slog.Attr) slog.Handler { return e }
func (e *errorLog) WithGroup(string) slog.Handler      { return e }
func (e *errorLog) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.msgs)
}

type harnessOptions struct {
	MaxDuration    time.Duration // default 30m
	PendingTimeout time.Duration // default 10m
	Policies       string        // default testPolicies
	// LogStore, if set, wraps the store the audit log writes through (to
	// inject write failures).
	LogStore func(store.Store) store.Store
	// Store, if set, wraps the store the service reads and writes (the
	// log's is h.St, or LogStore's).
	Store func(store.Store) store.Store
	// Journal keeps the journal with LogStore set (which otherwise turns
	// it off, so that every batch meets the wrapped store).
	Journal bool
	// Manual runs the service on h.fake, a clock.Fake that moves only when
	// the test moves it, timers included; h.clock is then unused.
	Manual bool
	// Stepped (with Manual) runs the service on h.stepped: h.fake's
	// timers, and its reading plus a step the test sets, as a machine's
	// clock steps while its timers count elapsed time.
	Stepped bool
	// MaxWaiters and MaxWaitersPerIdentity bound long polls (default: the
	// service's defaults).
	MaxWaiters, MaxWaitersPerIdentity int
	// OnCommit, if set, is the log's Options.OnCommit (called once per
	// journal batch).
	OnCommit func(size int64)
	// FindingsWindow, if set, turns on the shared-identity detector with
	// this window, on the service's clock; Binding is identity_binding
	// for every identity ("" is record).
	FindingsWindow time.Duration
	Binding        string
	// Targets are the configured targets (testTargets if nil).
	Targets []grants.Target
	// ClockCheck is the service's Options.ClockCheck (its default if 0).
	ClockCheck time.Duration
}

// harness is a real Service on a temporary data directory.
type harness struct {
	t       testing.TB
	ctx     context.Context
	dir     string
	polDir  string
	opts    harnessOptions
	clock   *testClock
	fake    *clock.Fake   // with harnessOptions.Manual
	stepped *steppedClock // with harnessOptions.Stepped
	errs    *errorLog

	keys map[string]string // API key of each configured identity
	cfg  []model.Identity  // the configured identities (as in airlock.yaml)

	St  *sqlitestore.Store
	Log *auditlog.Log
	Pol *policy.Engine
	Dir *authn.Directory
	Svc *grants.Service
	// Findings is the service's detector (with FindingsWindow).
	Findings *findings.Detector
	verifier note.Verifier
	open     bool
}

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	if o.MaxDuration == 0 {
		o.MaxDuration = 30 * time.Minute
	}
	if o.PendingTimeout == 0 {
		o.PendingTimeout = 10 * time.Minute
	}
	if o.Policies == "" {
		o.Policies = testPolicies
	}
	dir := t.TempDir()
	h := &harness{
		t: t, ctx: context.Background(), dir: dir, polDir: filepath.Join(dir, "policies"),
		opts: o, clock: &testClock{}, errs: &errorLog{}, keys: map[string]string{},
	}
	if o.Manual {
		h.fake = clock.NewFake(time.Now().UTC())
		if o.Stepped {
			h.stepped = &steppedClock{Fake: h.fake}
		}
	}
	if err := os.MkdirAll(h.polDir, 0o755); err != nil {
		t.Fatal(err)
	}
	h.writePolicy("test.cedar", o.Policies)
	for _, id := range []model.Identity{
		{Name: bot, Kind: model.Agent, Owner: "sre-team"},
		{Name: bot2, Kind: model.Agent, Owner: "sre-team"},
		{Name: alice, Kind: model.Human, Groups: []string{"sre-leads"}},
		{Name: bob, Kind: model.Human},
		{Name: carol, Kind: model.Human, Groups: []string{"sre-leads"}},
		{Name: dave, Kind: model.Human, Groups: []string{"dbas"}},
	} {
		key, sha := authn.NewKey()
		h.keys[id.Name] = key
		id.KeySHA256 = sha
		h.cfg = append(h.cfg, id)
	}
	h.start()
	t.Cleanup(h.finish)
	return h
}

func (h *harness) writePolicy(name, text string) {
	h.t.Helper()
	if err := os.WriteFile(filepath.Join(h.polDir, name), []byte(text), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

// credentialKey loads or creates the data directory's credential key, as
// the server does.
func (h *harness) credentialKey() []byte {
	h.t.Helper()
	path := filepath.Join(h.dir, "credential.key")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b = make([]byte, 32)
		rand.Read(b)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			h.t.Fatal(err)
		}
		return b
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

// start opens store, log, policy engine and service on h.dir and starts it.
func (h *harness) start() {
	h.t.Helper()
	ctx := h.ctx
	var err error
	h.St, err = sqlitestore.Open(ctx, filepath.Join(h.dir, "airlock.db"))
	if err != nil {
		h.t.Fatal(err)
	}
	signer, verifier, err := auditlog.LoadOrCreateKey(h.dir, "airlock")
	if err != nil {
		h.t.Fatal(err)
	}
	h.verifier = verifier
	var logStore store.Store = h.St
	if h.opts.LogStore != nil {
		logStore = h.opts.LogStore(h.St)
	}
	lo := auditlog.Options{Origin: "airlock/test", WitnessPath: filepath.Join(h.dir, "checkpoint"), OnCommit: h.opts.OnCommit, Rows: review.StoreRows}
	if h.opts.LogStore == nil || h.opts.Journal {
		// As airlock serve runs it: appends durable in the journal first.
		// Tests that inject store failures keep every batch in the store.
		lo.JournalDir, lo.JournalKey = filepath.Join(h.dir, "journal"), []byte("grants-test-journal-key-32-bytes")
	}
	h.Log, err = auditlog.Open(ctx, logStore, signer, lo)
	if err != nil {
		h.t.Fatal(err)
	}
	known := map[string]bool{}
	for _, t := range testTargets {
		known[t.Name] = true
	}
	h.Pol, err = policy.NewEngine(h.polDir, func(n string) bool { return known[n] })
	if err != nil {
		h.t.Fatal(err)
	}
	h.Dir = authn.NewDirectory(nil)
	var clk clock.Clock = clock.Func(h.clock.Now)
	if h.fake != nil {
		clk = h.fake
	}
	if h.stepped != nil {
		clk = h.stepped
	}
	var detector *findings.Detector
	var binding func(string) string
	if h.opts.FindingsWindow > 0 {
		detector = findings.New(clk, h.opts.FindingsWindow)
		h.Findings = detector
		if b := h.opts.Binding; b != "" {
			binding = func(string) string { return b }
		}
	}
	var svcStore store.Store = h.St
	if h.opts.Store != nil {
		svcStore = h.opts.Store(h.St)
	}
	h.Svc, err = grants.New(grants.Options{
		Store: svcStore, Log: h.Log, Policy: h.Pol, Directory: h.Dir, Targets: h.targets(),
		MaxDuration: h.opts.MaxDuration, PendingTimeout: h.opts.PendingTimeout, RequireReason: true,
		CredentialKey: h.credentialKey(), Clock: clk, Logger: slog.New(h.errs),
		MaxWaiters: h.opts.MaxWaiters, MaxWaitersPerIdentity: h.opts.MaxWaitersPerIdentity,
		Findings: detector, Binding: binding, ClockCheck: h.opts.ClockCheck,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.Svc.SyncIdentities(ctx, h.cfg); err != nil {
		h.t.Fatal(err)
	}
	if err := h.Svc.Start(ctx); err != nil {
		h.t.Fatal(err)
	}
	h.open = true
}

// targets are the configured targets: the option's, or testTargets.
func (h *harness) targets() []grants.Target {
	if h.opts.Targets != nil {
		return h.opts.Targets
	}
	return testTargets
}

// stop closes the service, the log and the store, as a shutdown does.
func (h *harness) stop() {
	h.t.Helper()
	if !h.open {
		return
	}
	h.open = false
	h.Svc.Close()
	if err := h.Log.Close(); err != nil {
		h.t.Errorf("closing the log: %v", err)
	}
	if err := h.St.Close(); err != nil {
		h.t.Errorf("closing the store: %v", err)
	}
}

// restart stops everything and opens it again on the same directory.
func (h *harness) restart() {
	h.t.Helper()
	h.stop()
	h.start()
}

// finish verifies the whole log and closes everything.
func (h *harness) finish() {
	if !h.open {
		return
	}
	h.Svc.Close()
	if err := h.Log.Close(); err != nil {
		h.t.Errorf("closing the log: %v", err)
	}
	h.verifyLog()
	h.open = false
	if err := h.St.Close(); err != nil {
		h.t.Errorf("closing the store: %v", err)
	}
}

// verifyLog runs auditlog.Verify over the whole log with the witness file.
func (h *harness) verifyLog() {
	h.t.Helper()
	witness, err := os.ReadFile(filepath.Join(h.dir, "checkpoint"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		h.t.Fatal(err)
	}
	rep, err := auditlog.Verify(h.ctx, h.St, h.verifier, witness)
	if err != nil {
		h.t.Fatalf("verify: %v", err)
	}
	if !rep.OK || rep.Entries == 0 {
		h.t.Errorf("audit log verification: ok=%v entries=%d problems=%v", rep.OK, rep.Entries, rep.Problems)
	}
}

// id returns the identity as the API layer would pass it (from the directory).
func (h *harness) id(name string) model.Identity {
	h.t.Helper()
	id, ok := h.Dir.Lookup(name)
	if !ok {
		h.t.Fatalf("no identity %q", name)
	}
	return id
}

func autoReq(d string) grants.RequestInput {
	return grants.RequestInput{Target: awsProd, Scope: []string{appLogs}, Duration: d, Reason: "triage checkout errors"}
}

func humanReq(d string) grants.RequestInput {
	return grants.RequestInput{Target: awsProd, Scope: []string{allLogs}, Duration: d, Reason: "errors may come from billing"}
}

// request makes a request that must succeed with status want.
func (h *harness) request(who string, in grants.RequestInput, want model.GrantStatus) model.Grant {
	h.t.Helper()
	g, err := h.Svc.Request(h.ctx, h.id(who), in)
	if err != nil {
		h.t.Fatalf("request by %s %+v: %v", who, in, err)
	}
	if g.Status != want {
		h.t.Fatalf("request by %s: status %s (%s), want %s", who, g.Status, g.Decision.Explanation, want)
	}
	return g
}

// grant reads a grant's record from the store.
func (h *harness) grant(id string) model.Grant {
	h.t.Helper()
	g, err := h.St.Grant(h.ctx, id)
	if err != nil {
		h.t.Fatalf("store.Grant(%s): %v", id, err)
	}
	return g
}

// waitStatus polls the store until grant id has status want.
func (h *harness) waitStatus(id string, want model.GrantStatus, within time.Duration) model.Grant {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		g := h.grant(id)
		if g.Status == want {
			return g
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("grant %s is %s after %v, want %s", id, g.Status, within, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) creds(who, id string) grants.Credentials {
	h.t.Helper()
	c, err := h.Svc.Credentials(h.ctx, h.id(who), id)
	if err != nil {
		h.t.Fatalf("credentials of %s for %s: %v", id, who, err)
	}
	return c
}

// entries returns a grant's log entries.
func (h *harness) entries(grantID string) []store.LogEntry {
	h.t.Helper()
	h.syncLog()
	es, err := h.St.LogEntries(h.ctx, store.LogFilter{GrantID: grantID})
	if err != nil {
		h.t.Fatal(err)
	}
	return es
}

// types returns the types of a grant's log entries, in order.
func (h *harness) types(grantID string) []string {
	h.t.Helper()
	var out []string
	for _, e := range h.entries(grantID) {
		out = append(out, e.Type)
	}
	return out
}

// entriesOfType returns every log entry of type typ.
func (h *harness) entriesOfType(typ string) []store.LogEntry {
	h.t.Helper()
	h.syncLog()
	es, err := h.St.LogEntries(h.ctx, store.LogFilter{Type: typ})
	if err != nil {
		h.t.Fatal(err)
	}
	return es
}

// syncLog waits for the store to hold every entry logged so far (the
// journal copies them in the background), for tests that read the store.
func (h *harness) syncLog() {
	h.t.Helper()
	if err := h.Log.Sync(h.ctx); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) logSize() int64 {
	h.t.Helper()
	h.syncLog()
	n, err := h.St.LogSize(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

func (h *harness) grantCount() int {
	h.t.Helper()
	gs, err := h.St.Grants(h.ctx, store.GrantFilter{})
	if err != nil {
		h.t.Fatal(err)
	}
	return len(gs)
}

// entryData decodes a log entry's data member.
func entryData(t testing.TB, e store.LogEntry) map[string]any {
	t.Helper()
	var v struct {
		Data  map[string]any `json:"data"`
		Actor string         `json:"actor"`
	}
	if err := json.Unmarshal(e.Data, &v); err != nil {
		t.Fatalf("entry %d: %v", e.Seq, err)
	}
	if v.Data == nil {
		v.Data = map[string]any{}
	}
	v.Data["_actor"] = v.Actor
	return v.Data
}

// entryTime parses a time member of a log entry's data.
func entryTime(t testing.TB, d map[string]any, key string) time.Time {
	t.Helper()
	s, ok := d[key].(string)
	if !ok {
		t.Fatalf("data has no %q: %v", key, d)
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// count returns how many of list equal v.
func count[T comparable](list []T, v T) int {
	n := 0
	for _, x := range list {
		if x == v {
			n++
		}
	}
	return n
}

// wantAPIErr checks that err is an *apierr.Error with the given status, and
// code and field when not empty.
func wantAPIErr(t testing.TB, err error, status int, code, field string) *apierr.Error {
	t.Helper()
	var ae *apierr.Error
	if !errors.As(err, &ae) {
		t.Fatalf("got error %v (%T), want API error %d %s %s", err, err, status, code, field)
	}
	if ae.Status != status || (code != "" && ae.Code != code) || (field != "" && ae.Field != field) {
		t.Fatalf("got API error %d %s field=%q (%s), want %d %s field=%q", ae.Status, ae.Code, ae.Field, ae.Message, status, code, field)
	}
	return ae
}

// isConflict reports whether err is a 409 conflict.
func isConflict(err error) bool {
	var ae *apierr.Error
	return errors.As(err, &ae) && ae.Code == apierr.CodeConflict
}

// waitClosed waits for ch to close.
func waitClosed(t testing.TB, ch <-chan struct{}, within time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(within):
		t.Fatalf("%s: not closed within %v", what, within)
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// session reads a session's record as a reviewer does, through the
// service (which first writes pending summaries).
func (h *harness) session(id string) model.Session {
	h.t.Helper()
	sp, err := h.Svc.Session(h.ctx, h.id(alice), id, grants.EventsQuery{})
	if err != nil {
		h.t.Fatalf("session %s: %v", id, err)
	}
	return sp.Session
}

// startSession opens a gateway session on active grant g, as a gateway
// does after authenticating its credential.
func (h *harness) startSession(g model.Grant, client string) *gateway.Session {
	h.t.Helper()
	gg, err := h.Svc.Authority().Lookup(g.CredentialID)
	if err != nil {
		h.t.Fatal(err)
	}
	ses, err := h.Svc.Authority().StartSession(h.ctx, gg, client)
	if err != nil {
		h.t.Fatal(err)
	}
	return ses
}

// pending reads who's whole queue, a page at a time (Service.EachPending).
func (h *harness) pending(who model.Identity) ([]model.Grant, error) {
	var out []model.Grant
	err := h.Svc.EachPending(h.ctx, who, func(gs []model.Grant) error {
		out = append(out, gs...)
		return nil
	})
	return out, err
}
