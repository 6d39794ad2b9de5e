package auditlog

import (
	"bytes"
	"testing"

	"github.com/airlock-dev/airlock/internal/store"
)

// TestIndexerQueueAllocs holds the indexer's queue of journal batches to
// no allocation of its own in a steady state: a batch pushed, the stored
// ones taken off (dropJobs) while others were pushed meanwhile. Sliced off
// the front, the queue's array ran out of room behind its jobs every few
// transactions (about 110 bytes a journal batch under pgbench -S); and
// each batch's frontier was encoded into a buffer of its own (180 bytes),
// where a stored job's is now reused.
func TestIndexerQueueAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation counts hold only without the race detector")
	}
	x := &indexer{kick: make(chan struct{}, 1)}
	tree := frontier{n: 5} // two subtree roots: 64 bytes encoded
	tree.h[0][0], tree.h[2][0] = 1, 2
	x.push(nil, &tree)
	x.push(nil, &tree)
	x.push(nil, &tree)
	x.mu.Lock()
	x.dropJobs(2) // the first stored: its array and two frontiers' buffers kept
	x.mu.Unlock()
	if n := testing.AllocsPerRun(1000, func() {
		x.push(nil, &tree)
		x.push(nil, &tree)
		x.mu.Lock()
		x.dropJobs(2)
		x.mu.Unlock()
	}); n != 0 {
		t.Errorf("the indexer's queue allocates %v times a cycle, want 0", n)
	}
	if len(x.jobs) != 1 {
		t.Fatalf("%d jobs queued, want 1", len(x.jobs))
	}
	// A job's frontier encoded into a kept buffer is the tree's.
	if got, want := x.jobs[0].frontier, tree.marshal(); !bytes.Equal(got, want) {
		t.Errorf("the queued job's frontier is %x, want %x", got, want)
	}
	// The stored jobs are cleared: their entries are let go.
	for i, j := range x.jobs[1:cap(x.jobs)] {
		if j.entries != nil || j.frontier != nil || j.size != 0 {
			t.Fatalf("place %d behind the queue holds a job", i+1)
		}
	}
	// A queue grown past keptJobs is let go as before (taken off the
	// front), not kept at that size.
	for range keptJobs + 1 {
		x.push(nil, &tree)
	}
	x.mu.Lock()
	x.dropJobs(len(x.jobs) - 1)
	x.mu.Unlock()
	if len(x.jobs) != 1 || cap(x.jobs) > keptJobs {
		t.Errorf("after a large queue was stored: %d jobs in an array of %d, want 1 in at most %d", len(x.jobs), cap(x.jobs), keptJobs)
	}
}

// TestIndexerEntriesAllocs holds the gathering of a transaction's entries
// to no allocation once one transaction has run: the array is kept
// (entriesOf, keep), cleared so that it holds no entry's bytes, and let go
// if it is larger than keptEntries.
func TestIndexerEntriesAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation counts hold only without the race detector")
	}
	x := &indexer{}
	data := []byte(`{"n":1}`)
	jobs := make([]indexJob, 5)
	count := 0
	for i := range jobs {
		jobs[i].entries = make([]store.LogEntry, i+1)
		for k := range jobs[i].entries {
			jobs[i].entries[k] = store.LogEntry{Seq: int64(count + 1), Type: "session.call", Data: data}
			count++
		}
	}
	x.keep(x.entriesOf(jobs, count)) // the first transaction makes it
	if n := testing.AllocsPerRun(100, func() {
		es := x.entriesOf(jobs, count)
		if len(es) != count || es[count-1].Seq != int64(count) {
			t.Fatalf("%d entries, the last %d, want %d", len(es), es[len(es)-1].Seq, count)
		}
		x.keep(es)
	}); n != 0 {
		t.Errorf("gathering a transaction's entries allocates %v times, want 0", n)
	}
	for _, e := range x.es[:cap(x.es)] {
		if e.Data != nil || e.Seq != 0 {
			t.Fatal("the kept array holds an entry")
		}
	}
	big := []indexJob{{entries: make([]store.LogEntry, keptEntries+1)}}
	x.keep(x.entriesOf(big, keptEntries+1))
	if x.es != nil {
		t.Errorf("an array of %d entries was kept, want none above %d", keptEntries+1, keptEntries)
	}
}
