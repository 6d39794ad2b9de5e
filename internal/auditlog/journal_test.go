package auditlog

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/internal/store"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var testJournalKey = bytes.Repeat([]byte{0x5a}, 32)

// journalFixture is a SQLite store with a journal directory and witness.
type journalFixture struct {
	dir, journal, witness string
	st                    store.Store
}

func newJournalFixture(t *testing.T) *journalFixture {
	t.Helper()
	dir := t.TempDir()
	return &journalFixture{
		dir: dir, journal: filepath.Join(dir, "journal"), witness: filepath.Join(dir, "witness"),
		st: openSQLite(t, filepath.Join(dir, "airlock.db")),
	}
}

func (f *journalFixture) opts() Options {
	return Options{Origin: "airlock/test", JournalDir: f.journal, JournalKey: testJournalKey, WitnessPath: f.witness}
}

func (f *journalFixture) open(t *testing.T, o Options) (*Log, error) {
	t.Helper()
	s, _ := fixedKey(t)
	return Open(context.Background(), f.st, s, o)
}

func (f *journalFixture) mustOpen(t *testing.T, o Options) *Log {
	t.Helper()
	l, err := f.open(t, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// crashWith appends events through a log whose entries never reach the
// store, then stops it, leaving them only in the journal, as a crash would.
func (f *journalFixture) crashWith(t *testing.T, batches ...[]Event) {
	t.Helper()
	o := f.opts()
	o.holdIndex = true
	l := f.mustOpen(t, o)
	for _, evs := range batches {
		if err := l.Append(context.Background(), evs...); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err == nil || !strings.Contains(err.Error(), "stay in the journal") {
		t.Fatalf("Close with held entries: %v, want an error saying they stay in the journal", err)
	}
}

// openHeld opens a log whose entries stay only in the journal, as a crash
// would leave them.
func (f *journalFixture) openHeld(t *testing.T) *Log {
	t.Helper()
	o := f.opts()
	o.holdIndex = true
	return f.mustOpen(t, o)
}

func (f *journalFixture) segments(t *testing.T) []string {
	t.Helper()
	ns, err := listSegments(f.journal)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, n := range ns {
		paths = append(paths, filepath.Join(f.journal, segmentName(n)))
	}
	return paths
}

func (f *journalFixture) verify(t *testing.T, wantSize int64) {
	t.Helper()
	w, err := os.ReadFile(f.witness)
	if err != nil {
		t.Fatal(err)
	}
	_, v := fixedKey(t)
	rep := mustVerifyOK(t, f.st, v, w)
	if rep.Size != wantSize {
		t.Fatalf("verified a log of %d entries, want %d", rep.Size, wantSize)
	}
}

var (
	fixedOnce sync.Once
	fixedS    note.Signer
	fixedV    note.Verifier
)

// fixedKey is one key for the whole test binary, so that a log reopened in
// a test is signed by the same key.
func fixedKey(t testing.TB) (note.Signer, note.Verifier) {
	fixedOnce.Do(func() { fixedS, fixedV = testKey(t) })
	return fixedS, fixedV
}

func events(n int, tag string) []Event {
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = Event{Type: "session.call", GrantID: "g_1", SessionID: "s_" + tag, Actor: "bot", Data: map[string]any{"i": i, "tag": tag}}
	}
	return evs
}

func TestJournalAppendSyncVerify(t *testing.T) {
	f := newJournalFixture(t)
	l := f.mustOpen(t, f.opts())
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if err := l.Append(context.Background(), events(1+i%3, fmt.Sprint(g))...); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	size := l.Size()
	if err := l.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, err := f.st.LogSize(context.Background())
	if err != nil || n != size {
		t.Fatalf("after Sync the store holds %d entries (%v), the log %d", n, err, size)
	}
	if got := l.Latest().Size; got != size {
		t.Fatalf("after Sync the newest checkpoint covers %d, want %d", got, size)
	}
	es, err := f.st.LogEntries(context.Background(), store.LogFilter{SessionID: "s_3"})
	if err != nil || len(es) != 99 {
		t.Fatalf("session s_3 has %d entries (%v), want 99", len(es), err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f.verify(t, size)
	if segs := f.segments(t); len(segs) != 0 {
		t.Fatalf("a clean Close left journal segments %v", segs)
	}
}

func TestJournalDoWaitsForJournaledEntries(t *testing.T) {
	f := newJournalFixture(t)
	l := f.mustOpen(t, f.opts())
	ctx := context.Background()
	for i := range 5 {
		if err := l.Append(ctx, events(2, "a")...); err != nil {
			t.Fatal(err)
		}
		var sizeInDo int64
		err := l.Do(ctx, func(ctx context.Context, tx store.Tx) ([]Event, error) {
			// The transaction must see every entry acknowledged before it.
			var err error
			sizeInDo, err = f.st.LogSize(ctx)
			return []Event{{Type: "grant.approved", GrantID: fmt.Sprint("g_", i), Actor: "alice"}}, err
		})
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(i*3 + 2); sizeInDo != want {
			t.Fatalf("round %d: the Do ran with %d entries in the store, want %d", i, sizeInDo, want)
		}
	}
	es := scanAll(t, f.st)
	for i, e := range es {
		want := "session.call"
		if i%3 == 2 {
			want = "grant.approved"
		}
		if e.Type != want || e.Seq != int64(i) {
			t.Fatalf("entry %d is %d %s, want %s", i, e.Seq, e.Type, want)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f.verify(t, 15)
}

func TestJournalReplayAfterCrash(t *testing.T) {
	f := newJournalFixture(t)
	// Some entries reach the store normally first.
	l := f.mustOpen(t, f.opts())
	if err := l.Append(context.Background(), events(3, "before")...); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f.crashWith(t, events(4, "x"), events(1, "y"), events(5, "z"))
	if n, _ := f.st.LogSize(context.Background()); n != 3 {
		t.Fatalf("the crashed log's entries reached the store: size %d", n)
	}
	l = f.mustOpen(t, f.opts())
	if l.Size() != 13 || l.Latest().Size != 13 {
		t.Fatalf("after replay: size %d, checkpoint %d, want 13", l.Size(), l.Latest().Size)
	}
	if err := l.Append(context.Background(), events(1, "after")...); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	es := scanAll(t, f.st)
	if len(es) != 14 || es[3].SessionID != "s_x" || es[12].SessionID != "s_z" || es[13].SessionID != "s_after" {
		t.Fatalf("replayed log: %d entries, %+v", len(es), es)
	}
	f.verify(t, 14)
}

func TestJournalTornTailIsDropped(t *testing.T) {
	f := newJournalFixture(t)
	f.crashWith(t, events(2, "a"), events(3, "b"))
	segs := f.segments(t)
	last := segs[len(segs)-1]
	b, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	// The end of the frames: the first zero run after them.
	end := bytes.Index(b, make([]byte, 64))
	torn := appendFrame(nil, []store.LogEntry{{Seq: 5, Data: []byte(`{"seq":5,"type":"x"}`)}}, testJournalKey)
	copy(b[end:], torn[:len(torn)-7]) // a write cut short by the crash
	if err := os.WriteFile(last, b, 0o600); err != nil {
		t.Fatal(err)
	}
	l := f.mustOpen(t, f.opts())
	if l.Size() != 5 {
		t.Fatalf("size %d after a torn tail, want the 5 acknowledged entries", l.Size())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f.verify(t, 5)
}

// rewriteFrame applies edit to the payload of the k'th frame of the newest
// segment and, if reseal, fixes its CRC (but not its seal, which needs the
// key) so that only the seal can catch the edit.
func rewriteFrame(t *testing.T, path string, k int, reseal bool, edit func(payload []byte)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	for i := 0; ; i++ {
		if string(b[off:off+4]) != frameMagic {
			t.Fatalf("no frame %d in %s", k, path)
		}
		n := int(binary.BigEndian.Uint32(b[off+4:]))
		if i == k {
			payload := b[off+frameHeaderSize : off+frameHeaderSize+n]
			edit(payload)
			if reseal {
				binary.BigEndian.PutUint32(b[off+8:], crc32.Checksum(payload, castagnoli))
			}
			break
		}
		off += frameHeaderSize + n
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestJournalRefusesAlteredJournal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reseal bool
		frame  int
		edit   func(p []byte)
		want   string
	}{
		{"entry-edited", true, 1, func(p []byte) {
			i := bytes.Index(p, []byte(`"tag":"b"`))
			p[i+7] = 'c'
		}, "seal does not match"},
		{"damaged-with-frames-after", false, 0, func(p []byte) { p[20] ^= 1 }, "with more frames after it"},
		{"renumbered", true, 1, func(p []byte) { p[7]++ }, "seal does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newJournalFixture(t)
			f.crashWith(t, events(2, "a"), events(3, "b"), events(1, "c"))
			segs := f.segments(t)
			rewriteFrame(t, segs[len(segs)-1], tc.frame, tc.reseal, tc.edit)
			_, err := f.open(t, f.opts())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "refusing to start") {
				t.Fatalf("Open: %v, want a refusal saying %q", err, tc.want)
			}
		})
	}
}

func TestJournalRefusesOtherKey(t *testing.T) {
	f := newJournalFixture(t)
	f.crashWith(t, events(2, "a"))
	o := f.opts()
	o.JournalKey = bytes.Repeat([]byte{1}, 32)
	if _, err := f.open(t, o); err == nil || !strings.Contains(err.Error(), "seal does not match") {
		t.Fatalf("Open with another key: %v", err)
	}
}

func TestJournalRotationAndMissingSegment(t *testing.T) {
	f := newJournalFixture(t)
	o := f.opts()
	o.SegmentSize = 4 << 10
	l := f.mustOpen(t, o)
	ctx := context.Background()
	for i := range 200 {
		if err := l.Append(ctx, events(1, fmt.Sprint(i))...); err != nil {
			t.Fatal(err)
		}
	}
	// A batch bigger than a segment gets a segment of its own.
	big := Event{Type: "session.call", Actor: "bot", Data: strings.Repeat("x", 10<<10)}
	if err := l.Append(ctx, big); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// Segments whose entries are all in the store are removed as the
	// indexer catches up: about 60 were written.
	if segs := f.segments(t); len(segs) > 3 {
		t.Fatalf("%d segments kept after the store caught up", len(segs))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f.verify(t, 201)

	// A crash with several segments, one of which is then lost.
	o.holdIndex = true
	l = f.mustOpen(t, o)
	for i := range 100 {
		if err := l.Append(ctx, events(1, fmt.Sprint(i))...); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	segs := f.segments(t)
	if len(segs) < 3 {
		t.Fatalf("only %d segments for 100 held entries", len(segs))
	}
	if err := os.Remove(segs[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.open(t, f.opts()); err == nil || !strings.Contains(err.Error(), "entries are missing") {
		t.Fatalf("Open without the oldest segment: %v", err)
	}
}

func TestJournalInUse(t *testing.T) {
	f := newJournalFixture(t)
	f.mustOpen(t, f.opts())
	if _, err := f.open(t, f.opts()); !errors.Is(err, ErrJournalInUse) {
		t.Fatalf("second Open: %v, want ErrJournalInUse", err)
	}
	s, _ := fixedKey(t)
	if _, err := ReplayJournal(context.Background(), f.st, s, f.journal, "airlock/test", JournalKeys{Seal: testJournalKey}, nil); !errors.Is(err, ErrJournalInUse) {
		t.Fatalf("ReplayJournal while open: %v, want ErrJournalInUse", err)
	}
}

func TestReplayJournalOffline(t *testing.T) {
	f := newJournalFixture(t)
	f.crashWith(t, events(4, "a"), events(2, "b"))
	s, _ := fixedKey(t)
	n, err := ReplayJournal(context.Background(), f.st, s, f.journal, "airlock/test", JournalKeys{Seal: testJournalKey}, nil)
	if err != nil || n != 6 {
		t.Fatalf("ReplayJournal: %d, %v; want 6 entries", n, err)
	}
	_, v := fixedKey(t)
	mustVerifyOK(t, f.st, v, nil)
	if segs := f.segments(t); len(segs) != 0 {
		t.Fatalf("segments left after replay: %v", segs)
	}
	// Nothing is replayed twice.
	l := f.mustOpen(t, f.opts())
	if l.Size() != 6 {
		t.Fatalf("size %d after reopening, want 6", l.Size())
	}
}

func TestJournalWriteFailureFailsClosed(t *testing.T) {
	f := newJournalFixture(t)
	l := f.mustOpen(t, f.opts())
	ctx := context.Background()
	if err := l.Append(ctx, events(1, "ok")...); err != nil {
		t.Fatal(err)
	}
	l.jr.cur.f.Close() // every write and sync to it now fails
	for i := range 2 {
		if err := l.Append(ctx, events(1, "lost")...); err == nil {
			t.Fatalf("append %d succeeded with a broken journal", i)
		}
	}
	if l.Size() != 1 {
		t.Fatalf("size %d after failed appends, want 1", l.Size())
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	es := scanAll(t, f.st)
	if len(es) != 1 || es[0].SessionID != "s_ok" {
		t.Fatalf("store holds %+v", es)
	}
}

// A frame whose write reached the disk but whose fdatasync failed is
// overwritten with zeros before its callers learn of the failure, so that
// it cannot come back at replay after a crash; the frames around it, in
// the same block, survive that rewrite.
func TestJournalFailedSyncIsZeroed(t *testing.T) {
	f := newJournalFixture(t)
	l := f.openHeld(t)
	ctx := context.Background()
	if err := l.Append(ctx, events(2, "before")...); err != nil {
		t.Fatal(err)
	}
	errSync := errors.New("injected fdatasync failure")
	fails := 1
	l.jr.syncErr = func() error { // the writer is idle: no batch in flight
		if fails > 0 {
			fails--
			return errSync
		}
		return nil
	}
	if err := l.Append(ctx, events(1, "lost")...); !errors.Is(err, errSync) {
		t.Fatalf("append with a failing fdatasync: %v", err)
	}
	if l.jr.broken != nil {
		t.Fatalf("the journal gave up although the frame was zeroed: %v", l.jr.broken)
	}
	// Before anything else is written where it was.
	for _, p := range f.segments(t) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(`"s_lost"`)) {
			t.Fatalf("the failed frame is still in %s", p)
		}
	}
	if err := l.Append(ctx, events(1, "after")...); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err == nil {
		t.Fatal("Close with held entries reported nothing")
	}
	l = f.mustOpen(t, f.opts())
	if l.Size() != 3 {
		t.Fatalf("size %d after replay, want 3 (2 before, 1 after)", l.Size())
	}
	for _, e := range scanAll(t, f.st) {
		if e.SessionID == "s_lost" {
			t.Fatalf("the failed append was replayed: %+v", e)
		}
	}
}

// Many small frames share blocks: each write rewrites the block it starts
// in, and every frame before it must survive, whole, for replay.
func TestJournalSmallFramesShareBlocks(t *testing.T) {
	f := newJournalFixture(t)
	l := f.openHeld(t)
	ctx := context.Background()
	const n = 100 // frames of about 130 bytes: several per block, some across blocks
	for i := range n {
		if err := l.Append(ctx, Event{Type: "c", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	if off := l.jr.cur.off; off < 2*blockSize {
		t.Fatalf("only %d bytes written; the test needs frames across several blocks", off)
	}
	l.Close()
	l = f.mustOpen(t, f.opts())
	if l.Size() != n {
		t.Fatalf("size %d after replay, want %d", l.Size(), n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f.verify(t, n)
}

// TestFrameMACReused: the writer seals every frame with one HMAC, reset
// for each (sealer); each frame is sealed as with a fresh HMAC under
// the key, whatever frames came before it, and replay takes it.
func TestFrameMACReused(t *testing.T) {
	s := newSealer(testJournalKey)
	for i, es := range [][]store.LogEntry{
		{{Seq: 3, Data: []byte(`{"seq":3,"type":"a"}`)}},
		{{Seq: 4, Data: []byte(`{"seq":4,"type":"b"}`)}, {Seq: 5, Data: []byte(`{"seq":5,"type":"c"}`)}},
		{{Seq: 6, Data: []byte(`{"seq":6,"type":"d"}`)}},
	} {
		got := s.appendFrame(nil, es)
		if want := appendFrame(nil, es, testJournalKey); !bytes.Equal(got, want) {
			t.Fatalf("frame %d sealed with the reused HMAC:\n%x\nwith a fresh one:\n%x", i, got, want)
		}
		fr, _, err := readFrame(got, JournalKeys{Seal: testJournalKey})
		if err != nil || fr.first != es[0].Seq || len(fr.entries) != len(es) {
			t.Fatalf("frame %d: read back first %d, %d entries, %v", i, fr.first, len(fr.entries), err)
		}
	}
}

// TestFrameSealOverLeafHashes: a frame's seal covers its format, first
// sequence number, count and each entry's length and leaf hash, not the
// entries' bytes again; replay computes the leaf hashes from the bytes, so
// an entry whose bytes changed (its CRC fixed) fails the seal, and hands
// replay the hashes it computed.
func TestFrameSealOverLeafHashes(t *testing.T) {
	es := []store.LogEntry{{Seq: 9, Data: []byte(`{"seq":9,"type":"a"}`)}, {Seq: 10, Data: []byte(`{"seq":10,"type":"bb"}`)}}
	b := appendFrame(nil, es, testJournalKey)
	if string(b[:4]) != frameMagic || frameMagic != "ALJ3" {
		t.Fatalf("frame written as %q", b[:4])
	}
	m := hmac.New(sha256.New, testJournalKey)
	m.Write([]byte("ALJ3"))
	m.Write(binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(nil, 9), 2))
	for _, e := range es {
		h := tlog.RecordHash(e.Data)
		m.Write(binary.BigEndian.AppendUint32(nil, uint32(len(e.Data))))
		m.Write(h[:])
	}
	if want := m.Sum(nil); !bytes.Equal(b[len(b)-sha256.Size:], want) {
		t.Fatalf("seal %x, want the HMAC over the leaf hashes %x", b[len(b)-sha256.Size:], want)
	}
	fr, _, err := readFrame(b, JournalKeys{Seal: testJournalKey})
	if err != nil || len(fr.hashes) != 2 || fr.hashes[1] != tlog.RecordHash(es[1].Data) {
		t.Fatalf("read back: %v, hashes %x", err, fr.hashes)
	}
	// A leaf hash given with the entry is the one sealed (the writer's,
	// computed as it hashed the entry for the tree).
	h := tlog.RecordHash(es[0].Data)
	es[0].LeafHash = h[:]
	if again := appendFrame(nil, es, testJournalKey); !bytes.Equal(again, b) {
		t.Fatalf("with the leaf hash given: %x, want %x", again, b)
	}
	// One byte of an entry changed, the CRC fixed: the seal fails.
	i := bytes.Index(b, []byte(`"bb"`))
	b[i+1] = 'c'
	binary.BigEndian.PutUint32(b[8:], crc32.Checksum(b[frameHeaderSize:], castagnoli))
	if _, _, err := readFrame(b, JournalKeys{Seal: testJournalKey}); err == nil || !strings.Contains(err.Error(), "seal does not match") {
		t.Fatalf("an entry's byte changed: %v, want a seal mismatch", err)
	}
}

// TestJournalReplaysSecondFormat: frames of the second format ("ALJ2", the
// seal over the entries' bytes), which releases before the seal over leaf
// hashes left in the journal at a crash, are still replayed; new frames are
// of the current format.
func TestJournalReplaysSecondFormat(t *testing.T) {
	f := newJournalFixture(t)
	f.crashWith(t, events(2, "a"), events(3, "b"))
	for _, p := range f.segments(t) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var out []byte
		off := 0
		for off+frameHeaderSize <= len(b) && string(b[off:off+4]) == frameMagic {
			fr, n, err := readFrame(b[off:], JournalKeys{Seal: testJournalKey})
			if err != nil {
				t.Fatal(err)
			}
			es := make([]store.LogEntry, len(fr.entries))
			for k, d := range fr.entries {
				es[k] = store.LogEntry{Seq: fr.first + int64(k), Data: d}
			}
			out = appendDataFrame(out, es, testJournalKey)
			off += n
		}
		if off == 0 {
			t.Fatalf("no frame in %s", p)
		}
		if len(out) != off { // the same layout, the seal as long
			t.Fatalf("rewritten frames are %d bytes, were %d", len(out), off)
		}
		copy(b, out)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	replayThenAppend(t, f, f.opts(), 5)
}

// TestFrameSealAllocs: the writer's frames are sealed without an
// allocation once its buffers have grown (the seal's input was an array
// moved to the heap for every frame, and a string converted for the
// HMAC's Write another).
func TestFrameSealAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation counts hold only without the race detector")
	}
	es := []store.LogEntry{{Seq: 4, Data: []byte(`{"seq":4,"type":"b"}`)}, {Seq: 5, Data: []byte(`{"seq":5,"type":"c"}`)}}
	for i := range es {
		h := tlog.RecordHash(es[i].Data)
		es[i].LeafHash = h[:]
	}
	s := newSealer(testJournalKey)
	buf := s.appendFrame(nil, es)
	if n := testing.AllocsPerRun(100, func() { buf = s.appendFrame(buf[:0], es) }); n != 0 {
		t.Errorf("sealing a frame allocates %v times, want 0", n)
	}
}
