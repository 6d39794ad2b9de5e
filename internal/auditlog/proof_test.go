package auditlog

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// TestProveConsistency checks the proofs between every pair of checkpoint
// sizes of a log against the signed roots, with the old frontier given and
// rebuilt from the entries, and that a proof over a changed entry fails.
func TestProveConsistency(t *testing.T) {
	ctx := context.Background()
	st := newFakeStore()
	s, _ := testKey(t)
	var mu sync.Mutex
	var seen []store.Checkpoint
	// The writer answers a batch's callers before it hands the batch's
	// checkpoint to OnCheckpoint (publishing never delays an append), so
	// the test waits for the tenth checkpoint rather than assuming it.
	tenth := make(chan struct{})
	l := openLog(t, st, s, Options{OnCheckpoint: func(cp store.Checkpoint) {
		mu.Lock()
		seen = append(seen, cp)
		if len(seen) == 10 {
			close(tenth)
		}
		mu.Unlock()
	}})
	// Batches of varied sizes, one checkpoint each.
	for i, n := range []int{1, 1, 2, 3, 1, 8, 5, 16, 1, 30} {
		evs := make([]Event, n)
		for j := range evs {
			evs[j] = Event{Type: "test.event", Actor: fmt.Sprintf("a%d-%d", i, j)}
		}
		if err := l.Append(ctx, evs...); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-tenth:
	case <-time.After(10 * time.Second):
	}
	mu.Lock()
	cps := append([]store.Checkpoint(nil), seen...)
	mu.Unlock()
	if len(cps) != 10 || cps[9].Size != 68 {
		t.Fatalf("OnCheckpoint saw %d checkpoints, want 10 ending at size 68", len(cps))
	}
	for i, a := range cps {
		for _, b := range cps[i:] {
			for _, fr := range [][]byte{a.Frontier, nil} {
				p, err := ProveConsistency(ctx, st, a.Size, fr, b.Size)
				if err != nil {
					t.Fatalf("%d→%d: %v", a.Size, b.Size, err)
				}
				if err := tlog.CheckTree(p, b.Size, tlog.Hash(b.Root), a.Size, tlog.Hash(a.Root)); err != nil {
					t.Fatalf("%d→%d (frontier given %v): proof does not verify: %v", a.Size, b.Size, fr != nil, err)
				}
			}
		}
	}
	if _, err := ProveConsistency(ctx, st, 5, nil, 4); err == nil {
		t.Error("a proof to a smaller tree was made")
	}
	if _, err := ProveConsistency(ctx, st, 5, nil, 69); err == nil {
		t.Error("a proof past the log's end was made")
	}

	// A changed entry after the old size: the proof no longer verifies.
	old, cur := cps[4], cps[9]
	st.mu.Lock()
	st.entries[old.Size+2].Data = []byte(`{"seq":10,"type":"forged"}`)
	st.mu.Unlock()
	p, err := ProveConsistency(ctx, st, old.Size, old.Frontier, cur.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckTree(p, cur.Size, tlog.Hash(cur.Root), old.Size, tlog.Hash(old.Root)); err == nil {
		t.Error("a proof over a changed entry verified")
	}
}

// TestOnCheckpointAtOpen: reopening a non-empty log reports its newest
// checkpoint, so a witness learns it even if nothing is appended.
func TestOnCheckpointAtOpen(t *testing.T) {
	ctx := context.Background()
	st := newFakeStore()
	s, _ := testKey(t)
	l := openLog(t, st, s, Options{})
	if err := l.Append(ctx, Event{Type: "test.event"}, Event{Type: "test.event"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	var got []store.Checkpoint
	openLog(t, st, s, Options{OnCheckpoint: func(cp store.Checkpoint) { got = append(got, cp) }})
	if len(got) != 1 || got[0].Size != 2 || len(got[0].Frontier) == 0 {
		t.Fatalf("OnCheckpoint at Open got %+v, want the size-2 checkpoint", got)
	}
}
