package auditlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/pgstore"
)

// unsureStore is a PostgreSQL store whose next commit of a batch's entries
// can be made to report store.ErrCommitUnknown, as a COMMIT whose answer was
// lost while the database stayed out of reach for OutcomeTimeout does:
// having committed (next(unsureCommitted)) or not (next(unsureAborted)).
type unsureStore struct {
	*pgstore.Store
	mode atomic.Int32
	// failBegins is how many Begins fail from now, as with the database
	// out of reach; thenFail is put in it by the next unknown commit.
	failBegins, thenFail atomic.Int32
}

const (
	unsureCommitted = 1 + iota
	unsureAborted
)

func (s *unsureStore) next(mode int32) { s.mode.Store(mode) }

func (s *unsureStore) Begin(ctx context.Context) (store.Tx, error) {
	if s.failBegins.Add(-1) >= 0 {
		return nil, errors.New("the database is out of reach")
	}
	tx, err := s.Store.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return &unsureTx{Tx: tx.(*pgstore.Tx), s: s}, nil
}

type unsureTx struct {
	*pgstore.Tx
	s *unsureStore
}

func (t *unsureTx) CommitLogCheckpoint(entries []store.LogEntry, c store.Checkpoint) error {
	mode := t.s.mode.Swap(0)
	if mode != 0 {
		t.s.failBegins.Store(t.s.thenFail.Swap(0))
	}
	switch mode {
	case unsureCommitted:
		if err := t.Tx.CommitLogCheckpoint(entries, c); err != nil {
			return err
		}
		return fmt.Errorf("%w: the answer was lost (committed)", store.ErrCommitUnknown)
	case unsureAborted:
		_ = t.Tx.Rollback()
		return fmt.Errorf("%w: the answer was lost (not committed)", store.ErrCommitUnknown)
	}
	return t.Tx.CommitLogCheckpoint(entries, c)
}

// TestUnknownCommitIsLearned: after a batch whose commit's outcome was
// unknown (its callers refused), the next batch learns from the log
// whether it committed. If it did, a log.refused entry names the refused
// calls' entries, so the log does not show them as calls made; if not,
// the log holds nothing of it. An AppendLazy call of such a batch (a
// session's results, which its recorder would write again after a
// failure) is not refused: it returns nil once its events are in the log,
// once, whether the unsure batch committed or not. Before, every caller
// got the error, nothing marked the committed calls as refused, and a
// recorder wrote the committed results a second time.
func TestUnknownCommitIsLearned(t *testing.T) {
	ctx := context.Background()
	st := &unsureStore{Store: openPG(t, pgDatabase(t))}
	signer, v := testKey(t)
	o := replicaOptions(t.TempDir(), v, 0)
	l, err := Open(ctx, st, signer, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	appendOne := func(typ string) error { return l.Append(ctx, Event{Type: typ}) }

	if err := appendOne("before"); err != nil {
		t.Fatal(err)
	}
	st.next(unsureCommitted)
	if err := appendOne("refused-committed"); !errors.Is(err, store.ErrCommitUnknown) {
		t.Fatalf("the batch whose outcome was unknown: %v", err)
	}
	st.next(unsureAborted)
	if err := appendOne("refused-aborted"); !errors.Is(err, store.ErrCommitUnknown) {
		t.Fatalf("the batch whose outcome was unknown: %v", err)
	}
	if err := appendOne("after"); err != nil {
		t.Fatal(err)
	}
	st.next(unsureCommitted)
	if err := l.AppendLazy(ctx, Event{Type: "lazy-committed"}); err != nil {
		t.Fatalf("AppendLazy in a batch that committed, its outcome unknown: %v", err)
	}
	st.next(unsureAborted)
	if err := l.AppendLazy(ctx, Event{Type: "lazy-aborted"}); err != nil {
		t.Fatalf("AppendLazy in a batch that did not commit, its outcome unknown: %v", err)
	}
	if err := appendOne("last"); err != nil {
		t.Fatal(err)
	}

	es, err := st.LogEntries(ctx, store.LogFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		s := e.Type
		if e.Type == RefusedType {
			var d struct {
				Entries [][2]int64 `json:"entries"`
			}
			var ent struct {
				Data json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(e.Data, &ent); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(ent.Data, &d); err != nil {
				t.Fatal(err)
			}
			s = fmt.Sprintf("%s%v", e.Type, d.Entries)
		}
		got = append(got, s)
	}
	want := "before refused-committed log.refused[[1 2]] after lazy-committed lazy-aborted last"
	if strings.Join(got, " ") != want {
		t.Fatalf("the log holds\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
	if err := l.Close(); err != nil { // writes the witness file
		t.Fatal(err)
	}
	witness, err := os.ReadFile(o.WitnessPath)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(ctx, st, v, witness)
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify: %v %+v", err, rep.Problems)
	}
}

// TestUnknownCommitHoldsLazyCallsBriefly: an AppendLazy call held by a
// batch whose outcome was unknown is not held for ever when the batches
// after it fail (the database still out of reach): after unsureTries of
// them it gets the error, and the log goes on once the store answers.
func TestUnknownCommitHoldsLazyCallsBriefly(t *testing.T) {
	ctx := context.Background()
	st := &unsureStore{Store: openPG(t, pgDatabase(t))}
	signer, v := testKey(t)
	l, err := Open(ctx, st, signer, replicaOptions(t.TempDir(), v, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	st.thenFail.Store(1000)
	st.next(unsureAborted)
	done := make(chan error, 1)
	go func() { done <- l.AppendLazy(ctx, Event{Type: "lazy"}) }()
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrCommitUnknown) {
			t.Fatalf("AppendLazy after %d failed batches: %v, want the unknown outcome", unsureTries, err)
		}
	case <-time.After(15 * time.Second):
		st.failBegins.Store(0)
		t.Fatalf("AppendLazy still held 15 s after its batch's unknown outcome, the batches after it failing")
	}
	st.failBegins.Store(0)
	if err := l.Append(ctx, Event{Type: "after"}); err != nil {
		t.Fatal(err)
	}
}
