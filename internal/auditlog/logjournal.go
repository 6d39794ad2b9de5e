package auditlog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// maxPending bounds the journaled entries not yet in the store. Past it,
// commits wait for the indexer, so a store that falls behind (or fails)
// slows or stops the log instead of growing memory without limit.
const maxPending = 32 << 10

// maxKeptBatch bounds the writer's kept array of a batch's entries
// (Log.batch): 64 KiB. Larger batches are built in arrays of their own.
const maxKeptBatch = 512

// takeAppends is take for the journal: it claims queued Append calls up to
// the first Do call, which must wait for a store transaction of its own.
func (l *Log) takeAppends(claimed []result, max int) []result { return l.claim(claimed, max, true) }

// commitJournal commits a batch of Append calls through the journal: number
// and hash the entries, write them as one sealed frame and fdatasync it,
// then acknowledge and hand the batch to the indexer, which signs the
// checkpoint covering it when it copies it into the store. It returns
// claimed with the operations that joined the batch.
func (l *Log) commitJournal(claimed []result) []result {
	start := l.gc.clk.Now()
	tree := &l.next
	entries, err := l.buildJournal(&claimed, tree)
	if err == nil {
		err = l.idx.waitPending(maxPending)
	}
	if err == nil {
		if l.sealer == nil {
			l.sealer = newSealer(l.opts.JournalKey)
		}
		l.frameBuf = l.sealer.appendFrame(l.frameBuf[:0], entries)
		err = l.jr.write(l.frameBuf, tree.n)
		if cap(l.frameBuf) > 1<<20 {
			l.frameBuf = nil // do not keep a huge batch's buffer
		}
	}
	if err == nil {
		l.tree.copyFrom(tree)
		l.size.Store(tree.n)
		l.idx.push(entries, l.bufs, tree)
		if l.opts.OnCommit != nil {
			l.opts.OnCommit(tree.n)
		}
	}
	// The arrays are the writer's again (push copied the entries and the
	// buffers), emptied so that they hold no entry's bytes (a failed
	// batch's buffers go to the collector); a large batch's are let go.
	clear(entries)
	clear(l.bufs)
	if cap(entries) <= maxKeptBatch {
		l.batch, l.bufs = entries[:0], l.bufs[:0]
	} else {
		l.batch, l.bufs = nil, nil
	}
	l.settled(err)
	l.batched(len(claimed), l.gc.clk.Now().Sub(start))
	l.reportBatch(claimed, start, err != nil) // before the callers return, as OnCommit
	for _, r := range claimed {
		r.o.finish(err)
	}
	return claimed
}

// buildJournal numbers and hashes the claimed operations' events into
// tree, a copy of the log's, letting Append calls queued meanwhile join (as
// build does).
func (l *Log) buildJournal(claimed *[]result, tree *frontier) ([]store.LogEntry, error) {
	tree.copyFrom(&l.tree)
	// Built in the writer's array (l.batch), kept from one batch to the
	// next: the indexer copies the entries in (push). Made with room for
	// the claimed operations' entries: grown one append at a time, a batch
	// of 8 was 4 slices and its entries copied 3 times.
	n := 0
	for _, r := range *claimed {
		n += len(r.o.evs)
	}
	entries := l.batch[:0]
	if cap(entries) < n {
		entries = make([]store.LogEntry, 0, n)
	}
	bufs := l.bufs[:0]
	defer func() { l.bufs = bufs }()
	for done := 0; ; {
		for ; done < len(*claimed); done++ {
			evs := (*claimed)[done].o.evs
			for i := range evs {
				e := evs[i].entry(tree.n)
				if err := tree.add(tlog.Hash(e.LeafHash)); err != nil {
					return nil, fmt.Errorf("auditlog: hashing entry %d: %w", e.Seq, err)
				}
				entries = append(entries, e)
				// The buffer is the batch's now (push hands it to the
				// indexer, which reuses it once stored: entryBufs): the
				// operation, which its caller may reuse once told, no
				// longer points to it.
				if p := entryBufOf(evs[i].buf); p != nil {
					bufs = append(bufs, p)
					evs[i].buf = nil
				}
			}
		}
		if len(*claimed) >= l.opts.MaxBatch {
			break
		}
		if *claimed = l.takeAppends(*claimed, l.opts.MaxBatch); done == len(*claimed) {
			runtime.Gosched()
			*claimed = l.takeAppends(*claimed, l.opts.MaxBatch)
		}
		if done == len(*claimed) {
			break
		}
	}
	return entries, nil
}

// sign signs a checkpoint for tree.
func (l *Log) sign(tree *frontier) (*store.Checkpoint, error) {
	root, err := tree.root()
	if err != nil {
		return nil, fmt.Errorf("auditlog: tree root: %w", err)
	}
	msg, err := l.signNote(tree.n, root)
	if err != nil {
		return nil, fmt.Errorf("auditlog: signing checkpoint: %w", err)
	}
	return &store.Checkpoint{Size: tree.n, Root: root[:], Note: msg, Frontier: tree.marshal(), CreatedAt: time.Now().UTC()}, nil
}

// Sync waits until the store holds every entry committed before the call,
// so that reads of the store see them. Without a journal it returns at once.
// It returns the indexer's error if the store is failing.
func (l *Log) Sync(ctx context.Context) error {
	if l.idx == nil {
		return nil
	}
	return l.idx.wait(ctx, l.size.Load())
}

// openJournal locks the journal directory, replays into the store the
// entries a crash left only in the journal, removes the replayed segments
// and starts a new one.
func (l *Log) openJournal(ctx context.Context) error {
	lock, err := lockJournal(l.opts.JournalDir)
	if err != nil {
		return err
	}
	next, err := l.replayJournal(ctx)
	if err == nil {
		size := l.opts.SegmentSize
		if size <= 0 {
			size = DefaultSegmentSize
		}
		l.jr, err = openJournal(l.opts.JournalDir, size, lock, next)
	}
	if err != nil {
		unlockFile(lock)
		lock.Close()
		return err
	}
	return nil
}

// replayJournal copies the journal's entries beyond the store into it, in
// transactions of up to maxIndexBatch entries, each ending with a
// checkpoint signed for it, then removes every segment, and returns the
// number for the next one.
func (l *Log) replayJournal(ctx context.Context) (next int64, err error) {
	tree := l.tree
	var batch []store.LogEntry
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		cp, err := l.sign(&tree)
		if err == nil {
			err = indexBatch(ctx, l.st, l.opts.Rows, batch, *cp)
		}
		if err != nil {
			return fmt.Errorf("auditlog: replaying the journal into the store: %w", err)
		}
		l.tree = tree
		l.size.Store(cp.Size)
		l.latest.Store(cp)
		batch = batch[:0]
		return nil
	}
	segments, err := replay(l.opts.JournalDir, l.opts.journalKeys(), &tree, func(es []store.LogEntry) error {
		batch = append(batch, es...)
		if len(batch) >= maxIndexBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return 0, err
	}
	for _, n := range segments {
		if err := removeSegment(l.opts.JournalDir, n); err != nil {
			return 0, err
		}
		next = n + 1
	}
	return next, nil
}

// ReplayJournal copies into st the entries that an unclean stop left only
// in the journal directory dir, as Open would: each frame checked with keys,
// each batch covered by a checkpoint signed by signer for the log named
// origin, with the rows they imply written by rows (Options.Rows; nil for
// none). It returns ErrJournalInUse if a running Log holds the journal,
// and the number of entries copied.
func ReplayJournal(ctx context.Context, st store.Store, signer note.Signer, dir, origin string, keys JournalKeys, rows func(context.Context, store.Tx, []store.LogEntry) error) (int64, error) {
	lock, err := lockJournal(dir)
	if err != nil {
		return 0, err
	}
	defer func() {
		unlockFile(lock)
		lock.Close()
	}()
	l := &Log{st: st, signer: signer, opts: Options{Origin: origin, JournalDir: dir, JournalKey: keys.Seal, LegacyJournalKey: keys.Legacy, LegacyJournalTail: keys.LegacyTail, Rows: rows}}
	if err := l.resume(ctx); err != nil {
		return 0, err
	}
	before := l.size.Load()
	if _, err := l.replayJournal(ctx); err != nil {
		return 0, err
	}
	return l.size.Load() - before, nil
}

// ReadJournal returns the entries in the journal directory dir that follow
// the log of checkpoint cp (its size and stored frontier), each frame
// checked with keys as Open checks it, without locking, writing or removing
// anything: for verification that must leave the data directory as it
// found it. A missing directory holds nothing.
func ReadJournal(dir string, keys JournalKeys, cp store.Checkpoint) ([]store.LogEntry, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	tree, err := parseFrontier(cp.Size, cp.Frontier)
	if err != nil {
		return nil, fmt.Errorf("auditlog: the newest checkpoint's frontier: %w", err)
	}
	var out []store.LogEntry
	_, err = replay(dir, keys, &tree, func(es []store.LogEntry) error {
		out = append(out, es...)
		return nil
	})
	return out, err
}
