package auditlog

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/jsonw"
	"github.com/airlock-dev/airlock/internal/store"
)

// Event is one thing that happened, to be recorded in the log.
type Event struct {
	// Type names the event, e.g. "grant.requested", "grant.approved",
	// "session.call", "policy.loaded", "identity.added". Required.
	Type string
	// Time is when it happened; the current time when zero. Stored in UTC.
	Time      time.Time
	GrantID   string
	SessionID string
	// Actor is who caused it ("alice", "log-triage-bot", "airlock" for the
	// system itself).
	Actor string
	// Data is JSON-marshalled into the entry's "data" member (omitted when
	// nil). It is normally a struct or map, marshalled to a JSON object.
	Data any
}

// encoded is an event encoded up to, but excluding, its sequence number: the
// entry bytes are `{"seq":N` + tail.
type encoded struct {
	time      time.Time
	typ       string
	grantID   string
	sessionID string
	// buf is seqRoom bytes of room, then tail: entry writes the leaf
	// prefix and `{"seq":N` into the room, so that the entry's bytes and
	// its leaf hash need no copy of the tail (a session's results entry
	// is tens of KiB).
	buf  []byte
	used bool // buf's room holds an entry already
}

// seqRoom is the room before an encoded tail: the leaf hash's 0x00 prefix,
// `{"seq":` and the longest int64 in decimal.
const seqRoom = 1 + len(seqPrefix) + 20

// tail is the entry's bytes after its sequence number.
func (e *encoded) tail() []byte { return e.buf[seqRoom:] }

// encodeEvent validates ev and encodes everything but its sequence number.
func encodeEvent(ev Event, now time.Time) (encoded, error) {
	if ev.Type == "" {
		return encoded{}, errors.New("auditlog: event without a type")
	}
	t := ev.Time
	if t.IsZero() {
		t = now
	}
	t = t.UTC()
	b := newEntryBuf()
	// An event whose data grows its buffer (GrowEntry, append) leaves
	// newEntryBuf's behind: only this call holds it, so it goes back
	// (below) rather than to the collector.
	first := b
	b = append(b, `,"time":"`...)
	b = appendTime(b, t) // RFC3339Nano; nothing in it to escape
	b = append(b, '"')
	b = append(b, `,"type":`...)
	b = appendString(b, ev.Type)
	if ev.GrantID != "" {
		b = append(b, `,"grant":`...)
		b = appendString(b, ev.GrantID)
	}
	if ev.SessionID != "" {
		b = append(b, `,"session":`...)
		b = appendString(b, ev.SessionID)
	}
	if ev.Actor != "" {
		b = append(b, `,"actor":`...)
		b = appendString(b, ev.Actor)
	}
	if ev.Data != nil {
		b = append(b, `,"data":`...)
		if a, ok := ev.Data.(Appender); ok {
			var err error
			if b, err = a.AppendJSON(b); err != nil {
				return encoded{}, fmt.Errorf("auditlog: event %s: encoding data: %w", ev.Type, err)
			}
		} else {
			d, err := json.Marshal(ev.Data)
			if err != nil {
				return encoded{}, fmt.Errorf("auditlog: event %s: encoding data: %w", ev.Type, err)
			}
			b = append(b, d...)
		}
	}
	b = append(b, '}')
	if &b[0] != &first[0] { // both hold seqRoom bytes at least
		if p, ok := entryBufOf(first).(*[entryBufSize]byte); ok {
			entryBufs.Put(p)
		}
	}
	return encoded{time: t, typ: ev.Type, grantID: ev.GrantID, sessionID: ev.SessionID, buf: b}, nil
}

// entryBufSize is an encoded event's buffer (newEntryBuf): room for a
// gateway call's usual entry, so that it is built without growing.
const entryBufSize = 512

// entryBufs are encoded events' buffers that the log has stored, for the
// next events' encoding (newEntryBuf): a new one for every event was the
// largest allocation of a statement under pgbench -S (512 of about 1,650
// bytes in BenchmarkRecorderStatement).
//
// Only the indexer puts a buffer back (dropJobs), once a store transaction
// holding its entry committed (and encodeEvent one its event's data grew
// out of, which it alone held); the writer handed it over (buildJournal,
// Log.bufs, push) and nothing else holds it by then:
//   - the operation that encoded it: buildJournal drops the operation's
//     reference (its evs[i].buf) as it numbers the entry, before the
//     operation's caller learns the outcome, and nothing reads an
//     operation's events after that on the journal's path;
//   - the entry's Data and LeafHash, which point into it: the journal
//     frame copies them (appendFrame); the writer's array of the batch is
//     cleared after push, which copies the entry into the indexer's queue,
//     whose places dropEntries clears; the store copies them into the
//     database and keeps nothing (store.Tx.AppendLog); Options.Rows must
//     keep nothing of them (review.StoreRows parses copies).
//
// A batch whose journal write failed, or whose entries never reach the
// store (a failing store, a stop), leaves its buffers to the collector;
// so do the events of a log without a journal, and buffers that grew to
// another size than entryBufSize or bigEntryBufSize (entryBufOf).
// TestEntryBuffersReusedAfterStore checks the handover under -race.
var entryBufs sync.Pool // of *[entryBufSize]byte

// newEntryBuf returns a buffer for an event's encoding: seqRoom bytes,
// their contents unspecified, with room for entryBufSize.
func newEntryBuf() []byte {
	if p, _ := entryBufs.Get().(*[entryBufSize]byte); p != nil {
		return p[:seqRoom]
	}
	return make([]byte, seqRoom, entryBufSize)
}

// bigEntryBufSize is the buffer of an event larger than an entry's usual
// (GrowEntry): a session's batch of results, 64 of about 170 bytes, for
// which the 512-byte buffer grew into one of about 11 KiB, made anew for
// every batch (167 bytes a pgbench statement in BenchmarkRecorderStatement).
const bigEntryBufSize = 16 << 10

// bigEntryBufs are such buffers that the log has stored, as entryBufs are
// the usual ones, handed over and put back the same way (dropBufs).
var bigEntryBufs sync.Pool // of *[bigEntryBufSize]byte

// GrowEntry is slices.Grow for an Appender whose encoding may be larger
// than an entry's usual (entryBufSize): b with room for n more bytes. A
// buffer that must grow beyond what it holds, to at most bigEntryBufSize,
// is one of the log's own (bigEntryBufs), with b's bytes copied in, which
// the log takes back once the store holds the entry, when b was an event's
// buffer (encodeEvent); otherwise it is the caller's, as slices.Grow's. b
// itself is left as it is (not put back: the caller may hold it).
func GrowEntry(b []byte, n int) []byte {
	if n <= cap(b)-len(b) {
		return b
	}
	if n < 0 || len(b)+n > bigEntryBufSize {
		return slices.Grow(b, n)
	}
	p, _ := bigEntryBufs.Get().(*[bigEntryBufSize]byte)
	if p == nil {
		p = new([bigEntryBufSize]byte)
	}
	return append(p[:0], b...)
}

// entryBufOf returns the array of b, an encoded event's buffer
// (encoded.buf), as a *[entryBufSize]byte or *[bigEntryBufSize]byte, if
// it is of either size: newEntryBuf's that did not grow, GrowEntry's, or
// one that grew by append to exactly either, which only this encoding
// holds. Only those may go back to their pool (dropBufs). An encoded
// buffer always starts at its array's start. A pointer in an interface
// costs no allocation.
func entryBufOf(b []byte) any {
	switch cap(b) {
	case entryBufSize:
		return (*[entryBufSize]byte)(b[:entryBufSize])
	case bigEntryBufSize:
		return (*[bigEntryBufSize]byte)(b[:bigEntryBufSize])
	}
	return nil
}

func encodeEvents(evs []Event) ([]encoded, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	now := time.Now()
	out := make([]encoded, len(evs))
	for i, ev := range evs {
		e, err := encodeEvent(ev, now)
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

// Appender is implemented by event data that encodes itself without
// reflection (gateway calls, on the hot path). AppendJSON must append
// exactly the bytes encoding/json would produce for the value, so that the
// entry format does not depend on which path encoded it.
type Appender interface {
	AppendJSON(b []byte) ([]byte, error)
}

// appendString appends s as a JSON string, as encoding/json encodes it.
func appendString(b []byte, s string) []byte { return jsonw.String(b, s) }

const seqPrefix = `{"seq":`

// entry builds the log entry with sequence number seq. The first call
// builds it in e's buffer, in the room before the tail, hashes it there
// (the leaf hash is SHA-256(0x00 || bytes), as tlog.RecordHash computes
// it) and keeps the hash in the buffer's spare capacity when it fits; a
// later call, which must not overwrite the entry handed out, copies.
func (e *encoded) entry(seq int64) store.LogEntry {
	var num [20]byte
	digits := strconv.AppendInt(num[:0], seq, 10)
	var in, leaf []byte // 0x00 || entry bytes; the leaf hash's home
	if !e.used {
		e.used = true
		in = e.buf[seqRoom-len(seqPrefix)-len(digits)-1:]
		in[0] = 0x00
		copy(in[1:], seqPrefix)
		copy(in[1+len(seqPrefix):], digits)
		if n := len(e.buf); cap(e.buf)-n >= sha256.Size {
			leaf = e.buf[n : n+sha256.Size : n+sha256.Size]
		}
	} else {
		tail := e.tail()
		in = make([]byte, 0, 1+len(seqPrefix)+len(digits)+len(tail))
		in = append(in, 0x00)
		in = append(in, seqPrefix...)
		in = append(in, digits...)
		in = append(in, tail...)
	}
	sum := sha256.Sum256(in)
	if leaf == nil {
		leaf = make([]byte, sha256.Size)
	}
	copy(leaf, sum[:])
	return store.LogEntry{
		Seq:       seq,
		Time:      e.time,
		Type:      e.typ,
		GrantID:   e.grantID,
		SessionID: e.sessionID,
		Data:      in[1:len(in):len(in)],
		LeafHash:  leaf,
	}
}

// entrySeq returns the sequence number written at the start of entry bytes
// (`{"seq":N,` or `{"seq":N}`), or ok=false if data does not start that way.
func entrySeq(data []byte) (seq int64, ok bool) {
	if len(data) < len(seqPrefix)+2 || string(data[:len(seqPrefix)]) != seqPrefix {
		return 0, false
	}
	i := len(seqPrefix)
	start := i
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		i++
	}
	digits := data[start:i]
	if len(digits) == 0 || len(digits) > 1 && digits[0] == '0' || i == len(data) || data[i] != ',' && data[i] != '}' {
		return 0, false
	}
	n, err := strconv.ParseInt(string(digits), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}
