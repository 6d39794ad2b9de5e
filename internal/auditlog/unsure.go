package auditlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// A batch of a shared log whose commit's outcome the store could not learn
// (store.ErrCommitUnknown: the COMMIT's answer was lost and the database did
// not answer within pgstore's OutcomeTimeout) may be in the log or not. Its
// callers are told it failed: a gateway refused their calls (withheld an
// answer that was ready). If it did commit, the log would hold their
// records as calls made, and a caller that tries again (a session's
// results) would have them in it twice.
//
// So the writer keeps such a batch (unsureBatch) and learns its outcome in
// the next batch, under the writers' lock, from the log itself: its
// checkpoint is in the log or it is not (see learn). If it is, that batch
// appends a log.refused entry naming the entries of the calls that were
// refused, so the log never shows a call as made without saying it was
// refused. AppendLazy calls (records nobody's call is held by) are not
// refused: they wait for that batch, and get nil if the unsure batch
// committed (once that batch commits, which makes it durable too) or have
// their events appended in that batch if it did not, so that they are in
// the log once. A batch that ends unsure itself carries the one before it
// (prev): its log.refused entry is in the log only if it committed.

// RefusedType is the type of the entry that names entries committed in a
// batch whose callers were told it failed (the outcome of its commit was
// unknown): their calls were refused. Its data is {"entries": [[from,
// to], …], "reason": …}, ranges of sequence numbers, to excluded.
const RefusedType = "log.refused"

// unsureTries is how many batches after an unsure one may fail (or end
// unsure too) before the AppendLazy calls it holds are told it failed (the
// database is still out of reach; their callers keep their records and try
// again, which may write them twice).
const unsureTries = 3

// unsureRetry is the pause before a batch is started only to learn an
// unsure batch's outcome for the AppendLazy calls it holds, after one that
// could not.
const unsureRetry = time.Second

type unsureBatch struct {
	cp   store.Checkpoint // the checkpoint it stored, if it committed
	tree frontier         // the tree at cp
	err  error            // what its callers were told
	// refused are the ranges of its entries whose callers were told it
	// failed; lazy its AppendLazy calls, held.
	refused [][2]int64
	lazy    []*op
	prev    *unsureBatch
	tries   int // the batches since, all failed or unsure themselves
	// found is set on the newest by learn: the one it found committed,
	// if any, whose lazy calls finish when the learning batch commits.
	found *unsureBatch
}

// learn finds, in a batch of a shared log under the writers' lock (head is
// readHead's: the log's newest checkpoint if it is not the one this Log
// last adopted), which of the unsure batches committed, newest first: the
// first that did recorded the outcome of those before it. Their lazy calls
// are appended again in this batch if their batch did not commit, and the
// refused calls' entries of the one that did are named in a log.refused
// entry. Both go ahead of the batch's own operations.
func (l *Log) learn(ctx context.Context, head *store.Checkpoint, claimed *[]result) error {
	h := l.latest.Load()
	if head != nil {
		h = head
	}
	var (
		found *unsureBatch
		ahead []result
	)
	for u := l.unsure; u != nil; u = u.prev {
		in, err := l.holds(ctx, u.cp, h)
		if err != nil {
			return fmt.Errorf("auditlog: learning whether the batch whose checkpoint covers %d entries committed: %w", u.cp.Size, err)
		}
		if in {
			found = u
			break
		}
	}
	if found != nil && len(found.refused) > 0 {
		o, err := newOp(context.Background(), []Event{{Type: RefusedType, Time: time.Now(), Actor: "airlock", Data: map[string]any{
			"entries": found.refused,
			"reason":  "the outcome of their batch's commit was unknown: its callers were told it failed and their calls were refused",
		}}})
		if err != nil {
			return err
		}
		o.internal, o.lazy, o.done = true, true, make(chan struct{}, 1)
		o.state.Store(opClaimed)
		ahead = append(ahead, result{o: o})
	}
	// Only once nothing can fail: a batch that fails before leaves the
	// held calls where they are.
	for u := l.unsure; u != found; u = u.prev {
		for _, o := range u.lazy {
			ahead = append(ahead, result{o: o})
		}
		u.lazy = nil // this batch's now
	}
	l.unsure.found = found
	if len(ahead) > 0 {
		*claimed = append(ahead, *claimed...)
	}
	return nil
}

// holds reports whether checkpoint cp is in the log whose newest
// checkpoint, read under the writers' lock, is h.
func (l *Log) holds(ctx context.Context, cp store.Checkpoint, h *store.Checkpoint) (bool, error) {
	switch {
	case h.Size < cp.Size:
		return false, nil
	case h.Size == cp.Size:
		return bytes.Equal(h.Note, cp.Note), nil
	}
	cf, ok := l.st.(store.CheckpointFinder)
	if !ok {
		return false, errors.New("the store cannot find a checkpoint by its size")
	}
	c, err := cf.CheckpointOfSize(ctx, cp.Size)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return bytes.Equal(c.Note, cp.Note), nil
}

// settleUnsure updates what the writer knows of unsure batches after a
// batch (claimed) ended with err; tried is the batch itself if its outcome
// is unknown, holding its lazy calls already.
func (l *Log) settleUnsure(claimed []result, tried *unsureBatch, err error) {
	u := l.unsure
	var found *unsureBatch
	if u != nil {
		found, u.found = u.found, nil
	}
	switch {
	case err == nil:
		// Committed and durable, and with it every batch before it.
		if found != nil {
			finishLazy(found, true)
		}
		l.unsure = nil
		return
	case tried != nil:
		for _, r := range claimed {
			if r.err == nil && r.n > 0 && !r.o.lazy {
				if k := len(tried.refused); k > 0 && tried.refused[k-1][1] == r.seq {
					tried.refused[k-1][1] += int64(r.n)
				} else {
					tried.refused = append(tried.refused, [2]int64{r.seq, r.seq + int64(r.n)})
				}
			}
		}
		tried.prev = u
		if u != nil {
			tried.tries = u.tries + 1
		}
		l.unsure = tried
	case u == nil:
		return
	default:
		u.tries++
	}
	if top := l.unsure; top.tries >= unsureTries {
		for v := top; v != nil; v = v.prev {
			finishLazy(v, false)
		}
	}
	if held := l.heldLazy(); held {
		// Learned by the next batch; start one if nobody else does.
		pause := time.Duration(0)
		if tried == nil {
			pause = unsureRetry
		}
		time.AfterFunc(pause, func() {
			_ = l.enqueue(context.Background(), &op{fn: func(context.Context, store.Tx) ([]Event, error) { return nil, nil }, internal: true, lazy: true})
		})
	}
}

// heldLazy reports whether an unsure batch holds AppendLazy calls.
func (l *Log) heldLazy() bool {
	for u := l.unsure; u != nil; u = u.prev {
		if len(u.lazy) > 0 {
			return true
		}
	}
	return false
}

// finishLazy ends the AppendLazy calls u holds: with nil if u is
// committed and durable, else with the error u's other callers were told.
func finishLazy(u *unsureBatch, committed bool) {
	for _, o := range u.lazy {
		if committed {
			o.finish(nil)
		} else {
			o.finish(u.err)
		}
	}
	u.lazy = nil
}

// dropUnsure tells the AppendLazy calls still held, as the writer exits,
// that their batch failed.
func (l *Log) dropUnsure() {
	for u := l.unsure; u != nil; u = u.prev {
		finishLazy(u, false)
	}
	l.unsure = nil
}
