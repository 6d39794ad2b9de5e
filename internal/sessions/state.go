package sessions

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
	"unsafe"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
)

// state is the running summary of one session.
type state struct {
	mu  sync.Mutex
	rec model.Session
	// tally is rec's review.Tally: how a refused call's result is
	// counted (review.Count).
	tally review.Tally
	// dirty means rec has calls its stored row does not have yet.
	dirty bool
	// ending means the session's end is being (or waits to be) written:
	// only that write may store its row from then on.
	ending bool
	// listed means the session is in Recorder.withResults, or a flush
	// that took it from there has not yet taken its results: addResult
	// then need not add it again (see there).
	listed bool
	// results are result calls not yet logged (see addResult), and
	// dropped counts those given up on after the log failed for long
	// (an int32 beside the bools, and active a Unix time in nanoseconds
	// rather than a time.Time, keep the state in its size class with
	// tally: TestStateSize).
	dropped int32
	results []gateway.Call
	// fmu keeps one session's result batches in order.
	fmu sync.Mutex
	// active is when Options.Active was last told of this session's use
	// (UnixNano).
	active int64
	// Set by Start, then never changed: what the recorder functions
	// (methods of state) need besides rec. The session's id, grant and
	// client are sess.ID, sess.Grant and rec.Client (never changed after
	// Start either).
	r *Recorder
	// tlsClient is the fingerprint of the client's certificate (Start's
	// gateway.TLSClientOf), for Options.Active: another certificate at
	// the requester's address is another instance.
	tlsClient string
	// sess is the gateway's Session, whose recorder is this state
	// (gateway.InitSession): one object for as long as the session lives,
	// where the state (352) and the Session (80) were two (bench/HISTORY.md,
	// "An idle session's recorder in one object").
	sess gateway.Session
	// strs holds the bytes of the session's id and its client's address
	// (sess.ID, rec.ID and rec.Client are strings into it: ownStr), set by
	// Start and never written again. Apart, they were two objects of 24
	// and 16 bytes for as long as the session lasts, in the size classes
	// that a login's garbage fills most: each pinned a span of mostly
	// freed slots, 0.2 KiB of heap a session beyond their 40 bytes
	// (bench/HISTORY.md, "What separates an idle session's live heap from
	// its RssAnon"). 64 bytes bring the state to the 448 size class
	// exactly (TestStateSize).
	strs [64]byte
}

// ownStr returns s copied into st.strs at *at, a string that lives in the
// state's own allocation, or s itself when it does not fit (a long client
// name). Only Start calls it, before the state is shared.
func (st *state) ownStr(s string, at *int) string {
	if s == "" || len(s) > len(st.strs)-*at {
		return s
	}
	b := st.strs[*at : *at+len(s)]
	copy(b, s)
	*at += len(s)
	return unsafe.String(&b[0], len(b))
}

// Results are logged in batches: one "session.results" entry holds a
// session's results, written by the flusher when resultsBatch are waiting
// and at the latest resultsInterval after the first of them, and always
// before session.ended. A request is
// durable before it is forwarded, and so is every decision; a result (rows,
// bytes, status, duration) describes what already happened, and one log
// entry per result would double the log's work per call. A crash can lose
// at most resultsInterval of results; the requests are all there.
const (
	resultsBatch    = 64
	resultsInterval = 100 * time.Millisecond
	// maxHeldResults bounds the results held per session while the log
	// fails; older ones are dropped (and counted) past it.
	maxHeldResults = 4096
)

// resultSlack is what a result may take beyond the batch's first one
// before its buffer grows again (status, error text, sizes).
const resultSlack = 32

// Results is the data of a session.results entry: a session's results
// logged together (see the package documentation).
type Results struct {
	Results []gateway.Call `json:"results"`
	// Dropped counts results lost before this batch because the log could
	// not take them in time.
	Dropped int `json:"dropped,omitempty"`
}

// AppendJSON encodes d as encoding/json would, through the calls' own
// encoder (see auditlog.Appender).
func (d Results) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"results":`...)
	if d.Results == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, c := range d.Results {
			if i > 0 {
				b = append(b, ',')
			}
			at := len(b)
			var err error
			if b, err = c.AppendJSON(b); err != nil {
				return nil, err
			}
			if i == 0 && len(d.Results) > 1 {
				// Room for the rest at about the first one's size, once:
				// growing a batch's tens of KiB by doubling copied and
				// cleared it several times. A buffer of the log's
				// (auditlog.GrowEntry), which it takes back once the
				// store holds the entry: made anew, a batch's was 167
				// bytes a pgbench statement.
				b = auditlog.GrowEntry(b, (len(b)-at+resultSlack)*(len(d.Results)-1))
			}
		}
		b = append(b, ']')
	}
	if d.Dropped != 0 {
		b = append(b, `,"dropped":`...)
		b = strconv.AppendInt(b, int64(d.Dropped), 10)
	}
	return append(b, '}'), nil
}

// addDropped adds n dropped results to d, saturating: past 2³¹−1 the
// count says "at least that many".
func addDropped(d int32, n int64) int32 {
	return int32(min(int64(d)+n, math.MaxInt32))
}

// addResult queues a result for the session's next results entry.
func (r *Recorder) addResult(ctx context.Context, st *state, c gateway.Call) error {
	st.mu.Lock()
	if st.results == nil {
		st.results = r.takeBatch()
	}
	st.results = append(st.results, c)
	n := len(st.results)
	// The session is listed for the flusher by its batch's first result,
	// not by each: the list's lock (every session's) and a map write per
	// statement otherwise. listed is cleared only where the results are
	// taken (queueResults, under mu), after the flusher took the session
	// off the list, so a result appended once it is cleared lists it again.
	list := !st.listed
	st.listed = true
	st.mu.Unlock()
	if n >= 4*resultsBatch {
		// The flusher is not keeping up (the log is slow): the
		// gateway waits, rather than results piling up.
		return r.flushResults(ctx, st)
	}
	if list {
		r.listResults(st)
	}
	if n >= resultsBatch {
		// A full batch: the flusher logs it now, off the gateway's path
		// (the gateway records results on its relay path).
		select {
		case r.resultsKick <- struct{}{}:
		default:
		}
	}
	return nil
}

// listResults puts st on the flusher's list of sessions with results.
func (r *Recorder) listResults(st *state) {
	r.resultsMu.Lock()
	if r.withResults == nil {
		r.withResults = map[*state]struct{}{}
	}
	r.withResults[st] = struct{}{}
	r.resultsMu.Unlock()
}

// flushResults logs st's queued results as one entry and counts them in its
// summary. If the log fails they stay queued for the next try.
func (r *Recorder) flushResults(ctx context.Context, st *state) error {
	st.fmu.Lock()
	defer st.fmu.Unlock()
	var f resultsFlush
	if !r.queueResults(ctx, st, &f, new(auditlog.Pending)) {
		return nil
	}
	return r.loggedResults(&f, f.p.Wait(ctx))
}

// resultsFlush is a session's results entry on its way to the log:
// queueResults to loggedResults, st.fmu held throughout.
type resultsFlush struct {
	st      *state
	batch   []gateway.Call
	dropped int32
	p       *auditlog.Pending
}

// queueResults takes st's queued results into f and appends them to the
// log as one entry, lazily (AppendLazyIn, in p), without waiting; false if
// st had none. st.fmu is held, and stays so until loggedResults.
func (r *Recorder) queueResults(ctx context.Context, st *state, f *resultsFlush, p *auditlog.Pending) bool {
	st.mu.Lock()
	batch, dropped := st.results, st.dropped
	st.results, st.dropped = nil, 0
	st.listed = false
	rec := st.rec
	st.mu.Unlock()
	if len(batch) == 0 {
		return false
	}
	*f = resultsFlush{st: st, batch: batch, dropped: dropped}
	ev := auditlog.Event{Type: "session.results", Time: r.o.Now(), GrantID: rec.GrantID, SessionID: rec.ID, Actor: rec.Identity,
		Data: Results{Results: batch, Dropped: int(dropped)}}
	// Nobody waits on these calls any more: the entry joins a batch that
	// calls start rather than costing a journal write of its own.
	f.p = r.o.Log.AppendLazyIn(ctx, p, ev)
	return true
}

// loggedResults ends f's flush once its append returned err: counted in
// the session's summary, or queued again for the next try.
func (r *Recorder) loggedResults(f *resultsFlush, err error) error {
	st, batch, dropped := f.st, f.batch, f.dropped
	if err != nil {
		st.mu.Lock()
		st.results = append(batch, st.results...)
		st.dropped = addDropped(st.dropped, int64(dropped))
		st.listed = true
		lost := 0 // statements counted with the results dropped here
		if over := len(st.results) - maxHeldResults; over > 0 {
			for i := range over {
				if st.results[i].OutcomeAtResult {
					lost++
				}
			}
			st.results = slices.Delete(st.results, 0, over)
			st.dropped = addDropped(st.dropped, int64(over))
		}
		st.mu.Unlock()
		// Their requests are in the log, and no result will say more:
		// counted as the review counts a request without its result,
		// allowed, rather than never (Observer).
		for range lost {
			r.o.Observer.CallRecorded(st.sess.Grant.TargetKind, true)
		}
		r.listResults(st)
		return fmt.Errorf("recording results: %w", r.o.Refuse("the results", err))
	}
	st.mu.Lock()
	for i := range batch {
		review.Count(&st.rec, &st.tally, &batch[i]) // in place, as counted does
	}
	st.dirty = true
	st.mu.Unlock()
	r.markDirty(st)
	// The outcomes of the requests counted with their results, now that
	// the results are durable (Observer).
	for i := range batch {
		switch c := &batch[i]; {
		case !c.OutcomeAtResult:
		case c.Refused:
			r.o.Observer.CallRefused(st.sess.Grant.TargetKind)
		default:
			r.o.Observer.CallRecorded(st.sess.Grant.TargetKind, true)
		}
	}
	// The entry holds the batch's bytes (the log encodes its events when
	// they are appended), not the batch: its array serves the next one.
	r.giveBatch(batch)
	return nil
}

// maxSpare bounds the arrays kept for result batches (Recorder.spare): about
// one for each session that logs results at the same time.
const maxSpare = 16

// takeBatch returns an empty array for a session's next results, one a
// logged batch left if there is one, else nil (append allocates).
func (r *Recorder) takeBatch() []gateway.Call {
	r.spareMu.Lock()
	defer r.spareMu.Unlock()
	n := len(r.spare)
	if n == 0 {
		return nil
	}
	b := r.spare[n-1]
	r.spare[n-1] = nil
	r.spare = r.spare[:n-1]
	return b
}

// giveBatch keeps the array of a logged batch for takeBatch, cleared so that
// it holds on to none of the calls' strings and pairs; not one that grew
// past what a batch takes while the log keeps up, nor more than maxSpare.
func (r *Recorder) giveBatch(b []gateway.Call) {
	if cap(b) > 4*resultsBatch {
		return
	}
	clear(b)
	r.spareMu.Lock()
	if len(r.spare) < maxSpare {
		r.spare = append(r.spare, b[:0])
	}
	r.spareMu.Unlock()
}

// dropSpare lets go of the arrays kept for result batches.
func (r *Recorder) dropSpare() {
	r.spareMu.Lock()
	r.spare = nil
	r.spareMu.Unlock()
}

// flushAllResults logs the queued results of every session.
func (r *Recorder) flushAllResults(ctx context.Context) error {
	r.resultsFlushMu.Lock()
	defer r.resultsFlushMu.Unlock()
	r.resultsMu.Lock()
	batch := r.withResults
	r.withResults = nil
	r.resultsMu.Unlock()
	if len(batch) == 0 {
		// The flusher's tick on an idle server: return before the
		// arrays below are made, and keep no arrays for batches that
		// are not coming.
		r.dropSpare()
		return nil
	}
	// All at once, from this goroutine: every session's entry is queued
	// (AppendLazyIn), then each is waited for. They join the next batch
	// of the log that calls start and share it, so the first wait is
	// mostly the only one that parks. A goroutine per session, each
	// waiting for its own AppendLazy, cost as many goroutine starts,
	// parks and wake-ups a flush (bench/HISTORY.md, "pgbench -S by
	// component at 2 Ps, and the results flush in one goroutine").
	// Each session's fmu is held from its queueing to its end, as
	// flushResults holds it, so that its entries stay in order; no other
	// holder of an fmu waits for anything but the log.
	flushes := make([]resultsFlush, len(batch))
	pend := make([]auditlog.Pending, len(batch))
	n := 0
	for st := range batch {
		st.fmu.Lock()
		if r.queueResults(ctx, st, &flushes[n], &pend[n]) {
			n++
		} else {
			st.fmu.Unlock()
		}
	}
	var first error
	for i := range flushes[:n] {
		f := &flushes[i]
		if err := r.loggedResults(f, f.p.Wait(ctx)); err != nil && first == nil {
			first = err
		}
		f.st.fmu.Unlock()
	}
	return first
}

// take returns a snapshot to store and marks it stored; if storing fails,
// the caller marks the session dirty again.
// takeUnlessEnding is take, unless the session's end owns its row.
func (st *state) takeUnlessEnding() (model.Session, bool) {
	st.mu.Lock()
	ending := st.ending
	st.mu.Unlock()
	if ending {
		return model.Session{}, false
	}
	return st.take(), true
}

func (st *state) take() model.Session {
	st.mu.Lock()
	st.dirty = false
	st.mu.Unlock()
	return st.snapshot()
}

func (st *state) snapshot() model.Session {
	st.mu.Lock()
	defer st.mu.Unlock()
	r := st.rec
	r.Used = slices.Clone(r.Used)
	return r
}

// flushInterval bounds how long a session's stored summary may lag its
// logged calls while nobody reads it.
const flushInterval = time.Second

// markDirty queues st's row for the next flush.
func (r *Recorder) markDirty(st *state) {
	r.dirtyMu.Lock()
	if r.dirty == nil {
		r.dirty = map[*state]struct{}{}
	}
	r.dirty[st] = struct{}{}
	r.dirtyMu.Unlock()
}

// flushSessions writes the rows of sessions with calls not yet in them, in
// one transaction. Reads of sessions and usage call it first, so readers
// see every call recorded before they asked.
func (r *Recorder) flushRows(ctx context.Context) error {
	r.rowsFlushMu.Lock()
	defer r.rowsFlushMu.Unlock()
	r.dirtyMu.Lock()
	batch := r.dirty
	r.dirty = nil
	r.dirtyMu.Unlock()
	var sts []*state
	for st := range batch {
		st.mu.Lock()
		if st.dirty && !st.ending {
			sts = append(sts, st)
		}
		st.mu.Unlock()
	}
	if len(sts) == 0 {
		return nil
	}
	err := r.o.Log.Do(ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
		for _, st := range sts {
			// A session whose end is being written is the end's to write
			// (sessionend.go): an older snapshot must not follow it.
			snap, ok := st.takeUnlessEnding()
			if !ok {
				continue
			}
			// In a shared store another replica may have ended this
			// session (it took this replica for dead): its ended row must
			// not be overwritten by an open one, which the next sweep
			// would end a second time.
			if ended, err := EndedElsewhere(ctx, tx, snap.ID); err != nil {
				return nil, err
			} else if ended {
				st.mu.Lock()
				st.ending = true
				st.mu.Unlock()
				continue
			}
			if err := tx.PutSession(ctx, snap); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	if err != nil {
		for _, st := range sts {
			st.mu.Lock()
			st.dirty = true
			st.mu.Unlock()
			r.markDirty(st)
		}
		return r.o.Refuse("the session summaries", err)
	}
	return nil
}
