package console

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/httpapi"
)

// TestTranscriptMarksVoid: an entry a log.refused entry names (the API's
// "void": its caller was told it failed) is shown as refused, not as a
// call allowed or denied, and a grant's history marks it too.
func TestTranscriptMarksVoid(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	call := func(seq int64, allowed, void bool) httpapi.Event {
		a := "false"
		if allowed {
			a = "true"
		}
		return httpapi.Event{Seq: seq, Time: at, Type: "session.call", Void: void, Entry: json.RawMessage(`{"type":"session.call","data":{"kind":"request","action":"s3:GetObject","resource":"arn:aws:s3:::b/k","allowed":` + a + `}}`)}
	}
	ls := transcript([]httpapi.Event{call(1, true, false), call(2, true, true), call(3, false, true), call(4, false, false)})
	var kinds []string
	for _, l := range ls {
		kinds = append(kinds, l.Kind)
	}
	if want := []string{"allowed", "refused", "refused", "denied"}; len(kinds) != len(want) || kinds[0] != want[0] || kinds[1] != want[1] || kinds[2] != want[2] || kinds[3] != want[3] {
		t.Errorf("kinds %v, want %v", kinds, want)
	}
	grantEvent := httpapi.Event{Seq: 5, Time: at, Type: "grant.revoked", Void: true, Entry: json.RawMessage(`{"type":"grant.revoked","data":{}}`)}
	if h := history([]httpapi.Event{grantEvent}); len(h) != 1 || !h[0].Void {
		t.Errorf("history %+v: the void entry is not marked", h)
	}
}
