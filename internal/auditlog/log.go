package auditlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/safefile"
	"github.com/airlock-dev/airlock/internal/store"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// ErrClosed is returned by Append and Do after Close.
var ErrClosed = errors.New("auditlog: log is closed")

// DefaultMaxBatch is the default Options.MaxBatch.
const DefaultMaxBatch = 512

// DefaultCloseCopyTimeout is the default Options.CloseCopyTimeout. A store
// that answers copies a second's worth of a busy log's entries in well
// under a second; one that does not held a stop for as long as it did: a
// SQLite file whose lock another process holds made each of Close's three
// tries wait out the busy timeout (10 s). A try already waiting when the
// deadline passes still runs to its end: the driver does not end a busy
// wait early.
const DefaultCloseCopyTimeout = 5 * time.Second

// DefaultBatchTimeout is the default Options.BatchTimeout on a store whose
// writes can wait on other sessions. A healthy batch takes milliseconds;
// [Log.Err] reports the log stalled once one has taken StallAfter, and
// twice that leaves a loaded database room (as pgstore's CommitTimeout
// does for the commit), and ends what is stuck rather than slow before
// the callers held by the batch time out on their own.
const DefaultBatchTimeout = 2 * StallAfter

// Options configures a Log.
type Options struct {
	// Origin is the first line of every checkpoint, naming the log, e.g.
	// "airlock/<log id>". Defaults to the signer's name.
	Origin string
	// MaxBatch is the most operations (Append or Do calls) committed in one
	// transaction. Defaults to DefaultMaxBatch.
	MaxBatch int
	// OnCommit, if set, is called by the writer after each durable batch
	// that appended entries, with the new log size, before the batch's
	// callers return. It must not block or call Append or Do.
	OnCommit func(size int64)
	// OnBatch, if set, is called by the writer after each batch it
	// finished, durable or failed, before the batch's callers return, with
	// what it held and how long its callers waited (see BatchStats): the
	// measurements an operator needs to see what the log's durability costs
	// the gateways. Like OnCommit it must not block or call Append or Do.
	OnBatch func(BatchStats)
	// WitnessPath, if set, is a file that receives the newest signed
	// checkpoint note after each batch (written to a temporary file, synced
	// and renamed into place). It is a copy kept outside the database so
	// that Verify can detect the newest entries being deleted together with
	// their checkpoints. It is written after the callers are acknowledged,
	// and coalesced: under load only the newest checkpoint is written.
	WitnessPath string
	// OnCheckpoint, if set, is called with every new checkpoint once it is
	// stored (with a journal, as the indexer stores each batch; otherwise
	// after each commit), and once at Open with the newest stored one if the
	// log is not empty. It is how checkpoints reach external witnesses
	// (package witness). It runs on the log's writer or indexer goroutine,
	// so it must not block or call Append or Do; it may keep cp.
	OnCheckpoint func(cp store.Checkpoint)
	// Rows, if set, writes in tx the rows that entries imply (package
	// review's StoreRows: a session's row from its session.started
	// entry). It is called in every transaction that stores entries,
	// whatever the path (a batch, with a journal the copy into the store
	// and the replay after a crash), with the entries that transaction
	// stores, before it commits: the rows and their entries commit
	// together or not at all. Its error fails the transaction. It runs on
	// the writer or indexer goroutine and must not call Append or Do, and
	// keeps nothing of entries once it returns (their memory is reused:
	// entryBufs).
	Rows func(ctx context.Context, tx store.Tx, entries []store.LogEntry) error
	// JournalDir, if set, turns on the journal (see "Journal" in the
	// package documentation): batches of Append calls are made durable by
	// one write and fdatasync to a segment file in this directory, and
	// copied into the store in the background. Without it every batch is
	// a store transaction.
	JournalDir string
	// SegmentSize is the size of a journal segment file. Defaults to
	// DefaultSegmentSize.
	SegmentSize int64
	// JournalKey seals every journal frame (HMAC-SHA256), so that replay
	// after a crash takes only frames this airlock wrote. Required with
	// JournalDir; at least 32 bytes, and the same at every start. It should
	// be as hard to obtain as the signer: the next start signs what replay
	// takes (a server derives it from the signing key).
	JournalKey []byte
	// LegacyJournalKey checks frames of the journal's first format, sealed
	// by earlier releases under a key derived from the credential key, and
	// LegacyJournalTail allows replaying such frames the store does not
	// hold yet (see [JournalKeys]).
	LegacyJournalKey  []byte
	LegacyJournalTail bool
	// CommitDelay bounds how long, with a journal, the writer holds a batch
	// open for more appends when recent batches show concurrent callers
	// (see "Group commit delay" in the package documentation). Zero means
	// DefaultCommitDelay; negative turns the delay off.
	CommitDelay time.Duration
	// CloseCopyTimeout bounds, with a journal, how long Close goes on
	// copying journaled entries into the store. They are durable in the
	// journal already; what is not copied by then stays there, and the
	// next Open copies it. Zero means DefaultCloseCopyTimeout.
	CloseCopyTimeout time.Duration

	// BatchTimeout bounds a store transaction's batch up to its commit (the
	// wait in Begin for the store's writers, the Do functions', the rows'
	// and the entries' statements) on a store whose writes can wait on what
	// other sessions of the database hold (store.LockWaiter: pgstore, where
	// a table someone locked or a writer of another process that stopped
	// answering held a batch, and every call queued behind it, for as long
	// as it lasted). Past it the batch is abandoned, nothing of it
	// committed, and its callers get an error; the next batch starts
	// afresh (with Shared, from the log's head as stored). The commit
	// itself is bounded by the store (pgstore's CommitTimeout). Zero means
	// DefaultBatchTimeout on such a store and no bound on others (SQLite's
	// waits end at its busy timeout); negative means no bound.
	BatchTimeout time.Duration

	// Shared says that other Logs, in other processes (replicas), append
	// to the same store: see "Several replicas" in the package
	// documentation. Every batch then starts by reading the log's newest
	// checkpoint inside its transaction and continues from it. It needs a
	// store whose Begin serializes the writers of every process and whose
	// transactions implement store.SharedLogTx (pgstore), and Verifier;
	// it cannot be combined with JournalDir.
	Shared bool
	// Verifier, if set, checks the signature of every checkpoint the log
	// continues from (at Open, and with Shared, checkpoints other replicas
	// signed). Required with Shared.
	Verifier note.Verifier

	// clock, if set, replaces the real clock for the commit delay, so that
	// tests move time instead of sleeping.
	clock clock.Clock
	// holdIndex keeps journaled entries out of the store, so that tests
	// can leave a journal as a crash would.
	holdIndex bool
	// beforeCommit, if set, runs just before each batch's store commit, so
	// that tests can break the connection or stop the process there.
	beforeCommit func()
}

// BatchStats describes one batch the writer finished.
type BatchStats struct {
	// Ops is how many Append and Do calls the batch held.
	Ops int
	// Write is how long the batch took from when the writer took it to
	// its outcome: with a journal, its frame's write and fdatasync.
	Write time.Duration
	// Waits holds, for each call of the batch but AppendLazy's, how long
	// it took from its enqueueing to its outcome: for Append, what its
	// caller waited before it could forward; for AppendAsync, the part of
	// a read's call that its record's durability bounds (the call travels
	// meanwhile). It is only valid during the call to OnBatch.
	Waits []time.Duration
	// Failed reports that the batch failed as a whole.
	Failed bool
}

// Log is the append-only audit log. Its methods are safe for concurrent use.
type Log struct {
	st     store.Store
	signer note.Signer
	opts   Options

	mu     sync.Mutex
	queue  []*op
	closed bool
	wake   chan struct{}
	done   chan struct{} // closed when the writer has exited

	// health: the error of the newest batch that failed as a whole, nil
	// once a later one succeeds, and when the batch in flight started.
	hmu       sync.Mutex
	lastErr   error
	busySince time.Time

	size   atomic.Int64
	latest atomic.Pointer[store.Checkpoint]

	tree frontier // owned by the writer goroutine
	// next is the tree a journal batch is built in (buildJournal), the
	// writer's too: a frontier is 2 KiB, and copying it whole into the
	// batch's, returning it and copying it back cost a one-entry batch
	// about 2,000 instructions (copyFrom copies the hashes it holds).
	next frontier
	// live is the writer's knowledge of grants whose calls it recorded
	// on a shared log (AppendLive): grant id → the log's size at the
	// batch start when its record was read under the writers' lock and
	// showed it active. foreignAt is the size of the newest head another
	// replica appended (its entries may end grants). See checkLive.
	live      map[string]int64
	foreignAt int64
	// unsure is the newest batch of a shared log whose commit's outcome
	// the store could not learn, until a later batch learned it and
	// committed; tried is set by apply to a batch that just ended so.
	// Both are the writer's.
	unsure, tried *unsureBatch
	// forked, once set, is why this replica stopped writing a shared log:
	// a newer checkpoint did not extend the log it had seen (see follower).
	forked atomic.Pointer[error]

	witness *witness

	// With Options.JournalDir: the journal (owned by the writer), the
	// indexer copying journaled batches into the store, a buffer for
	// encoding frames and what seals them.
	jr       *journal
	idx      *indexer
	frameBuf []byte
	sealer   *sealer
	waits    []time.Duration // BatchStats.Waits, reused
	// claimed is a journal batch's operations, the slice reused from one
	// batch to the next (at most MaxBatch).
	claimed []result
	// batch is the array a journal batch's entries are built in, reused
	// from one batch to the next (buildJournal), empty between them.
	batch []store.LogEntry
	// bufs are the batch's entries' buffers that may be reused once the
	// store holds them (entryBufs, bigEntryBufs: entryBufOf), reused as
	// batch is.
	bufs []any

	// The group commit delay: the writer's state, and (under mu) when the
	// newest append arrived and the average gap between appends.
	gc          gatherState
	lastArrival time.Time
	gapAvg      time.Duration
	// gatherUntil (under mu), while not zero, is when the writer, waiting
	// in gather, looks at the queue again: an AppendAsync that cannot
	// bring its deadline before then does not wake it (wakeFor).
	// gatherReads is set while that deadline may be one that only a
	// batch of reads none of whose callers waits gets (readDeadline): a
	// caller's Wait must then wake the writer (waiting).
	gatherUntil time.Time
	gatherReads atomic.Bool
	// readLag is how long AppendAsync callers work before they call Wait
	// (nanoseconds, exponentially weighted; updated without a lock, so an
	// estimate).
	readLag atomic.Int64
}

// op is one queued Append or Do call.
type op struct {
	ctx   context.Context
	state atomic.Int32 // opQueued, opClaimed or opCancelled
	evs   []encoded    // Append: the encoded events
	// liveGrant, set by AppendLive and AppendAsyncLive, names the grant
	// that must still be active (on a shared log) for evs to be logged.
	liveGrant string
	fn        func(ctx context.Context, tx store.Tx) ([]Event, error)
	// done receives one token once result is set, once (finish): a
	// channel of struct{} is one allocation, a channel of error two. A
	// token rather than a close, so that a Pending reused after a
	// successful Wait (Reset) keeps its channel: one allocation an append
	// fewer. Only wait receives it, and sets got.
	done   chan struct{}
	got    bool // wait has received done's token (the waiting caller's)
	result error
	at     time.Time // when it was queued (with a commit delay)
	// async marks an AppendAsync, whose caller works until it calls Wait,
	// which sets waited.
	async  bool
	waited atomic.Bool
	// lazy marks an AppendLazy, which waits for a batch others start.
	lazy bool
	// internal marks an append of the log's own, which nobody waits for
	// (see unsureBatch).
	internal bool
	// one is evs's room for the usual single event, in the op rather
	// than allocated apart.
	one [1]encoded
}

// newOp is an operation appending events, encoded; nil if there are none.
func newOp(ctx context.Context, events []Event) (*op, error) {
	if len(events) == 0 {
		return nil, nil
	}
	o := new(op)
	if err := o.init(ctx, events); err != nil {
		return nil, err
	}
	return o, nil
}

// init makes o, a zero op, one appending events (at least one), encoded.
func (o *op) init(ctx context.Context, events []Event) error {
	o.ctx = ctx
	if len(events) == 1 {
		e, err := encodeEvent(events[0], time.Now())
		if err != nil {
			return err
		}
		o.one[0] = e
		o.evs = o.one[:]
		return nil
	}
	evs, err := encodeEvents(events)
	if err != nil {
		return err
	}
	o.evs = evs
	return nil
}

const (
	opQueued int32 = iota
	opClaimed
	opCancelled
)

// Open opens the log stored in st and starts its writer. It resumes from the
// newest checkpoint, refusing to start if that checkpoint's frontier does not
// hash to its root, if its note does not state its size and root, if the
// note is not signed by the log's key for its origin (by Options.Verifier,
// or else byte for byte the note signer makes for it), or if the
// log does not hold exactly as many entries as the checkpoint covers (entries
// past it were not written by a Log; fewer means entries were deleted). When
// Options.WitnessPath names an existing witness file, Open also refuses to
// start if the witness records a bigger tree than the newest checkpoint, or
// the same size with another root. The signer signs new checkpoints.
func Open(ctx context.Context, st store.Store, signer note.Signer, opts Options) (*Log, error) {
	if signer == nil {
		return nil, errors.New("auditlog: no signer")
	}
	if opts.Origin == "" {
		opts.Origin = signer.Name()
	}
	if strings.ContainsAny(opts.Origin, "\n") {
		return nil, fmt.Errorf("auditlog: origin %q contains a newline", opts.Origin)
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.CloseCopyTimeout <= 0 {
		opts.CloseCopyTimeout = DefaultCloseCopyTimeout
	}
	if _, waits := st.(store.LockWaiter); opts.BatchTimeout == 0 && waits {
		opts.BatchTimeout = DefaultBatchTimeout
	}
	if opts.Shared && opts.JournalDir != "" {
		return nil, errors.New("auditlog: a log shared by several replicas has no journal: a batch is durable when the shared store commits it")
	}
	if opts.Shared && opts.Verifier == nil {
		return nil, errors.New("auditlog: a log shared by several replicas needs the verifier key to check the checkpoints other replicas sign")
	}
	if opts.JournalDir != "" && len(opts.JournalKey) < 32 {
		return nil, errors.New("auditlog: a journal needs a key of at least 32 bytes")
	}
	l := &Log{
		st:     st,
		signer: signer,
		opts:   opts,
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
		gc:     gatherState{delay: opts.CommitDelay, clk: opts.clock, batch: 1},
	}
	if l.gc.delay == 0 {
		l.gc.delay = DefaultCommitDelay
	}
	if opts.JournalDir == "" {
		l.gc.delay = -1 // a store transaction gathers callers while it runs
	}
	if l.gc.clk == nil {
		l.gc.clk = clock.Real
	}
	if err := l.resume(ctx); err != nil {
		return nil, err
	}
	if opts.JournalDir != "" {
		if err := l.openJournal(ctx); err != nil {
			return nil, err
		}
	}
	if opts.WitnessPath != "" {
		if err := l.checkWitnessFile(opts.WitnessPath, l.Latest()); err != nil {
			return nil, err
		}
		l.witness = startWitness(opts.WitnessPath)
		if opts.Shared {
			fl := &follower{l: l, f: l.tree, path: opts.WitnessPath + frontierSuffix}
			if f, ok := loadFrontier(fl.path, opts.WitnessPath); ok {
				// Where this replica left off: after a restart, a head
				// that does not extend it is caught as before.
				fl.f = f
			}
			l.witness.check, l.witness.saved = fl.check, fl.save
		}
	}
	if cp := l.latest.Load(); cp.Size > 0 {
		l.stored(cp) // the entries a replay just stored
	}
	if l.jr != nil {
		l.idx = startIndexer(l)
	}
	go l.writer()
	return l, nil
}

// resume loads the newest checkpoint and checks that the log matches it.
func (l *Log) resume(ctx context.Context) error {
	n, err := l.st.LogSize(ctx)
	if err != nil {
		return fmt.Errorf("auditlog: reading log size: %w", err)
	}
	cp, err := l.st.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		if n != 0 {
			return fmt.Errorf("auditlog: refusing to start: the log holds %d entries but no checkpoint; they were not written by airlock (tampered or corrupted log, run `airlock audit verify`)", n)
		}
		l.latest.Store(&store.Checkpoint{})
		return nil
	}
	if err != nil {
		return fmt.Errorf("auditlog: reading newest checkpoint: %w", err)
	}
	// The head must name this log's origin: the key may sign another
	// log (a staging copy), and the log continues from its head, so a
	// store holding the other log's would carry on that log under this
	// one's name.
	f, err := checkHead(cp, l.opts.Verifier, l.opts.Origin)
	if err == nil && l.opts.Verifier == nil {
		// Without a verifier key the signature must still be checked:
		// the log signs its next checkpoints over this tree, so a head
		// anyone who can write the store could make up would turn the
		// key into theirs.
		err = l.checkOwnHead(cp, f)
	}
	if err != nil {
		return fmt.Errorf("auditlog: refusing to start: %w", err)
	}
	if l.opts.Shared && n < cp.Size {
		// Another replica committed between the two reads: its entries
		// are in by now (they commit with their checkpoint), unless some
		// were deleted.
		if n, err = l.st.LogSize(ctx); err != nil {
			return fmt.Errorf("auditlog: reading log size: %w", err)
		}
		n = min(n, cp.Size)
	}
	switch {
	case n > cp.Size:
		return fmt.Errorf("auditlog: refusing to start: the log holds %d entries but the newest checkpoint %d covers only %d; the entries past it were not written by airlock (tampered or corrupted log, run `airlock audit verify`)", n, cp.ID, cp.Size)
	case n < cp.Size:
		return fmt.Errorf("auditlog: refusing to start: the newest checkpoint %d covers %d entries but the log holds only %d; entries were deleted (run `airlock audit verify`)", cp.ID, cp.Size, n)
	}
	l.tree = f
	l.size.Store(cp.Size)
	l.latest.Store(&cp)
	return nil
}

// checkHead checks a stored checkpoint before the log continues from it:
// its frontier must hash to its root, its note must state its size and root,
// and, with v set, carry a valid signature by v (and, with origin set, name
// that origin). It returns the checkpoint's tree.
func checkHead(cp store.Checkpoint, v note.Verifier, origin string) (frontier, error) {
	f, err := parseFrontier(cp.Size, cp.Frontier)
	if err != nil {
		return f, fmt.Errorf("checkpoint %d (size %d): %v", cp.ID, cp.Size, err)
	}
	root, err := f.root()
	if err != nil {
		return f, fmt.Errorf("checkpoint %d (size %d): %v", cp.ID, cp.Size, err)
	}
	if !bytes.Equal(root[:], cp.Root) {
		return f, fmt.Errorf("the frontier stored with checkpoint %d (size %d) hashes to %s, not to the checkpoint's root %s (tampered or corrupted checkpoint, run `airlock audit verify`)", cp.ID, cp.Size, root, b64(cp.Root))
	}
	var c checkpoint
	if v != nil {
		if c, err = openCheckpoint(cp.Note, v); err != nil {
			return f, fmt.Errorf("checkpoint %d (size %d) is not validly signed by %s: %v (tampered checkpoint, or replicas with different signing keys)", cp.ID, cp.Size, v.Name(), err)
		}
	} else {
		text, err := unverifiedText(cp.Note)
		if err != nil {
			return f, fmt.Errorf("checkpoint %d: note: %v", cp.ID, err)
		}
		c, err = parseCheckpoint(text)
		if err != nil {
			return f, fmt.Errorf("checkpoint %d: note: %v", cp.ID, err)
		}
	}
	if c.size != cp.Size || c.root != root {
		return f, fmt.Errorf("the signed note of checkpoint %d does not state its size %d and root %s (tampered or corrupted checkpoint, run `airlock audit verify`)", cp.ID, cp.Size, root)
	}
	if origin != "" && c.origin != origin {
		return f, fmt.Errorf("checkpoint %d names the log %q, not %q (the store holds another log signed by the same key, or replicas configured with different log origins)", cp.ID, c.origin, origin)
	}
	return f, nil
}

// signNote returns the checkpoint note this Log signs for a tree of size
// entries with root.
func (l *Log) signNote(size int64, root tlog.Hash) ([]byte, error) {
	return note.Sign(&note.Note{Text: string(formatCheckpoint(checkpoint{origin: l.opts.Origin, size: size, root: root}))}, l.signer)
}

// checkOwnHead checks that checkpoint cp, whose tree f checkHead has
// checked against its note, was signed by this Log's own key for its
// origin. Ed25519 signatures are deterministic, so such a checkpoint is
// byte for byte the note the signer makes again for its size and root;
// that needs no verifier key.
func (l *Log) checkOwnHead(cp store.Checkpoint, f frontier) error {
	root, err := f.root()
	if err != nil {
		return err
	}
	want, err := l.signNote(cp.Size, root)
	if err != nil {
		return fmt.Errorf("auditlog: signing checkpoint: %w", err)
	}
	if bytes.Equal(want, cp.Note) {
		return nil
	}
	if text, err := unverifiedText(cp.Note); err == nil {
		if c, err := parseCheckpoint(text); err == nil && c.origin != l.opts.Origin {
			return fmt.Errorf("checkpoint %d names the log %q, not %q", cp.ID, c.origin, l.opts.Origin)
		}
	}
	return fmt.Errorf("checkpoint %d (size %d) is not signed by this log's key %s, or carries other lines: the log does not continue from it (tampered checkpoint, run `airlock audit verify`)", cp.ID, cp.Size, l.signer.Name())
}

// WritesRows reports whether the log writes the rows its entries imply
// (Options.Rows is set).
func (l *Log) WritesRows() bool { return l.opts.Rows != nil }

// Size returns the number of entries in the log.
func (l *Log) Size() int64 { return l.size.Load() }

// Latest returns the newest signed checkpoint (the zero Checkpoint while the
// log is empty). With a journal, checkpoints are signed as entries reach the
// store, so it may not cover the newest entries; call Sync first for one
// that covers everything committed so far. The store assigns checkpoint IDs on insert and does not
// report them, so ID is zero for a checkpoint written since Open.
func (l *Log) Latest() store.Checkpoint { return cloneCheckpoint(*l.latest.Load()) }

func cloneCheckpoint(c store.Checkpoint) store.Checkpoint {
	c.Root = bytes.Clone(c.Root)
	c.Note = bytes.Clone(c.Note)
	c.Frontier = bytes.Clone(c.Frontier)
	return c
}

// Append records events. It returns only after they are durably committed,
// in one transaction possibly shared with other callers; on error none of
// them is in the log. Events are numbered in the order given.
func (l *Log) Append(ctx context.Context, events ...Event) error {
	o, err := newOp(ctx, events)
	if err != nil || o == nil {
		return err
	}
	return l.run(ctx, o)
}

// ErrGrantEnded is the error of an AppendLive (or AppendAsyncLive) whose
// grant is no longer active in the shared store when its batch holds the
// writers' lock: another replica ended it, and this one has not yet applied
// the notice.
var ErrGrantEnded = errors.New("auditlog: the grant has ended")

// AppendLive is Append for the record of something done under grant
// grantID (a gateway session's start, a call): on a shared log (Options.
// Shared) the events are logged only if the grant is still active in the
// store when its batch holds the writers' lock, and otherwise the caller
// gets ErrGrantEnded. A replica learns of another's revoke through a
// notice that takes a few milliseconds (or, over a silently cut
// connection, seconds); the lock orders the revoke's commit and this
// record, so no call is logged, and so served, after its grant's end on
// any replica. Elsewhere it is Append.
func (l *Log) AppendLive(ctx context.Context, grantID string, events ...Event) error {
	o, err := newOp(ctx, events)
	if err != nil || o == nil {
		return err
	}
	o.liveGrant = grantID
	return l.run(ctx, o)
}

// Do runs fn inside the next group-committed transaction, isolated by a
// savepoint, and appends the events fn returns in the same transaction, so a
// state change and its record commit together or not at all.
//
// If fn returns an error (or panics, or its events cannot be encoded), its
// changes are rolled back to the savepoint, nothing is logged for it, the
// error is returned to this caller, and the other callers in the batch are
// unaffected. Otherwise Do returns after the commit, or the commit's error,
// which every caller in the batch gets.
//
// fn's context carries ctx's values but not its cancellation: once fn has
// started, its part of the batch is committed as a unit. If ctx is cancelled
// while the call is still queued, Do returns ctx.Err() and fn never runs. fn
// must use only tx for writes and must not call Append or Do.
func (l *Log) Do(ctx context.Context, fn func(ctx context.Context, tx store.Tx) ([]Event, error)) error {
	if fn == nil {
		return errors.New("auditlog: Do with a nil function")
	}
	return l.run(ctx, &op{ctx: ctx, fn: fn})
}

// Pending is an append that was queued by [Log.AppendAsync] and may not be
// durable yet.
type Pending struct {
	l   *Log
	o   *op   // nil if nothing was queued
	err error // set when the append could not even be queued
	// op is the queued operation, in the Pending rather than allocated
	// apart (and so in the caller's memory with AppendAsyncLiveIn).
	op op
}

// AppendAsync queues events like [Log.Append] but returns at once, so that
// a gateway can forward a read while its record is being written and hold
// the response until [Pending.Wait] says the record is durable ("durable
// before disclosure"). The events are numbered in the order given, in the
// next batch; Wait must be called (once) to learn whether they were stored.
func (l *Log) AppendAsync(ctx context.Context, events ...Event) *Pending {
	return l.AppendAsyncLive(ctx, "", events...)
}

// AppendAsyncLive is AppendAsync with AppendLive's condition on grantID
// (none if it is empty).
func (l *Log) AppendAsyncLive(ctx context.Context, grantID string, events ...Event) *Pending {
	return l.AppendAsyncLiveIn(ctx, grantID, new(Pending), events...)
}

// AppendAsyncLiveIn is AppendAsyncLive with the Pending in the caller's
// memory: p, a zero Pending in something the caller allocates anyway (a
// gateway's record of its call), which it returns, so that the append
// allocates only its encoding and the channel that wakes its caller. p
// must not be used for another append after a Wait that failed: an append
// withdrawn while queued stays on the writer's queue until the writer
// passes it, and a failed batch's operations are read once more after
// their callers are told (settleUnsure). After a Wait that returned nil, p
// may be zeroed, or Reset, and used again: the writer touches no operation after
// telling its caller it is durable (TestPendingReusedAfterWait), which is
// what lets the sessions recorder keep its requests' objects for the next.
func (l *Log) AppendAsyncLiveIn(ctx context.Context, grantID string, p *Pending, events ...Event) *Pending {
	return l.appendIn(ctx, p, events, false, grantID)
}

// appendIn queues events in p's operation: lazy (AppendLazyIn), or else
// an AppendAsync's on grantID's condition.
func (l *Log) appendIn(ctx context.Context, p *Pending, events []Event, lazy bool, grantID string) *Pending {
	if len(events) == 0 {
		return p
	}
	o := &p.op
	if err := o.init(ctx, events); err != nil {
		p.err = err
		return p
	}
	if lazy {
		o.lazy, o.at = true, l.gc.clk.Now()
	} else {
		o.liveGrant, o.async = grantID, true
	}
	if err := l.enqueue(ctx, o); err != nil {
		p.err = err
		return p
	}
	p.l, p.o = l, o
	return p
}

// Wait returns once the events are durably committed (nil), or with the
// error that kept them out of the log; on error none of them is in the log.
// If ctx ends while the events are still queued they are withdrawn and
// ctx.Err() is returned; once the writer has taken them Wait returns the
// batch's outcome whatever ctx does.
func (p *Pending) Wait(ctx context.Context) error {
	if p.err != nil || p.o == nil {
		return p.err
	}
	if !p.o.lazy {
		// A lazy append's caller holds up no call (AppendLazyIn): its
		// wait says nothing of how long reads work before theirs.
		p.l.waiting(p.o)
	}
	return p.o.wait(ctx)
}

// Reset makes p, whose Wait returned nil, a zero Pending for another
// append (AppendAsyncLiveIn), keeping the channel its operation's writer
// wakes it by, emptied by that Wait: the sessions recorder's requests
// then cost the log one allocation fewer each (about 100 bytes). A Pending
// whose Wait failed or was not called keeps nothing (the writer may yet
// wake it).
func (p *Pending) Reset() {
	var done chan struct{}
	if p.o != nil && p.op.got && p.op.result == nil {
		done = p.op.done
	}
	*p = Pending{}
	p.op.done = done
}

// run queues o and waits for its result.
func (l *Log) run(ctx context.Context, o *op) error {
	if err := l.enqueue(ctx, o); err != nil {
		return err
	}
	return o.wait(ctx)
}

// enqueue puts o on the writer's queue and wakes it.
func (l *Log) enqueue(ctx context.Context, o *op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if o.done == nil { // else a Reset Pending's, emptied by its last wait
		o.done = make(chan struct{}, 1)
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	if l.gc.delay > 0 {
		l.arrived(o)
	} else if l.opts.OnBatch != nil {
		o.at = l.gc.clk.Now()
	}
	l.queue = append(l.queue, o)
	wake := l.wakeFor(o)
	l.mu.Unlock()
	if wake {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// wait returns o's result, withdrawing o if ctx ends while it is queued.
// Called again (by the same caller) once it has returned the batch's
// outcome, it returns that again.
func (o *op) wait(ctx context.Context) error {
	if o.got {
		return o.result
	}
	select {
	case <-o.done:
		o.got = true
		return o.result
	case <-ctx.Done():
		if o.state.CompareAndSwap(opQueued, opCancelled) {
			return ctx.Err()
		}
		// The writer has already taken it: it will be committed or fail
		// as part of its batch, and the caller must learn which.
		<-o.done
		o.got = true
		return o.result
	}
}

// finish gives o its result; it is called once per op.
func (o *op) finish(err error) {
	o.result = err
	o.done <- struct{}{} // never blocks: room for one, and one finish an operation
}

// Close stops accepting new operations, waits until every queued one has
// been committed or failed, the store holds every journaled entry and the
// witness file is written, and stops the writer. It does not close the
// store. It returns the error that kept journaled entries out of the store
// (they stay in the journal for the next Open), or else the witness file's
// last write error, if any.
func (l *Log) Close() error {
	l.mu.Lock()
	already := l.closed
	l.closed = true
	l.mu.Unlock()
	if already {
		<-l.done
		return nil
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
	<-l.done
	var err error
	if l.idx != nil {
		err = l.idx.stop()
		l.jr.close(err == nil)
	}
	if l.witness != nil {
		if werr := l.witness.stop(); err == nil {
			err = werr
		}
	}
	return err
}

// writer is the single goroutine that commits batches.
func (l *Log) writer() {
	defer close(l.done)
	for {
		l.mu.Lock()
		for len(l.queue) == 0 && !l.closed {
			l.mu.Unlock()
			<-l.wake
			l.mu.Lock()
		}
		if len(l.queue) == 0 { // closed and drained
			l.mu.Unlock()
			l.dropUnsure()
			return
		}
		l.mu.Unlock()
		if l.jr != nil {
			l.gather()
		}
		l.commit()
	}
}

// take claims up to max queued operations, skipping those whose caller gave
// up, and appends them to claimed.
func (l *Log) take(claimed []result, max int) []result { return l.claim(claimed, max, false) }

// claim is take; with appendsOnly it stops at the first queued Do call.
func (l *Log) claim(claimed []result, max int, appendsOnly bool) []result {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for n < len(l.queue) && len(claimed) < max {
		o := l.queue[n]
		if appendsOnly && o.fn != nil {
			break
		}
		n++
		if o.state.CompareAndSwap(opQueued, opClaimed) {
			claimed = append(claimed, result{o: o})
		}
	}
	rest := copy(l.queue, l.queue[n:])
	clear(l.queue[rest:])
	l.queue = l.queue[:rest]
	return claimed
}

// savepointName is the savepoint for the i'th operation of a batch. Names
// are unique within a batch so that a savepoint left behind by a failed
// operation cannot be confused with a later one.
func savepointName(i int) string { return "auditlog_op_" + strconv.Itoa(i) }

// result is one claimed operation's outcome within a batch.
type result struct {
	o   *op
	err error // the operation's own failure; nil if it is part of the commit
	// seq and n are the sequence number of the operation's first entry
	// and how many it has, once the batch numbered them.
	seq int64
	n   int
}

// commit runs one batch and reports to its callers. With a journal, a batch
// of Append calls goes to the journal; a batch that starts with a Do call is
// one store transaction, as without a journal, once the store holds every
// journaled entry.
func (l *Log) commit() {
	l.hmu.Lock()
	l.busySince = time.Now()
	l.hmu.Unlock()
	l.commitBatch()
	l.hmu.Lock()
	l.busySince = time.Time{}
	l.hmu.Unlock()
}

// settled records the outcome of a batch as a whole (not a single Do
// call's own failure) for Err, before its callers learn it.
func (l *Log) settled(err error) {
	l.hmu.Lock()
	l.lastErr = err
	l.hmu.Unlock()
}

// commitBatch is commit.
func (l *Log) commitBatch() {
	if e := l.forked.Load(); e != nil {
		err := *e
		l.settled(err)
		for _, r := range l.take(nil, l.opts.MaxBatch) {
			r.o.finish(err)
		}
		return
	}
	if l.jr != nil {
		if claimed := l.takeAppends(l.claimed[:0], l.opts.MaxBatch); len(claimed) > 0 {
			claimed = l.commitJournal(claimed)
			clear(claimed) // the finished operations are not kept
			l.claimed = claimed[:0]
			return
		}
		if err := l.idx.wait(context.Background(), l.size.Load()); err != nil {
			l.settled(err)
			for _, r := range l.take(nil, l.opts.MaxBatch) {
				r.o.finish(err)
			}
			return
		}
	}
	claimed := l.take(nil, l.opts.MaxBatch)
	if len(claimed) == 0 {
		return
	}
	start := l.gc.clk.Now()
	cp, err := l.apply(&claimed)
	if err == nil && cp != nil && l.idx != nil {
		l.idx.advance(cp.Size)
	}
	l.settled(err)
	// Reported before the callers return, so that a caller that has seen
	// its call finish also finds it in the figures (as with OnCommit).
	l.reportBatch(claimed, start, err != nil)
	tried := l.tried
	l.tried = nil
	for _, r := range claimed {
		switch {
		case r.err != nil:
			r.o.finish(r.err)
		case tried != nil && r.o.lazy && !r.o.internal:
			tried.lazy = append(tried.lazy, r.o) // see unsureBatch
		default:
			r.o.finish(err)
		}
	}
	l.settleUnsure(claimed, tried, err)
	if err == nil && cp != nil {
		l.stored(cp)
	}
}

// reportBatch hands a finished batch's figures to Options.OnBatch.
func (l *Log) reportBatch(claimed []result, start time.Time, failed bool) {
	if l.opts.OnBatch == nil {
		return
	}
	now := l.gc.clk.Now()
	l.waits = l.waits[:0]
	for _, r := range claimed {
		if !r.o.lazy { // nobody waits for a lazy append
			l.waits = append(l.waits, now.Sub(r.o.at))
		}
	}
	l.opts.OnBatch(BatchStats{Ops: len(claimed), Write: now.Sub(start), Waits: l.waits, Failed: failed})
}

// StallAfter is how long a batch may be in flight before [Log.Err] reports
// the log as stalled (a database that stopped answering).
const StallAfter = 5 * time.Second

// ErrStalled is returned by [Log.Err] while a batch has been in flight for
// longer than StallAfter.
var ErrStalled = errors.New("auditlog: the log's current batch has not committed for over " + StallAfter.String())

// Err returns nil while the log is writable as far as it knows: the newest
// batch committed (or none has run yet) and no batch has been in flight for
// longer than StallAfter. Otherwise it returns the newest batch's error, or
// ErrStalled. It costs a mutex, no I/O, so a readiness check (/readyz) can
// call it on every probe; it learns of a failure only from a batch, so an
// idle replica should also call [Log.Probe] now and then. A batch that
// commits clears it; the failed one's callers were told they failed, and
// none of their events are in the log.
func (l *Log) Err() error {
	l.hmu.Lock()
	defer l.hmu.Unlock()
	if l.lastErr != nil {
		return l.lastErr
	}
	if !l.busySince.IsZero() && time.Since(l.busySince) > StallAfter {
		return ErrStalled
	}
	return nil
}

// Probe runs an empty batch through the write path (a store transaction
// that, with Options.Shared, takes the writers' lock and reads the log's
// head) and returns its error; Err reflects the outcome too. It waits behind
// queued operations, so bound it with ctx.
func (l *Log) Probe(ctx context.Context) error {
	return l.Do(ctx, func(context.Context, store.Tx) ([]Event, error) { return nil, nil })
}

// stored hands a checkpoint that is now in the store to the witness file
// writer and to Options.OnCheckpoint.
func (l *Log) stored(cp *store.Checkpoint) {
	if l.witness != nil {
		l.witness.offer(cp.Note, cp.Size, cp.Root)
	}
	if l.opts.OnCheckpoint != nil {
		l.opts.OnCheckpoint(cloneCheckpoint(*cp))
	}
}

// apply runs the claimed operations (and those that join while it works, see
// build) in one transaction and commits it. On success it adopts the new tree
// and returns the new checkpoint (nil if the batch appended nothing).
func (l *Log) apply(claimed *[]result) (*store.Checkpoint, error) {
	ctx := context.Background() // the batch belongs to all its callers
	if l.opts.BatchTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, l.opts.BatchTimeout, errBatchTimeout)
		defer cancel()
	}
	tx, err := l.st.Begin(ctx)
	if err != nil {
		return nil, batchErr(ctx, fmt.Errorf("auditlog: beginning transaction: %w", err))
	}
	cp, tree, head, rest, err := l.build(ctx, tx, claimed)
	err = batchErr(ctx, err)
	if err == nil {
		if l.opts.beforeCommit != nil {
			l.opts.beforeCommit()
		}
		if len(rest) > 0 {
			// Their rows first: the entries, checkpoint and commit go
			// in one statement.
			err = storeRows(ctx, l.opts.Rows, tx, rest)
			if err == nil {
				err = tx.(logCommitter).CommitLogCheckpoint(rest, *cp)
			}
			if err != nil {
				err = fmt.Errorf("auditlog: committing %d entries at %d with their checkpoint: %w", len(rest), rest[0].Seq, err)
			}
		} else if err = tx.Commit(); err != nil {
			err = fmt.Errorf("auditlog: committing: %w", err)
		}
	}
	if err != nil {
		_ = tx.Rollback() // after a failed Commit the tx is usually gone already
		if cp != nil && l.opts.Shared && errors.Is(err, store.ErrCommitUnknown) {
			l.tried = &unsureBatch{cp: *cp, tree: tree, err: err}
		}
		return nil, err
	}
	if cp == nil {
		if head != nil { // nothing appended, but others did: catch up
			l.tree = tree
			l.size.Store(head.Size)
			l.latest.Store(head)
		}
		return nil, nil
	}
	l.tree = tree
	l.size.Store(cp.Size)
	l.latest.Store(cp)
	if l.opts.OnCommit != nil {
		l.opts.OnCommit(cp.Size)
	}
	return cp, nil
}

// errBatchTimeout is the cause of a batch's context that
// Options.BatchTimeout ended.
var errBatchTimeout = errors.New("auditlog: the batch did not reach its commit within its bound (Options.BatchTimeout)")

// batchErr says, of a batch's error, when the batch's bound had passed:
// the statement's own error (a closed connection, a cancelled statement)
// does not say why.
func batchErr(ctx context.Context, err error) error {
	if err == nil || !errors.Is(context.Cause(ctx), errBatchTimeout) {
		return err
	}
	return fmt.Errorf("%w (waiting on a lock another session of the database holds?): %w", errBatchTimeout, err)
}

// build runs the operations and writes their entries and the checkpoint
// inside tx, returning the checkpoint (nil if nothing was appended) and the
// new tree. Operations that fail on their own get r.err set.
//
// Operations queued while build runs them and stores their entries join the
// batch (up to MaxBatch): only those arriving while the checkpoint is signed
// and the transaction committed wait for the next one. Otherwise the callers
// acknowledged by one commit would always miss the next batch, and batches
// would hold only about half of the concurrent callers.
//
// With a store whose transactions commit the last entries and the
// checkpoint in one round trip (logCommitter), those entries are returned
// as rest, not yet stored: the caller commits them with the checkpoint.
func (l *Log) build(ctx context.Context, tx store.Tx, claimed *[]result) (cp *store.Checkpoint, tree frontier, head *store.Checkpoint, rest []store.LogEntry, err error) {
	tree = l.tree
	if l.opts.Shared {
		if tree, head, err = l.readHead(ctx, tx); err != nil {
			return nil, tree, nil, nil, err
		}
		if head != nil {
			l.foreignAt = head.Size
		}
		if l.unsure != nil {
			if err = l.learn(ctx, head, claimed); err != nil {
				return nil, tree, nil, nil, err
			}
		}
	}
	cp, tree, rest, err = l.buildFrom(ctx, tx, claimed, tree)
	return cp, tree, head, rest, err
}

// logCommitter is a write transaction that stores a batch's last entries
// and its checkpoint in the same round trip as its COMMIT (pgstore): the
// shared log's lock is then held for one round trip fewer. If the entries
// do not continue the log nothing is committed.
type logCommitter interface {
	CommitLogCheckpoint(entries []store.LogEntry, c store.Checkpoint) error
}

// readHead reads the log's newest checkpoint inside tx (after Begin's lock,
// so no other replica can append until tx ends) and returns the tree to
// continue from: this Log's own if no other replica appended since its last
// batch, else the newest checkpoint's, checked (signature, origin, frontier)
// and returned as head. A log that shrank or forked is refused.
func (l *Log) readHead(ctx context.Context, tx store.Tx) (frontier, *store.Checkpoint, error) {
	stx, ok := tx.(store.SharedLogTx)
	if !ok {
		return l.tree, nil, errors.New("auditlog: Options.Shared needs a store whose transactions read the shared log's head (store.SharedLogTx)")
	}
	cur := l.latest.Load()
	cp, err := stx.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		if cur.Size != 0 {
			return l.tree, nil, fmt.Errorf("auditlog: the log's checkpoints are gone (it had %d entries); refusing to write (run `airlock audit verify`)", cur.Size)
		}
		return l.tree, nil, nil
	}
	if err != nil {
		return l.tree, nil, fmt.Errorf("auditlog: reading the log's head: %w", err)
	}
	switch {
	case cp.Size == cur.Size && bytes.Equal(cp.Root, cur.Root):
		return l.tree, nil, nil
	case cp.Size < cur.Size:
		return l.tree, nil, fmt.Errorf("auditlog: the log's newest checkpoint covers %d entries, fewer than the %d this replica saw; refusing to write (log truncated or database restored from an older copy; run `airlock audit verify`)", cp.Size, cur.Size)
	case cp.Size == cur.Size:
		return l.tree, nil, fmt.Errorf("auditlog: the log's newest checkpoint and this replica's both cover %d entries but their roots differ; refusing to write (run `airlock audit verify`)", cp.Size)
	}
	// The head is taken only with the log's signature: nothing but the
	// signing key may decide the tree every replica signs on top of (a
	// MAC under a key derived from the credential key, which releases of
	// December 2026 took instead, let whoever holds that key make one up).
	// Ed25519 signatures are deterministic, so a checkpoint signed with the
	// key every replica shares is byte for byte the note this replica would
	// sign for the same origin, size and root: re-signing costs about half
	// a verification, and also checks the origin, size and root. Anything
	// else gets the full check, which explains what is wrong.
	if f, err := parseFrontier(cp.Size, cp.Frontier); err == nil {
		if root, err := f.root(); err == nil && bytes.Equal(root[:], cp.Root) {
			if want, err := l.signNote(cp.Size, root); err == nil && bytes.Equal(want, cp.Note) {
				return f, &cp, nil
			}
		}
	}
	f, err := checkHead(cp, l.opts.Verifier, l.opts.Origin)
	if err != nil {
		return l.tree, nil, fmt.Errorf("auditlog: refusing to continue the log from its newest checkpoint: %w", err)
	}
	return f, &cp, nil
}

// buildFrom is build after the tree to continue from is known.
func (l *Log) buildFrom(ctx context.Context, tx store.Tx, claimed *[]result, tree frontier) (*store.Checkpoint, frontier, []store.LogEntry, error) {
	combined, _ := tx.(store.LogCheckpointAppender)
	_, deferred := tx.(logCommitter)
	var entries []store.LogEntry
	appended := false
	start := tree.n // the log's size when the lock was taken
	for done := 0; ; {
		for ; done < len(*claimed); done++ {
			r := &(*claimed)[done]
			evs := r.o.evs
			if r.o.liveGrant != "" && l.opts.Shared {
				if err := l.checkLive(ctx, tx, r.o.liveGrant, start); err != nil {
					if !errors.Is(err, ErrGrantEnded) {
						return nil, tree, nil, err
					}
					r.err = err
					continue
				}
			}
			if r.o.fn != nil {
				// A Do function may read the log: with deferred entries,
				// store those of the operations before it first.
				if deferred && len(entries) > 0 {
					if err := l.appendEntries(ctx, tx, &entries); err != nil {
						return nil, tree, nil, err
					}
					appended = true
				}
				sp := savepointName(done)
				if err := tx.Savepoint(ctx, sp); err != nil {
					return nil, tree, nil, fmt.Errorf("auditlog: savepoint: %w", err)
				}
				var ferr error
				evs, ferr = runFn(ctx, r.o, tx)
				if ferr != nil {
					if err := tx.RollbackTo(ctx, sp); err != nil {
						return nil, tree, nil, fmt.Errorf("auditlog: rolling back a failed operation (%v): %w", ferr, err)
					}
					// ROLLBACK TO keeps the savepoint open; release it. An
					// error here (a store whose RollbackTo already released
					// it) is harmless: the name is not reused in this batch.
					_ = tx.Release(ctx, sp)
					r.err = ferr
					continue
				}
				if err := tx.Release(ctx, sp); err != nil {
					return nil, tree, nil, fmt.Errorf("auditlog: releasing savepoint: %w", err)
				}
				// A Do may change a grant's state (this replica's own
				// revoke): its next recorded call reads it again.
				for j := range evs {
					if evs[j].grantID != "" {
						delete(l.live, evs[j].grantID)
					}
				}
			}
			r.seq, r.n = tree.n, len(evs)
			for j := range evs {
				e := evs[j].entry(tree.n)
				if err := tree.add(tlog.Hash(e.LeafHash)); err != nil {
					return nil, tree, nil, fmt.Errorf("auditlog: hashing entry %d: %w", e.Seq, err)
				}
				entries = append(entries, e)
			}
		}
		// With a store that writes entries and checkpoint in one
		// statement, the last entries wait for the checkpoint: one round
		// trip fewer while the shared log's lock is held.
		if len(entries) > 0 && combined == nil && !deferred {
			if err := l.appendEntries(ctx, tx, &entries); err != nil {
				return nil, tree, nil, err
			}
			appended = true
		}
		if len(*claimed) >= l.opts.MaxBatch {
			break
		}
		if *claimed = l.take(*claimed, l.opts.MaxBatch); done == len(*claimed) {
			// Let callers that are about to queue (typically those the
			// previous commit just acknowledged) run before giving up.
			if !l.opts.Shared {
				runtime.Gosched()
			}
			*claimed = l.take(*claimed, l.opts.MaxBatch)
		}
		if done == len(*claimed) {
			break
		}
		if len(entries) > 0 && !deferred { // more operations joined: store these first
			if err := l.appendEntries(ctx, tx, &entries); err != nil {
				return nil, tree, nil, err
			}
			appended = true
		}
	}
	if !appended && len(entries) == 0 {
		return nil, tree, nil, nil
	}
	cp, err := l.sign(&tree)
	if err != nil {
		return nil, tree, nil, err
	}
	if len(entries) > 0 && deferred {
		return cp, tree, entries, nil
	}
	if len(entries) > 0 {
		if err := combined.AppendLogCheckpoint(ctx, entries, *cp); err != nil {
			return nil, tree, nil, fmt.Errorf("auditlog: appending %d entries at %d with their checkpoint: %w", len(entries), entries[0].Seq, err)
		}
		if err := storeRows(ctx, l.opts.Rows, tx, entries); err != nil {
			return nil, tree, nil, err
		}
		return cp, tree, nil, nil
	}
	if err := tx.PutCheckpoint(ctx, *cp); err != nil {
		return nil, tree, nil, fmt.Errorf("auditlog: storing checkpoint: %w", err)
	}
	return cp, tree, nil, nil
}

// liveMax bounds Log.live; past it the map is emptied (the grants in it
// are read again at their next call).
const liveMax = 10000

// checkLive returns ErrGrantEnded if grant id is not active in the store,
// reading it inside tx (which holds the writers' lock: a revoke committed
// by any replica is either visible or waits for this batch) unless this
// writer read it active at or after the newest head another replica
// appended (start is the log's size when this batch took the lock): a grant
// is ended only under the lock, by a Do whose events name it (which
// forgets it here) or by another replica's batch (which moves foreignAt).
// So a replica writing alone reads each grant once, and among busy
// replicas each grant once per batch that follows another's.
func (l *Log) checkLive(ctx context.Context, tx store.Tx, id string, start int64) error {
	if at, ok := l.live[id]; ok && at >= l.foreignAt {
		return nil
	}
	var status model.GrantStatus
	var err error
	if gs, ok := tx.(store.GrantStatusTx); ok {
		status, err = gs.GrantStatus(ctx, id)
	} else {
		var g model.Grant
		g, err = tx.Grant(ctx, id)
		status = g.Status
	}
	if errors.Is(err, store.ErrNotFound) {
		return ErrGrantEnded
	}
	if err != nil {
		return fmt.Errorf("auditlog: reading grant %s: %w", id, err)
	}
	if status != model.Active {
		delete(l.live, id)
		return ErrGrantEnded
	}
	if l.live == nil || len(l.live) >= liveMax {
		l.live = map[string]int64{}
	}
	l.live[id] = start
	return nil
}

// appendEntries stores entries and empties the slice.
func (l *Log) appendEntries(ctx context.Context, tx store.Tx, entries *[]store.LogEntry) error {
	if err := tx.AppendLog(ctx, *entries); err != nil {
		return fmt.Errorf("auditlog: appending %d entries at %d: %w", len(*entries), (*entries)[0].Seq, err)
	}
	if err := storeRows(ctx, l.opts.Rows, tx, *entries); err != nil {
		return err
	}
	clear(*entries)
	*entries = (*entries)[:0]
	return nil
}

// storeRows runs Options.Rows (rows) on entries being stored in tx.
func storeRows(ctx context.Context, rows func(context.Context, store.Tx, []store.LogEntry) error, tx store.Tx, entries []store.LogEntry) error {
	if rows == nil || len(entries) == 0 {
		return nil
	}
	if err := rows(ctx, tx, entries); err != nil {
		return fmt.Errorf("auditlog: the rows of entries %d-%d: %w", entries[0].Seq, entries[len(entries)-1].Seq, err)
	}
	return nil
}

// runFn runs a Do function and encodes the events it returns, turning a
// panic into an error so that one caller cannot take the writer down. The
// function's context carries its caller's values and the batch's bound
// (bctx's), not its caller's cancellation.
func runFn(bctx context.Context, o *op, tx store.Tx) (evs []encoded, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("auditlog: Do function panicked: %v", p)
		}
	}()
	fctx := context.WithoutCancel(o.ctx)
	if d, ok := bctx.Deadline(); ok {
		// A context of the standard kind, not one that forwards bctx's
		// Done: pgx watches each statement's context with
		// context.AfterFunc, which costs a goroutine per statement for
		// a context of another kind.
		var cancel context.CancelFunc
		fctx, cancel = context.WithDeadline(fctx, d)
		defer cancel()
	}
	events, err := o.fn(fctx, tx)
	if err != nil {
		return nil, err
	}
	return encodeEvents(events)
}

func b64(b []byte) string {
	if len(b) != tlog.HashSize {
		return fmt.Sprintf("%x", b)
	}
	return tlog.Hash(b).String()
}

// witness writes checkpoints to a file from its own goroutine, always the
// newest one offered, so that the writer never waits for it.
type witness struct {
	path string
	// check, if set, is asked before a checkpoint replaces the file: an
	// error keeps the file as it is (see follower); saved is called once
	// the file holds it.
	check func(size int64, root []byte) error
	saved func()
	mu    sync.Mutex
	next  []byte // newest checkpoint not yet written
	size  int64  // and its size and root
	root  []byte
	err   error // last write's error
	kick  chan struct{}
	quit  chan struct{}
	done  chan struct{}
}

func startWitness(path string) *witness {
	w := &witness{path: path, kick: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *witness) offer(msg []byte, size int64, root []byte) {
	w.mu.Lock()
	w.next, w.size, w.root = msg, size, root
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// witnessInterval is the least time between two witness writes. Each
// write is a create, fsync, rename and directory fsync competing with the
// log's own fsync; under load, one per batch cost an eighth of the
// gateway's CPU. Writing the newest checkpoint at most this often bounds
// what a truncation of the database's tail could hide to this window.
const witnessInterval = 200 * time.Millisecond

func (w *witness) run() {
	defer close(w.done)
	for {
		select {
		case <-w.kick:
		case <-w.quit:
			w.flush()
			return
		}
		w.flush()
		select {
		case <-time.After(witnessInterval):
		case <-w.quit:
			w.flush()
			return
		}
	}
}

func (w *witness) flush() {
	w.mu.Lock()
	msg, size, root := w.next, w.size, w.root
	w.next = nil
	w.mu.Unlock()
	if msg == nil {
		return
	}
	if w.check != nil {
		if err := w.check(size, root); err != nil {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
	}
	err := safefile.WriteAtomic(w.path, msg, 0o644)
	if err == nil && w.saved != nil {
		w.saved()
	}
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

func (w *witness) stop() error {
	close(w.quit)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return fmt.Errorf("auditlog: writing witness file: %w", w.err)
	}
	return nil
}

// checkWitnessFile compares an existing witness file with the newest
// checkpoint. The witness is written after its checkpoint is committed, so it
// can never be ahead of the database unless entries and checkpoints were
// removed (or the database was restored from an older copy). The file must
// be a checkpoint of this log, by its origin, signed by its key (by
// Options.Verifier, or else byte for byte the note the signer makes for
// it): the file is the only record of the log's size outside the database,
// and one that is not the log's says nothing about it, whether it claims a
// bigger tree (no truncation to report) or a smaller one (no check made).
// Such a file fails closed: the log does not start until it is moved aside.
func (l *Log) checkWitnessFile(path string, latest store.Checkpoint) error {
	msg, err := ReadFileMax(path, MaxCheckpointFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("auditlog: reading witness file: %w", err)
	}
	text, err := unverifiedText(msg)
	if err != nil {
		return fmt.Errorf("auditlog: refusing to start: witness file %s: %v", path, err)
	}
	w, err := parseCheckpoint(text)
	if err != nil {
		return fmt.Errorf("auditlog: refusing to start: witness file %s: %v", path, err)
	}
	if w.origin != l.opts.Origin {
		return fmt.Errorf("auditlog: refusing to start: the witness file %s is a checkpoint of the log %q, not of this log %q; it says nothing about this log's size (a data_dir of another log? run `airlock audit verify`, then move the file aside)", path, w.origin, l.opts.Origin)
	}
	if v := l.opts.Verifier; v != nil {
		if _, err := openCheckpoint(msg, v); err != nil {
			return fmt.Errorf("auditlog: refusing to start: the witness file %s is not validly signed by the log's key %s: %v (tampered file; run `airlock audit verify`, then move the file aside)", path, v.Name(), err)
		}
	} else if want, err := l.signNote(w.size, w.root); err != nil {
		return fmt.Errorf("auditlog: signing checkpoint: %w", err)
	} else if !bytes.Equal(want, msg) {
		return fmt.Errorf("auditlog: refusing to start: the witness file %s is not signed by the log's key %s, or carries other lines (tampered file; run `airlock audit verify`, then move the file aside)", path, l.signer.Name())
	}
	if w.size > latest.Size {
		return fmt.Errorf("auditlog: refusing to start: the witness file %s records a log of %d entries but the newest checkpoint in the database covers %d; the log was truncated (run `airlock audit verify`; if the database was deliberately restored from an older copy, move the witness file aside)", path, w.size, latest.Size)
	}
	if w.size == latest.Size && w.size > 0 && !bytes.Equal(w.root[:], latest.Root) {
		return fmt.Errorf("auditlog: refusing to start: the witness file %s and the newest checkpoint both cover %d entries but their roots differ (%s, %s); the log was rewritten (run `airlock audit verify`)", path, w.size, w.root, b64(latest.Root))
	}
	return nil
}

// journalKeys are the Options' journal keys.
func (o *Options) journalKeys() JournalKeys {
	return JournalKeys{Seal: o.JournalKey, Legacy: o.LegacyJournalKey, LegacyTail: o.LegacyJournalTail}
}

// follower checks, for a replica of a shared log, that each checkpoint
// its witness file is about to take extends the log the replica saw: the
// entries between the last one it checked and the new one, read from the
// store and hashed onto its own tree, must give the new root. Replicas
// build on the head they read, so they do, unless the log's tail was
// deleted with its checkpoints (or the database restored from an older
// copy) and a replica that never saw it (an empty data_dir) grew the log
// past it again: the new head is bigger and validly signed, and taking it
// would replace the witness file, the evidence of the truncation. Then the
// file is kept, and the replica stops writing (Log.forked).
//
// It runs on the witness goroutine, at most once per witnessInterval, off
// the writers' lock, and reads the stored leaf hashes, not the entries:
// checking under the lock, before signing on top of another replica's
// head, cost about a third of the shared log's throughput
// (BenchmarkSharedAppend, 3 replicas, about 14.8k to 10k events/s on a
// loaded 2-core machine), and reading and hashing every entry here about a
// fifth. So a replica may sign a batch or a few on top of a forked head
// before it stops; its witness file never takes them.
// leafHashScanner is implemented by stores that read the entries' stored
// leaf hashes alone (pgstore), which is all the follower needs.
type leafHashScanner interface {
	ScanLeafHashes(ctx context.Context, from, to int64, fn func(seq int64, hash []byte) error) error
}

type follower struct {
	l    *Log
	f    frontier // the tree at the newest checkpoint checked
	path string   // where f is kept beside the witness file (save)
}

// frontierSuffix names the file beside a shared log's witness file that
// keeps the tree's frontier at the witness file's checkpoint (the roots of
// its perfect subtrees, as in store.Checkpoint.Frontier): a replica that
// restarts resumes its check from it, so that a head that does not extend
// what it saw before the restart is still caught.
const frontierSuffix = ".frontier"

// save keeps the frontier of the checkpoint the witness file now holds.
// A failure only means a restart checks from the head it finds.
func (fl *follower) save() {
	b := binary.BigEndian.AppendUint64(nil, uint64(fl.f.n))
	_ = safefile.WriteAtomic(fl.path, append(b, fl.f.marshal()...), 0o644)
}

// loadFrontier reads the frontier kept beside the witness file at
// witnessPath, if it is there and its root is the witness file's (or it
// is older than the file's: a crash between the two writes).
func loadFrontier(path, witnessPath string) (frontier, bool) {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 8 {
		return frontier{}, false
	}
	f, err := parseFrontier(int64(binary.BigEndian.Uint64(b)), b[8:])
	if err != nil {
		return frontier{}, false
	}
	msg, err := os.ReadFile(witnessPath)
	if err != nil {
		return frontier{}, false
	}
	text, err := unverifiedText(msg)
	if err != nil {
		return frontier{}, false
	}
	w, err := parseCheckpoint(text)
	if err != nil || f.n > w.size {
		return frontier{}, false
	}
	if f.n == w.size {
		if root, err := f.root(); err != nil || root != w.root {
			return frontier{}, false
		}
	}
	return f, true
}

func (fl *follower) check(size int64, root []byte) error {
	if e := fl.l.forked.Load(); e != nil {
		return *e
	}
	t := fl.f
	if size < t.n {
		// An older checkpoint than the file's: not written over it.
		return fmt.Errorf("auditlog: checkpoint of %d entries is older than the witness file's (%d)", size, t.n)
	}
	if size > t.n {
		next := t.n
		add := func(seq int64, h tlog.Hash) error {
			if seq != next {
				return fmt.Errorf("entry %d is missing", next)
			}
			next++
			return t.add(h)
		}
		var err error
		if hs, ok := fl.l.st.(leafHashScanner); ok {
			// The stored hashes are enough here: what is checked is that
			// the signed checkpoints chain, and a stored hash changed to
			// pass could only stop this replica (audit verify rehashes the
			// entries' bytes).
			err = hs.ScanLeafHashes(context.Background(), t.n, size, func(seq int64, h []byte) error {
				if len(h) != tlog.HashSize {
					return fmt.Errorf("entry %d has a leaf hash of %d bytes", seq, len(h))
				}
				return add(seq, tlog.Hash(h))
			})
		} else {
			err = fl.l.st.ScanLog(context.Background(), t.n, size, func(e store.LogEntry) error {
				return add(e.Seq, tlog.RecordHash(e.Data))
			})
		}
		if err == nil && next != size {
			err = fmt.Errorf("the log holds %d entries, not %d", next, size)
		}
		if err != nil {
			// Not a fork: the entries could not be read now. The file
			// waits for the next checkpoint.
			return fmt.Errorf("auditlog: reading entries %d-%d to check the checkpoint: %w", fl.f.n, size-1, err)
		}
	}
	got, err := t.root()
	if err == nil && size == t.n && bytes.Equal(got[:], root) {
		fl.f = t
		return nil
	}
	err = fmt.Errorf("auditlog: the shared log's checkpoint of %d entries does not extend the log this replica saw (%d entries): the log was truncated and written again, or rewritten; this replica stops writing and keeps its witness file (run `airlock audit verify`)", size, fl.f.n)
	fl.l.forked.Store(&err)
	return err
}
