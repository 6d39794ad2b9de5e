package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestGrantShowStreamsSessions: airlock grant show prints a grant's
// sessions a page at a time as the pages come, rather than reading every
// session first: when the second page is asked for, the first is already
// out. -o json is byte for byte what encoding the whole record at once
// printed ({"grant", "history", "sessions"}), for a grant with more
// sessions than a page; one whose later page fails is cut short (the JSON
// does not parse) and the command fails; a grant without sessions lists
// them as [] (null before).
func TestGrantShowStreamsSessions(t *testing.T) {
	at := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	g := reviewGrant(t)
	g.Reason = "<triage> & more" // escaped as the Encoder escapes it
	history := []httpapi.Event{
		{Seq: 3, Time: at, Type: "grant.requested", GrantID: "g_1", Entry: json.RawMessage(`{"actor":"log-triage-bot","data":{"reason":"<triage> & more"}}`)},
		{Seq: 4, Time: at, Type: "grant.activated", GrantID: "g_1", Entry: json.RawMessage(`{"actor":"policy"}`)},
	}
	var all []model.Session
	for i := range 5 {
		all = append(all, model.Session{ID: fmt.Sprintf("s_%02d", i), GrantID: "g_1", Identity: "log-triage-bot", Target: "aws-prod",
			StartedAt: at.Add(time.Duration(i) * time.Second), Calls: int64(i), Client: "10.0.0.1"})
	}
	const per = 2
	var out *testenv.LockedBuffer
	var mu sync.Mutex
	var sessions []model.Session // what the server holds
	failAfter := ""              // the cursor whose page fails
	var seen []string            // each page asked for, and what was printed by then
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/grants/g_1", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(httpapi.GrantResponse{Grant: g})
	})
	mux.HandleFunc("GET /v1/grants/g_1/history", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(httpapi.HistoryResponse{Events: history})
	})
	mux.HandleFunc("GET /v1/grants/g_1/sessions", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		after := r.URL.Query().Get("after")
		from := 0
		fmt.Sscan(after, &from)
		printed := strings.Count(out.String(), `"id": "s_`) + strings.Count(out.String(), "  session s_")
		seen = append(seen, fmt.Sprintf("%d:%d", from, printed))
		if after != "" && after == failAfter {
			http.Error(w, `{"error":{"code":"unavailable","message":"the store is gone"}}`, http.StatusServiceUnavailable)
			return
		}
		resp := httpapi.SessionsResponse{Sessions: sessions[from:min(from+per, len(sessions))]}
		if from+per < len(sessions) {
			resp.Next = fmt.Sprint(from + per)
		}
		json.NewEncoder(w).Encode(resp)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	show := func(args ...string) (int, string, string) {
		t.Helper()
		out = &testenv.LockedBuffer{}
		seen = nil
		var errOut bytes.Buffer
		env := map[string]string{EnvAddr: srv.URL, EnvToken: "k"}
		code := Main(context.Background(), append([]string{"grant", "show", "g_1"}, args...), out, &errOut, func(k string) string { return env[k] })
		return code, out.String(), errOut.String()
	}
	whole := func(sessions any) string {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"grant": g, "sessions": sessions, "history": history}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}

	sessions = all
	code, got, errOut := show("-o", "json")
	if code != 0 {
		t.Fatalf("grant show -o json: exit %d: %s", code, errOut)
	}
	if want := whole(all); got != want {
		t.Errorf("grant show -o json:\n%s\nwant, as the whole record printed at once:\n%s", got, want)
	}
	// Each page was asked for with the ones before it printed.
	if want := "0:0 2:2 4:4"; strings.Join(seen, " ") != want {
		t.Errorf("pages asked for (after:sessions printed by then) %v, want %s", seen, want)
	}

	code, got, errOut = show()
	if code != 0 {
		t.Fatalf("grant show: exit %d: %s", code, errOut)
	}
	if want := "0:0 2:2 4:4"; strings.Join(seen, " ") != want {
		t.Errorf("the table: pages asked for (after:sessions printed by then) %v, want %s", seen, want)
	}
	for _, s := range all {
		if !strings.Contains(got, "  session "+s.ID+" ") {
			t.Errorf("the table lacks %s:\n%s", s.ID, got)
		}
	}
	if i, j := strings.Index(got, "  session s_04"), strings.Index(got, "History (tamper-evident log):"); i < 0 || j < i || !strings.Contains(got[j:], "#4 ") {
		t.Errorf("the history does not follow the sessions:\n%s", got)
	}

	// A page that fails after the first were printed: cut short, and the
	// command fails.
	failAfter = "4"
	code, got, errOut = show("-o", "json")
	if code == 0 || !strings.Contains(errOut, "the store is gone") || !strings.Contains(got, `"id": "s_03"`) || json.Valid([]byte(got)) {
		t.Errorf("a failing last page: exit %d, stdout valid JSON %v, stderr %q\n%s", code, json.Valid([]byte(got)), errOut, got)
	}
	failAfter = ""

	sessions = nil
	code, got, errOut = show("-o", "json")
	if want := whole([]model.Session{}); code != 0 || got != want {
		t.Errorf("no sessions: exit %d, %s\n%s\nwant\n%s", code, errOut, got, want)
	}
}
