package auditlog

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestStuckBatchIsRefused: a batch of a log shared through PostgreSQL
// whose statements wait on a lock another session holds (a LOCK TABLE on
// the sessions' or the log's table, or the writers' advisory lock held by
// a process that stopped) fails its callers at the batch's bound, with
// nothing of it committed, and the log goes on once the lock is gone. Its
// statements before the COMMIT ran without a bound: the batch, and every
// call queued behind it, waited for as long as the lock was held.
func TestStuckBatchIsRefused(t *testing.T) {
	const bound = 300 * time.Millisecond
	for _, c := range []struct {
		name string
		lock func(t *testing.T, dsn string) pgx.Tx
		// op is the call the lock holds up.
		op func(ctx context.Context, l *Log) error
	}{{
		// A Do function's own statement waits: a session's end reads its
		// row first (sessions.EndedElsewhere).
		name: "sessions table",
		lock: func(t *testing.T, dsn string) pgx.Tx { return testenv.LockPostgresTables(t, dsn, "sessions") },
		op: func(ctx context.Context, l *Log) error {
			return l.Do(ctx, func(ctx context.Context, tx store.Tx) ([]Event, error) {
				_, err := tx.(store.SessionTx).Session(ctx, "s_1")
				if errors.Is(err, store.ErrNotFound) {
					err = nil
				}
				return []Event{{Type: "session.ended", SessionID: "s_1"}}, err
			})
		},
	}, {
		// Begin waits for the writers' lock.
		name: "writers' lock",
		lock: func(t *testing.T, dsn string) pgx.Tx {
			tx := testenv.LockPostgresTables(t, dsn, "meta") // a transaction of its own
			if _, err := tx.Exec(context.Background(), "SELECT pg_advisory_xact_lock(hashtextextended('airlock.writer/' || current_schema(), 0))"); err != nil {
				t.Fatal(err)
			}
			return tx
		},
		op: func(ctx context.Context, l *Log) error { return l.Append(ctx, Event{Type: "test.event"}) },
	}} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			dsn := pgDatabase(t)
			st := openPG(t, dsn)
			signer, v := testKey(t)
			o := replicaOptions(t.TempDir(), v, 0)
			o.BatchTimeout = bound
			l, err := Open(ctx, st, signer, o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			if err := l.Append(ctx, Event{Type: "test.before"}); err != nil {
				t.Fatal(err)
			}

			lock := c.lock(t, dsn)
			done := make(chan error, 1)
			t0 := time.Now()
			go func() { done <- c.op(ctx, l) }()
			select {
			case err := <-done:
				d := time.Since(t0)
				t.Logf("the call returned after %v: %v", d.Round(time.Millisecond), err)
				if err == nil || errors.Is(err, store.ErrCommitUnknown) {
					t.Fatalf("a batch held up by a lock: %v, want it refused", err)
				}
				if d > bound+3*time.Second {
					t.Fatalf("the call took %v, with BatchTimeout %v", d, bound)
				}
			case <-time.After(15 * time.Second):
				lock.Rollback(ctx)
				<-done
				t.Fatalf("the call had not returned 15 s into the wait on the lock (BatchTimeout %v)", bound)
			}
			if err := lock.Rollback(ctx); err != nil {
				t.Fatal(err)
			}

			// The log recovers, and nothing of the refused batch is in it.
			// The refused batch's connection may have been closed, so the
			// next one may have to open another first, within the same
			// 300 ms bound: on a loaded machine (CI, 2 cores) that can run
			// out, which refuses that batch too without harming the log.
			// So a few tries, each its own batch: what is asserted is that
			// the log goes on, not how soon.
			for try := 1; ; try++ {
				err := l.Append(ctx, Event{Type: "test.after"})
				if err == nil {
					break
				}
				if try == 10 || errors.Is(err, store.ErrCommitUnknown) {
					t.Fatalf("the next batch (try %d): %v", try, err)
				}
				t.Logf("the next batch (try %d): %v", try, err)
				time.Sleep(100 * time.Millisecond)
			}
			if err := l.Err(); err != nil {
				t.Fatalf("Err after a batch committed: %v", err)
			}
			es, err := st.LogEntries(ctx, store.LogFilter{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range es {
				got = append(got, e.Type)
			}
			if len(got) != 2 || got[0] != "test.before" || got[1] != "test.after" {
				t.Fatalf("the log holds %q, want the entries before and after the refused batch", got)
			}
		})
	}
}
