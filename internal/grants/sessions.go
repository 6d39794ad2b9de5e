package grants

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// maxUsed bounds the distinct "action resource" pairs kept per session; the
// full detail is in the log, this is the review summary.
const maxUsed = 100

// StartSession implements gateway.Authority.
func (s *Service) StartSession(ctx context.Context, g *gateway.Grant, client string) (*gateway.Session, error) {
	if !g.Live(s.now()) {
		return nil, gateway.ErrNoGrant
	}
	st := &sessionState{rec: model.Session{
		ID: newID("s_"), GrantID: g.ID, Identity: g.Identity, Target: g.Target, Client: client, StartedAt: s.now(),
	}}
	err := s.log.Do(ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
		return []auditlog.Event{{Type: "session.started", GrantID: g.ID, SessionID: st.rec.ID, Actor: g.Identity,
			Data: map[string]any{"client": client, "target": g.Target}}}, tx.PutSession(ctx, st.snapshot())
	})
	if err != nil {
		return nil, s.logErr("the session start", err)
	}
	sid := st.rec.ID // fixed; read here so the closures never race the summary's updates
	record := func(ctx context.Context, c gateway.Call) error {
		if c.Kind == "result" {
			// A result only adds byte counts to the summary, so it is a
			// plain append: encoded by the caller, no savepoint, no
			// rewrite of the session row (the next request's record or
			// the session's end stores the counts; the entry carries them
			// either way). Together that was a tenth of a gateway's CPU.
			ev := auditlog.Event{Type: "session.call", GrantID: g.ID, SessionID: sid, Actor: g.Identity, Data: c}
			if err := s.log.Append(ctx, ev); err != nil {
				return fmt.Errorf("recording call: %w", s.logErr("the call", err))
			}
			st.mu.Lock()
			st.rec = withCall(st.rec, c)
			st.mu.Unlock()
			return nil
		}
		err := s.log.Do(ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
			// Count the call only as part of writing its record: a call
			// whose record is never written (the caller's context ended
			// while queued, the log closed) is refused, and must not show
			// in the session's summary.
			st.mu.Lock()
			defer st.mu.Unlock()
			next := withCall(st.rec, c)
			if err := tx.PutSession(ctx, next); err != nil {
				return nil, err
			}
			st.rec = next
			return []auditlog.Event{{Type: "session.call", GrantID: g.ID, SessionID: next.ID, Actor: g.Identity, Data: c}}, nil
		})
		if err != nil {
			return fmt.Errorf("recording call: %w", s.logErr("the call", err))
		}
		return nil
	}
	end := func(ctx context.Context) error {
		st.mu.Lock()
		st.rec.EndedAt = s.now()
		st.mu.Unlock()
		return s.log.Do(ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
			snap := st.snapshot()
			return []auditlog.Event{{Type: "session.ended", GrantID: g.ID, SessionID: snap.ID, Actor: g.Identity, Data: map[string]any{
				"calls": snap.Calls, "denied": snap.Denied, "bytes_in": snap.BytesIn, "bytes_out": snap.BytesOut, "grant_end": g.EndReason(),
			}}}, tx.PutSession(ctx, snap)
		})
	}
	return gateway.NewSession(st.rec.ID, g, record, end), nil
}

// sessionState is the running summary of one session.
type sessionState struct {
	mu  sync.Mutex
	rec model.Session
}

// withCall returns r with c counted; r itself is left unchanged.
func withCall(r model.Session, c gateway.Call) model.Session {
	r.Used = slices.Clone(r.Used)
	if c.Kind != "result" {
		if c.Allowed {
			r.Calls++
			for _, u := range append([]string{c.Action + " " + c.Resource}, c.Also...) {
				if len(r.Used) < maxUsed && !slices.Contains(r.Used, u) {
					r.Used = append(r.Used, u)
				}
			}
		} else {
			r.Denied++
		}
	}
	r.BytesIn += c.BytesIn
	r.BytesOut += c.BytesOut
	return r
}

func (st *sessionState) snapshot() model.Session {
	st.mu.Lock()
	defer st.mu.Unlock()
	r := st.rec
	r.Used = slices.Clone(r.Used)
	return r
}
