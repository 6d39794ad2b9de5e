package auditlog

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"runtime"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/testenv"
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
	f.Add(append([]byte("xALJ1"), good...))
	f.Add(append(craftedSegment(200), good...))
	f.Add(appendDataFrame(nil, []store.LogEntry{{Seq: 7, Data: []byte(`{"seq":7,"type":"a"}`)}}, testJournalKey))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := findFrame(b), findFrameByReading(b); got != want {
			t.Fatalf("findFrame: %d, want %d (the first offset readFrame does not answer errNoFrame)", got, want)
		}
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
		again := appendFrame(nil, es, testJournalKey)
		if string(b[:4]) == dataFrameMagic {
			again = appendDataFrame(nil, es, testJournalKey)
		}
		if !bytes.Equal(again, b[:n]) {
			t.Fatalf("accepted a frame that appendFrame would not write:\n%x\n%x", b[:n], again)
		}
	})
}

// appendDataFrame writes a frame of the journal's second format ("ALJ2"),
// as releases before the seal over leaf hashes did: the seal over the
// magic and the payload, entries' bytes included.
func appendDataFrame(buf []byte, entries []store.LogEntry, key []byte) []byte {
	start := len(buf)
	buf = appendFrameEntries(buf, dataFrameMagic, entries)
	m := hmac.New(sha256.New, key)
	m.Write(buf[start : start+4])
	m.Write(buf[start+frameHeaderSize:])
	return finishFrame(m.Sum(buf), start)
}

// findFrameByReading is findFrame's definition, in quadratic time: the
// first offset at which readFrame finds a frame whose checksum matches.
func findFrameByReading(b []byte) int {
	for i := range b {
		if _, _, err := readFrame(b[i:], JournalKeys{Seal: testJournalKey}); !errors.Is(err, errNoFrame) {
			return i
		}
	}
	return -1
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

// craftedSegment is a damaged segment that made findFrame quadratic: a
// frame header every 8 bytes (each one's checksum field the next one's
// magic), each claiming a payload that runs to the end of the segment, and
// no intact frame.
func craftedSegment(size int) []byte {
	b := make([]byte, size)
	for p := 0; p+frameHeaderSize <= size; p += 8 {
		copy(b[p:], frameMagic)
		binary.BigEndian.PutUint32(b[p+4:], uint32(size-p-frameHeaderSize))
	}
	return b
}

// TestFindFrameLinear: finding the first intact frame after a damaged one
// (replay, and audit verify --data-dir, on a damaged segment) takes time
// linear in the segment, whatever the damage: a crafted segment of 64 KiB
// may take at most 8 times as long as one of 16 KiB (it took 40 times as
// long, 8.6 s at 1 MiB, before findFrame derived each candidate's checksum
// from the prefixes'). It still finds the frame that follows the damage.
//
// Each run is timed by its thread's CPU: by the clock, on a loaded
// machine, the 64 KiB run (2 ms, 5 ms under -race) outlasts the
// scheduler's slice and waits descheduled in nearly every run while the
// 16 KiB one fits in it, and the best of 15 runs was still 12 to 70 times
// the smaller one's (10 failures in 10 under -race at load 16).
func TestFindFrameLinear(t *testing.T) {
	if raceOn {
		t.Skip("growth check: runs without the race detector (make test, Linear$)")
	}
	runtime.LockOSThread() // the thread's CPU time is the run's
	defer runtime.UnlockOSThread()
	good := appendFrame(nil, []store.LogEntry{{Seq: 7, Data: []byte(`{"seq":7,"type":"a"}`)}}, testJournalKey)
	sizes := []int{16 << 10, 64 << 10}
	best := make([]time.Duration, len(sizes))
	segs := make([][]byte, len(sizes))
	for i, size := range sizes {
		segs[i] = craftedSegment(size)
		if at := findFrame(append(bytes.Clone(segs[i]), good...)[1:]); at != size-1 {
			t.Fatalf("the intact frame after a crafted segment of %d bytes: found at %d, want %d", size, at, size-1)
		}
	}
	// The sizes take turns, so that both see the machine's load alike.
	for range 15 {
		for i, b := range segs {
			start, cpu := time.Now(), testenv.ThreadCPU()
			at := findFrame(b[1:])
			d := time.Since(start)
			if cpu >= 0 {
				d = testenv.ThreadCPU() - cpu
			}
			if best[i] == 0 || d < best[i] {
				best[i] = d
			}
			if at != -1 {
				t.Fatalf("found a frame at %d in a crafted segment of %d bytes", at, len(b))
			}
		}
	}
	if small, large := best[0], best[1]; large > 2*time.Millisecond && large > 8*small {
		t.Errorf("findFrame on a crafted segment took %v at 64 KiB against %v at 16 KiB: more than linear", large, small)
	}
}

// TestPrefixCRC: the CRC of every slice of a buffer, derived from its
// prefixes' CRCs, is the slice's own.
func TestPrefixCRC(t *testing.T) {
	b := make([]byte, 300<<10)
	for i := range b {
		b[i] = byte(i*7919 + i>>9)
	}
	pc := newPrefixCRC(b)
	for _, r := range [][2]int{{0, 0}, {0, 1}, {5, 5}, {3, 64}, {64, 128}, {1, 70000}, {63, 65}, {100, 300 << 10}, {0, 300 << 10}, {12345, 200000}, {70000, 70001}} {
		if got, want := pc.crc(r[0], r[1]), crc32.Checksum(b[r[0]:r[1]], castagnoli); got != want {
			t.Errorf("crc of [%d, %d): %08x, want %08x", r[0], r[1], got, want)
		}
	}
}
