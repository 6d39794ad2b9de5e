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

// deriveGrant derives grant id and its sessions from its log entries,
// read deriveBatch at a time: a grant of a long PostgreSQL session holds
// millions of entries, and reading them all at once held every one in
// memory for one page of a session or a grant's record.
func (s *Service) deriveGrant(ctx context.Context, id string) (*review.Deriver, []string, error) {
	d := review.NewDeriver()
	var problems []string
	for after := int64(0); ; {
		entries, err := s.st.LogEntries(ctx, store.LogFilter{GrantID: id, After: after, Limit: deriveBatch})
		if err != nil {
			return nil, nil, err
		}
		for _, e := range entries {
			after = max(after, e.Seq)
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
		if len(entries) < deriveBatch {
			return d, problems, nil
		}
		if after <= 0 {
			// A whole batch out of the log: the cursor cannot move past
			// it, and the rest is not read.
			problems = append(problems, fmt.Sprintf("more than %d log entries have no position in the log (run airlock audit verify)", deriveBatch))
			return d, problems, nil
		}
	}
}

// deriveBatch is the most log entries deriveGrant holds at once.
const deriveBatch = 1000

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
