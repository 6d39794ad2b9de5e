package grants

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// recoverSessions ends the sessions of grantID that were still open when
// Airlock last stopped without ending them (a crash: a clean stop ends
// every session through its gateway). A restarted gateway never continues
// them, so they end at their last recorded event, and their summary is
// counted again from the log itself, which is complete even where the
// lazily written session row lags.
func (s *Service) recoverSessions(ctx context.Context, grantID string) error {
	sessions, err := s.st.Sessions(ctx, grantID)
	if err != nil {
		return fmt.Errorf("sessions of %s: %w", grantID, err)
	}
	for _, ses := range sessions {
		if !ses.EndedAt.IsZero() {
			continue
		}
		entries, err := s.st.LogEntries(ctx, store.LogFilter{SessionID: ses.ID})
		if err != nil {
			return fmt.Errorf("log of session %s: %w", ses.ID, err)
		}
		rec, err := recount(ses, entries)
		if err != nil {
			return fmt.Errorf("session %s: %w", ses.ID, err)
		}
		err = s.log.Do(ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
			return []auditlog.Event{{Type: "session.ended", Time: rec.EndedAt, GrantID: rec.GrantID, SessionID: rec.ID, Actor: "airlock", Data: map[string]any{
				"calls": rec.Calls, "denied": rec.Denied, "bytes_in": rec.BytesIn, "bytes_out": rec.BytesOut,
				"recovered": true, "why": "airlock stopped without ending the session; it ends at its last recorded event",
			}}}, tx.PutSession(ctx, rec)
		})
		if err != nil {
			return s.logErr("the recovered session's end", err)
		}
		s.logger.Warn("ended a session left open by an unclean stop", "session", rec.ID, "grant", rec.GrantID, "calls", rec.Calls)
	}
	return nil
}

// recount rebuilds ses's summary from its log entries and sets its end to
// the time of the last one.
func recount(ses model.Session, entries []store.LogEntry) (model.Session, error) {
	ses.Calls, ses.Denied, ses.BytesIn, ses.BytesOut, ses.Used = 0, 0, 0, 0, nil
	ses.EndedAt = ses.StartedAt
	for _, e := range entries {
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
			ses = withCall(ses, ent.Data)
		case "session.results":
			var ent struct {
				Data resultsData `json:"data"`
			}
			if err := json.Unmarshal(e.Data, &ent); err != nil {
				return ses, fmt.Errorf("entry %d: %w", e.Seq, err)
			}
			for _, c := range ent.Data.Results {
				ses = withCall(ses, c)
			}
		}
	}
	return ses, nil
}
