package auditlog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// pinnedData encodes itself (an Appender, as a gateway's call does).
type pinnedData struct{ n int }

func (d *pinnedData) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"n":`...)
	b = append(b, byte('0'+d.n))
	return append(b, '}'), nil
}

// TestJournalFrameBytesPinned holds the bytes the writer puts in the
// journal for a fixed input: batches of one and of several entries,
// appended with Append and with AppendAsync, their data encoded by
// encoding/json and by an Appender. The frames (header, entries, seal)
// and the tree over the entries must not change when the writer's path
// does: replay and `audit verify --data-dir` read these bytes, and the
// leaf hashes are the log's. The figures were taken from the writer
// before its batches were built in reused buffers.
func TestJournalFrameBytesPinned(t *testing.T) {
	const (
		wantFrames = "009e2c3eabf857d87876630e6dcc3b002bad705bb171c348e82b032d0f563b6f"
		wantLen    = 1386
		wantRoot   = "10ed6f1826ad1292722e43bfde11c36c0c870f8e985e54ba8bd463421c15ae66"
	)
	f := newJournalFixture(t)
	o := f.opts()
	o.holdIndex = true
	l := f.mustOpen(t, o)
	at := time.Date(2026, 12, 6, 14, 0, 0, 123456789, time.UTC)
	ev := func(i int, data any) Event {
		return Event{Type: "session.call", Time: at.Add(time.Duration(i) * time.Millisecond), GrantID: "g_pin", SessionID: "s_pin", Actor: "bot", Data: data}
	}
	ctx := context.Background()
	for _, batch := range [][]Event{
		{ev(0, map[string]any{"a": 1, "b": "x"})},
		{ev(1, &pinnedData{1}), ev(2, map[string]any{"q": "SELECT 1"}), ev(3, nil)},
		{ev(4, &pinnedData{4})},
		{ev(5, &pinnedData{5}), ev(6, &pinnedData{6})},
	} {
		if err := l.Append(ctx, batch...); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.AppendAsync(ctx, ev(7, &pinnedData{7})).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	root, err := l.tree.root()
	if err != nil {
		t.Fatal(err)
	}
	var frames []byte
	for _, p := range f.segments(t) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; ; {
			n, _, ok := frameHeader(b[off:])
			if !ok {
				break
			}
			frames = append(frames, b[off:off+frameHeaderSize+n]...)
			off += frameHeaderSize + n
		}
	}
	sum := sha256.Sum256(frames)
	if hex.EncodeToString(sum[:]) != wantFrames || len(frames) != wantLen || hex.EncodeToString(root[:]) != wantRoot {
		t.Errorf("the journal's frames: %d bytes, SHA-256 %x, tree root %x; want %d bytes, %s, root %s\nframes: %x",
			len(frames), sum, root[:], wantLen, wantFrames, wantRoot, frames)
	}
}

// TestJournalBatchAllocs bounds a journal batch's allocations, the
// caller's and the writer's: an Append of eight events whose data encode
// themselves (an Appender, as a gateway's call) is the operation, its
// done channel, its events' slice and their eight buffers (each becomes
// its entry's bytes, kept until the store holds it), the batch's entries
// (kept by the indexer) and the tree's frontier for its checkpoint: 13.
// The writer's slice of claimed operations, new for every batch, and its
// entries grown one append at a time (4 slices for 8) were 4 more.
func TestJournalBatchAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation counts hold only without the race detector")
	}
	f := newJournalFixture(t)
	o := f.opts()
	o.holdIndex = true
	l := f.mustOpen(t, o)
	ctx := context.Background()
	evs := make([]Event, 8)
	for i := range evs {
		evs[i] = Event{Type: "session.call", GrantID: "g_1", SessionID: "s_1", Actor: "bot", Data: &pinnedData{i}}
	}
	if n := testing.AllocsPerRun(200, func() {
		if err := l.Append(ctx, evs...); err != nil {
			t.Fatal(err)
		}
	}); n > 13 {
		t.Errorf("an Append of 8 events allocates %v times, want at most 13", n)
	}
}

// TestAppendAsyncInAllocs: an asynchronous append whose Pending is in the
// caller's memory (AppendAsyncLiveIn) allocates one object fewer than
// AppendAsyncLive, which allocates its Pending with the operation in it:
// a one-entry batch is then the event's buffer, the operation's done
// channel, the batch's entries and the tree's frontier (4).
func TestAppendAsyncInAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation counts hold only without the race detector")
	}
	f := newJournalFixture(t)
	o := f.opts()
	o.holdIndex = true
	l := f.mustOpen(t, o)
	ctx := context.Background()
	ev := Event{Type: "session.call", GrantID: "g_1", SessionID: "s_1", Actor: "bot", Data: &pinnedData{1}}
	ps := make([]Pending, 200)
	i := 0
	in := testing.AllocsPerRun(len(ps)-1, func() {
		if err := l.AppendAsyncLiveIn(ctx, "g_1", &ps[i], ev).Wait(ctx); err != nil {
			t.Fatal(err)
		}
		i++
	})
	own := testing.AllocsPerRun(100, func() {
		if err := l.AppendAsyncLive(ctx, "g_1", ev).Wait(ctx); err != nil {
			t.Fatal(err)
		}
	})
	if in > 4 || own != in+1 {
		t.Errorf("an asynchronous append allocates %v times with its Pending given, %v without; want at most 4, and one more", in, own)
	}
}

// TestFrontierCopyFrom: a frontier copied over another (holding other
// hashes, as the writer's batch tree does from the batch before) is the
// same tree: the same root and encoding, and the same after more leaves.
func TestFrontierCopyFrom(t *testing.T) {
	leaf := func(i int) tlog.Hash { return tlog.RecordHash([]byte{byte(i), byte(i >> 8)}) }
	var src, dst frontier
	for i := range 300 {
		if err := dst.add(leaf(1000 + i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 {
		if i%37 == 0 || i == 199 {
			dst.copyFrom(&src)
			for k := range 5 {
				a, b := src, dst
				for j := range k {
					a.add(leaf(5000 + j))
					b.add(leaf(5000 + j))
				}
				ra, _ := a.root()
				rb, _ := b.root()
				if a.n != b.n || ra != rb || !bytes.Equal(a.marshal(), b.marshal()) {
					t.Fatalf("size %d, %d more leaves: copy's root %x, want %x", src.n, k, rb[:], ra[:])
				}
			}
		}
		if err := src.add(leaf(i)); err != nil {
			t.Fatal(err)
		}
	}
}
