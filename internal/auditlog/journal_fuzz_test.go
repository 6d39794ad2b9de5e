package auditlog

import (
	"bytes"
	"errors"
	"testing"

	"github.com/airlock-dev/airlock/internal/store"
)

// FuzzReadFrame: whatever a segment holds (a crash's leftovers, or an
// attacker's bytes), decoding a frame never panics, never reads past the
// buffer, and accepts only what appendFrame wrote with the same key.
func FuzzReadFrame(f *testing.F) {
	good := appendFrame(nil, []store.LogEntry{{Seq: 7, Data: []byte(`{"seq":7,"type":"a"}`)}, {Seq: 8, Data: []byte(`{"seq":8,"type":"b"}`)}}, testJournalKey)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(append(bytes.Clone(good), good...))
	f.Add([]byte(frameMagic + "\xff\xff\xff\xff\x00\x00\x00\x00"))
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := readFrame(b, JournalKeys{Seal: testJournalKey})
		if err != nil {
			if n != 0 || fr.entries != nil {
				t.Fatalf("failed read returned size %d and %d entries", n, len(fr.entries))
			}
			return
		}
		if n < frameHeaderSize || n > len(b) || len(fr.entries) == 0 {
			t.Fatalf("read a frame of %d bytes with %d entries from %d bytes", n, len(fr.entries), len(b))
		}
		// An accepted frame is exactly what appendFrame writes for it.
		es := make([]store.LogEntry, len(fr.entries))
		for i, d := range fr.entries {
			es[i] = store.LogEntry{Seq: fr.first + int64(i), Data: d}
		}
		if again := appendFrame(nil, es, testJournalKey); !bytes.Equal(again, b[:n]) {
			t.Fatalf("accepted a frame that appendFrame would not write:\n%x\n%x", b[:n], again)
		}
		findFrame(b, JournalKeys{Seal: testJournalKey})
	})
}

func TestFrameRoundTrip(t *testing.T) {
	es := []store.LogEntry{{Seq: 41, Data: []byte(`{"seq":41}`)}, {Seq: 42, Data: []byte{}}, {Seq: 43, Data: bytes.Repeat([]byte("x"), 70000)}}
	b := appendFrame([]byte("junk"), es, testJournalKey)[4:]
	fr, n, err := readFrame(append(b, 0, 0, 0), JournalKeys{Seal: testJournalKey})
	if err != nil || n != len(b) || fr.first != 41 || len(fr.entries) != 3 || !bytes.Equal(fr.entries[2], es[2].Data) || len(fr.entries[1]) != 0 {
		t.Fatalf("round trip: %v, size %d of %d, %+v", err, n, len(b), fr.first)
	}
	if _, _, err := readFrame(b, JournalKeys{Seal: bytes.Repeat([]byte{1}, 32)}); err == nil || errors.Is(err, errNoFrame) {
		t.Fatalf("another key: %v, want a seal error", err)
	}
}
