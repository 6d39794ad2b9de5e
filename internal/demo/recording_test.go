package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestShowRecordingReadsEveryPage: the demo's check of the recording
// (the objects read, the calls refused, nothing else) reads every page of
// each session, as the server pages it. It read the first page only, so a
// refused call, or an object that should never have been read, logged
// after the first 1,000 events went unseen.
func TestShowRecordingReadsEveryPage(t *testing.T) {
	const filler = 6000 // more than a page of the most events
	refused := gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/billing/invoices.csv"}
	for _, tc := range []struct {
		name          string
		before, extra []gateway.Call // logged before the filler, and after it
		fail          string         // what the check says, "" if it passes
	}{
		{"the refused call on a later page", nil, []gateway.Call{refused}, ""},
		{"an object never read on a later page", []gateway.Call{refused},
			[]gateway.Call{{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/2026/11/25/worker.log", Allowed: true}},
			"shows an object that was never read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var events []httpapi.Event
			at := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
			add := func(c gateway.Call) {
				seq := int64(len(events) + 1)
				b, err := json.Marshal(map[string]any{"seq": seq, "type": "session.call", "data": c})
				if err != nil {
					t.Fatal(err)
				}
				events = append(events, httpapi.Event{Seq: seq, Time: at, Type: "session.call", Entry: b})
			}
			for _, c := range tc.before {
				add(c)
			}
			for range filler {
				add(gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/2026/11/25/api.log", Allowed: true})
			}
			for _, c := range tc.extra {
				add(c)
			}
			srv := httptest.NewServer(pagedSession(t, events))
			defer srv.Close()
			var out strings.Builder
			err := showRecording(context.Background(), &run{out: &out}, client.New(srv.URL, "alk_test"), "g_1")
			switch {
			case tc.fail == "" && err != nil:
				t.Fatalf("the check failed: %v", err)
			case tc.fail != "" && (err == nil || !strings.Contains(err.Error(), tc.fail)):
				t.Fatalf("the check: %v, want %q", err, tc.fail)
			}
			if n := strings.Count(out.String(), "\n"); tc.fail == "" && n != len(events)+1 {
				t.Errorf("%d lines printed, want every call and the verdict", n)
			}
		})
	}
}

// pagedSession serves grant g_1's one session s_1 of events, a page of
// limit events after the cursor at a time, as the API does.
func pagedSession(t *testing.T, events []httpapi.Event) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/grants/g_1/sessions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(t, w, httpapi.SessionsResponse{Sessions: []model.Session{{ID: "s_1", GrantID: "g_1"}}})
	})
	mux.HandleFunc("GET /v1/sessions/s_1", func(w http.ResponseWriter, r *http.Request) {
		after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
		limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
		if err != nil || limit <= 0 {
			limit = 1000
		}
		page := httpapi.SessionResponse{Session: model.Session{ID: "s_1", GrantID: "g_1"}}
		for _, e := range events {
			if e.Seq > after && len(page.Events) < limit {
				page.Events = append(page.Events, e)
			}
		}
		if n := len(page.Events); n > 0 && page.Events[n-1].Seq < events[len(events)-1].Seq {
			page.Next = fmt.Sprint(page.Events[n-1].Seq)
		}
		writeJSON(t, w, page)
	})
	return mux
}

func writeJSON(t *testing.T, w io.Writer, v any) {
	if err := json.NewEncoder(w).Encode(v); err != nil {
		t.Error(err)
	}
}
