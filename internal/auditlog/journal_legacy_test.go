package auditlog

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/store"
)

var testLegacyKey = bytes.Repeat([]byte{0x3c}, 32)

// toLegacy rewrites every frame of the segment at path in the first format
// ("ALJ1", HMAC over the payload alone) sealed under key, as an earlier
// release (or whoever held the credential key) would have written it.
func toLegacy(t *testing.T, path string, key []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off+frameHeaderSize <= len(b) && string(b[off:off+4]) == frameMagic; {
		n := int(binary.BigEndian.Uint32(b[off+4:]))
		payload := b[off+frameHeaderSize : off+frameHeaderSize+n]
		body := payload[:n-sha256.Size]
		m := hmac.New(sha256.New, key)
		m.Write(body)
		copy(payload[n-sha256.Size:], m.Sum(nil))
		copy(b[off:], legacyFrameMagic)
		binary.BigEndian.PutUint32(b[off+8:], crc32.Checksum(payload, castagnoli))
		off += frameHeaderSize + n
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// replayThenAppend opens f's log with o, which must replay its journal
// into want entries, appends one more (a frame of the current format,
// under JournalKey) and closes it, and returns the newest checkpoint, which
// must cover them all.
func replayThenAppend(t *testing.T, f *journalFixture, o Options, want int64) store.Checkpoint {
	t.Helper()
	l := f.mustOpen(t, o)
	if l.Size() != want {
		t.Fatalf("replayed %d entries, want %d", l.Size(), want)
	}
	if err := l.Append(context.Background(), events(1, "c")...); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	cp, err := f.st.LatestCheckpoint(context.Background())
	if err != nil || cp.Size != want+1 {
		t.Fatalf("checkpoint %d, %v; want %d", cp.Size, err, want+1)
	}
	return cp
}

// Frames of the first format are sealed under a key derived from the
// credential key, which may be easier to reach than the signing key: replay
// takes those the store does not hold yet only when LegacyJournalTail says
// so, and checks each with LegacyJournalKey.
func TestJournalLegacyFrames(t *testing.T) {
	f := newJournalFixture(t)
	f.crashWith(t, events(2, "a"), events(3, "b"))
	for _, p := range f.segments(t) {
		toLegacy(t, p, testLegacyKey)
	}
	saved := filepath.Join(t.TempDir(), "journal")
	if err := os.CopyFS(saved, os.DirFS(f.journal)); err != nil {
		t.Fatal(err)
	}

	o := f.opts()
	if _, err := f.open(t, o); err == nil || !strings.Contains(err.Error(), "first format") {
		t.Fatalf("Open without the legacy key: %v, want a refusal naming the first format", err)
	}
	o.LegacyJournalKey = bytes.Repeat([]byte{9}, 32)
	o.LegacyJournalTail = true
	if _, err := f.open(t, o); err == nil || !strings.Contains(err.Error(), "seal does not match") {
		t.Fatalf("Open with another legacy key: %v, want a seal mismatch", err)
	}
	o.LegacyJournalKey, o.LegacyJournalTail = testLegacyKey, false
	if _, err := f.open(t, o); !errors.Is(err, ErrLegacyJournal) || !strings.Contains(err.Error(), "from entry 0 on") {
		t.Fatalf("Open without LegacyJournalTail: %v, want ErrLegacyJournal from entry 0", err)
	}
	if _, err := ReadJournal(saved, o.journalKeys(), store.Checkpoint{}); !errors.Is(err, ErrLegacyJournal) {
		t.Fatalf("ReadJournal without LegacyTail: %v, want ErrLegacyJournal", err)
	}

	o.LegacyJournalTail = true
	cp := replayThenAppend(t, f, o, 5)

	// Once the store holds them, legacy frames are only skipped (their
	// seals still checked), whatever LegacyJournalTail says.
	keys := JournalKeys{Seal: testJournalKey, Legacy: testLegacyKey}
	if es, err := ReadJournal(saved, keys, cp); err != nil || len(es) != 0 {
		t.Fatalf("ReadJournal of stored legacy frames: %d entries, %v", len(es), err)
	}
	keys.Legacy = bytes.Repeat([]byte{9}, 32)
	if _, err := ReadJournal(saved, keys, cp); err == nil || !strings.Contains(err.Error(), "seal does not match") {
		t.Fatalf("ReadJournal of stored legacy frames under another key: %v", err)
	}
}

// A frame of the current format relabelled as the first format is not
// taken under the legacy key, and the reverse is not taken under the
// current key: the seal covers the format.
func TestJournalFormatBoundToSeal(t *testing.T) {
	key := testJournalKey
	f := newJournalFixture(t)
	f.crashWith(t, events(1, "a"))
	seg := f.segments(t)[0]
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	relabel := func(magic string) []byte {
		c := bytes.Clone(b)
		copy(c, magic)
		return c
	}
	if _, _, err := readFrame(b, JournalKeys{Seal: key}); err != nil {
		t.Fatalf("the frame as written: %v", err)
	}
	if _, _, err := readFrame(relabel(legacyFrameMagic), JournalKeys{Seal: key, Legacy: key, LegacyTail: true}); err == nil || !strings.Contains(err.Error(), "seal does not match") {
		t.Fatalf("current frame relabelled ALJ1 under the same key: %v", err)
	}
	if _, _, err := readFrame(relabel(dataFrameMagic), JournalKeys{Seal: key}); err == nil || !strings.Contains(err.Error(), "seal does not match") {
		t.Fatalf("current frame relabelled ALJ2 under the same key: %v", err)
	}
	toLegacy(t, seg, key)
	if b, err = os.ReadFile(seg); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readFrame(relabel(frameMagic), JournalKeys{Seal: key, Legacy: key}); err == nil || !strings.Contains(err.Error(), "seal does not match") {
		t.Fatalf("legacy frame relabelled ALJ2 under the same key: %v", err)
	}
}
