package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/httpapi"
)

// TestWriteTranscript: batched results print under the requests they
// answer, whatever the order they were logged in; unpaired results print
// where their batch was logged.
func TestWriteTranscript(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ev := func(seq int64, typ, entry string) httpapi.Event {
		return httpapi.Event{Seq: seq, Time: at.Add(time.Duration(seq) * time.Millisecond), Type: typ, Entry: json.RawMessage(entry)}
	}
	events := []httpapi.Event{
		ev(1, "session.started", `{"type":"session.started","data":{"client":"c"}}`),
		ev(2, "session.call", `{"type":"session.call","data":{"kind":"request","action":"pg:select","resource":"db","allowed":true,"params":{"statement":"select 1","n":"1"}}}`),
		ev(3, "session.call", `{"type":"session.call","data":{"kind":"request","action":"pg:select","resource":"db","allowed":true,"params":{"statement":"select 2","n":"2"}}}`),
		ev(4, "session.results", `{"type":"session.results","data":{"results":[`+
			`{"kind":"result","action":"pg:select","allowed":true,"params":{"n":"2"},"status":"SELECT 1","rows":1},`+
			`{"kind":"result","action":"pg:select","allowed":true,"params":{"n":"1"},"status":"SELECT 1","rows":1,"error":"late"},`+
			`{"kind":"result","action":"pg:select","allowed":true,"params":{"n":"9"},"status":"SELECT 9"}]}}`),
	}
	var b bytes.Buffer
	writeTranscript(&b, events)
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	want := []string{"session.started", "SQL> select 1", "error: late", "SQL> select 2", "→ SELECT 1, 1 rows", "→ SELECT 9"}
	if len(lines) != len(want) {
		t.Fatalf("transcript has %d lines, want %d:\n%s", len(lines), len(want), b.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d %q does not contain %q\n%s", i, lines[i], w, b.String())
		}
	}
	// Each result names its batch entry and its place in it, so results
	// logged together are told apart.
	for i, ref := range map[int]string{2: "#4.2 ", 4: "#4.1 ", 5: "#4.3 "} {
		if !strings.HasPrefix(strings.TrimSpace(lines[i]), ref) {
			t.Errorf("result line %q does not start with %q", lines[i], ref)
		}
	}
}

// TestTranscriptShowsAlso: a call that touched several resources (a
// DynamoDB transaction over two tables, a copy's source) prints every one
// of them, as the console does; only the first was printed, and the
// parameters that may name the others are cut to a bound.
func TestTranscriptShowsAlso(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	events := []httpapi.Event{{Seq: 7, Time: at, Type: "session.call", Entry: json.RawMessage(`{"type":"session.call","data":{"kind":"request",` +
		`"action":"dynamodb:PutItem","resource":"arn:aws:dynamodb:us-east-1:111122223333:table/orders",` +
		`"also":["dynamodb:DeleteItem arn:aws:dynamodb:us-east-1:111122223333:table/audit"],"allowed":false,` +
		`"params":{"operation":"TransactWriteItems"},"error":"AccessDenied"}}`)}}
	var b bytes.Buffer
	writeTranscript(&b, events)
	if !strings.Contains(b.String(), "also dynamodb:DeleteItem arn:aws:dynamodb:us-east-1:111122223333:table/audit") {
		t.Errorf("the transcript leaves out the call's other resource:\n%s", b.String())
	}
}

// TestTranscriptMarksVoid: an entry a log.refused entry names (the API's
// "void") is not printed as a call made: its line says it was refused
// and not counted, in session show's transcript and in grant show's
// history.
func TestTranscriptMarksVoid(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	call := func(seq int64, n string, void bool) httpapi.Event {
		return httpapi.Event{Seq: seq, Time: at, Type: "session.call", Void: void, Entry: json.RawMessage(`{"type":"session.call","actor":"bot","data":{"kind":"request","action":"pg:select","resource":"db","allowed":true,"params":{"statement":"select ` + n + `","n":"` + n + `"}}}`)}
	}
	events := []httpapi.Event{call(2, "1", false), call(3, "2", true)}
	var b bytes.Buffer
	writeTranscript(&b, events)
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "✓ SQL> select 1") || strings.Contains(lines[0], "REFUSED") {
		t.Fatalf("transcript:\n%s", b.String())
	}
	if !strings.Contains(lines[1], "#3") || !strings.Contains(lines[1], "⊘ REFUSED") || strings.Contains(lines[1], "✓") {
		t.Errorf("the void call's line %q is not marked refused, or shows as allowed", lines[1])
	}
	b.Reset()
	printHistoryLines(&b, events)
	lines = strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 2 || strings.Contains(lines[0], "REFUSED") || !strings.Contains(lines[1], "⊘ REFUSED") {
		t.Errorf("history:\n%s", b.String())
	}
}
