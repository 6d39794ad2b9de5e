package grants_test

import (
	"slices"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestListRelativeWindow: since=1h (GrantsQuery.SinceAgo) lists the grants
// live in the last hour of the service's clock, and every page of the
// query reads that same window: the clock moving on between pages (here
// two hours, after which the later grants lie outside "the last hour")
// neither drops them nor makes the cursor another query's. A cursor of
// since=1h is still refused for since=2h.
func TestListRelativeWindow(t *testing.T) {
	h := newHarness(t, harnessOptions{Manual: true})
	old := h.request(bot, autoReq("10m"), model.Active)
	h.fake.Advance(3 * time.Hour) // old ended 2h50m ago
	var recent []string
	for range 3 {
		recent = append(recent, h.request(bot, autoReq("10m"), model.Active).ID)
		h.fake.Advance(time.Second)
	}
	q := grants.GrantsQuery{SinceAgo: time.Hour, Limit: 1}
	var got []string
	for {
		page, err := h.Svc.List(h.ctx, h.id(alice), q)
		if err != nil {
			t.Fatalf("page after %q: %v", q.After, err)
		}
		for _, g := range page.Grants {
			got = append(got, g.ID)
		}
		if page.Next == "" {
			break
		}
		if q.After == "" {
			other := grants.GrantsQuery{SinceAgo: 2 * time.Hour, After: page.Next}
			_, err := h.Svc.List(h.ctx, h.id(alice), other)
			wantAPIErr(t, err, 400, "", "after")
		}
		q.After = page.Next
		h.fake.Advance(2 * time.Hour)
	}
	if !slices.Equal(got, recent) {
		t.Errorf("since 1h listed %v, want %v (not %s, which ended hours before)", got, recent, old.ID)
	}

	// A fresh query now is resolved against the clock as it is: the
	// grants ended long before the last hour.
	page, err := h.Svc.List(h.ctx, h.id(alice), grants.GrantsQuery{SinceAgo: time.Hour})
	if err != nil || len(page.Grants) != 0 {
		t.Errorf("a new since=1h query: %d grants, %v; want none", len(page.Grants), err)
	}
	// since=10h until=6h: what was live between ten and six hours ago.
	page, err = h.Svc.List(h.ctx, h.id(alice), grants.GrantsQuery{SinceAgo: 10 * time.Hour, UntilAgo: 6 * time.Hour})
	if err != nil || len(page.Grants) != 1 || page.Grants[0].ID != old.ID {
		t.Errorf("since 10h until 6h: %v, %v; want only %s", page.Grants, err, old.ID)
	}
}

// TestParseAgo: a Go duration, whole days before it allowed; positive and
// at most ten years; anything else refused.
func TestParseAgo(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"1h": time.Hour, "90m": 90 * time.Minute, "7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour, "1.5h": 90 * time.Minute,
		"3650d": 3650 * 24 * time.Hour,
	} {
		if got, err := grants.ParseAgo(in); err != nil || got != want {
			t.Errorf("ParseAgo(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "0s", "0d", "-1h", "1d-1h", "1d+1h", "+1d", "1.5d", "d", "7days", "1w", "garbage", "3651d",
		"99999999999999999999d", "2562047h", "3650d2562047h", "1h\x1b[2J"} {
		if got, err := grants.ParseAgo(in); err == nil {
			t.Errorf("ParseAgo(%q) = %v, want an error", in, got)
		}
	}
}
