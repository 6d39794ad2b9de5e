package pgstore

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestLostCommitAnswerIsLearned: a shared audit log's batch whose COMMIT
// runs on the server but whose answer is lost, the database then out of
// reach for OutcomeTimeout, is reported to its caller as unknown
// (refused); once the database answers again, the next batch finds the
// batch in the log and appends a log.refused entry naming its entry, so
// the log does not show the refused call as made.
func TestLostCommitAnswerIsLearned(t *testing.T) {
	ctx := t.Context()
	s, px, _ := openProxied(t, Options{CommitTimeout: 300 * time.Millisecond, OutcomeTimeout: time.Second})
	s.attemptTimeout = 200 * time.Millisecond
	prepareEverywhere(t, s)
	signer, verifier, err := auditlog.LoadOrCreateKey(t.TempDir(), "airlock")
	if err != nil {
		t.Fatal(err)
	}
	// Rows runs just before the batch's commit: the mute starts there.
	var mute atomic.Bool
	l, err := auditlog.Open(ctx, s, signer, auditlog.Options{Origin: "airlock/lost-answer", Shared: true, Verifier: verifier,
		Rows: func(context.Context, store.Tx, []store.LogEntry) error {
			if mute.Swap(false) {
				px.muted.Store(true)
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.Append(ctx, auditlog.Event{Type: "before"}); err != nil {
		t.Fatal(err)
	}
	mute.Store(true)
	t0 := time.Now()
	err = l.Append(ctx, auditlog.Event{Type: "lost"})
	t.Logf("the batch whose answer was lost returned after %v: %v", time.Since(t0).Round(time.Millisecond), err)
	if !errors.Is(err, store.ErrCommitUnknown) {
		t.Fatalf("a batch whose COMMIT's answer was lost: %v, want ErrCommitUnknown", err)
	}
	px.muted.Store(false)
	if err := l.Append(ctx, auditlog.Event{Type: "after"}); err != nil {
		t.Fatal(err)
	}
	es, err := s.LogEntries(ctx, store.LogFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Type)
	}
	if g := strings.Join(got, " "); g != "before lost "+auditlog.RefusedType+" after" {
		t.Fatalf("the log holds %q", g)
	}
	if !strings.Contains(string(es[2].Data), `"entries":[[1,2]]`) {
		t.Fatalf("the refusal entry: %s", es[2].Data)
	}
}
