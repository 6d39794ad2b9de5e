package grants_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

const (
	appObj  = "arn:aws:s3:::logs/app/2026/11/25/api.log"
	appDir  = "arn:aws:s3:::logs/app/"
	billObj = "arn:aws:s3:::logs/billing/invoices.csv"
)

func TestSessions(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, autoReq("10m"), model.Active)
	c := h.creds(bot, g.ID)
	var auth gateway.Authority = h.Svc.Authority()
	gg, err := auth.Authenticate(c.AccessKeyID, c.SecretAccessKey)
	if err != nil {
		t.Fatal(err)
	}
	ses, err := auth.StartSession(h.ctx, gg, "127.0.0.1:50000 aws-cli/2.15")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ses.ID, "s_") || ses.Grant != gg {
		t.Errorf("session %s grant %p", ses.ID, ses.Grant)
	}
	// The start is durable in the journal; its row is written with the
	// entry when the journal's copy stores it (review.StoreRows).
	if err := h.Log.Sync(h.ctx); err != nil {
		t.Fatal(err)
	}
	rec, err := h.St.Session(h.ctx, ses.ID)
	if err != nil {
		t.Fatalf("session not stored with its start: %v", err)
	}
	if rec.GrantID != g.ID || rec.Identity != bot || rec.Target != awsProd || rec.Client != "127.0.0.1:50000 aws-cli/2.15" || rec.StartedAt.IsZero() || !rec.EndedAt.IsZero() {
		t.Errorf("session record at start %+v", rec)
	}

	calls := []gateway.Call{
		{Kind: "request", Action: "s3:ListBucket", Resource: appDir, Allowed: true, Params: map[string]string{"prefix": "app/"}},
		{Kind: "result", Action: "s3:ListBucket", Resource: appDir, Allowed: true, Status: "200", BytesOut: 512},
		{Kind: "request", Action: "s3:GetObject", Resource: appObj, Allowed: true},
		{Kind: "result", Action: "s3:GetObject", Resource: appObj, Allowed: true, Status: "200", BytesIn: 10, BytesOut: 2048},
		{Kind: "request", Action: "s3:GetObject", Resource: appObj, Allowed: true},
		{Kind: "result", Action: "s3:GetObject", Resource: appObj, Allowed: true, Status: "200", BytesOut: 2048},
		{Kind: "request", Action: "s3:GetObject", Resource: billObj, Allowed: false, Status: "AccessDenied"},
	}
	for _, call := range calls {
		if err := gatewaytest.Record(h.ctx, ses, call); err != nil {
			t.Fatalf("record %+v: %v", call, err)
		}
	}
	wantUsed := []string{"s3:ListBucket " + appDir, "s3:GetObject " + appObj}
	rec = h.session(ses.ID)
	if rec.Calls != 3 || rec.Denied != 1 || rec.BytesIn != 10 || rec.BytesOut != 4608 || !slices.Equal(rec.Used, wantUsed) || !rec.EndedAt.IsZero() {
		t.Errorf("session record mid-way %+v", rec)
	}
	if err := ses.End(h.ctx); err != nil {
		t.Fatal(err)
	}
	size := h.logSize()
	if err := ses.End(h.ctx); err != nil || h.logSize() != size {
		t.Errorf("a second End: %v, log grew by %d", err, h.logSize()-size)
	}
	rec = h.session(ses.ID)
	if rec.EndedAt.IsZero() || rec.EndedAt.Before(rec.StartedAt) || rec.Calls != 3 {
		t.Errorf("session record at end %+v", rec)
	}

	ss, err := h.St.Sessions(h.ctx, g.ID)
	if err != nil || len(ss) != 1 || ss[0].ID != ses.ID {
		t.Fatalf("sessions of the grant: %v %v", ss, err)
	}
	u := h.grant(g.ID).Usage
	if u.Sessions != 1 || u.Calls != 3 || u.DeniedCalls != 1 || u.BytesIn != 10 || u.BytesOut != 4608 {
		t.Errorf("grant usage %+v", u)
	}
	if su := slices.Sorted(slices.Values(u.ScopeUsed)); !slices.Equal(su, slices.Sorted(slices.Values(wantUsed))) {
		t.Errorf("scope used %v", u.ScopeUsed)
	}

	// The recording, event by event.
	sp, err := h.Svc.Session(h.ctx, h.id(bot), ses.ID, grants.EventsQuery{})
	got, entries := sp.Session, sp.Entries
	if err != nil || got.ID != ses.ID {
		t.Fatal(err)
	}
	var types []string
	for _, e := range entries {
		types = append(types, e.Type)
		if e.GrantID != g.ID || e.SessionID != ses.ID {
			t.Errorf("entry %d: grant %q session %q", e.Seq, e.GrantID, e.SessionID)
		}
	}
	// Each request is an entry of its own; the results are batched into
	// session.results entries (one, unless the flusher ran between the
	// calls), all logged before session.ended.
	var calls4, results []map[string]any
	var others []string
	for _, e := range entries {
		switch e.Type {
		case "session.call":
			calls4 = append(calls4, entryData(t, e))
			others = append(others, e.Type)
		case "session.results":
			for _, r := range entryData(t, e)["results"].([]any) {
				results = append(results, r.(map[string]any))
			}
		default:
			others = append(others, e.Type)
		}
	}
	want := append(append([]string{"session.started"}, slices.Repeat([]string{"session.call"}, 4)...), "session.ended")
	if !slices.Equal(others, want) || types[len(types)-1] != "session.ended" || !slices.Contains(types, "session.results") {
		t.Fatalf("recording %v", types)
	}
	if d := calls4[0]; d["action"] != "s3:ListBucket" || d["resource"] != appDir || d["allowed"] != true {
		t.Errorf("first call entry %v", d)
	}
	if d := calls4[3]; d["allowed"] != false || d["resource"] != billObj {
		t.Errorf("denied call entry %v", d)
	}
	if len(results) != 3 || results[1]["bytes_out"] != float64(2048) {
		t.Errorf("results %v", results)
	}
	if d := entryData(t, entries[len(entries)-1]); d["calls"] != float64(3) || d["denied"] != float64(1) || d["grant_end"] != "" {
		t.Errorf("ended entry %v", d)
	}
	if _, err := h.Svc.Session(h.ctx, h.id(bot2), ses.ID, grants.EventsQuery{}); err == nil {
		t.Error("another agent can read the recording")
	}
	if _, err := h.Svc.Session(h.ctx, h.id(bob), ses.ID, grants.EventsQuery{}); err != nil {
		t.Errorf("a person reads the recording: %v", err)
	}
	if gs, err := h.Svc.GrantSessions(h.ctx, h.id(bot), g.ID, grants.SessionsQuery{}); err != nil || len(gs.Sessions) != 1 {
		t.Errorf("grant sessions %v %v", gs, err)
	}
	_, err = h.Svc.GrantSessions(h.ctx, h.id(bot2), g.ID, grants.SessionsQuery{})
	wantAPIErr(t, err, 404, apierr.CodeNotFound, "")
	if hist, err := h.Svc.History(h.ctx, h.id(alice), g.ID, grants.EventsQuery{}); err != nil || len(hist.Entries) != 4+len(entries) || hist.Next != 0 || hist.LogMismatch != nil {
		t.Errorf("history: %d entries, next %d, %q, %v", len(hist.Entries), hist.Next, hist.LogMismatch, err)
	}

	// Concurrent sessions and calls add up.
	var wg sync.WaitGroup
	sessions := make([]*gateway.Session, 4)
	for i := range sessions {
		s, err := h.Svc.Authority().StartSession(h.ctx, gg, fmt.Sprintf("client-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		sessions[i] = s
		for j := range 10 {
			wg.Go(func() {
				if err := gatewaytest.Record(h.ctx, s, gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: fmt.Sprintf("%s%d", appDir, j), Allowed: true, BytesOut: 1}); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	for _, s := range sessions {
		if err := s.End(h.ctx); err != nil {
			t.Fatal(err)
		}
		if rec := h.session(s.ID); rec.Calls != 10 || rec.BytesOut != 10 || len(rec.Used) != 10 {
			t.Errorf("concurrent session %s: %+v", s.ID, rec)
		}
	}
	if u := h.grant(g.ID).Usage; u.Sessions != 5 || u.Calls != 43 {
		t.Errorf("usage after concurrent sessions %+v", u)
	}

	// A session still open when the grant ends records why it ended, and
	// no new session starts on an ended grant.
	open, err := h.Svc.Authority().StartSession(h.ctx, gg, "late client")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Svc.End(h.ctx, h.id(bot), g.ID, "done"); err != nil {
		t.Fatal(err)
	}
	if err := open.End(h.ctx); err != nil {
		t.Fatal(err)
	}
	es := h.entries(g.ID)
	if d := entryData(t, es[len(es)-1]); es[len(es)-1].Type != "session.ended" || d["grant_end"] != "ended" {
		t.Errorf("last entry %s %v", es[len(es)-1].Type, d)
	}
	size, n := h.logSize(), len(h.grant(g.ID).Usage.ScopeUsed)
	if _, err := h.Svc.Authority().StartSession(h.ctx, gg, "too late"); !errors.Is(err, gateway.ErrNoGrant) {
		t.Errorf("session on an ended grant: %v", err)
	}
	if ss, _ := h.St.Sessions(h.ctx, g.ID); len(ss) != 6 || h.logSize() != size || len(h.grant(g.ID).Usage.ScopeUsed) != n {
		t.Errorf("a refused session was recorded: %d sessions", len(ss))
	}
}

// TestSessionRecordFailClosed: a call whose record could not be written is
// refused, and is not counted in the session's summary.
func TestSessionRecordFailClosed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, autoReq("10m"), model.Active)
	gg, err := h.Svc.Authority().Lookup(g.CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	ses, err := h.Svc.Authority().StartSession(h.ctx, gg, "client")
	if err != nil {
		t.Fatal(err)
	}
	call := gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: appObj, Allowed: true, BytesOut: 100}

	// The gateway's context ends (client gone) before the record is durable.
	cancelled, cancel := context.WithCancel(h.ctx)
	cancel()
	if err := gatewaytest.Record(cancelled, ses, call); err == nil {
		t.Fatal("a record that was never written returned nil")
	}
	if err := gatewaytest.Record(h.ctx, ses, gateway.Call{Kind: "request", Action: "s3:ListBucket", Resource: appDir, Allowed: true}); err != nil {
		t.Fatal(err)
	}
	rec := h.session(ses.ID)
	if rec.Calls != 1 || rec.BytesOut != 0 || slices.Contains(rec.Used, "s3:GetObject "+appObj) {
		t.Errorf("the refused call is counted: %+v", rec)
	}
	if n := len(h.entriesOfType("session.call")); n != 1 {
		t.Errorf("%d session.call entries", n)
	}

	// The log is closed: every recorded action is refused.
	if err := h.Log.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gatewaytest.Record(h.ctx, ses, call); err == nil {
		t.Error("Record after the log closed returned nil")
	}
	if _, err := h.Svc.Authority().StartSession(h.ctx, gg, "client"); err == nil {
		t.Error("StartSession after the log closed returned nil")
	}
	_, err = h.Svc.Request(h.ctx, h.id(bot), autoReq("5m"))
	wantAPIErr(t, err, 503, apierr.CodeUnavailable, "")
	_, err = h.Svc.Credentials(h.ctx, h.id(bot), g.ID)
	wantAPIErr(t, err, 503, apierr.CodeUnavailable, "")
	// A revoke that cannot be recorded still cuts the grant off.
	_, err = h.Svc.Revoke(h.ctx, h.id(alice), g.ID, "log is down")
	wantAPIErr(t, err, 503, apierr.CodeUnavailable, "")
	if !isClosed(gg.Done()) {
		t.Error("an unrecorded revoke left the grant live")
	}
	if rec := h.grant(g.ID); rec.Status != model.Active {
		t.Errorf("the store changed without a log entry: %s", rec.Status)
	}
	if n := h.grantCount(); n != 1 {
		t.Errorf("%d grants after a refused request", n)
	}
}

// TestSessionSummaryWrittenLazily: the per-call path does not rewrite the
// session row, but the row catches up on its own (the flusher), before any
// read through the service, and when the service closes.
func TestSessionSummaryWrittenLazily(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, autoReq("10m"), model.Active)
	ses := h.startSession(g, "client")
	call := gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: appObj, Allowed: true}
	if err := gatewaytest.Record(h.ctx, ses, call); err != nil {
		t.Fatal(err)
	}
	// The flusher writes it within a few intervals, with nobody reading.
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec, err := h.St.Session(h.ctx, ses.ID)
		if err == nil && rec.Calls == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stored summary never caught up: %+v %v", rec, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Close writes what is pending, so a restart finds every call counted.
	for range 3 {
		if err := gatewaytest.Record(h.ctx, ses, call); err != nil {
			t.Fatal(err)
		}
	}
	h.restart()
	rec, err := h.St.Session(h.ctx, ses.ID)
	if err != nil || rec.Calls != 4 {
		t.Fatalf("after close and restart the summary has %d calls (%v), want 4", rec.Calls, err)
	}
}

// TestOpenSessionsRecoveredAtStart: a session still open when Airlock
// stopped without ending it (a crash) is ended at start, at its last
// recorded event, with its summary counted again from the log, even when
// the stored row lagged.
func TestOpenSessionsRecoveredAtStart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, autoReq("10m"), model.Active)
	ses := h.startSession(g, "client")
	for _, c := range []gateway.Call{
		{Kind: "request", Action: "s3:GetObject", Resource: appObj, Allowed: true},
		{Kind: "result", Action: "s3:GetObject", Resource: appObj, Allowed: true, BytesOut: 42},
		{Kind: "request", Action: "s3:GetObject", Resource: billObj, Allowed: false},
	} {
		if err := gatewaytest.Record(h.ctx, ses, c); err != nil {
			t.Fatal(err)
		}
	}
	stored := h.session(ses.ID) // flushed: nothing pending at the restart
	// Make the stored row lag, as a crash between flushes would leave it.
	stale := stored
	stale.Calls, stale.Denied, stale.BytesOut, stale.Used = 0, 0, 0, nil
	if err := h.Log.Do(h.ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
		return nil, tx.PutSession(ctx, stale)
	}); err != nil {
		t.Fatal(err)
	}
	last := h.entries(g.ID)[len(h.entries(g.ID))-1].Time
	h.restart()

	rec, err := h.St.Session(h.ctx, ses.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.EndedAt.IsZero() || !rec.EndedAt.Equal(last) {
		t.Errorf("recovered session ended at %v, want its last event %v", rec.EndedAt, last)
	}
	if rec.Calls != 1 || rec.Denied != 1 || rec.BytesOut != 42 || !slices.Equal(rec.Used, []string{"s3:GetObject " + appObj}) {
		t.Errorf("recovered summary %+v, want what the log holds", rec)
	}
	ended := h.entriesOfType("session.ended")
	if len(ended) != 1 || entryData(t, ended[0])["recovered"] != true {
		t.Fatalf("want one recovered session.ended entry, got %d", len(ended))
	}
	// A second restart finds nothing left to recover.
	h.restart()
	if n := len(h.entriesOfType("session.ended")); n != 1 {
		t.Errorf("%d session.ended entries after a second restart", n)
	}
}

// TestSessionResultsBatched: results are logged in batches, with nobody
// reading, and every one of them counts in the summary.
func TestSessionResultsBatched(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, autoReq("10m"), model.Active)
	ses := h.startSession(g, "client")
	const n = 2*64 + 5
	for i := range n {
		req := gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: appObj, Allowed: true, Params: map[string]string{"request_id": fmt.Sprint(i)}}
		res := gateway.Call{Kind: "result", Action: "s3:GetObject", Resource: appObj, Allowed: true, Status: "200", BytesOut: 10, Params: map[string]string{"request_id": fmt.Sprint(i)}}
		if err := gatewaytest.Record(h.ctx, ses, req); err != nil {
			t.Fatal(err)
		}
		if err := gatewaytest.Record(h.ctx, ses, res); err != nil {
			t.Fatal(err)
		}
	}
	// Read the store directly, which flushes nothing.
	results := func() (batches, count int) {
		if err := h.Log.Sync(h.ctx); err != nil {
			t.Fatal(err)
		}
		es, err := h.St.LogEntries(h.ctx, store.LogFilter{SessionID: ses.ID})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Type == "session.results" {
				batches++
				count += len(entryData(t, e)["results"].([]any))
			}
		}
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if b, c := results(); c == n {
			if b < 2 {
				t.Fatalf("%d results in %d entries", c, b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the last results were never logged")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if rec := h.session(ses.ID); rec.Calls != n || rec.BytesOut != 10*n {
		t.Fatalf("summary %+v, want %d calls and %d bytes out", rec, n, 10*n)
	}
}

// TestSessionSummaryCountedInPlace records calls from several goroutines
// while the session's summary is read: the summary is counted in place
// (no copy of its Used list per call), so under -race this checks that
// every read gets a copy taken under the session's lock, and that a
// summary read earlier is not changed by calls counted after it.
func TestSessionSummaryCountedInPlace(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ses := h.startSession(h.request(bot, autoReq("10m"), model.Active), "client")
	if err := gatewaytest.Record(h.ctx, ses, gateway.Call{Kind: "request", Action: "s3:ListBucket", Resource: appDir, Allowed: true}); err != nil {
		t.Fatal(err)
	}
	early := h.session(ses.ID)
	const writers, each = 4, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				call := gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: fmt.Sprintf("%s%d/%d", appDir, w, i%3), Allowed: true}
				if err := gatewaytest.Record(h.ctx, ses, call); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 10 {
		_ = h.session(ses.ID)
	}
	wg.Wait()
	if !slices.Equal(early.Used, []string{"s3:ListBucket " + appDir}) {
		t.Errorf("a summary read earlier changed: %v", early.Used)
	}
	rec := h.session(ses.ID)
	if rec.Calls != 1+writers*each || len(rec.Used) != 1+writers*3 {
		t.Errorf("summary: %d calls, %d used (%v)", rec.Calls, len(rec.Used), rec.Used)
	}
}

// TestSessionsOfEndedGrantRecoveredAtStart: a crash between a grant's end
// (committed) and its sessions' (not yet written by their gateway) leaves
// sessions of a grant that is no longer open; the next start ends them
// too, at their last recorded event.
func TestSessionsOfEndedGrantRecoveredAtStart(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, autoReq("10m"), model.Active)
	ses := h.startSession(g, "client")
	if err := gatewaytest.Record(h.ctx, ses, gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: appObj, Allowed: true}); err != nil {
		t.Fatal(err)
	}
	h.session(ses.ID) // flushed
	// The revoke commits; no gateway is there to end the session (as if
	// the process died before its gateway wrote the end).
	if _, err := h.Svc.Revoke(h.ctx, h.id(alice), g.ID, "incident"); err != nil {
		t.Fatal(err)
	}
	if rec, err := h.St.Session(h.ctx, ses.ID); err != nil || !rec.EndedAt.IsZero() {
		t.Fatalf("before the restart the session is %+v, %v; want it open", rec, err)
	}
	h.restart()
	rec, err := h.St.Session(h.ctx, ses.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.EndedAt.IsZero() || rec.Calls != 1 {
		t.Fatalf("after the restart the ended grant's session is %+v; want it ended with its call", rec)
	}
	ended := h.entriesOfType("session.ended")
	if len(ended) != 1 || entryData(t, ended[0])["recovered"] != true {
		t.Fatalf("want one recovered session.ended entry, got %d", len(ended))
	}
}

// TestEntryTimesOnServiceClock: every entry of a grant and its session
// carries the service's time, the calls' and the credentials' too, not the
// machine's (as the log fills in for an event without one): among
// replicas the service's time is the one corrected to the database's
// clock, so an entry on the machine's clock would put a call of a
// replica whose clock is slow before its session started.
func TestEntryTimesOnServiceClock(t *testing.T) {
	h := newHarness(t, harnessOptions{Manual: true})
	h.fake.Advance(time.Hour) // an hour from the machine's clock
	g := h.request(bot, autoReq("10m"), model.Active)
	h.creds(bot, g.ID)
	ses := h.startSession(g, "127.0.0.1:1 agent")
	if err := ses.Request(h.ctx, gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::app-logs/x", Allowed: true}); err != nil {
		t.Fatal(err)
	}
	if err := ses.End(h.ctx); err != nil {
		t.Fatal(err)
	}
	for _, e := range h.entries(g.ID) {
		if !e.Time.Equal(h.fake.Now()) {
			t.Errorf("%s at %v; the service's clock reads %v", e.Type, e.Time, h.fake.Now())
		}
	}
}
