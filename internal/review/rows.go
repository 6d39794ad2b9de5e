package review

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// Rows written as their entries are stored.
//
// A session's row is implied by its session.started entry alone, so it is
// written from that entry, by StoreRows, in the very transaction that
// stores the entry: every path that stores entries calls it (the audit
// log's batches, its journal's copy into the store, the replay of a
// journal after a crash; see auditlog.Options.Rows). A session's start can
// then be a plain append, durable in the journal with the calls around it,
// instead of a store transaction of its own; and the store never holds a
// session.started entry without the row that recovery, the replicas'
// sweep and `audit verify` look for.

// startedSession is the session a session.started entry begins, as its
// row first stores it and as the derivation starts it.
func startedSession(p Parsed) (model.Session, error) {
	var in struct {
		Client string `json:"client"`
		Target string `json:"target"`
	}
	if err := json.Unmarshal(p.data, &in); err != nil {
		return model.Session{}, fmt.Errorf("entry %d: %w", p.Seq, err)
	}
	return model.Session{
		ID: p.Session, GrantID: p.Grant, Identity: p.Actor, Target: in.Target, Client: in.Client, StartedAt: p.Time,
	}, nil
}

// StoreRows writes in tx the rows that entries imply as they are stored:
// for each session.started entry, its session's row, unless the session
// has one already (its summary, written since, is left as it is). Entries
// of other types cost a comparison of their type.
func StoreRows(ctx context.Context, tx store.Tx, entries []store.LogEntry) error {
	for i := range entries {
		e := &entries[i]
		if e.Type != "session.started" {
			continue
		}
		p, err := Parse(e.Data)
		if err != nil {
			return fmt.Errorf("review: the row of entry %d: %w", e.Seq, err)
		}
		if p.Type != "session.started" || p.Session == "" || p.Grant == "" {
			return fmt.Errorf("review: entry %d is indexed as session.started but holds %s of session %q, grant %q", e.Seq, p.Type, p.Session, p.Grant)
		}
		s, err := startedSession(p)
		if err != nil {
			return fmt.Errorf("review: the row of %w", err)
		}
		if err := tx.InsertSession(ctx, s); err != nil {
			return fmt.Errorf("review: the row of session %s (entry %d): %w", s.ID, e.Seq, err)
		}
	}
	return nil
}
