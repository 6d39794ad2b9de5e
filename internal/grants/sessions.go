package grants

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
)

// StartSession implements gateway.Authority.
func (s *Service) StartSession(ctx context.Context, g *gateway.Grant, client string) (*gateway.Session, error) {
	if !g.Live(s.now()) {
		return nil, gateway.ErrNoGrant
	}
	sid0 := newID("s_")
	if err := s.checkMoved(ctx, g, client, sid0); err != nil {
		return nil, err
	}
	st := &sessionState{rec: model.Session{
		ID: sid0, GrantID: g.ID, Identity: g.Identity, Target: g.Target, Client: client, StartedAt: s.now(),
	}}
	data := map[string]any{"client": client, "target": g.Target}
	if s.rep.notifier != nil {
		// Which replica serves it: if that one dies, another ends the
		// session (sweepSessions). Additive; the review ignores it.
		data["replica"] = s.rep.id
	}
	// A plain append, durable in the journal with the calls around it: the
	// session's row is written from this entry in the transaction that
	// stores it (review.StoreRows, auditlog.Options.Rows), so the store
	// never holds the entry without the row. A store transaction of its own
	// (Log.Do) cost each connection about a millisecond of CPU, and held
	// every other session's records while it waited for the journal's copy.
	err := s.log.Append(ctx, auditlog.Event{Type: "session.started", Time: st.rec.StartedAt, GrantID: g.ID, SessionID: st.rec.ID, Actor: g.Identity,
		Data: data})
	if err != nil {
		return nil, s.logErr("the session start", err)
	}
	sid := st.rec.ID // fixed; read here so the closures never race the summary's updates
	// Every call is a plain append, encoded by the caller: no savepoint
	// and no rewrite of the session row on the per-call path. The summary
	// is counted only once the record is durable (a call whose record is
	// never written is refused, and must not show in it), and its row is
	// written lazily: by the flusher, at the session's end, and before any
	// read of sessions or usage. The row always summarises a prefix of the
	// session's logged calls, so the store holds nothing the log does not
	// explain.
	counted := func(c gateway.Call) {
		st.mu.Lock()
		// In place: st.rec.Used is only read under st.mu, and handed out
		// as a copy (snapshot).
		review.Count(&st.rec, &c)
		queued := st.dirty // already queued for the next flush, which has not taken it yet
		st.dirty = true
		st.mu.Unlock()
		if !queued {
			s.markDirty(st)
		}
	}
	callEvent := func(c gateway.Call) auditlog.Event {
		return auditlog.Event{Type: "session.call", GrantID: g.ID, SessionID: sid, Actor: g.Identity, Data: c}
	}
	request := func(ctx context.Context, c gateway.Call) error {
		if err := s.log.Append(ctx, callEvent(c)); err != nil {
			return fmt.Errorf("recording call: %w", s.logErr("the call", err))
		}
		counted(c)
		return nil
	}
	requestAsync := func(ctx context.Context, c gateway.Call) func(context.Context) error {
		p := s.log.AppendAsync(ctx, callEvent(c))
		return func(ctx context.Context) error {
			if err := p.Wait(ctx); err != nil {
				return fmt.Errorf("recording call: %w", s.logErr("the call", err))
			}
			counted(c)
			return nil
		}
	}
	result := func(ctx context.Context, c gateway.Call) error { return s.addResult(ctx, st, c) }
	end := func(ctx context.Context) error {
		// The results still batched land before session.ended.
		if err := s.flushResults(ctx, st); err != nil {
			s.logger.Error("recording a session's last results failed", "session", sid, "err", err)
		}
		at := s.now()
		if err := s.writeEnd(ctx, st, sid, g, at); err != nil {
			s.queueEnd(st, sid, g, at) // the flusher writes it once the log takes it
			return err
		}
		return nil
	}
	return gateway.NewSession(st.rec.ID, g, gateway.Recorder{Request: request, RequestAsync: requestAsync, Result: result, End: end}), nil
}

// sessionState is the running summary of one session.
type sessionState struct {
	mu  sync.Mutex
	rec model.Session
	// dirty means rec has calls its stored row does not have yet.
	dirty bool
	// ending means the session's end is being (or waits to be) written:
	// only that write may store its row from then on.
	ending bool
	// results are result calls not yet logged (see addResult), and
	// dropped counts those given up on after the log failed for long.
	results []gateway.Call
	dropped int
	// fmu keeps one session's result batches in order.
	fmu sync.Mutex
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

// resultsData is the data of a session.results entry.
type resultsData struct {
	Results []gateway.Call `json:"results"`
	// Dropped counts results lost before this batch because the log could
	// not take them in time.
	Dropped int `json:"dropped,omitempty"`
}

// AppendJSON encodes d as encoding/json would, through the calls' own
// encoder (see auditlog.Appender).
func (d resultsData) AppendJSON(b []byte) ([]byte, error) {
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
				// cleared it several times.
				b = slices.Grow(b, (len(b)-at+resultSlack)*(len(d.Results)-1))
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

// addResult queues a result for the session's next results entry.
func (s *Service) addResult(ctx context.Context, st *sessionState, c gateway.Call) error {
	st.mu.Lock()
	st.results = append(st.results, c)
	n := len(st.results)
	st.mu.Unlock()
	if n >= 4*resultsBatch {
		// The flusher is not keeping up (the log is slow): the
		// gateway waits, rather than results piling up.
		return s.flushResults(ctx, st)
	}
	s.resultsMu.Lock()
	if s.withResults == nil {
		s.withResults = map[*sessionState]struct{}{}
	}
	s.withResults[st] = struct{}{}
	s.resultsMu.Unlock()
	if n >= resultsBatch {
		// A full batch: the flusher logs it now, off the gateway's path
		// (the gateway records results on its relay path).
		select {
		case s.resultsKick <- struct{}{}:
		default:
		}
	}
	return nil
}

// flushResults logs st's queued results as one entry and counts them in its
// summary. If the log fails they stay queued for the next try.
func (s *Service) flushResults(ctx context.Context, st *sessionState) error {
	st.fmu.Lock()
	defer st.fmu.Unlock()
	st.mu.Lock()
	batch, dropped := st.results, st.dropped
	st.results, st.dropped = nil, 0
	rec := st.rec
	st.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	ev := auditlog.Event{Type: "session.results", GrantID: rec.GrantID, SessionID: rec.ID, Actor: rec.Identity,
		Data: resultsData{Results: batch, Dropped: dropped}}
	// Nobody waits on these calls any more: the entry joins a batch that
	// calls start rather than costing a journal write of its own.
	if err := s.log.AppendLazy(ctx, ev); err != nil {
		st.mu.Lock()
		st.results = append(batch, st.results...)
		st.dropped += dropped
		if over := len(st.results) - maxHeldResults; over > 0 {
			st.results = slices.Delete(st.results, 0, over)
			st.dropped += over
		}
		st.mu.Unlock()
		s.resultsMu.Lock()
		if s.withResults == nil {
			s.withResults = map[*sessionState]struct{}{}
		}
		s.withResults[st] = struct{}{}
		s.resultsMu.Unlock()
		return fmt.Errorf("recording results: %w", s.logErr("the results", err))
	}
	st.mu.Lock()
	for i := range batch {
		review.Count(&st.rec, &batch[i]) // in place, as counted does
	}
	st.dirty = true
	st.mu.Unlock()
	s.markDirty(st)
	return nil
}

// flushAllResults logs the queued results of every session.
func (s *Service) flushAllResults(ctx context.Context) error {
	s.resultsMu.Lock()
	batch := s.withResults
	s.withResults = nil
	s.resultsMu.Unlock()
	// All at once: each session's entry waits for the next batch of the
	// log that calls start (AppendLazy), and they share it.
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for st := range batch {
		wg.Go(func() {
			if err := s.flushResults(ctx, st); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// take returns a snapshot to store and marks it stored; if storing fails,
// the caller marks the session dirty again.
// takeUnlessEnding is take, unless the session's end owns its row.
func (st *sessionState) takeUnlessEnding() (model.Session, bool) {
	st.mu.Lock()
	ending := st.ending
	st.mu.Unlock()
	if ending {
		return model.Session{}, false
	}
	return st.take(), true
}

func (st *sessionState) take() model.Session {
	st.mu.Lock()
	st.dirty = false
	st.mu.Unlock()
	return st.snapshot()
}

// flushInterval bounds how long a session's stored summary may lag its
// logged calls while nobody reads it.
const flushInterval = time.Second

// markDirty queues st's row for the next flush.
func (s *Service) markDirty(st *sessionState) {
	s.dirtyMu.Lock()
	if s.dirty == nil {
		s.dirty = map[*sessionState]struct{}{}
	}
	s.dirty[st] = struct{}{}
	s.dirtyMu.Unlock()
}

// flushSessions writes the rows of sessions with calls not yet in them, in
// one transaction. Reads of sessions and usage call it first, so readers
// see every call recorded before they asked.
func (s *Service) flushSessions(ctx context.Context) error {
	s.dirtyMu.Lock()
	batch := s.dirty
	s.dirty = nil
	s.dirtyMu.Unlock()
	var sts []*sessionState
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
	err := s.log.Do(ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
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
			if ended, err := endedElsewhere(ctx, tx, snap.ID); err != nil {
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
			s.markDirty(st)
		}
		return s.logErr("the session summaries", err)
	}
	return nil
}

// flushLoop logs queued results every resultsInterval and writes session
// summaries every flushInterval, until stop closes.
func (s *Service) flushLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(resultsInterval)
	defer t.Stop()
	last := time.Now()
	for {
		var now time.Time
		select {
		case <-stop:
			return
		case <-s.resultsKick:
			now = time.Now()
		case now = <-t.C:
		}
		if err := s.flushAllResults(context.Background()); err != nil {
			s.logger.Error("recording session results; will retry", "err", err)
		}
		if err := s.rejects.Flush(context.Background()); err != nil {
			s.logger.Error("recording refused attempts' summaries; will retry", "err", err)
		}
		if now.Sub(last) < flushInterval {
			continue
		}
		last = now
		if err := s.flushSessions(context.Background()); err != nil {
			s.logger.Error("writing session summaries; will retry", "err", err)
		}
		s.retryEnds(context.Background())
	}
}

// withCall returns r with c counted; r itself is left unchanged. It is the
// review's own counting, so that summaries match what the log implies.
func withCall(r model.Session, c gateway.Call) model.Session { return review.CountCall(r, c) }

func (st *sessionState) snapshot() model.Session {
	st.mu.Lock()
	defer st.mu.Unlock()
	r := st.rec
	r.Used = slices.Clone(r.Used)
	return r
}
