package grants_test

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// pendingPages reads who's queue by hand, a page of limit at a time,
// checking each page's size, and returns the ids in order and the cursors.
func pendingPages(h *harness, who string, limit int) (ids, cursors []string) {
	h.t.Helper()
	q := grants.PendingQuery{Limit: limit}
	for {
		p, err := h.Svc.Pending(h.ctx, h.id(who), q)
		if err != nil {
			h.t.Fatalf("%s's queue after %q: %v", who, q.After, err)
		}
		if len(p.Grants) > limit {
			h.t.Fatalf("%s's page of %d, limit %d", who, len(p.Grants), limit)
		}
		for _, g := range p.Grants {
			ids = append(ids, g.ID)
		}
		if p.Next == "" {
			return ids, cursors
		}
		if len(cursors) > 100 {
			h.t.Fatalf("%s's queue: still a next page after %d pages", who, len(cursors))
		}
		cursors = append(cursors, p.Next)
		q.After = p.Next
	}
}

// TestPendingPaged: the approver's queue answers a page at a time, each
// person's pages holding only the requests they may decide (never their
// own, only those an approve policy lets them decide), in the order
// requested, each once; a full page of those is not cut short by the
// others between them; every page asks the policies in force again; a
// cursor is its caller's alone. Before, Pending read every pending
// request into one answer.
func TestPendingPaged(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.Svc.SetMaxPending(100)
	// Interleaved: the bot's aws-prod requests (alice and carol, leads,
	// may decide them), its orders-db ones (only dbas: nobody here), and
	// alice's own (carol, not alice).
	db := grants.RequestInput{Target: ordersDB, Scope: []string{"pg:select orders.public.*"}, Duration: "20m", Reason: "count orders"}
	own := grants.RequestInput{Target: awsProd, Scope: []string{auditLog}, Duration: "30m", Reason: "audit"}
	var prod, alices []string
	for i := range 13 {
		prod = append(prod, h.request(bot, humanReq("30m"), model.Pending).ID)
		h.request(bot2, db, model.Pending)
		h.request(bot, db, model.Pending)
		if i%3 == 0 {
			alices = append(alices, h.request(alice, own, model.Pending).ID)
		}
	}
	// The store's order (requested at, then id) of carol's queue.
	all, err := h.St.Grants(h.ctx, store.GrantFilter{Status: []model.GrantStatus{model.Pending}})
	if err != nil {
		t.Fatal(err)
	}
	var carols []string
	for _, g := range all {
		if slices.Contains(prod, g.ID) || slices.Contains(alices, g.ID) {
			carols = append(carols, g.ID)
		}
	}
	byOrder := func(ids []string) []string {
		var out []string
		for _, g := range all {
			if slices.Contains(ids, g.ID) {
				out = append(out, g.ID)
			}
		}
		return out
	}
	for _, limit := range []int{1, 4, 5, 13, 100} {
		got, cursors := pendingPages(h, alice, limit)
		if want := byOrder(prod); !slices.Equal(got, want) {
			t.Fatalf("alice's pages of %d: %v\nwant %v", limit, got, want)
		}
		// Every page but the last is full: the requests she may not
		// decide between hers do not shorten it.
		if want := (len(prod) - 1) / limit; len(cursors) != want {
			t.Errorf("alice's pages of %d: %d cursors, want %d", limit, len(cursors), want)
		}
		if got, _ := pendingPages(h, carol, limit); !slices.Equal(got, carols) {
			t.Fatalf("carol's pages of %d: %v\nwant %v", limit, got, carols)
		}
		if got, cursors := pendingPages(h, bob, limit); len(got) != 0 || len(cursors) != 0 {
			t.Fatalf("bob, who may decide nothing: %v over %d pages", got, len(cursors)+1)
		}
	}
	whole, err := h.pending(h.id(alice))
	if err != nil || len(whole) != len(prod) {
		t.Fatalf("EachPending: %d requests, %v; want %d", len(whole), err, len(prod))
	}

	_, cursors := pendingPages(h, alice, 4)
	refused := func(what, who, after string) {
		t.Helper()
		_, err := h.Svc.Pending(h.ctx, h.id(who), grants.PendingQuery{After: after, Limit: 4})
		wantAPIErr(t, err, 400, "", "after")
	}
	refused("alice's cursor given by carol", carol, cursors[0])
	refused("a cursor made up by hand", alice, "x")
	refused("a review cursor", alice, base64.RawURLEncoding.EncodeToString([]byte("g1.1.0011223344556677.g_x")))
	_, err = h.Svc.Pending(h.ctx, h.id(bot), grants.PendingQuery{})
	wantAPIErr(t, err, 403, "", "")

	// A request decided after its page was read: the next page goes on
	// from the cursor, neither repeating nor skipping the rest.
	page, err := h.Svc.Pending(h.ctx, h.id(alice), grants.PendingQuery{Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Svc.Deny(h.ctx, h.id(carol), page.Grants[3].ID, "no"); err != nil {
		t.Fatal(err)
	}
	next, err := h.Svc.Pending(h.ctx, h.id(alice), grants.PendingQuery{After: page.Next, Limit: 4})
	if want := byOrder(prod)[4:8]; err != nil || !slices.Equal(grantIDs(next.Grants), want) {
		t.Fatalf("the page after a decision: %v, %v; want %v", grantIDs(next.Grants), err, want)
	}

	// The policies are asked again on every page: with the leads' approve
	// policy gone, alice's cursor reads nothing more.
	withoutLeads := strings.Replace(testPolicies, `@id("leads-approve-sre-agents")
permit (principal in Group::"sre-leads", action == Action::"approve", resource == Target::"aws-prod");`, "", 1)
	if withoutLeads == testPolicies {
		t.Fatal("the leads' approve policy was not found")
	}
	h.writePolicy("test.cedar", withoutLeads)
	if err := h.Svc.ReloadPolicies(h.ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if p, err := h.Svc.Pending(h.ctx, h.id(alice), grants.PendingQuery{After: page.Next, Limit: 4}); err != nil || len(p.Grants) != 0 || p.Next != "" {
		t.Fatalf("alice's next page once she may approve nothing: %v (next %q), %v", grantIDs(p.Grants), p.Next, err)
	}
}

// TestPendingScanBounded: a page reads at most the scan bound of pending
// requests, whatever it keeps, and where it stops there it has a cursor to
// go on from, even with none kept; following the cursors still lists each
// request the caller may decide once. Without the bound, a person who may
// decide a few requests among many others' read every one of them for
// each page.
func TestPendingScanBounded(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.Svc.SetMaxPending(100)
	h.Svc.SetPendingScan(5)
	db := grants.RequestInput{Target: ordersDB, Scope: []string{"pg:select orders.public.*"}, Duration: "20m", Reason: "count orders"}
	for range 12 {
		h.request(bot, db, model.Pending) // nobody here may decide these
	}
	var prod []string
	for range 3 {
		prod = append(prod, h.request(bot, humanReq("30m"), model.Pending).ID)
	}
	first, err := h.Svc.Pending(h.ctx, h.id(alice), grants.PendingQuery{Limit: 10})
	if err != nil || len(first.Grants) != 0 || first.Next == "" {
		t.Fatalf("the first page, over 5 of the 12 alice may not decide: %v (next %q), %v; want none and a next", grantIDs(first.Grants), first.Next, err)
	}
	// In the store's order (requested at, then id).
	all, err := h.St.Grants(h.ctx, store.GrantFilter{Status: []model.GrantStatus{model.Pending}})
	if err != nil {
		t.Fatal(err)
	}
	all = slices.DeleteFunc(all, func(g model.Grant) bool { return !slices.Contains(prod, g.ID) })
	prod = grantIDs(all)
	got, cursors := pendingPages(h, alice, 10)
	if !slices.Equal(got, prod) || len(cursors) < 2 {
		t.Fatalf("alice's pages: %v over %d pages; want %v over at least 3", got, len(cursors)+1, prod)
	}
	// A page that fills before the bound stops there as usual.
	h.Svc.SetPendingScan(grants.PendingScan)
	if p, err := h.Svc.Pending(h.ctx, h.id(alice), grants.PendingQuery{Limit: 2}); err != nil || !slices.Equal(grantIDs(p.Grants), prod[:2]) || p.Next == "" {
		t.Fatalf("a page of 2: %v (next %q), %v", grantIDs(p.Grants), p.Next, err)
	}
}

func grantIDs(gs []model.Grant) []string {
	ids := make([]string, len(gs))
	for i, g := range gs {
		ids[i] = g.ID
	}
	return ids
}
