package auditlog

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// TestEntryInPlace checks the entries built in the encoded event's own
// buffer: the bytes are `{"seq":N` and the tail, the leaf hash is
// tlog.RecordHash of them, and building the entry again (another seq)
// leaves the first one as it was.
func TestEntryInPlace(t *testing.T) {
	small := Event{Type: "session.call", Time: time.Unix(1, 0), GrantID: "g_1", SessionID: "s_1", Actor: "bot", Data: map[string]int{"n": 1}}
	big := small
	big.Data = map[string]string{"text": strings.Repeat("x", 5000)}
	for _, ev := range []Event{small, big} {
		for _, seq := range []int64{0, 7, 1 << 40, 1<<63 - 1} {
			enc, err := encodeEvents([]Event{ev})
			if err != nil {
				t.Fatal(err)
			}
			tail := bytes.Clone(enc[0].tail())
			check := func(what string, seq int64, data, leaf []byte) {
				t.Helper()
				want := append([]byte(seqPrefix+strconv.FormatInt(seq, 10)), tail...)
				if !bytes.Equal(data, want) {
					t.Errorf("%s entry %d: bytes %.60q..., want %.60q...", what, seq, data, want)
				}
				if h := tlog.RecordHash(want); !bytes.Equal(leaf, h[:]) {
					t.Errorf("%s entry %d: leaf hash %x, want %x", what, seq, leaf, h)
				}
			}
			e := enc[0].entry(seq)
			check("first", seq, e.Data, e.LeafHash)
			again := enc[0].entry(seq + 1)
			check("second", seq+1, again.Data, again.LeafHash)
			check("first after the second", seq, e.Data, e.LeafHash)
			if cap(e.Data) != len(e.Data) {
				t.Errorf("entry %d: Data has spare capacity %d: an append would overwrite its leaf hash", seq, cap(e.Data)-len(e.Data))
			}
		}
	}
	// A buffer without spare capacity for the hash.
	enc, err := encodeEvents([]Event{small})
	if err != nil {
		t.Fatal(err)
	}
	enc[0].buf = enc[0].buf[:len(enc[0].buf):len(enc[0].buf)]
	e := enc[0].entry(3)
	if h := tlog.RecordHash(e.Data); !bytes.Equal(e.LeafHash, h[:]) || !bytes.HasPrefix(e.Data, []byte(`{"seq":3,"time"`)) {
		t.Errorf("entry without spare capacity: %q %x", e.Data, e.LeafHash)
	}
}

// TestEntryAllocs: an event is encoded in one buffer (besides the slice
// of encoded events), and its entry and leaf hash are built in it.
func TestEntryAllocs(t *testing.T) {
	ev := Event{Type: "session.call", GrantID: "g_1", SessionID: "s_1", Actor: "bot", Data: rawJSON(`{"action":"s3:GetObject"}`)}
	n := testing.AllocsPerRun(100, func() {
		enc, err := encodeEvents([]Event{ev})
		if err != nil {
			t.Fatal(err)
		}
		_ = enc[0].entry(12345)
	})
	if n > 2 {
		t.Errorf("encoding an event and building its entry: %v allocations, want at most 2", n)
	}
}

type rawJSON string

func (r rawJSON) AppendJSON(b []byte) ([]byte, error) { return append(b, r...), nil }

// TestAppendAsyncAllocs bounds what a gateway's record costs its caller
// in allocations: AppendAsync of one event, queued on a log with no
// writer (what the writer and the store's copy allocate is not counted).
func TestAppendAsyncAllocs(t *testing.T) {
	l := &Log{}
	ctx := context.Background()
	ev := Event{Type: "session.call", GrantID: "g_1", SessionID: "s_1", Actor: "bot", Data: rawJSON(`{"action":"s3:GetObject"}`)}
	n := testing.AllocsPerRun(100, func() {
		if p := l.AppendAsync(ctx, ev); p.err != nil {
			t.Fatal(p.err)
		}
		clear(l.queue)
		l.queue = l.queue[:0]
	})
	const want = 3
	if n > want {
		t.Errorf("AppendAsync of one event: %v allocations, want at most %d", n, want)
	}
}
