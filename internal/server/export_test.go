package server

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// TestExportKeepsOnlyTheDaysGrants: exporting one day keeps in memory the
// entries of the grants that may be live on it, not every entry of every
// grant of the account since the log began. It kept them all (a grant
// that ended a year before, one requested a year after, with all their
// recorded calls), to drop them only when the bundle was built.
func TestExportKeepsOnlyTheDaysGrants(t *testing.T) {
	const acct = "111122223333"
	day := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	seq := int64(0)
	entry := func(at time.Time, typ, grant, session, data string) store.LogEntry {
		e := store.LogEntry{Seq: seq, Data: fmt.Appendf(nil, `{"seq":%d,"time":%q,"type":%q,"grant":%q,"session":%q,"actor":"bot","data":%s}`,
			seq, at.Format(time.RFC3339Nano), typ, grant, session, data)}
		seq++
		return e
	}
	requested := func(at time.Time, g string) store.LogEntry {
		return entry(at, "grant.requested", g, "", fmt.Sprintf(`{"identity":"bot","identity_kind":"agent","target":"aws-prod","target_kind":"aws","account":%q,"scope":["s3:GetObject arn:aws:s3:::logs/*"],"duration":"1h0m0s","reason":"r"}`, acct))
	}
	ended := func(at time.Time, g string) store.LogEntry {
		return entry(at, "grant.ended", g, "", fmt.Sprintf(`{"at":%q,"by":"bot","status":"ended"}`, at.Format(time.RFC3339Nano)))
	}
	session := func(at time.Time, g, s string) []store.LogEntry {
		es := []store.LogEntry{entry(at, "session.started", g, s, `{"client":"aws-cli","target":"aws-prod"}`)}
		for range 50 {
			es = append(es, entry(at, "session.call", g, s, `{"kind":"request","action":"s3:GetObject","resource":"arn:aws:s3:::logs/a","allowed":true}`))
		}
		return append(es, entry(at, "session.ended", g, s, `{}`))
	}
	before, on, after := day.AddDate(-1, 0, 0), day.Add(10*time.Hour), day.AddDate(1, 0, 0)
	var log []store.LogEntry
	log = append(log, requested(before, "g_old"))
	log = append(log, session(before, "g_old", "s_old")...)
	log = append(log, ended(before.Add(time.Minute), "g_old"))
	log = append(log, requested(on, "g_day"))
	log = append(log, session(on, "g_day", "s_day")...)
	log = append(log, ended(on.Add(time.Minute), "g_day"))
	log = append(log, requested(after, "g_new"))
	log = append(log, session(after, "g_new", "s_new")...)

	w := newDayEntries(acct, day)
	for _, e := range log {
		if err := w.add(e); err != nil {
			t.Fatal(err)
		}
	}
	var kept []string
	for id := range w.entries {
		kept = append(kept, id)
	}
	slices.Sort(kept)
	if !slices.Equal(kept, []string{"g_day"}) || len(w.entries["g_day"]) != 54 {
		t.Fatalf("kept the entries of %v (%d of g_day), want g_day's 54 only", kept, len(w.entries["g_day"]))
	}
	if !w.mine["g_day"] || w.mine["g_old"] || w.mine["g_new"] {
		t.Fatalf("grants taken: %v", w.mine)
	}
}
