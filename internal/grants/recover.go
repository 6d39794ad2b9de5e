package grants

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/sessions"
	"github.com/airlock-dev/airlock/internal/store"
)

// recoverOpenSessions ends the sessions that were still open when Airlock
// last stopped without ending them (a crash: a clean stop ends every
// session through its gateway), whatever became of their grants: one
// revoked or expired just before the crash, its end committed and its
// sessions' not, would otherwise keep them open in the record for ever. A
// restarted gateway never continues them, so they end at their last
// recorded event, and their summary is counted again from the log itself,
// which is complete even where the lazily written session row lags. Only
// for a process alone on its store, before its gateways start.
func (s *Service) recoverOpenSessions(ctx context.Context) error {
	lister, ok := s.st.(store.OpenSessionLister)
	if !ok {
		return fmt.Errorf("recovering open sessions: the store cannot list them")
	}
	sessions, err := lister.OpenSessions(ctx)
	if err != nil {
		return fmt.Errorf("recovering open sessions: %w", err)
	}
	// The log.refused entries, read once for every session (by type: on
	// SQLite, which has no index of it, a scan of the log).
	var void *review.Void
	for _, ses := range sessions {
		if !ses.EndedAt.IsZero() {
			continue
		}
		if void == nil {
			if void, _, err = review.LoadVoid(ctx, s.st, 0); err != nil {
				return fmt.Errorf("recovering open sessions: %w", err)
			}
		}
		entries, err := s.st.LogEntries(ctx, store.LogFilter{SessionID: ses.ID})
		if err != nil {
			return fmt.Errorf("log of session %s: %w", ses.ID, err)
		}
		if err := s.recoverSession(ctx, ses, entries, void, "airlock stopped without ending the session; it ends at its last recorded event"); err != nil {
			return err
		}
	}
	return nil
}

// recoverSession ends ses, whose gateway is gone, at its last recorded
// event (entries are its log entries), counting its summary again from
// them, leaving out the entries void names (read here if nil). In a
// shared store's transaction (store.SessionTx) the session is
// read again first, so that two replicas recovering it write its end once.
func (s *Service) recoverSession(ctx context.Context, ses model.Session, entries []store.LogEntry, void *review.Void, why string) error {
	// Entries a log.refused entry names are void: their callers were told
	// they failed, and the recorder did not count them. The log.refused
	// entries come after them; only those after the session's first entry
	// can name one of its entries.
	if void == nil && len(entries) > 0 {
		first := entries[0].Seq
		for _, e := range entries {
			first = min(first, e.Seq)
		}
		v, _, err := review.LoadVoid(ctx, s.st, first-1)
		if err != nil {
			return fmt.Errorf("session %s: %w", ses.ID, err)
		}
		void = v
	}
	rec, err := recount(ses, entries, void)
	if err != nil {
		return fmt.Errorf("session %s: %w", ses.ID, err)
	}
	ended := false
	err = s.log.Do(ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
		if done, err := sessions.EndedElsewhere(ctx, tx, ses.ID); err != nil || done {
			return nil, err // done: another replica recovered it first
		}
		ended = true
		return []auditlog.Event{{Type: "session.ended", Time: rec.EndedAt, GrantID: rec.GrantID, SessionID: rec.ID, Actor: "airlock", Data: map[string]any{
			"calls": rec.Calls, "denied": rec.Denied, "bytes_in": rec.BytesIn, "bytes_out": rec.BytesOut,
			"recovered": true, "why": why,
		}}}, tx.PutSession(ctx, rec)
	})
	if err != nil {
		return s.logErr("the recovered session's end", err)
	}
	if ended {
		s.logger.Warn("ended a session left open by a stopped gateway", "session", rec.ID, "grant", rec.GrantID, "calls", rec.Calls, "why", why)
	}
	return nil
}

// recount rebuilds ses's summary from its log entries and sets its end to
// the time of the last one, counting them as the review does
// (review.Count), so that the summary matches what the log implies: a
// call whose result was lost in the crash stays a call, its pair used. An
// entry void names (a log.refused entry's) is left out, its time too.
func recount(ses model.Session, entries []store.LogEntry, void *review.Void) (model.Session, error) {
	ses.Calls, ses.Denied, ses.BytesIn, ses.BytesOut, ses.Used = 0, 0, 0, 0, nil
	ses.EndedAt = ses.StartedAt
	var t review.Tally
	for _, e := range entries {
		if void.Contains(e.Seq) {
			continue
		}
		if e.Time.After(ses.EndedAt) {
			ses.EndedAt = e.Time
		}
		switch e.Type {
		case "session.call":
			var ent struct {
				Data gateway.Call `json:"data"`
			}
			if err := json.Unmarshal(e.Data, &ent); err != nil {
				return ses, fmt.Errorf("entry %d: %w", e.Seq, err)
			}
			review.Count(&ses, &t, &ent.Data)
		case "session.results":
			var ent struct {
				Data sessions.Results `json:"data"`
			}
			if err := json.Unmarshal(e.Data, &ent); err != nil {
				return ses, fmt.Errorf("entry %d: %w", e.Seq, err)
			}
			for i := range ent.Data.Results {
				review.Count(&ses, &t, &ent.Data.Results[i])
			}
		}
	}
	return ses, nil
}
