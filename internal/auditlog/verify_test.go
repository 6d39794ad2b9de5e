package auditlog

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/internal/store"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// tamperer edits a stored log behind the Log's back, the way someone with
// write access to the database could.
type tamperer interface {
	entry(t *testing.T, seq int64) (data, leaf []byte)
	setEntry(t *testing.T, seq int64, data, leaf []byte)
	insertEntry(t *testing.T, seq int64, data, leaf []byte)
	deleteEntries(t *testing.T, from, to int64) // from <= seq < to
	// deleteCheckpointsAbove deletes the checkpoints covering more than size entries.
	deleteCheckpointsAbove(t *testing.T, size int64)
	// copyCheckpoint inserts a copy of checkpoint id as the newest.
	copyCheckpoint(t *testing.T, id int64)
	checkpointNote(t *testing.T, id int64) []byte
	setCheckpointNote(t *testing.T, id int64, note []byte)
	setCheckpointSize(t *testing.T, id, size int64)
	setCheckpointFrontier(t *testing.T, id int64, frontier []byte)
}

// fixture is a log made by appendFixture: batches of 1, 2, ..., 10 events,
// so 55 entries and 10 checkpoints with IDs 1..10 covering 1, 3, 6, 10, 15,
// 21, 28, 36, 45 and 55 entries.
const fixtureSize = 55

var fixtureCheckpointSizes = []int64{1, 3, 6, 10, 15, 21, 28, 36, 45, 55}

// fixtureCheckpointFor returns the ID of the first checkpoint covering seq.
func fixtureCheckpointFor(seq int64) int64 {
	i, _ := slices.BinarySearch(fixtureCheckpointSizes, seq+1)
	return int64(i + 1)
}

func appendFixture(t testing.TB, l *Log) {
	t.Helper()
	n := 0
	for b := 1; b <= 10; b++ {
		evs := make([]Event, b)
		for i := range evs {
			evs[i] = Event{Type: "test.event", Actor: "fixture", GrantID: "g_1", Data: map[string]int{"g": b, "i": n}}
			n++
		}
		if err := l.Append(context.Background(), evs...); err != nil {
			t.Fatal(err)
		}
	}
}

type tamperCase struct {
	name   string
	tamper func(t *testing.T, tp tamperer)
	// useWitness passes the witness file written before tampering.
	useWitness bool
	want       []Problem // each must be reported (Detail ignored; Seq/Checkpoint if >= 0 / != 0)
	// notWant lists kinds that must not be reported.
	notWant []string
}

func changeData(data []byte) []byte {
	return bytes.Replace(data, []byte(`"actor":"fixture"`), []byte(`"actor":"mallory"`), 1)
}

var tamperCases = []tamperCase{
	{
		name: "modified",
		tamper: func(t *testing.T, tp tamperer) {
			d, l := tp.entry(t, 20)
			tp.setEntry(t, 20, changeData(d), l)
		},
		want: []Problem{
			{Kind: KindModified, Seq: 20},
			{Kind: KindCheckpointMismatch, Seq: 15, Checkpoint: fixtureCheckpointFor(20)},
		},
		notWant: []string{KindDeleted, KindReordered, KindInserted},
	},
	{
		name: "modified-with-leaf-hash",
		tamper: func(t *testing.T, tp tamperer) {
			d, _ := tp.entry(t, 20)
			d = changeData(d)
			h := tlog.RecordHash(d)
			tp.setEntry(t, 20, d, h[:])
		},
		want:    []Problem{{Kind: KindCheckpointMismatch, Seq: 15, Checkpoint: fixtureCheckpointFor(20)}},
		notWant: []string{KindModified},
	},
	{
		name:    "deleted",
		tamper:  func(t *testing.T, tp tamperer) { tp.deleteEntries(t, 30, 31) },
		want:    []Problem{{Kind: KindDeleted, Seq: 30}, {Kind: KindCheckpointMismatch, Checkpoint: fixtureCheckpointFor(30), Seq: -1}},
		notWant: []string{KindModified, KindReordered},
	},
	{
		name: "reordered",
		tamper: func(t *testing.T, tp tamperer) {
			d10, _ := tp.entry(t, 10)
			d11, _ := tp.entry(t, 11)
			// Swap only the data, keeping each row's leaf hash.
			_, l10 := tp.entry(t, 10)
			_, l11 := tp.entry(t, 11)
			tp.setEntry(t, 10, d11, l10)
			tp.setEntry(t, 11, d10, l11)
		},
		want:    []Problem{{Kind: KindReordered, Seq: 10}, {Kind: KindReordered, Seq: 11}, {Kind: KindCheckpointMismatch, Checkpoint: fixtureCheckpointFor(11), Seq: -1}},
		notWant: []string{KindDeleted, KindInserted},
	},
	{
		name: "uncovered",
		tamper: func(t *testing.T, tp tamperer) {
			d := []byte(`{"seq":55,"time":"2025-01-01T00:00:00Z","type":"grant.approved","grant":"g_1","actor":"mallory"}`)
			h := tlog.RecordHash(d)
			tp.insertEntry(t, 55, d, h[:])
		},
		want:    []Problem{{Kind: KindUncovered, Seq: 55}},
		notWant: []string{KindModified, KindCheckpointMismatch, KindInserted},
	},
	{
		name: "inserted-copy",
		tamper: func(t *testing.T, tp tamperer) {
			d, l := tp.entry(t, 7)
			tp.insertEntry(t, 55, d, l)
		},
		want: []Problem{{Kind: KindInserted, Seq: 55}, {Kind: KindUncovered, Seq: 55}},
	},
	{
		// A row below 0 is at no position of the tree, but reads of its
		// grant's entries return it: the review showed it as history.
		name: "inserted-negative-seq",
		tamper: func(t *testing.T, tp tamperer) {
			d, _ := tp.entry(t, 7)
			d = bytes.Replace(d, []byte(`{"seq":7,`), []byte(`{"seq":-1,`), 1)
			h := tlog.RecordHash(d)
			tp.insertEntry(t, -1, d, h[:])
		},
		want:    []Problem{{Kind: KindInserted, Seq: -1}},
		notWant: []string{KindModified, KindCheckpointMismatch, KindDeleted, KindReordered, KindUncovered},
	},
	{
		name: "truncated",
		tamper: func(t *testing.T, tp tamperer) {
			tp.deleteEntries(t, 45, fixtureSize)
			tp.deleteCheckpointsAbove(t, 45)
		},
		useWitness: true,
		want:       []Problem{{Kind: KindTruncated, Seq: 45}},
		notWant:    []string{KindDeleted, KindCheckpointMismatch},
	},
	{
		name: "truncated-without-witness-goes-unnoticed",
		tamper: func(t *testing.T, tp tamperer) {
			tp.deleteEntries(t, 45, fixtureSize)
			tp.deleteCheckpointsAbove(t, 45)
		},
		want: nil,
	},
	{
		name: "deleted-at-end",
		tamper: func(t *testing.T, tp tamperer) {
			tp.deleteEntries(t, 50, fixtureSize)
		},
		want: []Problem{{Kind: KindDeleted, Seq: 50, Checkpoint: 10}},
	},
	{
		name:    "checkpoint-backwards",
		tamper:  func(t *testing.T, tp tamperer) { tp.copyCheckpoint(t, 3) },
		want:    []Problem{{Kind: KindCheckpointBackwards, Seq: -1, Checkpoint: 11}},
		notWant: []string{KindBadSignature, KindCheckpointMismatch},
	},
	{
		name: "bad-signature",
		tamper: func(t *testing.T, tp tamperer) {
			n := tp.checkpointNote(t, 5)
			i := bytes.LastIndexByte(n[:len(n)-1], ' ') + 8 // inside the signature's base64
			n[i] ^= 0x01
			tp.setCheckpointNote(t, 5, n)
		},
		want:    []Problem{{Kind: KindBadSignature, Seq: -1, Checkpoint: 5}},
		notWant: []string{KindCheckpointMismatch, KindModified},
	},
	{
		name: "note-body-changed",
		tamper: func(t *testing.T, tp tamperer) {
			n := tp.checkpointNote(t, 5)
			tp.setCheckpointNote(t, 5, bytes.Replace(n, []byte("\n15\n"), []byte("\n14\n"), 1))
		},
		want: []Problem{{Kind: KindBadSignature, Seq: -1, Checkpoint: 5}},
	},
	{
		name:   "checkpoint-size-column-changed",
		tamper: func(t *testing.T, tp tamperer) { tp.setCheckpointSize(t, 5, 14) },
		want:   []Problem{{Kind: KindBadSignature, Seq: -1, Checkpoint: 5}},
	},
	{
		name: "frontier-changed",
		tamper: func(t *testing.T, tp tamperer) {
			tp.setCheckpointFrontier(t, 10, bytes.Repeat([]byte{7}, 32*4))
		},
		want: []Problem{{Kind: KindCheckpointMismatch, Seq: -1, Checkpoint: 10}},
	},
}

// runTamperCases runs every tamper case on a fresh fixture log from
// newLog, which returns the store to verify (after the log was closed), a
// tamperer for it, and the witness file path.
func runTamperCases(t *testing.T, v note.Verifier, setup func(t *testing.T) (st func() store.Store, tp tamperer, witness string)) {
	for _, tc := range tamperCases {
		t.Run(tc.name, func(t *testing.T) {
			stf, tp, wpath := setup(t)
			// Untampered, the log verifies, with and without its witness.
			witness, err := os.ReadFile(wpath)
			if err != nil {
				t.Fatal(err)
			}
			rep := mustVerifyOK(t, stf(), v, witness)
			if rep.Size != fixtureSize || rep.Entries != fixtureSize || rep.Checkpoints != 10 {
				t.Fatalf("fixture report %+v", rep)
			}
			tc.tamper(t, tp)
			var w []byte
			if tc.useWitness {
				w = witness
			}
			rep, err = Verify(context.Background(), stf(), v, w)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range rep.Problems {
				t.Logf("%v", p)
			}
			if len(tc.want) == 0 {
				if !rep.OK {
					t.Fatalf("problems reported: %v", rep.Problems)
				}
				return
			}
			if rep.OK || rep.ProblemCount != int64(len(rep.Problems)) {
				t.Fatalf("OK=%v count=%d listed=%d", rep.OK, rep.ProblemCount, len(rep.Problems))
			}
			for _, w := range tc.want {
				if !slices.ContainsFunc(rep.Problems, func(p Problem) bool {
					return p.Kind == w.Kind && (w.Seq < 0 || p.Seq == w.Seq) && (w.Checkpoint == 0 || p.Checkpoint == w.Checkpoint)
				}) {
					t.Errorf("missing problem %+v", w)
				}
			}
			for _, k := range tc.notWant {
				if slices.ContainsFunc(rep.Problems, func(p Problem) bool { return p.Kind == k }) {
					t.Errorf("unexpected %s problem", k)
				}
			}
		})
	}
}

func TestVerifyDetectsTamperingFake(t *testing.T) {
	s, v := testKey(t)
	runTamperCases(t, v, func(t *testing.T) (func() store.Store, tamperer, string) {
		st := newFakeStore()
		wpath := filepath.Join(t.TempDir(), "witness")
		l := openLog(t, st, s, Options{WitnessPath: wpath})
		appendFixture(t, l)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		return func() store.Store { return st }, fakeTamperer{st}, wpath
	})
}

func TestVerifyWitness(t *testing.T) {
	s, v := testKey(t)
	st := newFakeStore()
	l := openLog(t, st, s, Options{})
	appendFixture(t, l)
	ctx := context.Background()

	// An older checkpoint is a fine witness; a forged or foreign one is not.
	older := st.cps[4].Note
	mustVerifyOK(t, st, v, older)

	other, _ := testKey(t)
	forged, err := note.Sign(&note.Note{Text: "airlock/test\n15\n" + tlog.Hash{}.String() + "\n"}, other)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(ctx, st, v, forged)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.Problems[0].Kind != KindBadSignature {
		t.Errorf("forged witness: %+v", rep.Problems)
	}

	// A validly signed witness of a different tree of the same or a smaller
	// size means the log was rewritten.
	for _, size := range []int64{15, fixtureSize} {
		w, err := note.Sign(&note.Note{Text: "airlock/test\n" + itoa(size) + "\n" + tlog.Hash{1}.String() + "\n"}, s)
		if err != nil {
			t.Fatal(err)
		}
		rep, err = Verify(ctx, st, v, w)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK || rep.Problems[0].Kind != KindCheckpointMismatch {
			t.Errorf("size %d: diverging witness: %+v", size, rep.Problems)
		}
	}
}

// TestVerifyOtherLogsCheckpoints: the log's key may sign the checkpoints
// of more than one log (a staging copy, a library user's second origin).
// One of another log, even of the same size and root, is no witness of
// this one and no checkpoint of it: each is reported, where before the
// witness passed and the checkpoint counted.
func TestVerifyOtherLogsCheckpoints(t *testing.T) {
	s, v := testKey(t)
	st := newFakeStore()
	l := openLog(t, st, s, Options{Origin: "airlock/prod"})
	appendFixture(t, l)
	ctx := context.Background()
	top := st.cps[len(st.cps)-1]
	mustVerifyOK(t, st, v, top.Note)
	elsewhere := func(cp store.Checkpoint) []byte {
		n, err := note.Sign(&note.Note{Text: "airlock/staging\n" + itoa(cp.Size) + "\n" + b64(cp.Root) + "\n"}, s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, opts := range []VerifyOptions{{Witness: elsewhere(top)}, {Witness: elsewhere(top), Origin: "airlock/prod"}} {
		rep, err := VerifyWith(ctx, st, v, opts)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK || rep.ProblemCount != 1 || rep.Problems[0].Kind != KindBadSignature || !strings.Contains(rep.Problems[0].Detail, `"airlock/staging"`) {
			t.Errorf("origin %q: a witness of another log: %+v", opts.Origin, rep.Problems)
		}
	}
	st.cps[3].Note = elsewhere(st.cps[3])
	rep, err := VerifyWith(ctx, st, v, VerifyOptions{Origin: "airlock/prod"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.ProblemCount != 1 || rep.Problems[0].Kind != KindBadSignature || rep.Problems[0].Checkpoint != st.cps[3].ID {
		t.Errorf("a checkpoint of another log among the log's: %+v", rep.Problems)
	}
	// The log's origin, if not given, is the one its newest checkpoint
	// names.
	if rep2, err := Verify(ctx, st, v, nil); err != nil || rep2.ProblemCount != 1 {
		t.Errorf("without an origin: %v, %+v", err, rep2.Problems)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestVerifyCapsProblems(t *testing.T) {
	s, v := testKey(t)
	st := newFakeStore()
	l := openLog(t, st, s, Options{})
	for i := range 300 {
		if err := l.Append(context.Background(), Event{Type: "x", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	for i := range st.entries {
		st.entries[i].LeafHash = make([]byte, 32)
	}
	rep, err := Verify(context.Background(), st, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != MaxProblems || rep.ProblemCount != 300 {
		t.Errorf("listed %d, counted %d", len(rep.Problems), rep.ProblemCount)
	}
}

func TestVerifyEmpty(t *testing.T) {
	_, v := testKey(t)
	rep := mustVerifyOK(t, newFakeStore(), v, nil)
	if rep.Size != 0 || rep.Entries != 0 || rep.Root != "" {
		t.Errorf("%+v", rep)
	}
}

type fakeTamperer struct{ s *fakeStore }

func (f fakeTamperer) idx(t *testing.T, seq int64) int {
	for i, e := range f.s.entries {
		if e.Seq == seq {
			return i
		}
	}
	t.Fatalf("no entry %d", seq)
	return -1
}

func (f fakeTamperer) cp(t *testing.T, id int64) *store.Checkpoint {
	for i := range f.s.cps {
		if f.s.cps[i].ID == id {
			return &f.s.cps[i]
		}
	}
	t.Fatalf("no checkpoint %d", id)
	return nil
}

func (f fakeTamperer) entry(t *testing.T, seq int64) ([]byte, []byte) {
	e := f.s.entries[f.idx(t, seq)]
	return bytes.Clone(e.Data), bytes.Clone(e.LeafHash)
}

func (f fakeTamperer) setEntry(t *testing.T, seq int64, data, leaf []byte) {
	i := f.idx(t, seq)
	f.s.entries[i].Data, f.s.entries[i].LeafHash = data, leaf
}

func (f fakeTamperer) insertEntry(t *testing.T, seq int64, data, leaf []byte) {
	f.s.entries = append(f.s.entries, store.LogEntry{Seq: seq, Data: data, LeafHash: leaf})
	slices.SortFunc(f.s.entries, func(a, b store.LogEntry) int { return int(a.Seq - b.Seq) })
}

func (f fakeTamperer) deleteEntries(t *testing.T, from, to int64) {
	f.s.entries = slices.DeleteFunc(f.s.entries, func(e store.LogEntry) bool { return e.Seq >= from && e.Seq < to })
}

func (f fakeTamperer) deleteCheckpointsAbove(t *testing.T, size int64) {
	f.s.cps = slices.DeleteFunc(f.s.cps, func(c store.Checkpoint) bool { return c.Size > size })
}

func (f fakeTamperer) copyCheckpoint(t *testing.T, id int64) {
	c := cloneCP(*f.cp(t, id))
	c.ID = f.s.nextCP
	f.s.nextCP++
	f.s.cps = append(f.s.cps, c)
}

func (f fakeTamperer) checkpointNote(t *testing.T, id int64) []byte {
	return bytes.Clone(f.cp(t, id).Note)
}

func (f fakeTamperer) setCheckpointNote(t *testing.T, id int64, n []byte) { f.cp(t, id).Note = n }

func (f fakeTamperer) setCheckpointSize(t *testing.T, id, size int64) { f.cp(t, id).Size = size }

func (f fakeTamperer) setCheckpointFrontier(t *testing.T, id int64, fr []byte) {
	f.cp(t, id).Frontier = fr
}

// hookStore runs before once, before the first scan of the log: a writer
// appending while Verify reads.
type hookStore struct {
	*fakeStore
	before func()
	once   sync.Once
}

func (h *hookStore) ScanLog(ctx context.Context, from, to int64, fn func(store.LogEntry) error) error {
	h.once.Do(h.before)
	return h.fakeStore.ScanLog(ctx, from, to, fn)
}

// Entries past the checkpoints Verify started from are accepted when a
// checkpoint written meanwhile covers them, but only if they hash to its
// root: someone who deletes the newest checkpoint and rewrites the entries
// it covered must not pass while the log keeps being appended to.
func TestVerifyUncoveredChecksLaterCheckpointRoot(t *testing.T) {
	s, v := testKey(t)
	st := newFakeStore()
	l := openLog(t, st, s, Options{})
	appendFixture(t, l)
	tp := fakeTamperer{st}
	tp.deleteCheckpointsAbove(t, 45)
	d, _ := tp.entry(t, 50)
	d = changeData(d)
	h := tlog.RecordHash(d)
	tp.setEntry(t, 50, d, h[:])

	hs := &hookStore{fakeStore: st, before: func() {
		if err := l.Append(context.Background(), Event{Type: "test.event"}); err != nil {
			t.Error(err)
		}
	}}
	rep, err := Verify(context.Background(), hs, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Logf("%v", p)
	}
	if rep.OK || !slices.ContainsFunc(rep.Problems, func(p Problem) bool { return p.Kind == KindCheckpointMismatch }) {
		t.Fatalf("rewritten entries under a checkpoint written during Verify: OK=%v %v", rep.OK, rep.Problems)
	}

	// Untampered, the same race verifies.
	st2 := newFakeStore()
	l2 := openLog(t, st2, s, Options{})
	appendFixture(t, l2)
	hs2 := &hookStore{fakeStore: st2, before: func() {
		if err := l2.Append(context.Background(), Event{Type: "test.event"}); err != nil {
			t.Error(err)
		}
	}}
	mustVerifyOK(t, hs2, v, nil)
}

// TestVerifyNamesSignedFork: a checkpoint signed by the log's key for the
// size of one already matched, with another root, is reported as what it
// is, two logs signed by the key, not as entries "55..54" that "were
// changed".
func TestVerifyNamesSignedFork(t *testing.T) {
	s, v := testKey(t)
	st := newFakeStore()
	appendFixture(t, openLog(t, st, s, Options{}))
	// The key's holder writes another log of the same size and stores its
	// newest checkpoint after the real one.
	other := newFakeStore()
	l := openLog(t, other, s, Options{})
	for i := range fixtureSize {
		if err := l.Append(context.Background(), Event{Type: "test.event", Actor: "mallory", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	fork := cloneCP(other.cps[len(other.cps)-1])
	if fork.Size != fixtureSize {
		t.Fatalf("fork of size %d", fork.Size)
	}
	fork.ID = st.nextCP
	st.cps = append(st.cps, fork)

	rep, err := Verify(context.Background(), st, v, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		t.Logf("%v", p)
	}
	if rep.OK || rep.ProblemCount != 1 {
		t.Fatalf("want one problem, got %d", rep.ProblemCount)
	}
	p := rep.Problems[0]
	if p.Kind != KindCheckpointMismatch || p.Checkpoint != fork.ID ||
		!strings.Contains(p.Detail, "checkpoint 10 signed root") || !strings.Contains(p.Detail, "signed two different logs") {
		t.Fatalf("problem %v", p)
	}
}
