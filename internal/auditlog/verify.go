package auditlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/procpolicy"
	"github.com/airlock-dev/airlock/internal/store"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Problem kinds reported by Verify.
const (
	// KindModified: an entry's bytes no longer hash to the leaf hash stored
	// with it, or are not a well-formed entry.
	KindModified = "modified"
	// KindInserted: an entry carries a sequence number that another entry
	// already carries, or one past every signed checkpoint (or a row
	// sequence number appears twice, or is negative).
	KindInserted = "inserted"
	// KindDeleted: sequence numbers are missing, between entries or at the
	// end of the log below the size a checkpoint covers.
	KindDeleted = "deleted"
	// KindReordered: an entry sits at a position other than the sequence
	// number inside it.
	KindReordered = "reordered"
	// KindCheckpointMismatch: the entries do not hash to a checkpoint's
	// signed root (or to the witness's), or a checkpoint's stored frontier
	// does not hash to its root.
	KindCheckpointMismatch = "checkpoint-mismatch"
	// KindCheckpointBackwards: a checkpoint covers fewer entries than one
	// written before it.
	KindCheckpointBackwards = "checkpoint-backwards"
	// KindBadSignature: a checkpoint's (or the witness's) note is not
	// validly signed by the log's key, or does not state the size and root
	// stored with it.
	KindBadSignature = "bad-signature"
	// KindUncovered: entries past the newest signed checkpoint, which the
	// writer never leaves (it commits entries and their checkpoint together).
	KindUncovered = "uncovered"
	// KindTruncated: the witness checkpoint covers more entries than the
	// newest checkpoint in the store: entries and their checkpoints were
	// removed from the end.
	KindTruncated = "truncated"
	// KindRowMismatch: a row of the database (a grant, a session, an
	// identity) says something the log's entries do not imply; Detail
	// names the row and the answer, e.g. `grant g_x: reason is "routine",
	// log says "..."` or `identity bot: disabled is false, log says true`.
	KindRowMismatch = "row-mismatch"
	// KindJournal: the journal (entries not yet copied into the database)
	// does not continue the log.
	KindJournal = "journal"
)

// StateChecker rebuilds what the log implies (the review's rows) from the
// entries Verify walks, and compares it with the database's rows.
type StateChecker interface {
	// Entry is called for every entry in sequence order, with its exact
	// bytes (which the checker may keep).
	Entry(seq int64, data []byte)
	// Finish compares the derived state with the stored rows and returns
	// one description per difference.
	Finish(ctx context.Context) ([]string, error)
}

// StatePreparer is a StateChecker that reads what it needs from the store
// before the walk (review.Checker: the log.refused entries, which come
// after the entries they name); journal is VerifyOptions.Journal.
type StatePreparer interface {
	Prepare(ctx context.Context, journal []store.LogEntry) error
}

// VerifyOptions are Verify's optional inputs.
type VerifyOptions struct {
	// Witness is the newest checkpoint note kept outside the store (nil if
	// none). It may carry cosignatures of other keys, which are ignored.
	Witness []byte
	// Origin is the log's origin, the first line of its checkpoints. A
	// checkpoint or witness that names another is reported (bad-signature:
	// the key may sign several logs, and a checkpoint of another says
	// nothing about this one). Empty: the origin the store's newest
	// checkpoint names, if it is validly signed (else none is checked).
	Origin string
	// State, if set, is given every entry and then asked for the rows
	// that differ from the log.
	State StateChecker
	// Journal holds entries that follow the store's log but are only in
	// the journal (see ReadJournal): they have no signed checkpoint yet,
	// so they are checked to continue the log, counted in
	// Report.Journaled, and given to State.
	Journal []store.LogEntry
	// JournalErr is why the journal could not be read as a continuation
	// of the log (a bad seal, a gap); it is reported as a problem.
	JournalErr error
}

// MaxProblems is the most problems a Report lists; the rest are counted.
const MaxProblems = 100

// Problem is one finding of Verify.
type Problem struct {
	Kind string `json:"kind"`
	// Seq is the (first) entry concerned, or -1 if none.
	Seq int64 `json:"seq"`
	// Checkpoint is the ID of the checkpoint concerned, or 0 if none (the
	// witness is not stored, so it has no ID).
	Checkpoint int64  `json:"checkpoint"`
	Detail     string `json:"detail"`
}

func (p Problem) String() string {
	s := p.Kind
	if p.Seq >= 0 {
		s += fmt.Sprintf(" entry %d", p.Seq)
	}
	if p.Checkpoint != 0 {
		s += fmt.Sprintf(" checkpoint %d", p.Checkpoint)
	}
	return s + ": " + p.Detail
}

// Report is the outcome of Verify.
type Report struct {
	// Entries is the number of entries read; Checkpoints the number of
	// checkpoints checked.
	//
	// The JSON names are the API's (snake_case, durations in integer
	// nanoseconds under an _ns name, as a grant's duration_ns): the report
	// is GET /v1/audit/verify's answer and airlock audit verify -o json's.
	Entries     int64 `json:"entries"`
	Checkpoints int64 `json:"checkpoints"`
	// Journaled counts entries found only in the journal, not yet covered
	// by a signed checkpoint (offline verification after an unclean stop).
	Journaled int64 `json:"journaled,omitempty"`
	// Rows reports whether the database's rows were checked against the
	// log (VerifyOptions.State).
	Rows bool `json:"rows,omitempty"`
	// Size and Root (base64) are those of the largest validly signed
	// checkpoint: the tree that was verified. Root is empty if there is none.
	Size int64  `json:"size"`
	Root string `json:"root"`
	// Checkpoint is that checkpoint's signed note, for the caller to keep
	// as the witness of its next verification (audit verify --save-head).
	// Not in the API's answer, whose caller asks for the newest checkpoint
	// instead (GET /v1/audit/consistency).
	Checkpoint []byte `json:"-"`
	// OK is true when no problem was found.
	OK bool `json:"ok"`
	// Problems lists the first MaxProblems problems in the order found;
	// ProblemCount counts all of them.
	Problems     []Problem     `json:"problems"`
	ProblemCount int64         `json:"problem_count"`
	Elapsed      time.Duration `json:"elapsed_ns"`
}

// cpRec is one checkpoint as verification sees it.
type cpRec struct {
	id, size int64
	root     tlog.Hash
	note     []byte
	frontier []byte // set to nil unless it hashes to root
	sigErr   error  // why the checkpoint cannot be trusted; nil if valid
	done     chan struct{}
}

// Verify checks the whole log in st against its checkpoints, signed with the
// key v verifies, and against witness, the newest checkpoint note kept
// outside the store (nil if none).
//
// It streams the checkpoints in ID order, checking each one's signature (in
// parallel, ahead of use), that its note states the size and root stored
// with it, and that sizes never decrease. At the same time it streams every
// entry in sequence order, checking that sequence numbers are contiguous,
// that the sequence number inside each entry is its row's, and that each
// entry hashes to its stored leaf hash, while rebuilding the tree (keeping
// only its frontier) and comparing its root with every validly signed
// checkpoint when the tree reaches that checkpoint's size. After a mismatch
// it resumes from the checkpoint's stored frontier (authenticated by the
// signed root), so each problem is reported where it is. Entries past every
// validly signed checkpoint are reported as uncovered, unless a checkpoint
// written while Verify ran covers them and, read again, they hash to its
// root. Finally the witness, if given, must
// be validly signed, must not be ahead of the store's checkpoints, and must
// agree with the entries at its size.
//
// Memory use does not grow with the log. Verify works on the checkpoints
// present when it starts and may run while the log is being appended to.
// Its error is for failures to read the store (or ctx ending); what is wrong
// with the log is in the Report.
func Verify(ctx context.Context, st store.Store, v note.Verifier, witness []byte) (Report, error) {
	return VerifyWith(ctx, st, v, VerifyOptions{Witness: witness})
}

// VerifyWith is Verify with options: a witness, a check of the database's
// rows against what the log implies, and journaled entries.
func VerifyWith(ctx context.Context, st store.Store, v note.Verifier, opts VerifyOptions) (Report, error) {
	start := time.Now()
	vr := &verifier{v: v, state: opts.State, origin: opts.Origin}
	if sp, ok := opts.State.(StatePreparer); ok {
		if err := sp.Prepare(ctx, opts.Journal); err != nil {
			return Report{}, err
		}
	}
	if err := vr.run(ctx, st, opts.Witness); err != nil {
		return Report{}, err
	}
	if len(opts.Journal) > 0 {
		vr.journal(opts.Journal)
	}
	if opts.JournalErr != nil {
		vr.problem(KindJournal, -1, 0, "%s", strings.TrimPrefix(strings.ReplaceAll(opts.JournalErr.Error(), "refusing to start: ", ""), "auditlog: "))
	}
	if vr.state != nil {
		diffs, err := vr.state.Finish(ctx)
		if err != nil {
			return Report{}, err
		}
		for _, d := range diffs {
			vr.problem(KindRowMismatch, -1, 0, "%s", d)
		}
		vr.rep.Rows = true
	}
	vr.rep.OK = vr.rep.ProblemCount == 0
	vr.rep.Elapsed = time.Since(start)
	return vr.rep, nil
}

type verifier struct {
	rep    Report
	v      note.Verifier
	state  StateChecker
	origin string // the log's origin; "" checks none

	// checkpoint stream, in ID order
	cpc       <-chan *cpRec
	cpErr     error // the stream's read error, valid once cpc is closed
	head      *cpRec
	maxSeen   *cpRec // validly signed checkpoint with the largest size so far
	sizeHint  int64  // size of the newest checkpoint when Verify started
	witness   *checkpoint
	witnessOK bool // checked against the tree at its size

	// tree walk
	tree     frontier
	valid    bool  // tree holds the entries [0, pos)
	pos      int64 // next expected sequence number
	lastGood int64 // size of the last checkpoint the entries matched
	// lastGoodID is the checkpoint whose signed root the tree of size
	// lastGood has: the last one matched, or resumed from (0 if none).
	lastGoodID int64
	seen       []uint64
	unc        struct{ first, last, n int64 }
}

func (vr *verifier) problem(kind string, seq, cp int64, format string, args ...any) {
	vr.rep.ProblemCount++
	if len(vr.rep.Problems) < MaxProblems {
		vr.rep.Problems = append(vr.rep.Problems, Problem{Kind: kind, Seq: seq, Checkpoint: cp, Detail: fmt.Sprintf(format, args...)})
	}
}

var errStopScan = errors.New("stop")

const scanChunk = 512

func (vr *verifier) run(ctx context.Context, st store.Store, witness []byte) error {
	latest, err := st.LatestCheckpoint(ctx)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("auditlog: reading newest checkpoint: %w", err)
	}
	vr.sizeHint = latest.Size
	if vr.origin == "" && err == nil {
		if c, err := openCheckpoint(latest.Note, vr.v); err == nil {
			vr.origin = c.origin
		}
	}
	if witness != nil {
		w, err := openCheckpoint(witness, vr.v)
		switch {
		case err != nil:
			vr.problem(KindBadSignature, -1, 0, "witness checkpoint: %v", err)
		case vr.origin != "" && w.origin != vr.origin:
			vr.problem(KindBadSignature, -1, 0, "witness checkpoint: it is of the log %q, not %q: it (and any cosignature on it) says nothing about this log", w.origin, vr.origin)
		default:
			vr.witness = &w
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	vr.streamCheckpoints(ctx, &wg, st, latest.ID)

	// The scan hands chunks of entries to the walk, which runs alongside.
	chunks := make(chan []store.LogEntry, 8)
	// Walked chunks come back for reuse; only their entries' bytes are kept
	// (by the state checker).
	free := make(chan []store.LogEntry, 10)
	walkErr := make(chan error, 1)
	go func() {
		err := vr.walk(ctx, chunks, free)
		if err != nil {
			cancel()
		}
		walkErr <- err
	}()
	chunk := make([]store.LogEntry, 0, scanChunk)
	send := func() error {
		select {
		case chunks <- chunk:
			select {
			case chunk = <-free:
			default:
				chunk = make([]store.LogEntry, 0, scanChunk)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// The scan starts below 0: a row with a negative sequence number is at
	// no position of the tree, yet reads of its grant's or session's
	// entries return it (the review shows it as history), so it must be
	// seen to be reported.
	if ls, ok := st.(store.LogLeafScanner); ok {
		// Only the bytes and leaf hashes, which are ours to keep.
		err = ls.ScanLogLeaves(ctx, math.MinInt64, math.MaxInt64, func(seq int64, data, leaf []byte) error {
			chunk = append(chunk, store.LogEntry{Seq: seq, Data: data, LeafHash: leaf})
			if len(chunk) == scanChunk {
				return send()
			}
			return nil
		})
	} else {
		err = st.ScanLog(ctx, math.MinInt64, math.MaxInt64, func(e store.LogEntry) error {
			e.Data = bytes.Clone(e.Data)
			e.LeafHash = bytes.Clone(e.LeafHash)
			chunk = append(chunk, e)
			if len(chunk) == scanChunk {
				return send()
			}
			return nil
		})
	}
	if err == nil && len(chunk) > 0 {
		err = send()
	}
	close(chunks)
	werr := <-walkErr
	switch {
	case werr != nil:
		return werr
	case err != nil:
		return fmt.Errorf("auditlog: reading the log: %w", err)
	}

	if vr.unc.n > 0 {
		covered, err := vr.coveredLater(ctx, st, latest.ID)
		if err != nil {
			return err
		}
		if !covered {
			var top int64
			if vr.maxSeen != nil {
				top = vr.maxSeen.size
			}
			vr.problem(KindUncovered, vr.unc.first, 0, "%s past the newest validly signed checkpoint (size %d); the log never leaves entries without a checkpoint, so they were added behind its back", entriesText(vr.unc.first, vr.unc.last, vr.unc.n), top)
		}
	}

	var top checkpoint
	var topID int64
	if m := vr.maxSeen; m != nil {
		top, topID = checkpoint{size: m.size, root: m.root}, m.id
		vr.rep.Size = m.size
		vr.rep.Root = m.root.String()
		vr.rep.Checkpoint = m.note
	}
	if w := vr.witness; w != nil {
		switch {
		case w.size > top.size:
			vr.problem(KindTruncated, top.size, 0, "the witness checkpoint covers %d entries but the newest validly signed checkpoint in the store only %d: entries %d..%d and their checkpoints were removed", w.size, top.size, top.size, w.size-1)
		case w.size == top.size && w.size > 0 && !vr.witnessOK && top.root != w.root:
			vr.problem(KindCheckpointMismatch, -1, topID, "the witness checkpoint and checkpoint %d both cover %d entries but their roots differ (%s, %s): the log was rewritten", topID, w.size, w.root, top.root)
		}
	}
	return nil
}

// coveredLater reports whether the entries past the checkpoints Verify
// started from are covered by a checkpoint committed since (entries
// appended while Verify read come with one). Such a checkpoint is
// accepted only if it is validly signed and the entries from the newest
// checkpoint Verify checked up to its size, read again, hash with the
// tree checked so far to its root: otherwise deleting the newest
// checkpoint and rewriting the entries it covered would pass whenever the
// log is appended to during the check. A root that differs is reported.
func (vr *verifier) coveredLater(ctx context.Context, st store.Store, latestID int64) (bool, error) {
	l2, err := st.LatestCheckpoint(ctx)
	if err != nil || l2.ID <= latestID || l2.Size <= vr.unc.last {
		return false, nil
	}
	c, err := openCheckpoint(l2.Note, vr.v)
	if err != nil || c.size != l2.Size || !vr.valid {
		return false, nil
	}
	tree := vr.tree
	if tree.n > c.size {
		return false, nil
	}
	err = st.ScanLog(ctx, tree.n, c.size, func(e store.LogEntry) error {
		if e.Seq != tree.n {
			return errStopScan
		}
		if j, ok := entrySeq(e.Data); !ok || j != e.Seq {
			return errStopScan
		}
		return tree.add(tlog.RecordHash(e.Data))
	})
	switch {
	case errors.Is(err, errStopScan):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("auditlog: reading the log: %w", err)
	case tree.n != c.size:
		return false, nil
	}
	root, err := tree.root()
	if err != nil {
		return false, err
	}
	if root != c.root {
		vr.problem(KindCheckpointMismatch, vr.tree.n, l2.ID, "entries %d..%d hash to %s, not to the root %s signed in checkpoint %d (size %d), written while verifying: they were changed", vr.tree.n, c.size-1, root, c.root, l2.ID, c.size)
	}
	return true, nil
}

// entriesText describes n entries numbered first..last, with a verb.
func entriesText(first, last, n int64) string {
	switch {
	case n == 1:
		return fmt.Sprintf("entry %d is", first)
	case n == last-first+1:
		return fmt.Sprintf("entries %d..%d are", first, last)
	}
	return fmt.Sprintf("%d entries (%d..%d) are", n, first, last)
}

// streamCheckpoints starts reading the checkpoints with IDs up to last and
// checking their signatures on all CPUs; vr.cpc delivers them in ID order.
func (vr *verifier) streamCheckpoints(ctx context.Context, wg *sync.WaitGroup, st store.Store, last int64) {
	const ahead = 1024
	ordered := make(chan *cpRec, ahead)
	jobs := make(chan *cpRec, ahead)
	vr.cpc = ordered
	for range max(1, procpolicy.Procs()) {
		wg.Go(func() {
			for r := range jobs {
				vr.checkCheckpoint(r)
				close(r.done)
			}
		})
	}
	wg.Go(func() {
		defer close(ordered)
		defer close(jobs)
		err := st.ScanCheckpoints(ctx, func(c store.Checkpoint) error {
			if last == 0 || c.ID > last {
				return errStopScan
			}
			r := &cpRec{id: c.ID, size: c.Size, note: bytes.Clone(c.Note), frontier: bytes.Clone(c.Frontier), done: make(chan struct{})}
			if len(c.Root) == tlog.HashSize {
				r.root = tlog.Hash(c.Root)
			} else {
				r.sigErr = fmt.Errorf("its root column holds %d bytes, not a %d-byte hash", len(c.Root), tlog.HashSize)
			}
			for _, ch := range []chan *cpRec{jobs, ordered} {
				select {
				case ch <- r:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
		if err != nil && err != errStopScan {
			vr.cpErr = fmt.Errorf("auditlog: reading checkpoints: %w", err)
		}
	})
}

// checkCheckpoint verifies one checkpoint's signature, note and frontier.
func (vr *verifier) checkCheckpoint(r *cpRec) {
	// A valid one's note is kept while it is the largest seen (pull),
	// for Report.Checkpoint; the others' are dropped at once.
	defer func() {
		if r.sigErr != nil {
			r.note = nil
		}
	}()
	if r.sigErr != nil {
		return
	}
	c, err := openCheckpoint(r.note, vr.v)
	switch {
	case err != nil:
		r.sigErr = err
		return
	case c.size != r.size || c.root != r.root:
		r.sigErr = fmt.Errorf("the signed note states size %d and root %s, the checkpoint's columns size %d and root %s", c.size, c.root, r.size, r.root)
		return
	case vr.origin != "" && c.origin != vr.origin:
		r.sigErr = fmt.Errorf("the signed note is of the log %q, not %q", c.origin, vr.origin)
		return
	}
	f, err := parseFrontier(r.size, r.frontier)
	if err == nil {
		if root, err := f.root(); err == nil && root == r.root {
			return
		}
	}
	r.frontier = nil
}

// pull sets vr.head to the next validly signed checkpoint in ID order that
// does not go backwards (nil at the end), reporting the others.
func (vr *verifier) pull(ctx context.Context) error {
	for {
		var r *cpRec
		var ok bool
		select {
		case r, ok = <-vr.cpc:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !ok {
			vr.head = nil
			return vr.cpErr
		}
		select {
		case <-r.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		vr.rep.Checkpoints++
		if m := vr.maxSeen; m != nil && r.size < m.size {
			vr.problem(KindCheckpointBackwards, -1, r.id, "checkpoint %d covers %d entries, fewer than the %d of checkpoint %d before it", r.id, r.size, m.size, m.id)
			if r.sigErr != nil {
				vr.problem(KindBadSignature, -1, r.id, "checkpoint %d (size %d): %v", r.id, r.size, r.sigErr)
			}
			continue
		}
		if r.sigErr != nil {
			vr.problem(KindBadSignature, -1, r.id, "checkpoint %d (size %d): %v", r.id, r.size, r.sigErr)
			continue
		}
		if r.frontier == nil {
			vr.problem(KindCheckpointMismatch, -1, r.id, "the frontier stored with checkpoint %d (size %d) does not hash to its root", r.id, r.size)
		}
		if m := vr.maxSeen; m != nil {
			m.note = nil
		}
		vr.maxSeen = r
		vr.head = r
		return nil
	}
}

// walk checks the entries as they arrive, then the checkpoints left over.
func (vr *verifier) walk(ctx context.Context, chunks <-chan []store.LogEntry, free chan<- []store.LogEntry) error {
	if err := vr.pull(ctx); err != nil {
		return err
	}
	vr.valid = true
	if err := vr.boundary(ctx); err != nil {
		return err
	}
	for chunk := range chunks {
		for _, e := range chunk {
			if err := vr.entry(ctx, e); err != nil {
				return err
			}
		}
		clear(chunk)
		select {
		case free <- chunk[:0]:
		default:
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	// Checkpoints beyond the end of the log.
	if vr.head != nil {
		first := vr.head
		for vr.head != nil {
			if err := vr.pull(ctx); err != nil {
				return err
			}
		}
		top := vr.maxSeen
		vr.problem(KindDeleted, vr.pos, top.id, "the log ends at %d entries but checkpoint %d covers %d (and checkpoint %d, the newest, %d): entries %d..%d are missing", vr.pos, first.id, first.size, top.id, top.size, vr.pos, top.size-1)
	}
	return nil
}

// entry checks one entry and adds it to the tree.
func (vr *verifier) entry(ctx context.Context, e store.LogEntry) error {
	vr.rep.Entries++
	s := e.Seq
	if s < 0 {
		vr.problem(KindInserted, s, 0, "entry %d has a negative sequence number, which no position of the log has: it was added behind the log's back (reads of its grant's or session's entries include it)", s)
		return nil
	}
	if s < vr.pos {
		vr.problem(KindInserted, s, 0, "sequence number %d appears again after %d", s, vr.pos-1)
		return nil
	}
	if s > vr.pos {
		if s-vr.pos == 1 {
			vr.problem(KindDeleted, vr.pos, 0, "entry %d is missing", vr.pos)
		} else {
			vr.problem(KindDeleted, vr.pos, 0, "entries %d..%d (%d) are missing", vr.pos, s-1, s-vr.pos)
		}
		vr.valid = false
		vr.pos = s
		if err := vr.boundary(ctx); err != nil {
			return err
		}
	}
	leaf := vr.checkEntry(e)
	if vr.state != nil {
		vr.state.Entry(s, e.Data)
	}
	if vr.head == nil { // no signed checkpoint covers it
		if vr.unc.n == 0 {
			vr.unc.first = s
		}
		vr.unc.last = s
		vr.unc.n++
		vr.pos++
		return nil
	}
	if vr.valid {
		if err := vr.tree.add(leaf); err != nil {
			return err
		}
	}
	vr.pos++
	return vr.boundary(ctx)
}

// checkEntry checks one entry on its own and returns its recomputed leaf
// hash.
func (vr *verifier) checkEntry(e store.LogEntry) tlog.Hash {
	s := e.Seq
	leaf := tlog.RecordHash(e.Data)
	j, ok := entrySeq(e.Data)
	switch {
	case !ok:
		vr.problem(KindModified, s, 0, "entry %d is not a well-formed log entry", s)
	case j != s:
		if j > s && j >= vr.sizeHint || vr.isSeen(j) {
			vr.problem(KindInserted, s, 0, "entry %d holds the entry numbered %d, which is already present or was never signed", s, j)
		} else {
			vr.problem(KindReordered, s, 0, "entry %d holds the entry numbered %d", s, j)
		}
		vr.markSeen(j, s)
	case !bytes.Equal(leaf[:], e.LeafHash):
		vr.problem(KindModified, s, 0, "entry %d does not hash to the leaf hash stored with it", s)
		vr.markSeen(j, s)
	default:
		vr.markSeen(j, s)
	}
	return leaf
}

func (vr *verifier) isSeen(j int64) bool {
	if j < 0 || j/64 >= int64(len(vr.seen)) {
		return false
	}
	return vr.seen[j/64]&(1<<(j%64)) != 0
}

// markSeen records that sequence number j was found (in row s). Numbers far
// beyond both the row and the log's size are not tracked, so that a forged
// entry cannot make the bitmap huge.
func (vr *verifier) markSeen(j, s int64) {
	if j < 0 || j > max(s, vr.sizeHint) {
		return
	}
	w := j / 64
	if w >= int64(len(vr.seen)) {
		vr.seen = slices.Grow(vr.seen, int(w+1)-len(vr.seen))[:w+1]
	}
	vr.seen[w] |= 1 << (j % 64)
}

// boundary checks every checkpoint (and the witness) the tree has reached.
func (vr *verifier) boundary(ctx context.Context) error {
	var root tlog.Hash
	haveRoot := false
	for vr.head != nil && vr.head.size <= vr.pos {
		c := vr.head
		if err := vr.pull(ctx); err != nil {
			return err
		}
		switch {
		case c.size < vr.pos:
			vr.problem(KindCheckpointMismatch, vr.lastGood, c.id, "checkpoint %d (size %d) cannot be recomputed: entries it covers are missing", c.id, c.size)
			continue
		case !vr.valid:
			vr.problem(KindCheckpointMismatch, vr.lastGood, c.id, "checkpoint %d (size %d) cannot be recomputed: entries %d..%d are incomplete", c.id, c.size, vr.lastGood, c.size-1)
		default:
			if !haveRoot {
				var err error
				if root, err = vr.tree.root(); err != nil {
					return err
				}
				haveRoot = true
			}
			if root == c.root {
				vr.lastGood, vr.lastGoodID = c.size, c.id
				continue
			}
			if c.size == vr.lastGood && vr.lastGoodID != 0 {
				// No entry lies between the two: two signed roots for one
				// size, which only the key's holder can make. It read
				// "entries 35..34 hash to …: they were changed".
				vr.problem(KindCheckpointMismatch, -1, c.id, "checkpoint %d (size %d) signs root %s, but checkpoint %d signed root %s for the same size: the log's key signed two different logs (a fork)", c.id, c.size, c.root, vr.lastGoodID, root)
			} else {
				vr.problem(KindCheckpointMismatch, vr.lastGood, c.id, "entries %d..%d hash to %s, not to the root %s signed in checkpoint %d (size %d): they were changed", vr.lastGood, c.size-1, root, c.root, c.id, c.size)
			}
		}
		// Resume from the checkpoint's own frontier, authenticated by its
		// signed root, so later checkpoints are checked on their own.
		vr.valid = false
		haveRoot = false
		if c.frontier != nil {
			if f, err := parseFrontier(c.size, c.frontier); err == nil {
				vr.tree, vr.valid, vr.lastGood, vr.lastGoodID = f, true, c.size, c.id
			}
		}
	}
	if w := vr.witness; w != nil && w.size == vr.pos && w.size > 0 && vr.valid && !vr.witnessOK {
		if !haveRoot {
			var err error
			if root, err = vr.tree.root(); err != nil {
				return err
			}
		}
		vr.witnessOK = true
		if root != w.root {
			vr.problem(KindCheckpointMismatch, w.size, 0, "the witness checkpoint (size %d) has root %s but entries 0..%d hash to %s: the log was rewritten", w.size, w.root, w.size-1, root)
		}
	}
	return nil
}

// journal checks that the journaled entries continue the log exactly and
// hands them to the state checker.
func (vr *verifier) journal(es []store.LogEntry) {
	next := vr.pos
	for _, e := range es {
		j, ok := entrySeq(e.Data)
		if !ok || j != e.Seq || e.Seq != next {
			vr.problem(KindJournal, e.Seq, 0, "the journal holds entry %d where the log continues at %d", e.Seq, next)
			return
		}
		next++
		vr.rep.Journaled++
		if vr.state != nil {
			vr.state.Entry(e.Seq, e.Data)
		}
	}
}
