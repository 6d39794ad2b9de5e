package sessions

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
)

// Options configure a Recorder.
type Options struct {
	// Log is the audit log every record goes to. It must write the rows
	// its entries imply (auditlog.Options.Rows: review.StoreRows): a
	// session's row is written from its session.started entry.
	Log *auditlog.Log
	// Store holds the summary rows. A store shared by replicas
	// (store.ReplicaRegistry) makes a session's end a transaction that
	// first checks that no other replica ended it.
	Store store.Store
	// Replica, if set, is named in every session.started entry: if that
	// replica goes, another one ends its sessions.
	Replica string
	// Now is the clock of the records' times.
	Now func() time.Time
	// Clock times the flusher (clock.Real if nil); tests pass a
	// clock.Fake and Advance it instead of waiting for a flush.
	Clock clock.Clock
	// Refuse turns an error from the log into the one a gateway refuses
	// the call with, naming what could not be recorded (what: "the call",
	// "the results", …). Nil returns the error unchanged.
	Refuse func(what string, err error) error
	// Rejections bounds how many refused attempts (Reject) are logged one
	// by one before they are counted into summaries.
	Rejections gateway.RejectPolicy
	// Logger logs records that failed and will be retried.
	Logger *slog.Logger
	// Observer, if set, is told of what was recorded, for metrics.
	Observer Observer
	// Active, if set, is told that session sid under g, from client
	// presenting the TLS client certificate tlsClient (its fingerprint,
	// gateway.TLSClientOf of the start's context; "" for none), is in
	// use: after a call's record is durable, at most once per ActiveEvery
	// per session (the shared-identity detector counts a long session as
	// its instance being active, not only its start). It must not block.
	Active func(g *gateway.Grant, sid, client, tlsClient string)
	// ActiveEvery is how often at most Active hears of one session;
	// zero means a minute.
	ActiveEvery time.Duration
	// CloseTimeout bounds Close, on Clock; zero means
	// DefaultCloseTimeout. See Close for what is left past it.
	CloseTimeout time.Duration
}

// DefaultCloseTimeout is the default Options.CloseTimeout. Close writes
// what a second's flushes write, milliseconds on a store that answers; a
// store that does not (a PostgreSQL table another session holds locked, a
// connection that stopped forwarding) held airlock serve's stop for as
// long as it did, for ever.
const DefaultCloseTimeout = 5 * time.Second

// Observer counts what a Recorder recorded, by gateway (the target's kind:
// "aws", "postgres"), for an operator's metrics. Its methods are called
// on the gateways' paths, once the records are durable, and must be cheap
// and never block.
type Observer interface {
	// SessionStarted and SessionEnded bracket a session.
	SessionStarted(gateway string)
	SessionEnded(gateway string)
	// CallRecorded is a call's request, allowed or denied by the grant's
	// scope; for a request marked gateway.Call.OutcomeAtResult (a
	// PostgreSQL statement's) its result, allowed, unless the upstream
	// refused it for lack of privilege (gateway.Call.Refused): then
	// CallRefused instead. A statement cut off as its session ends has a
	// result too (pggw records one saying so), counted allowed; one
	// whose result the log refused for so long that it was dropped
	// (Results.Dropped) is counted allowed as it is dropped, as the
	// review counts it. One whose result is never recorded (the process
	// stopped) is not counted.
	CallRecorded(gateway string, allowed bool)
	// CallRefused is a call the grant's scope allowed and the upstream
	// refused before it did anything, as its result says: the review
	// counts it as denied, not as scope used (review.Count).
	CallRefused(gateway string)
	// Rejected is an attempt refused before any session could start (an
	// unknown credential, a bad signature…).
	Rejected(gateway string)
}

// noObserver is the Observer of a Recorder without one.
type noObserver struct{}

func (noObserver) SessionStarted(string)     {}
func (noObserver) SessionEnded(string)       {}
func (noObserver) CallRecorded(string, bool) {}
func (noObserver) CallRefused(string)        {}
func (noObserver) Rejected(string)           {}

// A Recorder records sessions (see the package documentation). Run starts
// its flusher and Close stops it.
type Recorder struct {
	o      Options
	shared bool // the store is shared by replicas

	// One flush of results and one of rows at a time: a flush takes
	// what is queued and writes it, so a second flush that found the
	// queue empty while the first was still writing would return before
	// those writes, and a read after it (Flush's promise) would miss them.
	resultsFlushMu, rowsFlushMu sync.Mutex

	// dirty are the sessions whose stored summary lags their logged
	// calls (see flushRows).
	dirtyMu sync.Mutex
	dirty   map[*state]struct{}
	// pendingEnds are the session ends the log refused (end.go).
	pendingEnds map[*state]pendingEnd
	// endsMu guards writingEnds: the ends being written now, each with a
	// channel closed when its write returns (Flush waits for them).
	endsMu      sync.Mutex
	writingEnds map[*state]chan struct{}
	// withResults are the sessions with results not yet logged.
	resultsMu   sync.Mutex
	withResults map[*state]struct{}
	resultsKick chan struct{} // a batch is full: the flusher runs now
	// spare are the arrays of result batches already logged, cleared,
	// for the next batches (takeBatch): a batch grown from nothing by
	// append allocated, copied and cleared its 176-byte calls about twice
	// over, 0.47 KiB of the gateway's 3.2 a pgbench statement, and the
	// collector's work with them (bench/HISTORY.md, "The whole airlock
	// serve per pgbench statement"). Dropped when a results flush finds
	// nothing to log, so that an idle server keeps none.
	spareMu sync.Mutex
	spare   [][]gateway.Call

	// rejects aggregates the gateways' refused attempts.
	rejects *gateway.RejectAggregator

	// ctx is the flusher's and Close's writes' context, cancelled at
	// Close's bound, so that a write the store holds does not hold them.
	ctx       context.Context
	cancel    context.CancelFunc
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	// open counts the sessions started and not yet ended in the log.
	open atomic.Int64
}

// New returns a Recorder; Log, Store and Now are required.
func New(o Options) (*Recorder, error) {
	if o.Log == nil || o.Store == nil || o.Now == nil {
		return nil, errors.New("sessions: Log, Store and Now are required")
	}
	if !o.Log.WritesRows() {
		return nil, errors.New("sessions: the audit log must write the rows its entries imply (auditlog.Options.Rows: review.StoreRows)")
	}
	if o.Refuse == nil {
		o.Refuse = func(_ string, err error) error { return err }
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = clock.Real
	}
	if o.ActiveEvery <= 0 {
		o.ActiveEvery = time.Minute
	}
	if o.Observer == nil {
		o.Observer = noObserver{}
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = DefaultCloseTimeout
	}
	_, shared := o.Store.(store.ReplicaRegistry)
	r := &Recorder{o: o, shared: shared, resultsKick: make(chan struct{}, 1)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.rejects = gateway.NewRejectAggregator(o.Rejections, o.Now, r.writeRejection, r.writeRejectionSummary)
	return r, nil
}

// Reject records an attempt a gateway refused before any session could
// start (see gateway.Authority): written at once, durable when it
// returns, or, past the policy's bounds, counted into a summary the
// flusher writes at the end of the interval.
func (r *Recorder) Reject(ctx context.Context, rj gateway.Rejection) error {
	err := r.rejects.Reject(ctx, rj)
	if err == nil {
		r.o.Observer.Rejected(rj.Gateway)
	}
	return err
}

// writeRejection logs one refused attempt (gateway.rejected).
func (r *Recorder) writeRejection(ctx context.Context, rj gateway.Rejection) error {
	err := r.o.Log.Append(ctx, auditlog.Event{Type: "gateway.rejected", Time: r.o.Now(), GrantID: rj.GrantID, Actor: "airlock", Data: rj})
	if err != nil {
		return r.o.Refuse("the rejection", err)
	}
	return nil
}

// writeRejectionSummary logs the attempts of one source and reason that
// were counted rather than written one by one (gateway.rejected_summary).
func (r *Recorder) writeRejectionSummary(ctx context.Context, rs gateway.RejectionSummary) error {
	err := r.o.Log.Append(ctx, auditlog.Event{Type: "gateway.rejected_summary", Time: r.o.Now(), GrantID: rs.GrantID, Actor: "airlock", Data: rs})
	if err != nil {
		return r.o.Refuse("the rejection summary", err)
	}
	return nil
}

// Start records the start of session sid under g for client (the peer's
// address and, where there is one, its user agent) and returns the
// session, whose calls it records from then on. The session.started entry
// is durable when it returns.
func (r *Recorder) Start(ctx context.Context, g *gateway.Grant, sid, client string) (*gateway.Session, error) {
	st := &state{}
	at := 0
	sid, client = st.ownStr(sid, &at), st.ownStr(client, &at)
	st.rec = model.Session{
		ID: sid, GrantID: g.ID, Identity: g.Identity, Target: g.Target, Client: client, StartedAt: r.o.Now(),
	}
	st.active = st.rec.StartedAt.UnixNano() // the start was admitted as activity (authority.Options.Admit)
	data := map[string]any{"client": client, "target": g.Target}
	tc := gateway.TLSClientOf(ctx)
	if tc != "" {
		// The client certificate's fingerprint (gateway.WithTLSClient).
		// Additive; the review ignores it.
		data["tls_client"] = tc
	}
	if r.o.Replica != "" {
		// Which replica serves it: if that one dies, another ends the
		// session. Additive; the review ignores it.
		data["replica"] = r.o.Replica
	}
	// A plain append, durable in the journal with the calls around it: the
	// session's row is written from this entry in the transaction that
	// stores it (review.StoreRows, auditlog.Options.Rows), so the store
	// never holds the entry without the row. A store transaction of its own
	// (Log.Do) cost each connection about a millisecond of CPU, and held
	// every other session's records while it waited for the journal's copy.
	err := r.o.Log.AppendLive(ctx, g.ID, auditlog.Event{Type: "session.started", Time: st.rec.StartedAt, GrantID: g.ID, SessionID: sid, Actor: g.Identity,
		Data: data})
	if err != nil {
		return nil, r.o.Refuse("the session start", err)
	}
	r.open.Add(1)
	r.o.Observer.SessionStarted(g.TargetKind)
	st.r, st.tlsClient = r, tc
	gateway.InitSession(&st.sess, sid, g, st)
	return &st.sess, nil
}

// The session's recorder is its state, whose methods Request,
// RequestAsync, Result and End the Session calls (gateway.SessionRecorder):
// six closures over Start's variables held about 300 bytes for each
// session's life, four method values 64 (bench/HISTORY.md, "An idle
// session's own objects"), the state itself nothing more.

// counted counts c in the session's summary. Every call is a plain append,
// encoded by the caller: no savepoint and no rewrite of the session row on
// the per-call path. The summary is counted only once the record is
// durable (a call whose record is never written is refused, and must not
// show in it), and its row is written lazily (see the package
// documentation).
func (st *state) counted(c gateway.Call) {
	r := st.r
	if !c.OutcomeAtResult || !c.Allowed {
		r.o.Observer.CallRecorded(st.sess.Grant.TargetKind, c.Allowed)
	} // else counted with its result (flushResults)
	st.mu.Lock()
	// In place: st.rec.Used is only read under st.mu, and handed out
	// as a copy (snapshot).
	review.Count(&st.rec, &st.tally, &c)
	queued := st.dirty // already queued for the next flush, which has not taken it yet
	st.dirty = true
	tell := false
	if r.o.Active != nil {
		if now := r.o.Now().UnixNano(); time.Duration(now-st.active) >= r.o.ActiveEvery {
			st.active, tell = now, true
		}
	}
	st.mu.Unlock()
	if !queued {
		r.markDirty(st)
	}
	if tell {
		r.o.Active(st.sess.Grant, st.sess.ID, st.rec.Client, st.tlsClient)
	}
}

// callEvent is c's event. Its Data is c itself, not a copy boxed apart:
// the event is encoded before the Append it is given to returns, and
// RequestAsync's c is on the heap already (its callWait holds it).
func (st *state) callEvent(c *gateway.Call) auditlog.Event {
	return auditlog.Event{Type: "session.call", Time: st.r.o.Now(), GrantID: st.sess.Grant.ID, SessionID: st.sess.ID, Actor: st.sess.Grant.Identity, Data: c}
}

func (st *state) Request(ctx context.Context, c gateway.Call) error {
	if err := st.r.o.Log.AppendLive(ctx, st.sess.Grant.ID, st.callEvent(&c)); err != nil {
		return fmt.Errorf("recording call: %w", st.r.o.Refuse("the call", err))
	}
	st.counted(c)
	return nil
}

func (st *state) RequestAsync(ctx context.Context, c gateway.Call) gateway.Waiter {
	w := callWaits.Get().(*callWait)
	w.st, w.c = st, c
	st.r.o.Log.AppendAsyncLiveIn(ctx, st.sess.Grant.ID, &w.p, st.callEvent(&w.c))
	return w
}

// callWait is a request's record being written (RequestAsync): the call,
// counted once durable, in one object with its session and the log's
// pending append, the log's queued operation in it (AppendAsyncLiveIn). A
// closure over them was two allocations per request (a Call is too large
// to be captured by value, so it was moved to the heap apart), and the
// log's operation a third.
type callWait struct {
	st *state
	c  gateway.Call
	p  auditlog.Pending
}

// callWaits holds the callWaits whose record is durable, for the next
// requests: one was about 430 bytes a statement, a sixth of what airlock
// serve allocated per pgbench -S statement (bench/HISTORY.md). A callWait
// goes back only from a Wait that returned nil: the log's writer is then
// done with its operation (auditlog.Pending.Wait), the call was counted,
// and its caller calls Wait at most once (gateway.Waiter), through a
// gateway.Pending that never calls it again. One whose record failed or
// was withdrawn (ctx ended) is left to the collector, since the writer may
// still hold it.
var callWaits = sync.Pool{New: func() any { return new(callWait) }}

func (w *callWait) Wait(ctx context.Context) error {
	if err := w.p.Wait(ctx); err != nil {
		return fmt.Errorf("recording call: %w", w.st.r.o.Refuse("the call", err))
	}
	w.st.counted(w.c)
	w.st, w.c = nil, gateway.Call{} // drop the call's and the session's references
	w.p.Reset()                     // keeps its operation's channel for the next
	callWaits.Put(w)
	return nil
}

func (st *state) Result(ctx context.Context, c gateway.Call) error {
	return st.r.addResult(ctx, st, c)
}

func (st *state) End(ctx context.Context) error {
	r, g, sid := st.r, st.sess.Grant, st.sess.ID
	r.o.Observer.SessionEnded(g.TargetKind) // whether its record lands now or later (queueEnd)
	// The results still batched land before session.ended.
	if err := r.flushResults(ctx, st); err != nil {
		r.o.Logger.Error("recording a session's last results failed", "session", sid, "err", err)
	}
	at := r.o.Now()
	if err := r.writeEnd(ctx, st, sid, g, at); err != nil {
		r.queueEnd(st, sid, g, at) // the flusher writes it once the log takes it
		return err
	}
	return nil
}

// Flush logs every session's queued results, then writes the summary rows
// that lag their logged calls, so that a read of sessions or usage after
// it sees every call recorded before it began.
// Both are tried: rows can be written even when a result could not.
//
// A session whose end is being written when Flush begins is the end's to
// store (flushRows leaves it alone), so Flush waits for those writes too,
// at most endWaitMax: its summary, calls included, reaches the log and the
// row with its session.ended entry. Without the wait, a read right after
// a client left (psql exits, the review is read) found the session's row
// as it was before its last flush: calls missing until the end landed.
func (r *Recorder) Flush(ctx context.Context) error {
	err := r.flushAllResults(ctx)
	err = errors.Join(err, r.flushRows(ctx))
	// After flushRows: a session it left to its end is registered until
	// that end's append returns (writeEnd), so it is either here or its
	// entry is committed already.
	return errors.Join(err, r.waitEnds(ctx, r.endsWriting()))
}

// Run starts the flusher: results and refused attempts' summaries every
// resultsInterval (results at once when a session's batch is full),
// summary rows and retried ends every flushInterval. Call it once.
func (r *Recorder) Run() {
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go r.flushLoop(r.stop, r.done)
}

// Close stops the flusher (if Run started it), then logs what is queued,
// writes the rows that lag, retries the ends the log refused, once, and
// writes the refused attempts' summaries. The sessions still open stay
// open: the next start's recovery (or another replica) ends them.
//
// It returns within CloseTimeout whatever the store does: the writes are
// then cancelled (and one the log's batch holds is left behind: the
// process is ending). What was not written stays where it can be
// recovered from, or is what a crash loses, and the process log says how
// much: a session's row and its end are derived again from its logged
// calls by the next start's recovery (grants' recoverOpenSessions, or the
// replicas' sweep), which ends it at its last recorded event; its
// results not yet logged, and the refused attempts not yet counted into
// a logged summary, are lost, as in a crash.
func (r *Recorder) Close() {
	r.closeOnce.Do(r.close)
}

func (r *Recorder) close() {
	t := r.o.Clock.AfterFunc(r.o.CloseTimeout, r.cancel)
	defer t.Stop()
	defer r.cancel()
	done := make(chan error, 1)
	go func() { done <- r.closeWrites(r.ctx) }()
	select {
	case err := <-done:
		if err == nil || r.ctx.Err() == nil {
			return // written, or failed on its own (logged)
		}
	case <-r.ctx.Done():
	}
	r.o.Logger.Error("stopping: the session records were not all written in time; the next start ends the sessions left open from their logged calls, and results not yet logged are lost",
		"timeout", r.o.CloseTimeout, "sessions_open", r.open.Load())
}

// closeWrites is what Close writes; it returns the first failure.
func (r *Recorder) closeWrites(ctx context.Context) error {
	if r.stop != nil {
		close(r.stop)
		<-r.done
	}
	err := r.flushAllResults(ctx)
	if err != nil {
		r.o.Logger.Error("recording session results at close", "err", err)
	}
	if e := r.flushRows(ctx); e != nil {
		r.o.Logger.Error("writing session summaries at close", "err", e)
		err = cmp.Or(err, e)
	}
	err = cmp.Or(err, r.retryEnds(ctx))
	if e := r.rejects.Close(ctx); e != nil {
		r.o.Logger.Error("recording refused attempts' summaries at close", "err", e)
		err = cmp.Or(err, e)
	}
	return err
}

// resetter is a clock.Timer that can be armed again once it has fired.
type resetter interface{ Reset(d time.Duration) bool }

// flushLoop logs queued results every resultsInterval and writes session
// summaries every flushInterval, on the Options' Clock, until stop closes.
func (r *Recorder) flushLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	clk := r.o.Clock
	tick := make(chan struct{}, 1)
	fire := func() {
		select {
		case tick <- struct{}{}:
		default:
		}
	}
	// One timer, reset after each tick where the clock's timers can be
	// (the real clock's *time.Timer, the fake's): arming a new one every
	// resultsInterval allocated a timer and its function ten times a
	// second for as long as the server ran, idle or not.
	var t clock.Timer
	arm := func() {
		if rt, ok := t.(resetter); ok {
			rt.Reset(resultsInterval)
			return
		}
		t = clk.AfterFunc(resultsInterval, fire)
	}
	arm()
	defer func() { t.Stop() }()
	// Rows are due every flushInterval by the clock, or every
	// flushInterval/resultsInterval ticks, for a clock that stands still
	// (a test's frozen one).
	last, ticks := clk.Now(), 0
	for {
		select {
		case <-stop:
			return
		case <-r.resultsKick:
		case <-tick:
			ticks++
			arm()
		}
		if err := r.flushAllResults(r.ctx); err != nil {
			r.o.Logger.Error("recording session results; will retry", "err", err)
		}
		if err := r.rejects.Flush(r.ctx); err != nil {
			r.o.Logger.Error("recording refused attempts' summaries; will retry", "err", err)
		}
		now := clk.Now()
		if now.Sub(last) < flushInterval && ticks < int(flushInterval/resultsInterval) {
			continue
		}
		last, ticks = now, 0
		if err := r.flushRows(r.ctx); err != nil {
			r.o.Logger.Error("writing session summaries; will retry", "err", err)
		}
		r.retryEnds(r.ctx)
	}
}
