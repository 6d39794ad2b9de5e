package grants

import (
	"bytes"
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
)

// Fresh writes pending session summaries and waits for the store to hold
// every log entry committed so far, so that rows and log agree on every
// call recorded before it returns (for audit verify).
func (s *Service) Fresh(ctx context.Context) { s.freshSessions(ctx) }

// Every grant and session a read returns is checked against its own log
// entries: the row is derived again from them (review.Deriver) and each
// answer that differs is listed in the row's LogMismatch, which the API
// returns and the CLI shows. Each entry's bytes are also checked against
// its stored leaf hash; that the entries themselves are the signed log is
// airlock audit verify's job (it checks the whole tree).

// deriveGrant derives grant id and its sessions from its log entries.
func (s *Service) deriveGrant(ctx context.Context, id string) (*review.Deriver, []string, error) {
	entries, err := s.st.LogEntries(ctx, store.LogFilter{GrantID: id})
	if err != nil {
		return nil, nil, err
	}
	d := review.NewDeriver()
	var problems []string
	for _, e := range entries {
		if e.Seq < 0 {
			// No position of the log holds it, so no checkpoint covers
			// it: rows made up with such entries read as proven.
			problems = append(problems, fmt.Sprintf("log entry %d has a negative sequence number: it is not in the log (run airlock audit verify)", e.Seq))
			continue
		}
		if h := tlog.RecordHash(e.Data); !bytes.Equal(h[:], e.LeafHash) {
			problems = append(problems, fmt.Sprintf("log entry %d does not hash to its leaf hash (run airlock audit verify)", e.Seq))
			continue
		}
		if err := d.Add(e.Data); err != nil {
			problems = append(problems, err.Error())
		}
	}
	return d, problems, nil
}

// proveGrants sets LogMismatch on each grant of gs.
func (s *Service) proveGrants(ctx context.Context, gs []model.Grant) error {
	for i := range gs {
		d, problems, err := s.deriveGrant(ctx, gs[i].ID)
		if err != nil {
			return err
		}
		gs[i].LogMismatch = append(problems, trimID(review.GrantDiffs(d, gs[i]), "grant "+gs[i].ID+": ")...)
	}
	return nil
}

// proveSessions sets LogMismatch on each session of ss, all of grant id.
func (s *Service) proveSessions(ctx context.Context, grantID string, ss []model.Session) error {
	if len(ss) == 0 {
		return nil
	}
	d, problems, err := s.deriveGrant(ctx, grantID)
	if err != nil {
		return err
	}
	for i := range ss {
		ss[i].LogMismatch = append(problems, trimID(review.SessionDiffs(d, ss[i]), "session "+ss[i].ID+": ")...)
		if ss[i].GrantID != grantID {
			ss[i].LogMismatch = append(ss[i].LogMismatch, fmt.Sprintf("grant is %q, asked for grant %q", ss[i].GrantID, grantID))
		}
	}
	return nil
}

func trimID(ms []string, prefix string) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = string(bytes.TrimPrefix([]byte(m), []byte(prefix)))
	}
	return out
}
