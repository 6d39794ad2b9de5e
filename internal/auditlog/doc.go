// Package auditlog keeps Airlock's single append-only log of lifecycle and
// session events, hashed as an RFC 6962 Merkle tree (golang.org/x/mod/sumdb/tlog)
// and sealed by Ed25519-signed checkpoints (golang.org/x/mod/sumdb/note).
//
// # Writing
//
// A [Log] has one writer goroutine. [Log.Append] and [Log.Do] enqueue an
// operation and wait; the writer takes the first waiting operation plus every
// other queued one and runs them all in one store transaction (group commit):
//
//  1. For each [Log.Do] operation: SAVEPOINT, run its function, then RELEASE,
//     or ROLLBACK TO the savepoint if the function (or encoding the events it
//     returned) failed. A failing operation gets its own error back and leaves
//     no trace; the others in the batch are unaffected.
//  2. Give every event of the surviving operations the next sequence number,
//     build its entry bytes and leaf hash, extend the tree, and append the
//     entries. Operations queued meanwhile join the batch (steps 1 and 2
//     repeat) until none are waiting or the batch holds [Options.MaxBatch]
//     operations.
//  3. Sign a checkpoint for the new tree, store it with the tree's frontier,
//     and commit.
//  4. Only after a successful commit: adopt the new tree in memory and return
//     to the callers. If anything in steps 1-3 (other than a single
//     operation's own failure) or the commit fails, the transaction is rolled
//     back, every caller in the batch gets the error, and the in-memory tree
//     stays as it was. Nothing is acknowledged before it is durable, and every
//     committed entry is covered by a checkpoint committed with it.
//  5. Hand the newest checkpoint to the witness writer, which keeps a copy in
//     [Options.WitnessPath] outside the database (see below), and to
//     [Options.OnCheckpoint], through which package witness publishes it to
//     external witnesses.
//
// # Several replicas
//
// With a PostgreSQL store, several airlock serve processes (replicas) append
// to the same log, and every event is durable in PostgreSQL before it is
// acknowledged. The log stays one log: one origin (derived from the signing
// key every replica shares), one tree, one sequence of signed checkpoints,
// so airlock audit verify, evidence bundles, the review derivation and
// witnesses work unchanged. Each replica runs a Log with [Options.Shared]
// and [Options.Verifier] (the shared key), and no journal. Its writer runs
// the group commit above, with step 1 preceded by:
//
//  0. Begin takes the store's writers' lock (pgstore: a transaction-scoped
//     advisory lock, so the writers of every replica are serialized and
//     each, once it holds the lock, sees everything committed before), and
//     the writer reads the log's head, its newest checkpoint, inside the
//     transaction. If it is this replica's own last checkpoint the writer
//     continues its own tree. Otherwise another replica appended since: the
//     writer authenticates the head and numbers its entries after it: its
//     signature with the verifier key, its origin, and that its stored
//     frontier hashes to its signed root. Ed25519 signatures are
//     deterministic, so a head another replica signed with the shared key
//     is byte for byte the note this replica would sign for its size and
//     root: re-signing it (about half a verification) is the usual check,
//     and anything else is verified in full. Only the signing key decides
//     the tree the replicas sign on: releases from 3 December 2026 until
//     this check took a head on a MAC under a key derived from the
//     credential key (store.Checkpoint.MAC, no longer written or read),
//     which let whoever held that key (every replica, the operator) make
//     one up. A head older than what this replica saw, or of
//     the same size with another root, is refused (truncation, a database
//     restored from an older copy, a fork): the batch fails, fail closed.
//
// The head is adopted in memory only after the commit, like the replica's
// own tree; a failed batch leaves nothing behind, and the next one reads
// the head again. Lifecycle events ([Log.Do]) and the grant state they
// change still commit in the one transaction of their batch.
//
// A batch on such a store is bounded up to its commit by
// [Options.BatchTimeout] ([DefaultBatchTimeout]): a lock another session
// holds (the writers' lock of a stuck replica, a table someone locked)
// fails the batch's callers rather than holding them, and the store bounds
// the commit. A batch whose commit's outcome the store could not learn
// (store.ErrCommitUnknown) is learned by the next one, from the log: see
// unsure.go and [RefusedType].
//
// A gateway's records of a session's start and of its calls are appended
// with [Log.AppendLive], naming their grant: on a shared log the writer
// checks, under the lock, that the grant is still active in the store
// (store.GrantStatusTx), and refuses the operation with [ErrGrantEnded]
// otherwise. Every grant's end commits under the same lock, so no replica
// logs (and so serves) a call of a grant after its end, though it learns
// of another replica's revoke only from a notice some milliseconds later.
// The writer reads a grant again only if another replica appended since
// it last read it active, or one of its own [Log.Do] operations named it.
//
// Rows against the log on every replica. A session's stored summary is
// written lazily by the replica serving it, so before audit verify (and
// every review read) a replica has every live replica write its pending
// summaries, through the shared notice channel, and waits for each one's
// acknowledgement (package grants, fresh.go). The state check (review.Checker)
// reads the rows after walking the log; a live session's row written in
// between counts calls logged after the walk, so a row that differs from
// the walked log is checked once more against the entries committed since
// (each against its leaf hash) and reported only if it differs from both.
//
// Why one log under a lock rather than one log per replica. A log per
// replica (each with its own origin, tree and checkpoints) needs no
// coordination to append, but every reader pays for it: audit verify,
// export and witnesses must cover a set of logs that changes as replicas
// come and go, the review derivation must merge several logs into one order
// of lifecycle events for a grant that was requested on one replica and
// revoked on another (and a Do that reads grant state must still serialize
// with the others, so the lock is needed anyway), and an operator's witness
// must track one origin per replica ever started. One log sequenced under
// the writers' lock keeps all of that as it was, and costs little because
// the lock is held once per batch, not per event: a 20-row insert and
// commit took 0.32 ms on the development machine's PostgreSQL, so batches
// of about 20 events keep over 20,000 events/s under one lock if the
// lock is held for under 1 ms per batch. While one replica holds it, the
// others' callers gather into their next batch; a batch is bounded by the
// callers waiting on its replica, though (about 64/N with 64 concurrent
// callers over N replicas, as BenchmarkSharedAppend measures).
// Replicas therefore wait on each other per batch, never per event.
// BenchmarkSharedAppend measures it with 1, 2 and 3 replicas (see
// bench/HISTORY.md).
//
// Durability is PostgreSQL's (WAL flushed; synchronous_commit on, or a
// synchronous standby's level, see pgstore): there is no local journal
// because a replica's disk may die with it. pgstore keeps the disk flush out
// of the lock: a batch's COMMIT is asynchronous, which makes it visible and
// releases the lock at once, and a small synchronous transaction after it
// waits for the WAL flush, which also covers the batch, before the callers
// are acknowledged. The next replica's batch proceeds meanwhile, and the
// replicas' flushes share fsyncs. A batch costs two round trips: BEGIN, the
// lock and the head read go in one pipeline; the batch's entries and its
// checkpoint go with the COMMIT and the flush in another (pgstore's
// CommitLogCheckpoint, which fails the statement, and so commits nothing,
// if the entries do not continue the log). Only the second is under the
// lock, besides the writer's own work (the head's check, hashing, one
// signature). Appends that join the batch while the writer works wait for
// that last statement too; only a [Log.Do] function, which may read the
// log, has the entries before it stored first (one more round trip). A batch built on another's that is not yet durable can only
// become durable with it (the WAL is one sequence). A COMMIT whose answer
// is lost (connection cut, server restart) is not guessed at: pgstore
// waits until the server says the transaction is over (pg_xact_status),
// flushes, and then looks for the batch's checkpoint in the log, so a
// batch reported failed never appears in the log later and one
// acknowledged is durable, even across a crash that loses an unflushed
// commit. A replica killed with a batch in flight leaves it wholly in or
// wholly out, as one transaction.
//
// Each replica writes the checkpoints it signs to its own witness file
// ([Options.WitnessPath], in its data_dir); verification with one
// replica's file checks the log up to the newest checkpoint that replica
// signed. External witnesses (package witness) get checkpoints from every
// replica; consistency proofs are built from the stored log (the frontier
// stored with the checkpoint the witness last cosigned, whichever replica
// signed it), never from a replica's memory.
//
// [Log.Err] tells a readiness check whether the log is writable: nil unless
// the newest batch failed as a whole (no later one succeeded) or a batch
// has been in flight for over [StallAfter]. [Log.Probe] runs an empty
// batch through the write path (lock, head, commit) for a replica that is
// idle.
//
// # Journal
//
// With [Options.JournalDir] set (as airlock serve runs it on SQLite), a batch made only
// of [Log.Append] calls does not wait for a store transaction. The writer
// numbers and hashes its entries as above, writes them to the journal as one
// frame, fdatasyncs it, adopts the new tree and returns to the callers: one
// write and one fdatasync per batch. An indexer goroutine then copies the
// journaled batches into the store, several at a time (they gather for up to
// 100 ms, or until a reader waits), each transaction ending with a checkpoint
// it signs for the newest of them. So the store always holds a prefix of the
// log covered by a signed checkpoint, and a checkpoint covers every
// acknowledged entry within about 100 ms. A batch that contains a [Log.Do]
// call first waits until the store holds every journaled entry, then runs as
// one store transaction as described above, so a Do's function sees the log
// that precedes it. [Log.Sync] waits until the store holds everything
// committed before the call; readers of the store call it first.
//
// Rows an entry implies. [Options.Rows] runs in every transaction that
// stores entries, with those entries: a batch's own, the indexer's copy, a
// replay. Airlock sets it to review.StoreRows, which writes a session's row
// from its session.started entry and its end from its session.ended entry.
// So a state that is implied by one entry alone can be journaled like a
// call (a session's start and end: one journal write shared with the calls
// around them, where a [Log.Do] waited for the indexer and paid a store
// transaction of its own), and still the store never holds the entry
// without the row it implies: a crash leaves only the entry, in the
// journal, and the replay writes both.
//
// The journal is a directory of segment files named by a growing number
// (%016d.seg). Each is preallocated with zeros (8 MiB by default, more for a
// bigger frame) so that a commit rewrites blocks in place and fdatasync has no
// metadata to write; the next one is prepared in the background. A segment
// holds frames back to back:
//
//	"ALJ3" | length uint32 | CRC-32C(payload) uint32 | payload
//	payload = first seq uint64 | count uint32 | count × (len uint32 | entry bytes) | HMAC-SHA256
//
// integers big-endian, the HMAC keyed with [Options.JournalKey], over "ALJ3",
// the first seq and count, and each entry's length and leaf hash
// (SHA-256(0x00 || entry bytes), as the tree hashes it): the entries' bytes
// are hashed once, for the tree, and the seal covers them through their
// hashes (replay computes them from the bytes before checking it). Replay
// takes a sealed frame and the next start signs it into the log, so the seal
// key must be as hard to get as the signing key: a server derives it from the
// signing key. Frames of the second format, "ALJ2", written by earlier
// releases, have the same layout with the HMAC over
// "ALJ2" and the payload before it, entries' bytes included, under the same
// key; replay takes them as before. Frames of the first
// format, "ALJ1", have the same layout with the HMAC over the payload alone,
// under a key an earlier release derived from the credential key
// ([Options.LegacyJournalKey]); replay refuses those the store does not hold
// yet unless [Options.LegacyJournalTail] allows them ([ErrLegacyJournal]). A
// segment is removed once the store holds all its entries, and at Close when
// it holds them all.
//
// Every write is whole 4 KiB blocks (segment sizes are multiples of 4 KiB):
// from the block the frame starts in, rewritten with the bytes of the
// frames before it that share it, through the block the frame ends in,
// padded with the zeros already there. The bytes on disk are what a plain
// append would leave, so the format and replay are unchanged, and an
// interrupted rewrite leaves the earlier frames' bytes as they were. On
// Linux the segments are opened with O_DIRECT where the filesystem allows
// it: the write bypasses the page cache and the fdatasync that follows has
// no dirty pages to find, which measured 15-25% less CPU per write and
// fdatasync than buffered writes on the development machine.
//
// Open replays the journal (as does [ReplayJournal], for airlock audit
// verify --data-dir): frames the store already holds are skipped; the rest
// must continue the log exactly, carry a valid seal and well-formed entries,
// and are stored with checkpoints signed then. An unreadable frame at the end
// of the newest segment, followed by nothing but zeros or another torn frame,
// is a write cut short by a crash: it was never acknowledged and is dropped.
// Anything else (a bad seal, a damaged frame with frames after it, a gap) is
// refused as tampering or corruption. A write or fdatasync that fails is
// undone by overwriting the frame with zeros; if that fails too, the journal
// refuses every later write until airlock restarts, so a batch reported as
// failed can never appear in the log.
//
// The tree is never reread from the database and never held in full: the
// writer keeps only the frontier, the roots of the perfect subtrees that make
// up the current tree (one per set bit of the size, so at most 64 hashes),
// and serves tlog.StoredHashes and tlog.TreeHash from it.
//
// # Group commit delay
//
// Every journal batch costs one write and one fdatasync, 50-110 µs of
// kernel CPU on the development machine whatever the batch holds, so the
// number of batches per call is what the log's CPU per call follows. Callers
// that arrive while a batch is being written share the next one; with the
// gateways' 8 clients on a quiet machine that is only 1-2 per batch. So the
// writer may hold a batch of appends open before writing it, in the spirit
// of PostgreSQL's commit_delay and commit_siblings: only when the recent
// batches (an exponentially weighted average of operations per batch, at
// least 1.25) show callers arriving concurrently, never longer than
// [Options.CommitDelay] ([DefaultCommitDelay], 200 µs) after the oldest
// queued append arrived, and no longer than three average gaps between
// appends after the newest one, so that a burst that has ended (every
// caller queued) is written at once. A full batch ([Options.MaxBatch]), a
// queued [Log.Do] call or Close end the wait at once. A lone caller, blocked
// on its own record, is never delayed. A read's record is written while
// the read travels upstream (durable before disclosure), so the delay
// mostly overlaps that; a write (durable before forwarding) waits for it.
// A batch of reads ([Log.AppendAsync]) none of whose callers waits yet may
// be held longer, up to four delays: until it would be durable about when
// the first of them calls [Pending.Wait] (their average time from
// AppendAsync to Wait, less the average write, with a quarter to spare),
// which costs a read no latency unless its call is quicker than most. A
// caller that calls Wait, or a write that joins, makes it an ordinary batch.
// Nothing is acknowledged earlier or differently: the delay only moves
// when a batch starts.
//
// While the writer waits, a read's append that cannot bring its wait's
// end forward (only the gap between arrivals could, and only if it
// shrank enough) does not wake it, nor does a reader's Wait unless the
// wait was one that only a batch of working readers gets: under a
// gateway's load most appends arrive while it gathers, and each wake-up
// was a goroutine hand-off that changed nothing (bench/HISTORY.md, "The
// gathering writer's wake-ups").
//
// When the batch holds an append whose caller is blocked on it before it
// forwards anything ([Log.Append]), the wait is timed with
// [clock.AfterShort], a nanosleep on a goroutine of its own, not a runtime
// timer: nothing of that caller's call is in flight, so the process may
// well be idle while the writer waits, and an idle Go process fires a
// timer due in 200 µs only after about 1 ms (its poller waits in whole
// milliseconds). With runtime timers, BenchmarkAppend8's batches of 8 took
// about 1.4 ms where the delay allows 0.2 plus the write (bench/HISTORY.md).
// A batch of reads alone keeps the runtime timer: their answers, arriving
// meanwhile, wake the scheduler, which runs due timers, and the sleeping
// thread's wake-ups cost more than they save there.
//
// [Log.AppendLazy] is for records nobody is held up by (a session's batched
// results, whose calls were answered already): a queue of only such appends
// starts no batch; they join the next batch another append or a Do starts,
// or are written alone once the oldest has waited 25 ms. So they add
// entries to batches, not batches. Like Append it returns once they are
// durable.
//
// # Entry format
//
// Entry n (counting from 0) is the JSON object
//
//	{"seq":N,"time":"T","type":"TYPE","grant":"G","session":"S","actor":"A","data":D}
//
// with the keys in exactly this order, no white space, and:
//
//   - seq: the entry's sequence number N in decimal, always the first key.
//     Because the sequence number is inside the hashed bytes, an entry that is
//     moved to another position no longer matches its place in the tree.
//   - time: the event time in UTC, formatted with time.RFC3339Nano.
//   - type: the event type, e.g. "grant.requested", "session.call"; required.
//   - grant, session, actor: the grant id, session id and who caused the
//     event; each is omitted when empty.
//   - data: the event's Data as produced by encoding/json; omitted when Data
//     is nil.
//
// Strings are encoded by encoding/json (so "<", ">" and "&" appear as \u003c,
// \u003e and \u0026). The exact bytes are stored in store.LogEntry.Data; the
// other LogEntry columns are untrusted copies kept for queries. The leaf hash
// of an entry is tlog.RecordHash(bytes) = SHA-256(0x00 || bytes), and the tree
// over entries 0..n-1 is the RFC 6962 Merkle tree of those leaf hashes, whose
// root is tlog.TreeHash.
//
// # Checkpoint format
//
// After every store transaction that appended entries (without a journal,
// every batch) the writer stores a checkpoint: the
// tree size, its root hash, the frontier, and a signed note in the C2SP
// tlog-checkpoint format (https://c2sp.org/tlog-checkpoint). The note text is
//
//	<origin>\n<size>\n<root>\n
//
// where origin is [Options.Origin] (by default the signer's name), size is the
// number of entries in decimal, and root is the standard base64 encoding of
// the 32-byte root hash. It is followed by a blank line and one signature line
// "— <key name> <base64(key hash || Ed25519 signature)>\n", as produced by
// note.Sign. The verifier key (see [LoadOrCreateKey]) is in note.NewVerifier's
// format, <name>+<hash>+<base64 key>.
//
// The stored frontier (store.Checkpoint.Frontier) is the concatenation of
// the roots of the tree's perfect subtrees from left (largest) to right
// (smallest): one 32-byte hash per set bit of the size, highest bit first.
// Folding it from the right with tlog.NodeHash yields the root, which is how
// [Open] checks it before resuming.
//
// # Verification and truncation
//
// [Verify] recomputes every leaf hash and every checkpoint's root from the
// entries, checks every checkpoint's signature, and classifies what it finds
// (see [Problem]). It reads every row of the log table, those with a
// negative sequence number too: such a row is at no position of the tree,
// but reads of a grant's entries return it, so it is reported as inserted. Deleting the newest entries together with their checkpoints
// leaves a shorter but self-consistent log; that is caught only by comparing
// with a checkpoint kept elsewhere, such as the witness file the Log writes
// after batches are stored (at most every 200 ms), which Verify accepts as
// its witness argument. Since that file can be deleted with the tail, package
// witness also sends every checkpoint to witnesses off the machine; a
// tlog-witness takes it only with an RFC 6962 consistency proof from the
// size it last saw, which [ProveConsistency] makes from that tree's frontier
// (stored with each checkpoint, or rebuilt from the entries) and the
// entries added since. The cosigned checkpoint they return is the signed
// note with their cosignature lines appended; note.Open, and so Verify,
// ignores those lines.
package auditlog
