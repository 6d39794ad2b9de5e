package auditlog

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/airlock-dev/airlock/internal/jsonw"
	"github.com/airlock-dev/airlock/internal/store"
	"golang.org/x/mod/sumdb/tlog"
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
	tail      []byte
}

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
	// Room for a gateway call's usual entry, so that it is built without
	// growing.
	b := make([]byte, 0, 512)
	b = append(b, `,"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano) // nothing in it to escape
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
	return encoded{time: t, typ: ev.Type, grantID: ev.GrantID, sessionID: ev.SessionID, tail: b}, nil
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

// entry builds the log entry with sequence number seq.
func (e *encoded) entry(seq int64) store.LogEntry {
	data := make([]byte, 0, len(seqPrefix)+20+len(e.tail))
	data = append(data, seqPrefix...)
	data = strconv.AppendInt(data, seq, 10)
	data = append(data, e.tail...)
	h := tlog.RecordHash(data)
	return store.LogEntry{
		Seq:       seq,
		Time:      e.time,
		Type:      e.typ,
		GrantID:   e.grantID,
		SessionID: e.sessionID,
		Data:      data,
		LeafHash:  h[:],
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
