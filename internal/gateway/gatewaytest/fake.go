// Package gatewaytest provides an in-memory gateway.Authority for testing
// protocol gateways without a control plane: tests add grants, end them,
// read back what was recorded, make recording fail on purpose, and stall
// request records (Stall) to see what a gateway does while a record is not
// yet durable.
package gatewaytest

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/authority"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/scope"
)

// ErrRecordFailed is what Record returns while FailRecords is set.
var ErrRecordFailed = errors.New("gatewaytest: recording disabled")

// Authority is a fake gateway.Authority: the real one (internal/authority)
// over grants added here, with sessions and refused attempts kept in
// memory instead of the log. The zero value is not usable; call New.
type Authority struct {
	live     *authority.Authority
	notReady atomic.Bool

	mu         sync.Mutex
	sessions   []*Recorded
	rejections []gateway.Rejection
	summaries  []gateway.RejectionSummary
	agg        *gateway.RejectAggregator
	fail       bool
	failErr    error // what fail makes records return; nil: ErrRecordFailed
	discard    bool
	panicRes   bool
	// resultDelay is DelayResults's.
	resultDelay time.Duration
	stall       *Stall
	n           int
}

// Recorded is one session as the fake saw it.
type Recorded struct {
	ID     string
	Grant  *gateway.Grant
	Client string

	mu        sync.Mutex
	calls     []gateway.Call
	discarded int // calls recorded while the Authority discarded them
	late      int // records attempted after End, refused
	ended     bool
}

// Calls returns a copy of the session's recorded calls, in order, as a
// reader of the log decodes them: a call's Pairs in its Params
// (gateway.Call.WithPairsInParams; moved here rather than as they are
// recorded, so that the gateways' allocation benchmarks count none of
// the fake's).
func (r *Recorded) Calls() []gateway.Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]gateway.Call, len(r.calls))
	for i, c := range r.calls {
		out[i] = c.WithPairsInParams()
	}
	return out
}

// RecordedCalls returns the calls as the gateway recorded them, their
// Pairs kept apart from Params (Calls moves them in, as a reader of the
// log finds them): for a test of what the log encodes.
func (r *Recorded) RecordedCalls() []gateway.Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// Ended reports whether the session was ended.
func (r *Recorded) Ended() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ended
}

var _ gateway.Authority = (*Authority)(nil)

// New returns an empty fake authority.
func New() *Authority {
	a := &Authority{}
	live, err := authority.New(authority.Options{Now: time.Now, Recorder: recorder{a},
		NewSessionID: func() string { return "s_test" + randString(8) },
		Ready:        func() bool { return !a.notReady.Load() }})
	if err != nil {
		panic(err) // every required option is set
	}
	a.live = live
	return a
}

// SetReady makes Lookup refuse every credential with gateway.ErrNotReady
// while ready is false, as a replica does while it cannot hear of revokes.
func (a *Authority) SetReady(ready bool) { a.notReady.Store(!ready) }

// recorder is the fake's in-memory authority.Recorder.
type recorder struct{ a *Authority }

func (r recorder) Start(ctx context.Context, g *gateway.Grant, sid, client string) (*gateway.Session, error) {
	return r.a.start(ctx, g, sid, client)
}

func (r recorder) Reject(ctx context.Context, rj gateway.Rejection) error { return r.a.Reject(ctx, rj) }

// Spec describes a grant to add.
type Spec struct {
	Identity, Owner, Target, TargetKind, Account string
	// Scope statements, e.g. "s3:GetObject arn:aws:s3:::logs/app/*".
	Scope []string
	// TTL is how long the grant lasts; 10 minutes if zero.
	TTL time.Duration
	// NoSessionToken issues the credential without a session token, for
	// clients that cannot send one (versitygw's test suite).
	NoSessionToken bool
}

// Add activates a grant with a fresh credential and returns it. It panics on
// a bad scope statement: that is a broken test.
func (a *Authority) Add(sp Spec) *gateway.Grant {
	sc, err := scope.Parse(sp.Scope)
	if err != nil {
		panic(fmt.Sprintf("gatewaytest: scope: %v", err))
	}
	if sp.TTL == 0 {
		sp.TTL = 10 * time.Minute
	}
	if sp.Identity == "" {
		sp.Identity = "test-agent"
	}
	a.mu.Lock()
	a.n++
	n := a.n
	a.mu.Unlock()
	g := gateway.NewGrant(gateway.Info{
		// Random, lower case: grant ids name cluster-wide PostgreSQL roles,
		// so tests running at once must not collide.
		ID:       fmt.Sprintf("g_test%d_%s", n, strings.ToLower(randString(10))),
		Identity: sp.Identity, Owner: sp.Owner,
		Target: sp.Target, TargetKind: sp.TargetKind, Account: sp.Account,
		Scope: sc, ExpiresAt: time.Now().Add(sp.TTL),
		CredentialID: "AKAL" + randString(16), Secret: randString(40), SessionToken: "AIRLOCK" + randString(43),
	})
	if sp.NoSessionToken {
		g.SessionToken = ""
	}
	a.live.Add(g, nil)
	return g
}

// End ends g with reason, as the control plane would on revoke or expiry.
func (a *Authority) End(g *gateway.Grant, reason string) {
	if a.live.CutOff(g.ID, reason) == nil {
		g.End(reason) // not added here: end it all the same
	}
}

// FailRecords makes every later Record (and StartSession) fail while on.
func (a *Authority) FailRecords(on bool) {
	a.mu.Lock()
	a.fail, a.failErr = on, nil
	a.mu.Unlock()
}

// FailRecordsWith is FailRecords(err != nil), the records failing with err
// (as the control plane's do with gateway.ErrNoGrant for a grant another
// replica ended).
func (a *Authority) FailRecordsWith(err error) {
	a.mu.Lock()
	a.fail, a.failErr = err != nil, err
	a.mu.Unlock()
}

// failure is what a failing record returns; a.mu held.
func (a *Authority) failure() error {
	if a.failErr != nil {
		return a.failErr
	}
	return ErrRecordFailed
}

// PanicOnResults makes recording a call's result panic (on), as a bug in
// the recorder would, so that tests can check a gateway survives it.
func (a *Authority) PanicOnResults(on bool) {
	a.mu.Lock()
	a.panicRes = on
	a.mu.Unlock()
}

// DelayResults makes recording a result (Kind "result") wait d before it
// is kept, as a recorder busy elsewhere would: a test can then tell
// whether a gateway recorded a result before or after the client had its
// answer.
func (a *Authority) DelayResults(d time.Duration) {
	a.mu.Lock()
	a.resultDelay = d
	a.mu.Unlock()
}

// DiscardCalls makes later records succeed without keeping the calls
// (Discarded counts them), for tests that measure what a gateway keeps in
// memory: the fake's own list of calls would be counted with it.
func (a *Authority) DiscardCalls(on bool) {
	a.mu.Lock()
	a.discard = on
	a.mu.Unlock()
}

// errRecordAfterEnd refuses a record made after the session's End.
var errRecordAfterEnd = errors.New("gatewaytest: a call recorded after the session ended")

// Late returns how many records were attempted on the session after its
// End (and refused): a gateway must record a session's calls and results
// before it ends it.
func (r *Recorded) Late() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.late
}

// LateRecords returns how many records were attempted after their
// session's End, over every session (see Recorded.Late).
func (a *Authority) LateRecords() int {
	n := 0
	for _, r := range a.Sessions() {
		n += r.Late()
	}
	return n
}

// Discarded returns how many of the session's calls were recorded while
// the Authority discarded them.
func (r *Recorded) Discarded() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.discarded
}

// Sessions returns the sessions started so far, in order.
func (a *Authority) Sessions() []*Recorded {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*Recorded(nil), a.sessions...)
}

// Calls returns every call recorded under grant id, across its sessions.
func (a *Authority) Calls(grantID string) []gateway.Call {
	var out []gateway.Call
	for _, s := range a.Sessions() {
		if s.Grant.ID == grantID {
			out = append(out, s.Calls()...)
		}
	}
	return out
}

// NumCalls counts the calls recorded under grant id, across its sessions:
// len(Calls(id)) without Calls' copies, for a benchmark's check after its
// timed part that callgrind's count of the whole run includes.
func (a *Authority) NumCalls(grantID string) int {
	n := 0
	for _, s := range a.Sessions() {
		if s.Grant.ID == grantID {
			s.mu.Lock()
			n += len(s.calls)
			s.mu.Unlock()
		}
	}
	return n
}

// Reject implements gateway.Authority: every rejection is kept
// individually, unless AggregateRejections was called.
func (a *Authority) Reject(ctx context.Context, r gateway.Rejection) error {
	a.mu.Lock()
	agg := a.agg
	a.mu.Unlock()
	if agg != nil {
		return agg.Reject(ctx, r)
	}
	return a.writeRejection(ctx, r)
}

func (a *Authority) writeRejection(_ context.Context, r gateway.Rejection) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail {
		return ErrRecordFailed
	}
	a.rejections = append(a.rejections, r)
	return nil
}

func (a *Authority) writeSummary(_ context.Context, s gateway.RejectionSummary) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail {
		return ErrRecordFailed
	}
	a.summaries = append(a.summaries, s)
	return nil
}

// AggregateRejections makes Reject count attempts as the control plane
// does (gateway.RejectAggregator with policy p and clock now); the
// returned aggregator's Flush and Close write the summaries.
func (a *Authority) AggregateRejections(p gateway.RejectPolicy, now func() time.Time) *gateway.RejectAggregator {
	agg := gateway.NewRejectAggregator(p, now, a.writeRejection, a.writeSummary)
	a.mu.Lock()
	a.agg = agg
	a.mu.Unlock()
	return agg
}

// RejectionSummaries returns the summaries written so far, in order.
func (a *Authority) RejectionSummaries() []gateway.RejectionSummary {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]gateway.RejectionSummary{}, a.summaries...)
}

// Rejections returns the rejections recorded so far, in order.
func (a *Authority) Rejections() []gateway.Rejection {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]gateway.Rejection{}, a.rejections...)
}

// Lookup implements gateway.Authority.
func (a *Authority) Lookup(credentialID string) (*gateway.Grant, error) {
	return a.live.Lookup(credentialID)
}

// Authenticate implements gateway.Authority.
func (a *Authority) Authenticate(credentialID, secret string) (*gateway.Grant, error) {
	return a.live.Authenticate(credentialID, secret)
}

// Subscribe implements gateway.Authority.
func (a *Authority) Subscribe(fn func(*gateway.Grant)) { a.live.Subscribe(fn) }

// StartSession implements gateway.Authority.
func (a *Authority) StartSession(ctx context.Context, g *gateway.Grant, client string) (*gateway.Session, error) {
	return a.live.StartSession(ctx, g, client)
}

// start records session sid in memory (the fake's Recorder.Start).
func (a *Authority) start(ctx context.Context, g *gateway.Grant, sid, client string) (*gateway.Session, error) {
	a.mu.Lock()
	if a.fail {
		err := a.failure()
		a.mu.Unlock()
		return nil, err
	}
	r := &Recorded{ID: sid, Grant: g, Client: client}
	a.sessions = append(a.sessions, r)
	a.mu.Unlock()
	// Its methods, not closures, as the control plane's (sessions):
	// what a session holds while idle is measured with this fake.
	return gateway.NewSessionOf(r.ID, g, &fakeRecorder{a: a, r: r}), nil
}

// fakeRecorder is a session's recorder in the fake: a and r's.
type fakeRecorder struct {
	a *Authority
	r *Recorded
}

// Result records c (and requests, through Request and RequestAsync).
func (f *fakeRecorder) Result(ctx context.Context, c gateway.Call) error {
	a, r := f.a, f.r
	if err := ctx.Err(); err != nil {
		return err
	}
	a.mu.Lock()
	fail, discard, panicRes, delay := a.fail, a.discard, a.panicRes, a.resultDelay
	failErr := a.failure()
	a.mu.Unlock()
	if delay > 0 && c.Kind == "result" {
		time.Sleep(delay)
	}
	if panicRes && c.Kind == "result" {
		panic("gatewaytest: the recorder panics, as asked")
	}
	if fail {
		return failErr
	}
	r.mu.Lock()
	if r.ended {
		// A session's results land before its end (gateway.Session).
		r.late++
		r.mu.Unlock()
		return errRecordAfterEnd
	}
	if discard {
		r.discarded++
	} else {
		r.calls = append(r.calls, c)
	}
	r.mu.Unlock()
	return nil
}

// RequestAsync: a request is held, not durable, while a Stall is on:
// written (or failed) when the Stall is released, withdrawn if ctx ends
// first.
func (f *fakeRecorder) RequestAsync(ctx context.Context, c gateway.Call) gateway.Waiter {
	f.a.mu.Lock()
	st := f.a.stall
	f.a.mu.Unlock()
	if st == nil {
		if err := f.Result(ctx, c); err != nil {
			return gateway.WaitFunc(func(context.Context) error { return err })
		}
		// No allocation, here or for c: the gateways' allocation
		// benchmarks (pggw's BenchmarkRelayCode) count the gateway's
		// own, the in-memory authority's as few as it can.
		return written{}
	}
	return f.stalled(ctx, st, c)
}

// stalled is RequestAsync's wait under st, apart so that only it moves c
// to the heap (its closure holds c).
func (f *fakeRecorder) stalled(ctx context.Context, st *Stall, c gateway.Call) gateway.Waiter {
	st.hold(c)
	return gateway.WaitFunc(func(wctx context.Context) error {
		select {
		case <-st.released:
		case <-ctx.Done():
			return ctx.Err()
		case <-wctx.Done():
			return wctx.Err()
		}
		if st.err != nil {
			return st.err
		}
		return f.Result(context.WithoutCancel(ctx), c)
	})
}

// written is the Waiter of a request recorded already.
type written struct{}

func (written) Wait(context.Context) error { return nil }

func (f *fakeRecorder) Request(ctx context.Context, c gateway.Call) error {
	return f.RequestAsync(ctx, c).Wait(ctx)
}

func (f *fakeRecorder) End(context.Context) error {
	f.r.mu.Lock()
	f.r.ended = true
	f.r.mu.Unlock()
	return nil
}

// Stall holds request records (Request and RequestAsync alike; results
// are not held) not yet durable until Release, as a journal whose write
// has not returned: Request blocks, and a Pending's Wait blocks.
type Stall struct {
	held     chan gateway.Call
	released chan struct{}
	once     sync.Once
	err      error
}

// Stall makes every request record from now on wait for the returned
// Stall's Release.
func (a *Authority) Stall() *Stall {
	st := &Stall{held: make(chan gateway.Call, 256), released: make(chan struct{})}
	a.mu.Lock()
	a.stall = st
	a.mu.Unlock()
	return st
}

// Held delivers each request as it starts waiting (its Pairs in its
// Params, as Recorded.Calls).
func (st *Stall) Held() <-chan gateway.Call { return st.held }

func (st *Stall) hold(c gateway.Call) {
	select {
	case st.held <- c.WithPairsInParams():
	default: // a test that does not read them
	}
}

// Release ends the stall for the records it holds and those that arrive
// until the Authority's next Stall (a later Stall replaces this one): nil
// writes them, an error fails them with it. Only the first call counts.
func (st *Stall) Release(err error) {
	st.once.Do(func() {
		st.err = err
		close(st.released)
	})
}

// Unstall stops holding new request records; records already held still
// wait for their Stall's Release.
func (a *Authority) Unstall() {
	a.mu.Lock()
	a.stall = nil
	a.mu.Unlock()
}

func randString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base32.StdEncoding.EncodeToString(b)[:n]
}

// Record records c on ses as a request or a result by its Kind, for
// tests that replay a list of calls.
func Record(ctx context.Context, ses *gateway.Session, c gateway.Call) error {
	if c.Kind == "result" {
		return ses.Result(ctx, c)
	}
	return ses.Request(ctx, c)
}
