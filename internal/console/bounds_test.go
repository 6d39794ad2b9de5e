package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestRecordingPagesBounded: the grant and session pages render a bounded
// part of a big recording and say what they left out. They rendered every
// call of every session, the grant page twice (transcripts and history),
// buffered whole: a grant whose agent made a million calls took
// gigabytes to show. The grant page shows 100 lines of each inline
// transcript, 200 sessions and a page of 1,000 history rows (its own
// entries, not its sessions'; ?after= pages on); a session page 5,000
// lines, ?after= pages on.
func TestRecordingPagesBounded(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	g := e.request("log-triage-bot", autoScope, "10m", "a busy agent")
	bot := e.identity("log-triage-bot")
	// 1,001 credential fetches: each is a history entry of the grant.
	// Fetched by several callers at once, as agents do, so that the log
	// writes them in a few batches rather than one durable batch each;
	// their order among themselves is nothing the pages show.
	inParallel(t, 1001, func(int) error {
		_, err := e.srv.Service.Credentials(ctx, bot, g.ID)
		return err
	})
	gg, err := e.srv.Service.Authority().Lookup(e.grant(g.ID).CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	// 201 sessions; the first makes 5,100 calls, queued 500 at a time (one
	// durable batch for many, as a gateway's concurrent calls are; in
	// order: the log numbers them as they are queued).
	ses, err := e.srv.Service.Authority().StartSession(ctx, gg, "client")
	if err != nil {
		t.Fatal(err)
	}
	first := ses.ID
	var calls []*gateway.Pending
	for j := 0; j < 5100; j++ {
		calls = append(calls, ses.RequestAsync(ctx, gateway.Call{Action: "s3:GetObject",
			Resource: fmt.Sprintf("arn:aws:s3:::logs/app/k%05d", j), Allowed: true}))
		if len(calls) == 500 || j == 5099 {
			for _, c := range calls {
				if err := c.Wait(ctx); err != nil {
					t.Fatal(err)
				}
			}
			calls = calls[:0]
		}
	}
	if err := ses.End(ctx); err != nil {
		t.Fatal(err)
	}
	// The other 200, after it, several at a time.
	inParallel(t, 200, func(int) error {
		ses, err := e.srv.Service.Authority().StartSession(ctx, gg, "client")
		if err != nil {
			return err
		}
		return ses.End(ctx)
	})
	if _, err := e.srv.Service.Revoke(ctx, e.identity("alice"), g.ID, "enough"); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.mustSignIn(e.alice)

	p := b.get("/console/grants/" + g.ID)
	if p.status != http.StatusOK {
		t.Fatalf("grant page: %d", p.status)
	}
	// 100 of the first session's, 2 (started, ended) of each of the 4
	// other inline ones.
	if n := strings.Count(p.body, `<tr class="t-`); n != 100+4*2 {
		t.Errorf("grant page: %d transcript lines, want 108", n)
	}
	if strings.Contains(p.body, "k00100") || !strings.Contains(p.body, "k00098") {
		t.Errorf("grant page: the first session's transcript is not cut after its 100th line")
	}
	if !strings.Contains(p.body, `The transcript goes on: <a class="next" href="/console/sessions/`+first+`"`) {
		t.Errorf("grant page: no link to the rest of %s's transcript", first)
	}
	if n := strings.Count(p.body, `<section class="session"`); n != 200 {
		t.Errorf("grant page: %d sessions listed, want 200", n)
	}
	if !strings.Contains(p.body, `1 more sessions are not listed here`) {
		t.Errorf("grant page: does not say a session was left out")
	}
	hist := p.body[strings.Index(p.body, `id="history"`):]
	if strings.Contains(hist, "session.call") || strings.Contains(hist, "session.started") {
		t.Errorf("grant page: the history lists the sessions' entries again")
	}
	if n := strings.Count(hist, "<tr><td>"); n != 1000 {
		t.Errorf("grant page: %d history rows, want 1000", n)
	}
	if !strings.Contains(hist, `id="history-more"`) {
		t.Errorf("grant page: does not say history rows were left out")
	}
	// The first page holds the first entries: the request.
	if !strings.Contains(hist, "grant.requested") || strings.Contains(hist, "grant.revoked") {
		t.Errorf("grant page: the history's first page lacks the request, or holds the revocation")
	}
	if len(p.body) > 2<<20 {
		t.Errorf("grant page: %d bytes", len(p.body))
	}
	// The history's next pages, one page read for each: the rest of the
	// grant's own entries, down to how it ended. A page holds 5,000 log
	// entries, the sessions' among them (not shown).
	rows := strings.Count(hist, "<tr><td>")
	for pages := 1; ; pages++ {
		hm := regexp.MustCompile(`href="/console/grants/` + g.ID + `\?after=(\d+)#history-h"`).FindStringSubmatch(p.body)
		if hm == nil {
			if !strings.Contains(hist, "grant.revoked") {
				t.Errorf("grant page: the history's last page (%d) lacks the revocation", pages)
			}
			break
		}
		if pages > 4 {
			t.Fatalf("grant page: still a next page of the history after %d pages", pages)
		}
		p = b.get("/console/grants/" + g.ID + "?after=" + hm[1])
		if p.status != http.StatusOK || !strings.Contains(p.body, `id="history-after"`) {
			t.Fatalf("grant page after %s: %d, or does not say where its history starts", hm[1], p.status)
		}
		hist = p.body[strings.Index(p.body, `id="history"`):]
		if strings.Contains(hist, "grant.requested") || strings.Contains(hist, "session.call") {
			t.Errorf("grant page after %s: the request again, or a session's entries", hm[1])
		}
		rows += strings.Count(hist, "<tr><td>")
	}
	// Requested, decided, 1,002 credential fetches, revoked.
	if rows != 1005 {
		t.Errorf("grant page: %d history rows over its pages, want 1005", rows)
	}
	for _, q := range []string{"?after=-1", "?after=x", "?limit=0", "?from=1"} {
		if p := b.get("/console/grants/" + g.ID + q); p.status != http.StatusBadRequest {
			t.Errorf("grant page %s: %d, want 400", q, p.status)
		}
	}

	// The session: started, 5,100 calls, ended: 5,102 events, a page of
	// 5,000 read at a time.
	p = b.get("/console/sessions/" + first)
	if n := strings.Count(p.body, `<tr class="t-`); p.status != http.StatusOK || n != 5000 {
		t.Fatalf("session page: %d, %d lines, want 5000", p.status, n)
	}
	m := regexp.MustCompile(`href="/console/sessions/` + first + `\?after=(\d+)"`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("session page: no link to the next page")
	}
	p = b.get("/console/sessions/" + first + "?after=" + m[1])
	if n := strings.Count(p.body, `<tr class="t-`); p.status != http.StatusOK || n != 102 {
		t.Fatalf("session page after %s: %d, %d lines, want 102", m[1], p.status, n)
	}
	if !strings.Contains(p.body, "k05099") || strings.Contains(p.body, "k04997") || strings.Contains(p.body, "?after=") {
		t.Errorf("session page after %s: not the last lines, or a next link past the end", m[1])
	}
	for _, q := range []string{"?after=-1", "?after=x", "?limit=0", "?from=1"} {
		if p := b.get("/console/sessions/" + first + q); p.status != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, p.status)
		}
	}
}

// TestReviewPageBounded: the review page shows 1,000 rows and links to
// the next page, which shows the rest; the downloads hold every one, read
// a page at a time. An agent whose requests policy approves at once can
// hold thousands of grants a day, and the page rendered them all.
func TestReviewPageBounded(t *testing.T) {
	e := newEnv(t, nil)
	for i := 0; i < 1001; i++ {
		e.request("log-triage-bot", autoScope, "10m", fmt.Sprintf("grant %d", i))
	}
	b := e.browser()
	b.mustSignIn(e.alice)
	p := b.get("/console/review")
	if p.status != http.StatusOK {
		t.Fatalf("review: %d", p.status)
	}
	if n := strings.Count(p.body, `<tr data-id="g_`); n != 1000 {
		t.Errorf("review page: %d rows, want 1000", n)
	}
	m := regexp.MustCompile(`id="review-next" href="([^"]+)"`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("review page: no link to the next page")
	}
	next := b.get(html.UnescapeString(m[1]))
	if next.status != http.StatusOK {
		t.Fatalf("next page %s: %d", m[1], next.status)
	}
	if n := strings.Count(next.body, `<tr data-id="g_`); n != 1 || !strings.Contains(next.body, "grant 1000") || strings.Contains(next.body, `id="review-next"`) {
		t.Errorf("next page: %d rows, want the 1001st alone and no further link", n)
	}
	// The downloads are the whole query, not a page, wherever they are
	// linked from.
	for _, body := range []string{p.body, next.body} {
		if !strings.Contains(body, `href="/console/review.csv?day=`) || strings.Contains(body, "review.csv?after") || strings.Contains(body, "&amp;after=") {
			t.Errorf("a download link carries the page's cursor")
		}
	}
	if c := b.get("/console/review.csv"); strings.Count(c.body, "grant ") != 1001 {
		t.Errorf("CSV: %d grants, want every one", strings.Count(c.body, "grant "))
	}
	var rows []map[string]any
	if j := b.get("/console/review.json"); json.Unmarshal([]byte(j.body), &rows) != nil || len(rows) != 1001 {
		t.Errorf("JSON: %d rows, want every one", len(rows))
	}
	if p := b.get("/console/review?after=x%3Cb%3E"); p.status != http.StatusBadRequest || strings.Contains(p.body, "<b>") {
		t.Errorf("a bad cursor: %d", p.status)
	}
	if p := b.get("/console/review.csv?after=x"); p.status != http.StatusBadRequest {
		t.Errorf("a download with a bad cursor: %d", p.status)
	}
}

// TestQueueBounded: the queue shows the 200 oldest requests a person may
// decide and links to the next page when more wait; queue.json, polled
// every two seconds by every open queue, likewise, for the page it is
// polled from. An agent can ask for any number of grants that wait for a
// person, and each poll rendered every one of them (and then read them
// all to count those beyond the page).
func TestQueueBounded(t *testing.T) {
	e := newEnv(t, nil)
	// One identity's open requests are bounded far below the queue's
	// page (grants.MaxPendingPerIdentity); the queue is many agents'.
	e.srv.Service.SetMaxPending(1000)
	var ids []string
	for i := 0; i < 201; i++ {
		ids = append(ids, e.request("log-triage-bot", humanScope, "30m", fmt.Sprintf("pending %d", i)).ID)
	}
	b := e.browser()
	b.mustSignIn(e.alice)
	p := b.get("/console/queue")
	if n := strings.Count(p.body, `<tr data-id="g_`); p.status != http.StatusOK || n != 200 {
		t.Fatalf("queue: %d, %d rows, want 200", p.status, n)
	}
	m := regexp.MustCompile(`<p id="more" class="hint">More requests are waiting: <a id="queue-next" href="(/console/queue\?after=[A-Za-z0-9_-]+)">`).FindStringSubmatch(p.body)
	if m == nil || strings.Contains(p.body, ids[200]) {
		t.Fatalf("queue: the 201st request is shown, or the page does not link to the next")
	}
	next := b.get(m[1])
	if n := strings.Count(next.body, `<tr data-id="g_`); next.status != http.StatusOK || n != 1 || !strings.Contains(next.body, `<tr data-id="`+ids[200]+`"`) {
		t.Fatalf("the next page: %d, %d rows, want the 201st alone", next.status, n)
	}
	if !strings.Contains(next.body, `<p id="more" class="hint" hidden>`) {
		t.Errorf("the last page says more are waiting")
	}
	type queueJSON struct {
		Rows []struct{ ID string }
		Next string
	}
	var qj queueJSON
	if err := json.Unmarshal([]byte(b.get("/console/queue.json").body), &qj); err != nil || len(qj.Rows) != 200 || qj.Next == "" || qj.Rows[0].ID != ids[0] {
		t.Fatalf("queue.json: %d rows, next %q, %v", len(qj.Rows), qj.Next, err)
	}
	// The page after the first polls its own page.
	var rest queueJSON
	if err := json.Unmarshal([]byte(b.get("/console/queue.json?"+qj.Next).body), &rest); err != nil || len(rest.Rows) != 1 || rest.Next != "" || rest.Rows[0].ID != ids[200] {
		t.Fatalf("queue.json of the next page: %+v, %v", rest, err)
	}
	// Deciding one brings the last in.
	if _, err := e.srv.Service.Deny(context.Background(), e.identity("bob"), ids[0], "no"); err != nil {
		t.Fatal(err)
	}
	qj = queueJSON{Next: "x"}
	if err := json.Unmarshal([]byte(b.get("/console/queue.json").body), &qj); err != nil || len(qj.Rows) != 200 || qj.Next != "" || qj.Rows[199].ID != ids[200] {
		t.Fatalf("queue.json after a decision: %d rows, next %q, %v", len(qj.Rows), qj.Next, err)
	}
	// The queue reads its query as GET /v1/pending does.
	if p := b.get("/console/queue?after=x%3Cb%3E"); p.status != http.StatusBadRequest || strings.Contains(p.body, "<b>") {
		t.Errorf("a bad cursor: %d", p.status)
	}
	if p := b.get("/console/queue.json?limit=0"); p.status != http.StatusBadRequest {
		t.Errorf("queue.json with limit=0: %d", p.status)
	}
}

// TestFindingsPageBounded: the findings page shows 1,000 findings and
// links to the next page, which shows the rest. Each new address a grant's
// credentials are used from is a finding, and the page rendered them all.
//
// The page without a day shows today's findings (UTC) by the console's
// clock, and the findings are dated by the service's real one: the
// console's "today" is pinned to the day they were recorded on, so that a
// run recording before midnight and reading after it (a CI run once did,
// and found 156 of them "today") reads the same day. A run whose recording
// straddles midnight splits them over two days; it checks the page of
// every day alone.
func TestFindingsPageBounded(t *testing.T) {
	var today atomic.Pointer[time.Time]
	now := time.Now()
	today.Store(&now)
	e := newEnv(t, clock.Func(func() time.Time { return *today.Load() }))
	ctx := context.Background()
	recordedOn := time.Now().UTC().Format(time.DateOnly)
	bot := e.identity("log-triage-bot")
	bot.Instance = &model.Instance{IP: "10.0.0.1"}
	g, err := e.srv.Service.Request(ctx, bot, grants.RequestInput{Target: "aws-prod", Scope: []string{autoScope}, Duration: "10m", Reason: "findings"})
	if err != nil {
		t.Fatal(err)
	}
	gg, err := e.srv.Service.Authority().Lookup(e.grant(g.ID).CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	session := func(i int) error {
		ses, err := e.srv.Service.Authority().StartSession(ctx, gg, fmt.Sprintf("10.9.%d.%d:4242", i/256, i%256))
		if err != nil {
			return err
		}
		return ses.End(ctx)
	}
	// The first 1,000 several at a time (their findings written in a few
	// durable batches, not one each), then the 1,001st alone: the last
	// found, so the one the next page holds.
	inParallel(t, 1000, session)
	if err := session(1000); err != nil {
		t.Fatal(err)
	}
	paths := []string{"/console/findings", "/console/findings?day="}
	if end := time.Now(); end.UTC().Format(time.DateOnly) == recordedOn {
		today.Store(&end)
	} else {
		t.Logf("the findings were recorded across midnight (UTC %s to %s): only the page of every day is checked", recordedOn, end.UTC().Format(time.DateOnly))
		paths = paths[1:]
	}
	b := e.browser()
	b.mustSignIn(e.alice)
	next := regexp.MustCompile(`id="findings-next" href="([^"]+)"`)
	for _, path := range paths {
		p := b.get(path)
		if p.status != http.StatusOK {
			t.Fatalf("%s: %d", path, p.status)
		}
		if n := strings.Count(p.body, "<td>"+model.FindingCredentialMoved); n != 1000 {
			t.Errorf("%s: %d findings, want 1000", path, n)
		}
		m := next.FindStringSubmatch(p.body)
		if m == nil {
			t.Fatalf("%s: no link to the next page", path)
		}
		p = b.get(html.UnescapeString(m[1]))
		if p.status != http.StatusOK {
			t.Fatalf("%s, next page %s: %d", path, m[1], p.status)
		}
		if n := strings.Count(p.body, "<td>"+model.FindingCredentialMoved); n != 1 || !strings.Contains(p.body, "10.9.3.232") {
			t.Errorf("%s, next page: %d findings, want the 1001st alone", path, n)
		}
		if next.MatchString(p.body) {
			t.Errorf("%s: the last page links to another", path)
		}
	}
	if p := b.get("/console/findings?after=x%3Cb%3E"); p.status != http.StatusBadRequest || strings.Contains(p.body, "<b>") {
		t.Errorf("a bad cursor: %d %s", p.status, p.body)
	}
}

// inParallel runs f(0) to f(n-1), 16 at a time, and fails t on the first
// error. The tests that fill a page with a thousand records make them
// from several goroutines, as many clients would, so that the log's group
// commit writes them in a few durable batches: one at a time, each record
// was a batch of its own, fsync included, and those tests took minutes
// under -race on a loaded 2-core machine.
func inParallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		errs = make(chan error, 16)
	)
	for range 16 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					errs <- fmt.Errorf("%d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
