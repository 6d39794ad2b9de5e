package auditlog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// TestJournalEntryBufferAllocs holds a journal batch of three appends, on
// the writer's and the indexer's side (encoded, numbered, queued, stored
// and taken off), to no allocation once a stored batch's buffers went back
// to entryBufs: a buffer made for every event (512 bytes) was the largest
// allocation of a statement. The operations are reused as the sessions
// recorder reuses its requests'.
func TestJournalEntryBufferAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation counts hold only without the race detector")
	}
	ev := []Event{{Type: "session.call", Time: time.Unix(1, 0), GrantID: "g_1", SessionID: "s_1", Actor: "bot"}}
	l, ops, n := journalBatchAllocs(t, ev)
	if n != 0 {
		t.Errorf("a journal batch of three appends allocates %v times, want 0", n)
	}
	for i := range ops {
		if ops[i].evs[0].buf != nil {
			t.Error("an operation still points to its buffer after the batch took it")
		}
	}
	if len(l.idx.bufs) != 0 || len(l.idx.queued) != 0 {
		t.Errorf("%d buffers and %d entries left queued, want none", len(l.idx.bufs), len(l.idx.queued))
	}
}

// journalBatchAllocs counts the allocations of a journal batch of three
// appends of ev on the writer's and the indexer's side (encoded,
// numbered, queued, stored and taken off), after one such batch.
func journalBatchAllocs(t *testing.T, ev []Event) (*Log, []op, float64) {
	l := &Log{opts: Options{MaxBatch: 8}}
	l.idx = &indexer{l: l, kick: make(chan struct{}, 1)}
	ctx := context.Background()
	ops := make([]op, 3)
	claimed := make([]result, 0, 8)
	cycle := func() {
		claimed = claimed[:0]
		for i := range ops {
			ops[i] = op{}
			if err := ops[i].init(ctx, ev); err != nil {
				t.Fatal(err)
			}
			claimed = append(claimed, result{o: &ops[i]})
		}
		entries, err := l.buildJournal(&claimed, &l.next)
		if err != nil {
			t.Fatal(err)
		}
		l.tree.copyFrom(&l.next)
		l.idx.push(entries, l.bufs, &l.next)
		clear(entries)
		clear(l.bufs)
		l.batch, l.bufs = entries[:0], l.bufs[:0]
		x := l.idx
		x.mu.Lock()
		x.dropJobs(len(x.jobs), len(x.queued))
		x.mu.Unlock()
	}
	cycle()
	return l, ops, testing.AllocsPerRun(100, cycle)
}

// bigData is an event's data of about 6 KiB, as a session's batch of
// results is, encoded into a buffer GrowEntry gives, as sessions.Results
// grows its own.
type bigData struct{ G, I int }

func (d bigData) AppendJSON(b []byte) ([]byte, error) {
	b = GrowEntry(b, 6<<10)
	b = fmt.Appendf(b, `{"g":%d,"i":%d,"pad":"`, d.G, d.I)
	for range 6000 {
		b = append(b, 'x')
	}
	return append(b, `"}`...), nil
}

// TestJournalBigEntryBufferAllocs is TestJournalEntryBufferAllocs for
// events larger than an entry's usual (bigData, whose encoding grows its
// buffer through GrowEntry): once a stored batch's buffers went back to
// bigEntryBufs, a batch of three allocates nothing. Grown by slices.Grow,
// each event's buffer was made anew (a session's batch of results: about
// 11 KiB, 167 bytes a pgbench statement).
func TestJournalBigEntryBufferAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation counts hold only without the race detector")
	}
	ev := []Event{{Type: "session.results", Time: time.Unix(1, 0), GrantID: "g_1", SessionID: "s_1", Actor: "bot", Data: bigData{1, 2}}}
	if _, _, n := journalBatchAllocs(t, ev); n != 0 {
		t.Errorf("a journal batch of three large appends allocates %v times, want 0", n)
	}
}

// TestEntryBuffersReusedAfterStore holds the handover of encoded events'
// buffers (entryBufs): callers append without pause on a journaled log
// whose store is slow (every copy waits in Options.Rows), so that new
// events are encoded while the indexer still holds the older ones. Each
// entry the store is given must still be its own: its leaf hash that of
// its bytes, its sequence number and its session the ones its bytes
// state. A buffer put back before the store holds its entry would be
// written by an encoder while the indexer reads it (a reported race under
// -race; without it, an entry whose bytes changed), and one the writer
// still pointed to from an operation, reused by its caller, likewise. One
// event in three is a large one (bigData), in a buffer of bigEntryBufs.
func TestEntryBuffersReusedAfterStore(t *testing.T) {
	dir := t.TempDir()
	st := openSQLite(t, filepath.Join(dir, "airlock.db"))
	s, _ := fixedKey(t)
	var (
		mu       sync.Mutex
		checked  int
		problems []string
	)
	rows := func(ctx context.Context, tx store.Tx, entries []store.LogEntry) error {
		time.Sleep(2 * time.Millisecond) // the copy holds its entries a while
		mu.Lock()
		defer mu.Unlock()
		for _, e := range entries {
			sum := sha256.Sum256(append([]byte{0}, e.Data...))
			var d struct {
				Seq     int64
				Session string
			}
			err := json.Unmarshal(e.Data, &d)
			switch {
			case !bytes.Equal(sum[:], e.LeafHash):
				problems = append(problems, fmt.Sprintf("entry %d: its leaf hash is not its bytes'", e.Seq))
			case err != nil:
				problems = append(problems, fmt.Sprintf("entry %d: %v", e.Seq, err))
			case d.Seq != e.Seq || d.Session != e.SessionID:
				problems = append(problems, fmt.Sprintf("entry %d of session %s holds entry %d of session %s", e.Seq, e.SessionID, d.Seq, d.Session))
			}
			checked++
		}
		return nil
	}
	l := openLog(t, st, s, Options{JournalDir: filepath.Join(dir, "journal"), JournalKey: testJournalKey, Rows: rows})
	ctx := context.Background()
	const callers, each = 4, 300
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			var p Pending // reused, as the sessions recorder does
			for i := range each {
				p.Reset()
				ev := Event{Type: "session.call", GrantID: "g_1", SessionID: fmt.Sprintf("s_%d", g), Actor: "bot",
					Data: map[string]int{"g": g, "i": i}}
				if i%3 == 2 { // one in three in a buffer of GrowEntry's (bigEntryBufs)
					ev.Data = bigData{g, i}
				}
				if err := l.AppendAsyncLiveIn(ctx, "", &p, ev).Wait(ctx); err != nil {
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
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems[:min(len(problems), 10)] {
		t.Error(p)
	}
	if checked != callers*each {
		t.Errorf("the store was given %d entries, want %d", checked, callers*each)
	}
	es, err := st.LogEntries(ctx, store.LogFilter{Type: "session.call"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range es {
		seen[string(e.Data[bytes.IndexByte(e.Data, ','):])] = true
	}
	if len(es) != callers*each || len(seen) != callers*each {
		t.Errorf("%d entries stored, %d distinct, want %d of each", len(es), len(seen), callers*each)
	}
}
