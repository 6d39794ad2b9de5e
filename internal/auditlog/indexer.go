package auditlog

import (
	"context"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// maxIndexBatch is the most entries the indexer copies into the store in one
// transaction. Big transactions amortise the store's commit (and its fsync)
// over many journal batches.
const maxIndexBatch = 8 << 10

// indexDelay is how long the indexer lets journaled batches gather before
// copying them, unless a reader is waiting for them (Sync) or a whole
// maxIndexBatch is ready. Copying every small batch at once would spend a
// store commit on each and halve the log's throughput; copying 500 entries
// a transaction costs about two thirds of the CPU per entry of copying 100.
const indexDelay = 100 * time.Millisecond

// indexer copies journaled batches into the store in the background, each
// transaction ending with the checkpoint of its newest batch, so that the
// store always holds a log prefix covered by a signed checkpoint. Once a
// segment's entries are all in the store, the segment is removed.
type indexer struct {
	l *Log

	mu      sync.Mutex
	jobs    []indexJob
	pending int // entries in jobs
	// queued is the jobs' entries, in order: push copies a batch's in,
	// the indexer stores a prefix of it (run, index) and dropJobs takes
	// that off. One array for every batch's entries, and another
	// gathering a transaction's from them, were about 130 and 40-130
	// bytes a statement under pgbench -S.
	queued []store.LogEntry
	// bufs are the queued entries' buffers, in order, that go back to
	// entryBufs or bigEntryBufs once their entries are stored (dropJobs):
	// entryBufOf's.
	bufs []any
	// spare are stored jobs' frontier buffers, for push (dropJobs).
	spare   [][]byte
	indexed int64 // log size the store holds
	err     error // the last transaction's error, until one succeeds
	changed chan struct{}

	kick   chan struct{}
	urgent chan struct{} // a caller of wait is waiting
	quit   chan struct{}
	done   chan struct{}
}

// indexJob is one journaled batch waiting for the store. It keeps the tree
// after its entries in the compact form a checkpoint stores (the subtree
// roots only), not as a frontier: a frontier is 2 KiB, and the jobs queue
// up by the hundred between copies, so copying and regrowing a queue of
// frontiers cost the writer more than encoding the entries did (about 15%
// of its CPU under pgbench -S, bench/HISTORY.md).
type indexJob struct {
	n        int    // its entries, the next n of queued
	nbufs    int    // their buffers, the next nbufs of bufs
	size     int64  // the tree's size after entries
	frontier []byte // its frontier, as frontier.marshal encodes it
}

func startIndexer(l *Log) *indexer {
	x := &indexer{
		l: l, indexed: l.size.Load(), changed: make(chan struct{}),
		kick: make(chan struct{}, 1), urgent: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
	}
	go x.run()
	return x
}

// push queues a journaled batch, copying its entries and the buffers
// they are in that entryBufs may take once they are stored (the caller may
// reuse both slices). Its tree's frontier is encoded into a stored job's
// buffer if one is spare (dropJobs).
func (x *indexer) push(entries []store.LogEntry, bufs []any, tree *frontier) {
	x.mu.Lock()
	var buf []byte
	if k := len(x.spare); k > 0 {
		buf, x.spare[k-1] = x.spare[k-1], nil
		x.spare = x.spare[:k-1]
	} else {
		buf = make([]byte, 0, bits.OnesCount64(uint64(tree.n))*tlog.HashSize)
	}
	x.queued = append(x.queued, entries...)
	x.bufs = append(x.bufs, bufs...)
	x.jobs = append(x.jobs, indexJob{n: len(entries), nbufs: len(bufs), size: tree.n, frontier: tree.appendMarshal(buf)})
	x.pending += len(entries)
	x.mu.Unlock()
	select {
	case x.kick <- struct{}{}:
	default:
	}
}

// advance records that the writer itself stored the log up to size (a Do
// batch, run only once every journaled batch was indexed).
func (x *indexer) advance(size int64) {
	x.mu.Lock()
	x.indexed = size
	x.notifyLocked()
	x.mu.Unlock()
}

func (x *indexer) notifyLocked() {
	close(x.changed)
	x.changed = make(chan struct{})
}

// wait returns once the store holds the log up to size, or with the error
// of the last failed transaction while the store is failing.
func (x *indexer) wait(ctx context.Context, size int64) error {
	for {
		x.mu.Lock()
		indexed, err, ch := x.indexed, x.err, x.changed
		x.mu.Unlock()
		if indexed >= size {
			return nil
		}
		if err != nil {
			return fmt.Errorf("auditlog: the store is not taking the journal's entries: %w", err)
		}
		select {
		case x.urgent <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitPending returns once fewer than max entries wait for the store, or
// with the store's error if it is failing and that many are waiting.
func (x *indexer) waitPending(max int) error {
	for {
		x.mu.Lock()
		pending, err, ch := x.pending, x.err, x.changed
		x.mu.Unlock()
		if pending < max {
			return nil
		}
		if err != nil {
			return fmt.Errorf("auditlog: %d entries wait for the store, which is failing: %w", pending, err)
		}
		<-ch
	}
}

// run is the indexer goroutine. A failed transaction is retried with a
// growing pause; the jobs stay queued (and in the journal) meanwhile. Once
// stop is called it copies what is queued within CloseCopyTimeout, each
// transaction under that deadline, and leaves the rest in the journal.
func (x *indexer) run() {
	defer close(x.done)
	pause := 10 * time.Millisecond
	failures := 0
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	defer func() { cancel() }()
	quitting := false
	quit := func() {
		quitting = true
		ctx, cancel = context.WithTimeout(context.Background(), x.l.opts.CloseCopyTimeout)
	}
	for {
		x.mu.Lock()
		n, count := 0, 0
		// A test holding the copy back (holdIndex) leaves the jobs
		// unscanned: BenchmarkJournalBatch counts the writer's
		// instructions, and a scan of the growing queue at every push
		// was a tenth of them.
		for n < len(x.jobs) && !x.l.opts.holdIndex && (n == 0 || count+x.jobs[n].n <= maxIndexBatch) {
			count += x.jobs[n].n
			n++
		}
		// The first count entries of queued: push appends behind them
		// meanwhile (into the same array while it has room, past what
		// this reads), and only dropJobs, on this goroutine, moves them.
		jobs, es := x.jobs[:n:n], x.queued[:count:count]
		x.mu.Unlock()
		if x.l.opts.holdIndex {
			n = 0
		}
		if n == 0 {
			if quitting {
				return
			}
			select {
			case <-x.kick:
			case <-x.quit:
				quit()
			}
			continue
		}
		if quitting && ctx.Err() != nil {
			x.mu.Lock()
			if x.err == nil {
				x.err = fmt.Errorf("copying them took longer than %v", x.l.opts.CloseCopyTimeout)
			}
			x.mu.Unlock()
			return // the entries stay in the journal for the next Open
		}
		if count < maxIndexBatch && !quitting {
			select {
			case <-x.urgent:
			case <-x.quit:
				quit()
			case <-time.After(indexDelay):
			}
			select { // the kick for what is now queued is stale
			case <-x.kick:
			default:
			}
			x.mu.Lock()
			for n < len(x.jobs) && count+x.jobs[n].n <= maxIndexBatch {
				count += x.jobs[n].n
				n++
			}
			jobs, es = x.jobs[:n:n], x.queued[:count:count]
			x.mu.Unlock()
		}
		cp, err := x.index(ctx, jobs[len(jobs)-1], es)
		x.mu.Lock()
		if err == nil {
			x.dropJobs(n, count)
			x.pending -= count
			x.indexed = cp.Size
			x.err = nil
			// Before waking waiters: a Do batch waiting for this one
			// stores a newer checkpoint right after.
			x.l.latest.Store(cp)
			x.l.stored(cp)
			x.l.jr.dropIndexed(cp.Size)
		} else {
			x.err = err
		}
		x.notifyLocked()
		x.mu.Unlock()
		if err == nil {
			pause, failures = 10*time.Millisecond, 0
			continue
		}
		failures++
		if quitting && failures >= 3 {
			return // the entries stay in the journal for the next Open
		}
		select {
		case <-time.After(pause):
		case <-x.quit:
			if !quitting {
				quit()
			}
		}
		pause = min(2*pause, time.Second)
	}
}

// keptJobs and keptQueued bound the arrays the indexer keeps between
// transactions (dropJobs): 56 and 256 KiB. A copy at pgbench's pace
// holds a few hundred entries, each its journal batch's job; a queue grown
// past these by a store that stalled is let go rather than kept for the
// process's life.
const (
	keptJobs = 1 << 10
	// keptQueued bounds the queue of entries (dropEntries): 256 KiB, two
	// copies' worth at pgbench's pace (a few hundred entries each).
	keptQueued = 2 << 10
	// keptFrontiers bounds the spare frontier buffers, 32 bytes a subtree
	// root each (so at most 0.6 MiB for a log of a billion entries, about
	// 0.4 at a million): a copy stores up to a thousand jobs at
	// BenchmarkRecorderStatement's pace, a few hundred at pgbench's. A
	// kept buffer too small for a later tree grows once, by append.
	keptFrontiers = 1 << 10
)

// dropJobs takes the first n jobs, stored, and their count entries off
// the queue (x.mu held). The
// jobs pushed since move to the front of the array, so that the queue's
// next pushes fill it: sliced off the front instead, the array's room
// behind them ran out after every few transactions and append made a new
// one, about 110 bytes a journal batch (bench/HISTORY.md).
//
// Their frontiers' buffers are kept for the next pushes (x.spare, at most
// keptFrontiers of them): one made for every journal batch was about 180
// bytes a batch. Only index reads a job's frontier (parseFrontier copies
// it, and the checkpoint's is encoded anew), and it has returned.
func (x *indexer) dropJobs(n, count int) {
	x.dropEntries(count)
	x.dropBufs(n)
	for _, j := range x.jobs[:n] {
		if len(x.spare) == keptFrontiers {
			break
		}
		x.spare = append(x.spare, j.frontier[:0])
	}
	if cap(x.jobs) > keptJobs {
		clear(x.jobs[:n])
		x.jobs = x.jobs[n:]
		return
	}
	k := copy(x.jobs, x.jobs[n:])
	clear(x.jobs[k:]) // the moved jobs' old places
	x.jobs = x.jobs[:k]
}

// dropBufs puts the buffers of the first n jobs, stored, back into
// entryBufs or bigEntryBufs and takes them off bufs (x.mu held), as dropEntries does the
// entries. Nothing else holds them (see entryBufs).
func (x *indexer) dropBufs(n int) {
	nb := 0
	for _, j := range x.jobs[:n] {
		nb += j.nbufs
	}
	for _, p := range x.bufs[:nb] {
		switch p := p.(type) {
		case *[entryBufSize]byte:
			entryBufs.Put(p)
		case *[bigEntryBufSize]byte:
			bigEntryBufs.Put(p)
		}
	}
	if cap(x.bufs) > keptQueued {
		x.bufs = slices.Clone(x.bufs[nb:])
		return
	}
	k := copy(x.bufs, x.bufs[nb:])
	clear(x.bufs[k:])
	x.bufs = x.bufs[:k]
}

// dropEntries takes the first count entries, stored, off queued (x.mu
// held), as dropJobs does the jobs: those pushed since move to the front,
// the places behind them are cleared so that the array holds no stored
// entry's bytes, and an array grown past keptQueued (a store that fell
// behind) is let go, the rest copied into a new one. index, which read the
// stored ones, has returned, and the store kept none of them
// (store.Tx.AppendLog).
func (x *indexer) dropEntries(count int) {
	if cap(x.queued) > keptQueued {
		x.queued = slices.Clone(x.queued[count:])
		return
	}
	k := copy(x.queued, x.queued[count:])
	clear(x.queued[k:])
	x.queued = x.queued[:k]
}

// index signs the checkpoint for the tree after last, the newest job, and
// stores es, the entries of the jobs up to it, with it.
func (x *indexer) index(ctx context.Context, last indexJob, es []store.LogEntry) (*store.Checkpoint, error) {
	tree, err := parseFrontier(last.size, last.frontier)
	if err != nil {
		return nil, fmt.Errorf("auditlog: the tree after a journaled batch: %w", err)
	}
	cp, err := x.l.sign(&tree)
	if err != nil {
		return nil, err
	}
	if err := indexBatch(ctx, x.l.st, x.l.opts.Rows, es, *cp); err != nil {
		return nil, err
	}
	return cp, nil
}

// stop indexes what is queued (giving up after a few failures, or at
// CloseCopyTimeout) and stops the indexer. It returns the error that left
// entries out of the store.
func (x *indexer) stop() error {
	close(x.quit)
	<-x.done
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.pending > 0 {
		return fmt.Errorf("auditlog: %d journaled entries are not in the store, and stay in the journal for the next start: %w", x.pending, x.err)
	}
	return nil
}

// indexBatch stores entries, the rows they imply (Options.Rows) and the
// checkpoint covering them in one transaction.
func indexBatch(ctx context.Context, st store.Store, rows func(context.Context, store.Tx, []store.LogEntry) error, es []store.LogEntry, cp store.Checkpoint) error {
	tx, err := st.Begin(ctx)
	if err != nil {
		return err
	}
	if err = tx.AppendLog(ctx, es); err == nil {
		err = storeRows(ctx, rows, tx, es)
	}
	if err == nil {
		if err = tx.PutCheckpoint(ctx, cp); err == nil {
			err = tx.Commit()
		}
	}
	if err != nil {
		_ = tx.Rollback()
		return fmt.Errorf("storing entries %d-%d: %w", es[0].Seq, es[len(es)-1].Seq, err)
	}
	return nil
}
