package sessions

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// A session's end is recorded by one transaction: the session.ended entry
// and the row with its end time. If the log cannot take it (the database
// is down when a connection breaks), the row must not say the session
// ended while the log does not (audit verify would report the mismatch):
// the end time is kept aside, the row stays open, and the flusher writes
// the end, with its true time, once the log takes writes again. A process
// that stops before that leaves the session open for the recovery at the
// next start (or, among replicas, the sweep). From the moment its end is
// first tried, the flusher leaves the session's row alone (ending): a
// snapshot taken before the end must never be stored after it.

// pendingEnd is a session end the log did not take yet.
type pendingEnd struct {
	sid string
	g   *gateway.Grant
	at  time.Time
}

// writeEnd records the end of st (session sid) at at.
//
// On a store of its own (SQLite, with the journal) the end is a plain
// append, like the start: the entry states the final summary (Used
// included), and the log writes it into the row in the transaction that
// stores the entry (review.StoreRows). On a store shared by replicas the
// end is a transaction that first reads the row, since another replica
// may have ended the session (EndedElsewhere); there an append costs a
// store transaction anyway.
func (r *Recorder) writeEnd(ctx context.Context, st *state, sid string, g *gateway.Grant, at time.Time) error {
	defer r.endWriting(st)()
	st.mu.Lock()
	st.ending = true // from here only this write stores the row
	st.mu.Unlock()
	took := false
	// end takes the final summary and returns the row and its entry.
	end := func(grantEnd string) (model.Session, auditlog.Event) {
		took = true
		snap := st.take()
		snap.EndedAt = at
		// The entry's time is the session's end, so the row is derivable.
		return snap, auditlog.Event{Type: "session.ended", Time: at, GrantID: g.ID, SessionID: snap.ID, Actor: g.Identity, Data: map[string]any{
			"calls": snap.Calls, "denied": snap.Denied, "bytes_in": snap.BytesIn, "bytes_out": snap.BytesOut, "used": usedList(snap.Used),
			"grant_end": grantEnd,
		}}
	}
	var err error
	if !r.shared {
		_, e := end(g.EndReason())
		err = r.o.Log.Append(ctx, e)
	} else {
		err = r.o.Log.Do(ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
			if ended, err := EndedElsewhere(ctx, tx, sid); err != nil || ended {
				return nil, err
			}
			why, err := recordedGrantEnd(ctx, tx, g)
			if err != nil {
				return nil, err
			}
			snap, e := end(why)
			return []auditlog.Event{e}, tx.PutSession(ctx, snap)
		})
	}
	if err != nil {
		if took { // take cleared dirty; the row still lags
			st.mu.Lock()
			st.dirty = true
			st.mu.Unlock()
		}
		return err
	}
	st.mu.Lock()
	st.rec.EndedAt = at
	st.mu.Unlock()
	r.open.Add(-1)
	return nil
}

// recordedGrantEnd is the grant_end of a session of g that ends in tx on a
// store shared by replicas: why g ended, if the session was cut off by its
// end. The reason g carries is the one this replica cut it off for, and
// another replica may have ended the grant first, before this one heard
// of it (a revoke there, then this replica's expiry timer, or the holder's
// end through this replica): the session then said "expired" or "ended"
// where the grant's record, and the other replicas' sessions, say
// "revoked". The record, read in tx (writers are serialized, so it holds
// every end committed before), says which end stands. A session that
// ended while its grant was live here (g's reason empty) ended on its own.
func recordedGrantEnd(ctx context.Context, tx store.Tx, g *gateway.Grant) (string, error) {
	why := g.EndReason()
	if why == "" {
		return "", nil
	}
	// The record alone: a grant's usage sums every session it had, read
	// inside the log's writer, once for each session its end cuts off.
	var rec model.Grant
	var err error
	if gr, ok := tx.(store.GrantRecordTx); ok {
		rec, err = gr.GrantRecord(ctx, g.ID)
	} else {
		rec, err = tx.Grant(ctx, g.ID)
	}
	if errors.Is(err, store.ErrNotFound) {
		return why, nil
	}
	if err != nil {
		return "", err
	}
	if rec.EndReason != "" {
		return rec.EndReason, nil
	}
	return why, nil
}

// queueEnd keeps an end the log refused for retryEnds.
func (r *Recorder) queueEnd(st *state, sid string, g *gateway.Grant, at time.Time) {
	r.dirtyMu.Lock()
	defer r.dirtyMu.Unlock()
	if r.pendingEnds == nil {
		r.pendingEnds = map[*state]pendingEnd{}
	}
	r.pendingEnds[st] = pendingEnd{sid: sid, g: g, at: at}
}

// retryEnds writes the queued ends (their last results first), and
// returns the first failure.
func (r *Recorder) retryEnds(ctx context.Context) (first error) {
	r.dirtyMu.Lock()
	pending := r.pendingEnds
	r.pendingEnds = nil
	r.dirtyMu.Unlock()
	for st, p := range pending {
		err := r.flushResults(ctx, st)
		if err == nil {
			err = r.writeEnd(ctx, st, p.sid, p.g, p.at)
		}
		if err != nil {
			r.o.Logger.Error("recording a session's end; will retry", "session", p.sid, "err", err)
			r.queueEnd(st, p.sid, p.g, p.at)
			first = cmp.Or(first, err)
		}
	}
	return first
}

// usedList is a session's Used list as its end states it: never null, so
// that the row written from the entry takes it (review.StoreRows).
func usedList(used []string) []string {
	if used == nil {
		return []string{}
	}
	return used
}

// EndedElsewhere says, inside a shared store's write transaction, whether
// session id was already ended by another replica (which took this one
// for dead: its listener was down for two sweeps while it still served).
// Its end is then not written twice.
func EndedElsewhere(ctx context.Context, tx store.Tx, id string) (bool, error) {
	st, ok := tx.(store.SessionTx)
	if !ok {
		return false, nil
	}
	cur, err := st.Session(ctx, id)
	if err != nil {
		return false, err
	}
	return !cur.EndedAt.IsZero(), nil
}

// endWaitMax bounds how long Flush waits for the session ends being
// written when it began. An end is one durable append, milliseconds; a
// log that takes longer is failing, and a read must not depend on the log
// taking writes (it goes on with what is stored).
const endWaitMax = 5 * time.Second

// endWriting registers st's end as being written until the returned
// function runs.
func (r *Recorder) endWriting(st *state) (done func()) {
	ch := make(chan struct{})
	r.endsMu.Lock()
	if r.writingEnds == nil {
		r.writingEnds = map[*state]chan struct{}{}
	}
	r.writingEnds[st] = ch
	r.endsMu.Unlock()
	return func() {
		r.endsMu.Lock()
		if r.writingEnds[st] == ch {
			delete(r.writingEnds, st)
		}
		r.endsMu.Unlock()
		close(ch)
	}
}

// endsWriting returns the channels of the ends being written now.
func (r *Recorder) endsWriting() []chan struct{} {
	r.endsMu.Lock()
	defer r.endsMu.Unlock()
	if len(r.writingEnds) == 0 {
		return nil
	}
	chs := make([]chan struct{}, 0, len(r.writingEnds))
	for _, ch := range r.writingEnds {
		chs = append(chs, ch)
	}
	return chs
}

// waitEnds waits until every one of ends is written (or failed), ctx
// ends, or endWaitMax passes.
func (r *Recorder) waitEnds(ctx context.Context, ends []chan struct{}) error {
	if len(ends) == 0 {
		return nil
	}
	late := make(chan struct{})
	t := r.o.Clock.AfterFunc(endWaitMax, func() { close(late) })
	defer t.Stop()
	for _, ch := range ends {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-late:
			return fmt.Errorf("sessions: %d session end(s) still being written after %v", len(ends), endWaitMax)
		}
	}
	return nil
}
