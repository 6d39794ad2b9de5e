package sqlitestore

import (
	"errors"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/store"
)

// TestScanCallbackErrorAsIs: ScanLog and ScanLogLeaves, which share one
// loop (scanRange), stop at their callback's first error and return that
// error itself, unwrapped as their doc says; an entry they cannot read is
// their own error, wrapped, and no call of the callback.
func TestScanCallbackErrorAsIs(t *testing.T) {
	ctx := t.Context()
	s, path := openTemp(t)
	defer s.Close()
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var es []store.LogEntry
	for i := range int64(10) {
		es = append(es, store.LogEntry{Seq: i, Type: "a", Data: []byte{byte(i)}, LeafHash: []byte{byte(i)}})
	}
	if err := tx.AppendLog(ctx, es); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	errStop := errors.New("stop")
	for _, tc := range []struct {
		name string
		scan func(fn func(seq int64) error) error
	}{
		{"ScanLog", func(fn func(int64) error) error {
			return s.ScanLog(ctx, 0, 10, func(e store.LogEntry) error { return fn(e.Seq) })
		}},
		{"ScanLogLeaves", func(fn func(int64) error) error {
			return s.ScanLogLeaves(ctx, 0, 10, func(seq int64, _, _ []byte) error { return fn(seq) })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := tc.scan(func(seq int64) error {
				calls++
				if seq == 6 {
					return errStop
				}
				return nil
			})
			if err != errStop || calls != 7 {
				t.Fatalf("%v after %d calls, want the callback's error itself after 7", err, calls)
			}
		})
	}
	// A time that is not an integer: ScanLog cannot make an entry of it.
	if _, err := rawDB(t, path).ExecContext(ctx, "UPDATE log_entries SET time = 'noon' WHERE seq = 3"); err != nil {
		t.Fatal(err)
	}
	calls := 0
	err = s.ScanLog(ctx, 0, 10, func(store.LogEntry) error { calls++; return nil })
	if err == nil || !strings.HasPrefix(err.Error(), "sqlitestore: scan log: log entry 3: time") || calls != 3 {
		t.Fatalf("ScanLog over an unreadable entry: %v after %d calls, want its own wrapped error after 3", err, calls)
	}
}
