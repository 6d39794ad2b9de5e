package auditlog

import (
	"context"
	"errors"
	"testing"
	"time"
)

// AppendAsync returns before its events are durable, and Wait says when
// they are, or that they failed.
func TestAppendAsyncWaitsForCommit(t *testing.T) {
	st := newFakeStore()
	s, v := testKey(t)
	l := openLog(t, st, s, Options{})
	ctx := context.Background()

	release := blockWriter(t, l)
	p := l.AppendAsync(ctx, Event{Type: "read"})
	waitQueued(t, l, 1)
	done := make(chan error, 1)
	go func() { done <- p.Wait(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v while the writer was blocked", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if l.Size() != 2 {
		t.Fatalf("size %d, want 2", l.Size())
	}

	// A failed commit fails the pending append, and it is not in the log.
	errDisk := errors.New("disk full")
	st.mu.Lock()
	st.failCommit = func(int) error { return errDisk }
	st.mu.Unlock()
	if err := l.AppendAsync(ctx, Event{Type: "lost"}).Wait(ctx); !errors.Is(err, errDisk) {
		t.Fatalf("Wait after a failed commit: %v", err)
	}
	st.mu.Lock()
	st.failCommit = nil
	st.mu.Unlock()
	if l.Size() != 2 {
		t.Fatalf("size %d after a failed batch, want 2", l.Size())
	}

	// Withdrawn while still queued: cancelled, never written.
	release = blockWriter(t, l)
	cctx, cancel := context.WithCancel(ctx)
	p = l.AppendAsync(cctx, Event{Type: "withdrawn"})
	waitQueued(t, l, 1)
	cancel()
	if err := p.Wait(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait after cancel: %v", err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if l.Size() != 3 {
		t.Fatalf("size %d, want 3 (two blocks and one read)", l.Size())
	}
	mustVerifyOK(t, st, v, nil)
}
