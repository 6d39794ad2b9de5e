package auditlog

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// TestPendingReusedAfterWait holds AppendAsyncLiveIn's promise that a
// Pending may be zeroed and used again once Wait returned nil (the
// sessions recorder keeps its requests' objects for the next on it):
// callers on several goroutines each reuse one Pending for every append
// (half of them zeroing it, half through Reset, which keeps its channel),
// on a journaled log and on one writing the store itself, with a commit
// delay so that batches hold several callers' operations. Under -race a
// read of an operation by the writer (or the indexer) after its caller was
// told it is durable is a reported race; without it, every event must
// still be in the log once, with its own data (an operation overwritten
// while the writer still used it would lose or repeat one).
func TestPendingReusedAfterWait(t *testing.T) {
	for _, journaled := range []bool{true, false} {
		t.Run(fmt.Sprintf("journaled=%v", journaled), func(t *testing.T) {
			dir := t.TempDir()
			st := openSQLite(t, filepath.Join(dir, "airlock.db"))
			s, _ := fixedKey(t)
			o := Options{CommitDelay: 200 * time.Microsecond}
			if journaled {
				o.JournalDir, o.JournalKey = filepath.Join(dir, "journal"), testJournalKey
			}
			l := openLog(t, st, s, o)
			ctx := context.Background()
			const callers, each = 4, 150
			var wg sync.WaitGroup
			for g := range callers {
				wg.Go(func() {
					var p Pending
					for i := range each {
						if g%2 == 0 {
							p = Pending{}
						} else {
							p.Reset() // its channel kept
						}
						ev := Event{Type: "session.call", GrantID: "g_1", SessionID: fmt.Sprintf("s_%d", g), Actor: "bot",
							Data: map[string]int{"g": g, "i": i}}
						if err := l.AppendAsyncLiveIn(ctx, "", &p, ev).Wait(ctx); err != nil {
							t.Error(err)
							return
						}
						if err := p.Wait(ctx); err != nil { // again: the same answer, at once
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			es, err := st.LogEntries(ctx, store.LogFilter{Type: "session.call"})
			if err != nil {
				t.Fatal(err)
			}
			seen := map[[2]int]int{}
			for _, e := range es {
				var d struct{ Data struct{ G, I int } }
				if err := json.Unmarshal(e.Data, &d); err != nil {
					t.Fatalf("entry %d: %v", e.Seq, err)
				}
				if want := fmt.Sprintf("s_%d", d.Data.G); e.SessionID != want {
					t.Errorf("entry %d: session %q with the data of %q", e.Seq, e.SessionID, want)
				}
				seen[[2]int{d.Data.G, d.Data.I}]++
			}
			if len(es) != callers*each || len(seen) != callers*each {
				t.Fatalf("%d entries, %d distinct events, want %d of each", len(es), len(seen), callers*each)
			}
		})
	}
}

// TestPendingResetAllocs: an asynchronous append into a Pending Reset
// after its last successful Wait allocates one object fewer than into a
// new one, its operation's channel (2 against 3: the event's buffer,
// which only a stored batch gives back, and this log holds its batches
// out of the store, and the tree's frontier; the batch's entries go
// through the writer's and the indexer's kept arrays), and a Pending whose
// Wait failed keeps no channel.
func TestPendingResetAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation counts hold only without the race detector")
	}
	f := newJournalFixture(t)
	o := f.opts()
	o.holdIndex = true
	l := f.mustOpen(t, o)
	ctx := context.Background()
	ev := Event{Type: "session.call", GrantID: "g_1", SessionID: "s_1", Actor: "bot", Data: &pinnedData{1}}
	var p Pending
	reset := testing.AllocsPerRun(200, func() {
		p.Reset()
		if err := l.AppendAsyncLiveIn(ctx, "g_1", &p, ev).Wait(ctx); err != nil {
			t.Fatal(err)
		}
	})
	fresh := testing.AllocsPerRun(200, func() {
		p = Pending{}
		if err := l.AppendAsyncLiveIn(ctx, "g_1", &p, ev).Wait(ctx); err != nil {
			t.Fatal(err)
		}
	})
	// At least one fewer rather than exactly one: AllocsPerRun divides
	// the process's mallocs by the runs and truncates, so one object that
	// another goroutine or an earlier run leaves for reuse (an event
	// buffer, the frontier's array) turns 2 into 1 (seen once under load:
	// 1 against 3).
	if reset > fresh-1 || reset > 2 {
		t.Errorf("an asynchronous append allocates %v times into a Reset Pending, %v into a new one; want at least one fewer, at most 2", reset, fresh)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	p.Reset()
	if err := l.AppendAsyncLiveIn(cctx, "g_1", &p, ev).Wait(cctx); err == nil {
		t.Fatal("an append with its context cancelled succeeded")
	}
	if p.Reset(); p.op.done != nil {
		t.Error("a Pending whose Wait failed kept its channel through Reset")
	}
}
