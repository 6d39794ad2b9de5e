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
	x.push(nil, nil, &tree)
	x.push(nil, nil, &tree)
	x.push(nil, nil, &tree)
	x.mu.Lock()
	x.dropJobs(2, 0) // the first stored: its array and two frontiers' buffers kept
	x.mu.Unlock()
	if n := testing.AllocsPerRun(1000, func() {
		x.push(nil, nil, &tree)
		x.push(nil, nil, &tree)
		x.mu.Lock()
		x.dropJobs(2, 0)
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
	// The stored jobs are cleared.
	for i, j := range x.jobs[1:cap(x.jobs)] {
		if j.n != 0 || j.frontier != nil || j.size != 0 {
			t.Fatalf("place %d behind the queue holds a job", i+1)
		}
	}
	// A queue grown past keptJobs is let go as before (taken off the
	// front), not kept at that size.
	for range keptJobs + 1 {
		x.push(nil, nil, &tree)
	}
	x.mu.Lock()
	x.dropJobs(len(x.jobs)-1, 0)
	x.mu.Unlock()
	if len(x.jobs) != 1 || cap(x.jobs) > keptJobs {
		t.Errorf("after a large queue was stored: %d jobs in an array of %d, want 1 in at most %d", len(x.jobs), cap(x.jobs), keptJobs)
	}
}

// TestIndexerEntriesAllocs holds a journal batch's entries, on their way
// from the writer to the store, to no allocation once the indexer's queue
// has room: the writer builds each batch in its kept array (Log.batch),
// push copies the entries into the indexer's queue (queued), a
// transaction stores a prefix of it and dropEntries takes that off,
// moving the rest to the front. An array made for every journal batch
// (128 bytes an entry) and another gathering each transaction's entries
// were about 130 and 40-130 bytes a statement under pgbench -S. The places
// behind the queue hold no entry's bytes, and a queue grown past
// keptQueued is let go.
func TestIndexerEntriesAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation counts hold only without the race detector")
	}
	x := &indexer{kick: make(chan struct{}, 1)}
	tree := frontier{n: 5}
	data := []byte(`{"n":1}`)
	batch := make([]store.LogEntry, 0, 8) // the writer's
	seq := int64(0)
	push := func(n int) {
		batch = batch[:0]
		for range n {
			batch = append(batch, store.LogEntry{Seq: seq, Type: "session.call", Data: data})
			seq++
		}
		x.push(batch, nil, &tree)
		clear(batch)
	}
	next := int64(0) // the first entry not stored
	store3 := func() {
		// The indexer's side: the first three jobs' entries stored, as
		// run takes them, while two more batches were pushed.
		x.mu.Lock()
		n, count := 3, x.jobs[0].n+x.jobs[1].n+x.jobs[2].n
		es := x.queued[:count:count]
		x.mu.Unlock()
		for _, e := range es {
			if e.Seq != next {
				t.Fatalf("stored entry %d, want %d", e.Seq, next)
			}
			next++
		}
		x.mu.Lock()
		x.dropJobs(n, count)
		x.mu.Unlock()
	}
	cycle := func() {
		push(1)
		push(3)
		push(2)
		store3()
	}
	push(2)
	push(1)
	cycle() // the queue's arrays are made
	if n := testing.AllocsPerRun(1000, cycle); n != 0 {
		t.Errorf("three journal batches through the queue allocate %v times, want 0", n)
	}
	if len(x.jobs) != 2 || len(x.queued) != x.jobs[0].n+x.jobs[1].n {
		t.Fatalf("%d jobs, %d entries queued, want 2 jobs and their entries", len(x.jobs), len(x.queued))
	}
	for _, e := range x.queued[len(x.queued):cap(x.queued)] {
		if e.Data != nil || e.Seq != 0 {
			t.Fatal("a place behind the queue holds an entry")
		}
	}
	big := make([]store.LogEntry, keptQueued+1)
	x.push(big, nil, &tree)
	x.mu.Lock()
	x.dropJobs(len(x.jobs), len(x.queued))
	x.mu.Unlock()
	if cap(x.queued) > keptQueued {
		t.Errorf("a queue of %d entries was kept, want none above %d", cap(x.queued), keptQueued)
	}
}
