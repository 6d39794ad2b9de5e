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

// endedSummary is the data of a session.ended entry: the session's final
// summary. Used is there since sessions end by a plain append; the
// derivation counts it from the calls instead.
type endedSummary struct {
	Calls    int64     `json:"calls"`
	Denied   int64     `json:"denied"`
	BytesIn  int64     `json:"bytes_in"`
	BytesOut int64     `json:"bytes_out"`
	Used     *[]string `json:"used"`
}

// StoreRows writes in tx the rows that entries imply as they are stored:
// for each session.started entry, its session's row, unless the session
// has one already (its summary, written since, is left as it is); for
// each session.ended entry, the end and the final summary it states, in
// the session's row, unless the row records an end already (written with
// the entry by the same transaction, as a recovered end is). Entries of
// other types cost a comparison of their type.
func StoreRows(ctx context.Context, tx store.Tx, entries []store.LogEntry) error {
	for i := range entries {
		e := &entries[i]
		if e.Type != "session.started" && e.Type != "session.ended" {
			continue
		}
		p, err := Parse(e.Data)
		if err != nil {
			return fmt.Errorf("review: the row of entry %d: %w", e.Seq, err)
		}
		if p.Type != e.Type || p.Session == "" || p.Grant == "" {
			return fmt.Errorf("review: entry %d is indexed as %s but holds %s of session %q, grant %q", e.Seq, e.Type, p.Type, p.Session, p.Grant)
		}
		if p.Type == "session.ended" {
			if err := endRow(ctx, tx, p); err != nil {
				return fmt.Errorf("review: the row of session %s (entry %d): %w", p.Session, e.Seq, err)
			}
			continue
		}
		s, err := startedSession(p)
		if err != nil {
			return fmt.Errorf("review: the row of %w", err)
		}
		if st, ok := tx.(store.SessionStartTx); ok {
			err = st.InsertSessionFrom(ctx, s, e.Seq) // its place in the grant's pages
		} else {
			err = tx.InsertSession(ctx, s)
		}
		if err != nil {
			return fmt.Errorf("review: the row of session %s (entry %d): %w", s.ID, e.Seq, err)
		}
	}
	return nil
}

// endRow writes the end a session.ended entry states into its row.
func endRow(ctx context.Context, tx store.Tx, p Parsed) error {
	var in endedSummary
	if err := json.Unmarshal(p.data, &in); err != nil {
		return err
	}
	end := model.Session{ID: p.Session, EndedAt: p.Time, Calls: in.Calls, Denied: in.Denied, BytesIn: in.BytesIn, BytesOut: in.BytesOut}
	if in.Used != nil {
		end.Used = *in.Used
		if end.Used == nil {
			end.Used = []string{} // stated empty: not "keep the row's"
		}
	}
	_, err := tx.EndSession(ctx, end)
	return err
}
