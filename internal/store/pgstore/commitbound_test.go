package pgstore

import (
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestCommitOutcomeCheckIsBounded: a COMMIT whose connection breaks while
// the database is out of reach (a partition: the client's connection is
// reset, new ones are accepted but never answered) is reported with
// store.ErrCommitUnknown once OutcomeTimeout has passed. The outcome check
// used to retry until the store was closed, holding the writer, and every
// caller of the batch, as long.
func TestCommitOutcomeCheckIsBounded(t *testing.T) {
	ctx := t.Context()
	dsn := freshDB(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	px := newSilencer(t, u.Host)
	const bound = 500 * time.Millisecond
	s, err := OpenWith(ctx, px.via(t, dsn), Options{OutcomeTimeout: bound})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.PutIdentity(ctx, model.Identity{Name: "unknown", Kind: model.Agent}); err != nil {
		t.Fatal(err)
	}
	px.unreachableFromNow()
	done := make(chan error, 1)
	t0 := time.Now()
	go func() { done <- tx.Commit() }()
	time.Sleep(100 * time.Millisecond) // the COMMIT is sent, and dropped
	px.resetClients()
	select {
	case err := <-done:
		d := time.Since(t0)
		t.Logf("Commit returned after %v: %v", d.Round(time.Millisecond), err)
		if !errors.Is(err, store.ErrCommitUnknown) {
			t.Fatalf("Commit with the database out of reach: %v, want ErrCommitUnknown", err)
		}
		// The bound, with slack for a loaded machine.
		if d > bound+3*time.Second {
			t.Fatalf("Commit took %v to give up, with OutcomeTimeout %v", d, bound)
		}
	case <-time.After(15 * time.Second):
		s.Close() // ends the check, so that the test can end
		<-done
		t.Fatalf("Commit had not returned 15 s after its connection broke (OutcomeTimeout %v)", bound)
	}
}
