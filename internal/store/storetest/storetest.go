// Package storetest is the conformance suite of store.Store: every
// implementation runs it from its own tests with
//
//	storetest.Run(t, func(t *testing.T) store.Store { ... a fresh, empty store ... })
//
// The suite pins down the behaviour callers rely on and the interface
// comments leave implicit: how the review window is matched, what Usage
// holds, how ErrNotFound and ErrConflict are reported, and what a savepoint
// or a rollback undoes.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// Run runs the conformance suite. open must return a fresh, empty store for
// each subtest; Run closes it when the subtest ends.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Identities", testIdentities},
		{"GrantRoundTrip", testGrantRoundTrip},
		{"GrantConflicts", testGrantConflicts},
		{"UpdateGrant", testUpdateGrant},
		{"NotFound", testNotFound},
		{"GrantByCredential", testGrantByCredential},
		{"OpenGrants", testOpenGrants},
		{"GrantsFilters", testGrantsFilters},
		{"GrantsWindow", testGrantsWindow},
		{"GrantsWindowRandom", testGrantsWindowRandom},
		{"Usage", testUsage},
		{"Sessions", testSessions},
		{"SessionsPage", testSessionsPage},
		{"AppendLog", testAppendLog},
		{"ScanLog", testScanLog},
		{"LogEntries", testLogEntries},
		{"Checkpoints", testCheckpoints},
		{"Savepoints", testSavepoints},
		{"Rollback", testRollback},
		{"Isolation", testIsolation},
		{"BeginWaits", testBeginWaits},
		{"TxDone", testTxDone},
		{"ClaimAction", testClaimAction},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

func testIdentities(t *testing.T, s store.Store) {
	ctx := t.Context()
	bot := model.Identity{
		Name: "log-triage-bot", Kind: model.Agent, Owner: "sre-team", Groups: []string{"sre-team", "bots"},
		KeySHA256: strings.Repeat("ab", 32), Source: "api",
		CreatedAt: t0.Add(123456789).In(zone), CreatedBy: "alice",
	}
	alice := model.Identity{
		Name: "alice", Kind: model.Human, Groups: []string{"sre-leads"},
		KeySHA256: strings.Repeat("cd", 32), Source: "config",
		Bindings: &model.Bindings{Email: "alice@example.com", SlackUser: "U024BE7LH"},
	}
	bare := model.Identity{Name: "zed", Kind: model.Human}
	write(t, s, func(ctx context.Context, tx store.Tx) {
		for _, id := range []model.Identity{bot, bare, alice} {
			must(t, tx.PutIdentity(ctx, id), "PutIdentity "+id.Name)
		}
		got, err := tx.Identity(ctx, "alice")
		must(t, err, "tx.Identity")
		same(t, "tx.Identity(alice)", got, alice)
	})
	for _, want := range []model.Identity{bot, alice, bare} {
		got, err := s.Identity(ctx, want.Name)
		must(t, err, "Identity "+want.Name)
		same(t, "Identity "+want.Name, got, want)
	}
	list, err := s.Identities(ctx)
	must(t, err, "Identities")
	same(t, "Identities (ordered by name)", list, []model.Identity{alice, bot, bare})

	// Put replaces: disable the bot and rotate its key.
	bot.Disabled = true
	bot.KeySHA256 = strings.Repeat("ef", 32)
	bot.Groups = nil
	// and record bindings for it: the row keeps them (nil is none recorded).
	bot.Bindings = &model.Bindings{OIDC: "oidc:https://token.example repo:acme/x"}
	write(t, s, func(ctx context.Context, tx store.Tx) {
		must(t, tx.PutIdentity(ctx, bot), "PutIdentity (update)")
	})
	got, err := s.Identity(ctx, bot.Name)
	must(t, err, "Identity after update")
	same(t, "updated identity", got, bot)
	if !got.Disabled {
		t.Fatal("Disabled did not round-trip")
	}
	list, err = s.Identities(ctx)
	must(t, err, "Identities")
	if len(list) != 3 {
		t.Fatalf("Identities after update: got %d, want 3", len(list))
	}

	_, err = s.Identity(ctx, "nobody")
	wantErr(t, err, store.ErrNotFound, "Identity(nobody)")
	write(t, s, func(ctx context.Context, tx store.Tx) {
		_, err := tx.Identity(ctx, "nobody")
		wantErr(t, err, store.ErrNotFound, "tx.Identity(nobody)")
	})
}

func testGrantRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	full := fullGrant("g_full", t0)
	assertAllSet(t, full, "Usage")
	minimal := model.Grant{
		ID: "g_min", Identity: "bot", Target: "db", Account: "acct",
		Status: model.Pending, RequestedAt: t0.Add(1),
	}
	write(t, s, func(ctx context.Context, tx store.Tx) {
		must(t, tx.CreateGrant(ctx, full), "CreateGrant full")
		must(t, tx.CreateGrant(ctx, minimal), "CreateGrant minimal")
		got, err := tx.Grant(ctx, full.ID)
		must(t, err, "tx.Grant")
		same(t, "tx.Grant(full)", got, stored(full, model.Usage{}))
	})
	got, err := s.Grant(ctx, full.ID)
	must(t, err, "Grant full")
	same(t, "Grant(full)", got, stored(full, model.Usage{}))
	for _, tm := range []time.Time{got.RequestedAt, got.DecideBy, got.EndedAt, got.Decision.At, got.Approvals[1].At} {
		if tm.Nanosecond() == 0 {
			t.Errorf("time %v lost its nanoseconds", tm)
		}
	}
	if !got.RequestedAt.Equal(full.RequestedAt) {
		t.Errorf("RequestedAt %v, want %v", got.RequestedAt, full.RequestedAt)
	}

	got, err = s.Grant(ctx, minimal.ID)
	must(t, err, "Grant minimal")
	same(t, "Grant(minimal)", got, minimal)
	for name, tm := range map[string]time.Time{"DecideBy": got.DecideBy, "DecidedAt": got.DecidedAt,
		"StartedAt": got.StartedAt, "ExpiresAt": got.ExpiresAt, "EndedAt": got.EndedAt, "Decision.At": got.Decision.At} {
		if !tm.IsZero() {
			t.Errorf("zero %s came back as %v", name, tm)
		}
	}

	all, err := s.Grants(ctx, store.GrantFilter{})
	must(t, err, "Grants")
	same(t, "Grants{}", all, []model.Grant{minimal, stored(full, model.Usage{})})
}

func testGrantConflicts(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := fullGrant("g_a", t0)
	write(t, s, func(ctx context.Context, tx store.Tx) {
		must(t, tx.CreateGrant(ctx, a), "CreateGrant")
	})
	write(t, s, func(ctx context.Context, tx store.Tx) {
		dup := grant("g_a", model.Pending, t0.Add(time.Hour))
		wantErr(t, tx.CreateGrant(ctx, dup), store.ErrConflict, "CreateGrant duplicate id")

		dupCred := fullGrant("g_b", t0)
		dupCred.CredentialID = a.CredentialID
		wantErr(t, tx.CreateGrant(ctx, dupCred), store.ErrConflict, "CreateGrant duplicate credential id")

		// A conflict leaves the transaction usable: the writer reports
		// the error to that one caller and carries on with the batch.
		must(t, tx.CreateGrant(ctx, grant("g_c", model.Pending, t0)), "CreateGrant after conflicts")
		// Grants without a credential do not collide with each other.
		must(t, tx.CreateGrant(ctx, grant("g_d", model.Pending, t0)), "CreateGrant second credential-less grant")
	})
	got, err := s.Grant(ctx, "g_a")
	must(t, err, "Grant g_a")
	same(t, "g_a after failed duplicate", got, stored(a, model.Usage{}))
	for _, id := range []string{"g_c", "g_d"} {
		_, err := s.Grant(ctx, id)
		must(t, err, "Grant "+id)
	}
	_, err = s.Grant(ctx, "g_b")
	wantErr(t, err, store.ErrNotFound, "Grant g_b (its create conflicted)")
}

func testUpdateGrant(t *testing.T, s store.Store) {
	ctx := t.Context()
	g := grant("g_1", model.Pending, t0.Add(time.Minute))
	g.DecideBy = t0.Add(time.Hour)
	other := fullGrant("g_2", t0)
	write(t, s, func(ctx context.Context, tx store.Tx) {
		must(t, tx.CreateGrant(ctx, g), "CreateGrant")
		must(t, tx.CreateGrant(ctx, other), "CreateGrant other")
	})

	g.Status = model.Active
	g.GrantedScope = g.RequestedScope
	g.DecidedAt = t0.Add(2 * time.Minute)
	g.StartedAt = t0.Add(2 * time.Minute)
	g.ExpiresAt = t0.Add(12 * time.Minute)
	g.Decision = model.PolicyDecision{Outcome: "human", PolicySetHash: "h", Explanation: "x", At: t0.Add(time.Minute)}
	g.Approvals = []model.Approval{{Approver: "alice", Decision: "approved", At: t0.Add(2 * time.Minute)}}
	g.CredentialID = "AKIANEW"
	g.CredentialFingerprint = "fp"
	g.Usage = model.Usage{Calls: 5} // ignored
	write(t, s, func(ctx context.Context, tx store.Tx) {
		must(t, tx.UpdateGrant(ctx, g), "UpdateGrant")
		got, err := tx.Grant(ctx, g.ID)
		must(t, err, "tx.Grant after update")
		same(t, "tx.Grant after update", got, stored(g, model.Usage{}))

		wantErr(t, tx.UpdateGrant(ctx, grant("g_missing", model.Pending, t0)), store.ErrNotFound, "UpdateGrant missing")

		steal := g
		steal.CredentialID = other.CredentialID
		wantErr(t, tx.UpdateGrant(ctx, steal), store.ErrConflict, "UpdateGrant to another grant's credential")
	})
	got, err := s.Grant(ctx, g.ID)
	must(t, err, "Grant after update")
	same(t, "Grant after update", got, stored(g, model.Usage{}))
	_, err = s.Grant(ctx, "g_missing")
	wantErr(t, err, store.ErrNotFound, "Grant g_missing (update must not create)")
}

func testNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.Grant(ctx, "g_nope")
	wantErr(t, err, store.ErrNotFound, "Grant")
	_, err = s.Session(ctx, "s_nope")
	wantErr(t, err, store.ErrNotFound, "Session")
	_, err = s.Identity(ctx, "nobody")
	wantErr(t, err, store.ErrNotFound, "Identity")
	_, err = s.LatestCheckpoint(ctx)
	wantErr(t, err, store.ErrNotFound, "LatestCheckpoint")
	write(t, s, func(ctx context.Context, tx store.Tx) {
		_, err := tx.Grant(ctx, "g_nope")
		wantErr(t, err, store.ErrNotFound, "tx.Grant")
		_, err = tx.GrantByCredential(ctx, "AKIANOPE")
		wantErr(t, err, store.ErrNotFound, "tx.GrantByCredential")
		_, err = tx.GrantByCredential(ctx, "")
		wantErr(t, err, store.ErrNotFound, "tx.GrantByCredential(\"\")")
		// The transaction is still usable after a miss.
		must(t, tx.CreateGrant(ctx, grant("g_1", model.Pending, t0)), "CreateGrant after misses")
	})
	gs, err := s.Grants(ctx, store.GrantFilter{Account: "nope"})
	must(t, err, "Grants")
	if len(gs) != 0 {
		t.Fatalf("Grants for unknown account: %v", ids(gs))
	}
	ss, err := s.Sessions(ctx, "g_nope")
	must(t, err, "Sessions")
	if len(ss) != 0 {
		t.Fatalf("Sessions of unknown grant: %v", ss)
	}
}

func testGrantByCredential(t *testing.T, s store.Store) {
	g := fullGrant("g_1", t0)
	g.Status = model.Active
	g.EndedAt = time.Time{}
	h := grant("g_2", model.Pending, t0)
	write(t, s, func(ctx context.Context, tx store.Tx) {
		must(t, tx.CreateGrant(ctx, g), "CreateGrant")
		must(t, tx.CreateGrant(ctx, h), "CreateGrant no credential")
		must(t, tx.PutSession(ctx, model.Session{ID: "s_1", GrantID: g.ID, StartedAt: t0, Calls: 3}), "PutSession")
		got, err := tx.GrantByCredential(ctx, g.CredentialID)
		must(t, err, "GrantByCredential in creating tx")
		same(t, "GrantByCredential", got, stored(g, model.Usage{Sessions: 1, Calls: 3}))
	})
	write(t, s, func(ctx context.Context, tx store.Tx) {
		got, err := tx.GrantByCredential(ctx, g.CredentialID)
		must(t, err, "GrantByCredential")
		same(t, "GrantByCredential", got, stored(g, model.Usage{Sessions: 1, Calls: 3}))

		g.CredentialID = "AKIAROTATED"
		must(t, tx.UpdateGrant(ctx, g), "UpdateGrant (rotate credential)")
		_, err = tx.GrantByCredential(ctx, "AKIAG_1")
		wantErr(t, err, store.ErrNotFound, "GrantByCredential(old credential)")
		got, err = tx.GrantByCredential(ctx, "AKIAROTATED")
		must(t, err, "GrantByCredential(new credential)")
		if got.ID != g.ID {
			t.Fatalf("GrantByCredential(new credential) = %s", got.ID)
		}
	})
}

func testOpenGrants(t *testing.T, s store.Store) {
	statuses := []model.GrantStatus{model.Pending, model.Active, model.Expired, model.Revoked, model.Ended, model.Denied, model.Cancelled}
	write(t, s, func(ctx context.Context, tx store.Tx) {
		// Created in reverse order of RequestedAt to check the ordering.
		for i, st := range slices.Backward(statuses) {
			g := grant(fmt.Sprintf("g_%d_%s", i, st), st, t0.Add(time.Duration(i)*time.Minute))
			must(t, tx.CreateGrant(ctx, withLife(g, g.RequestedAt, g.RequestedAt.Add(time.Hour))), "CreateGrant")
		}
		open, err := tx.OpenGrants(ctx)
		must(t, err, "OpenGrants")
		sameIDs(t, "OpenGrants", open, "g_0_pending", "g_1_active")
	})
	write(t, s, func(ctx context.Context, tx store.Tx) {
		g, err := tx.Grant(ctx, "g_1_active")
		must(t, err, "Grant")
		g.Status = model.Expired
		g.EndedAt = g.ExpiresAt
		must(t, tx.UpdateGrant(ctx, g), "UpdateGrant")
		open, err := tx.OpenGrants(ctx)
		must(t, err, "OpenGrants")
		sameIDs(t, "OpenGrants after expiry", open, "g_0_pending")
	})
}

func testGrantsFilters(t *testing.T, s store.Store) {
	ctx := t.Context()
	mk := func(id, account, target, identity string, st model.GrantStatus, at time.Duration) model.Grant {
		g := grant(id, st, t0.Add(at))
		g.Account, g.Target, g.Identity = account, target, identity
		return withLife(g, g.RequestedAt, g.RequestedAt.Add(10*time.Minute))
	}
	all := []model.Grant{
		mk("g_5", "A", "aws-a", "bot1", model.Ended, 5*time.Minute),
		mk("g_1", "A", "aws-a", "bot1", model.Active, 1*time.Minute),
		mk("g_3b", "A", "db-a", "bot2", model.Pending, 3*time.Minute),
		mk("g_3a", "B", "aws-b", "bot1", model.Expired, 3*time.Minute), // same RequestedAt as g_3b
		mk("g_2", "B", "aws-b", "bot2", model.Denied, 2*time.Minute),
		mk("g_4", "A", "db-a", "bot3", model.Revoked, 4*time.Minute),
	}
	write(t, s, func(ctx context.Context, tx store.Tx) {
		for _, g := range all {
			must(t, tx.CreateGrant(ctx, g), "CreateGrant "+g.ID)
		}
	})
	cases := []struct {
		name string
		f    store.GrantFilter
		want []string
	}{
		{"all, ordered by RequestedAt then ID", store.GrantFilter{}, []string{"g_1", "g_2", "g_3a", "g_3b", "g_4", "g_5"}},
		{"account", store.GrantFilter{Account: "A"}, []string{"g_1", "g_3b", "g_4", "g_5"}},
		{"target", store.GrantFilter{Target: "aws-b"}, []string{"g_2", "g_3a"}},
		{"identity", store.GrantFilter{Identity: "bot1"}, []string{"g_1", "g_3a", "g_5"}},
		{"one status", store.GrantFilter{Status: []model.GrantStatus{model.Revoked}}, []string{"g_4"}},
		{"statuses", store.GrantFilter{Status: []model.GrantStatus{model.Pending, model.Active, model.Denied}}, []string{"g_1", "g_2", "g_3b"}},
		{"account+identity", store.GrantFilter{Account: "A", Identity: "bot1"}, []string{"g_1", "g_5"}},
		{"account+target+status", store.GrantFilter{Account: "A", Target: "db-a", Status: []model.GrantStatus{model.Pending}}, []string{"g_3b"}},
		{"no match", store.GrantFilter{Account: "B", Target: "aws-a"}, nil},
		{"limit", store.GrantFilter{Limit: 3}, []string{"g_1", "g_2", "g_3a"}},
		{"account+limit", store.GrantFilter{Account: "A", Limit: 2}, []string{"g_1", "g_3b"}},
		{"account+window+limit", store.GrantFilter{Account: "A", Since: t0, Until: t0.Add(time.Hour), Limit: 3}, []string{"g_1", "g_3b", "g_4"}},
		// The cursor: what follows a grant in (RequestedAt, ID) order,
		// ties at the same time broken by the ID, the filter still applied.
		{"after", store.GrantFilter{After: store.GrantKey{RequestedAt: t0.Add(2 * time.Minute), ID: "g_2"}}, []string{"g_3a", "g_3b", "g_4", "g_5"}},
		{"after, a tie", store.GrantFilter{After: store.GrantKey{RequestedAt: t0.Add(3 * time.Minute), ID: "g_3a"}}, []string{"g_3b", "g_4", "g_5"}},
		{"after+limit", store.GrantFilter{After: store.GrantKey{RequestedAt: t0.Add(3 * time.Minute), ID: "g_3a"}, Limit: 1}, []string{"g_3b"}},
		{"after+account", store.GrantFilter{Account: "B", After: store.GrantKey{RequestedAt: t0.Add(2 * time.Minute), ID: "g_2"}}, []string{"g_3a"}},
		{"after+window", store.GrantFilter{Since: t0, Until: t0.Add(time.Hour), After: store.GrantKey{RequestedAt: t0.Add(3 * time.Minute), ID: "g_3b"}}, []string{"g_4", "g_5"}},
		{"after the last", store.GrantFilter{After: store.GrantKey{RequestedAt: t0.Add(5 * time.Minute), ID: "g_5"}}, nil},
	}
	for _, c := range cases {
		got, err := s.Grants(ctx, c.f)
		must(t, err, "Grants "+c.name)
		sameIDs(t, "Grants "+c.name, got, c.want...)
		// The records alone select the same grants, in the same order.
		f := c.f
		f.RecordsOnly = true
		got, err = s.Grants(ctx, f)
		must(t, err, "Grants RecordsOnly "+c.name)
		sameIDs(t, "Grants RecordsOnly "+c.name, got, c.want...)
	}
}

// testGrantsWindow checks the overlap semantics of Since/Until on the
// lifetime [RequestedAt, Deadline()] of grants of every status.
func testGrantsWindow(t *testing.T, s store.Store) {
	ctx := t.Context()
	W := t0
	U := W.Add(24 * time.Hour)
	h := time.Hour
	day := 24 * h
	life := func(id string, st model.GrantStatus, from, to time.Time) model.Grant {
		return withLife(grant(id, st, from), from, to)
	}
	grants := []model.Grant{
		life("before", model.Ended, W.Add(-3*h), W.Add(-h)),
		life("ends-at-since", model.Expired, W.Add(-2*h), W),
		life("ends-just-before-since", model.Expired, W.Add(-2*h), W.Add(-1)),
		life("straddles-since", model.Revoked, W.Add(-h), W.Add(h)),
		life("inside", model.Ended, W.Add(h), W.Add(2*h)),
		life("straddles-until", model.Expired, W.Add(23*h), W.Add(25*h)),
		life("starts-just-before-until", model.Expired, U.Add(-1), U.Add(h)),
		life("starts-at-until", model.Expired, U, U.Add(h)),
		life("after", model.Ended, W.Add(30*h), W.Add(31*h)),
		life("covers-window", model.Ended, W.Add(-h), U.Add(h)),
		// Long lifetimes, far beyond any other grant's.
		life("long-straddles", model.Ended, W.Add(-40*day), W.Add(h)),
		life("long-before", model.Ended, W.Add(-60*day), W.Add(-20*day)),
	}
	// A pending grant lives until DecideBy, whatever else is set.
	p := life("pending-decide-by-inside", model.Pending, W.Add(-2*h), W.Add(10*time.Minute))
	grants = append(grants, p)
	p = life("pending-decided-before", model.Pending, W.Add(-2*h), W.Add(-h))
	p.ExpiresAt, p.EndedAt = W.Add(5*h), W.Add(6*h) // not its deadline
	grants = append(grants, p)
	// An active grant lives until ExpiresAt.
	a := life("active-expires-inside", model.Active, W.Add(-3*h), W.Add(h))
	a.DecideBy = W.Add(-2 * h)
	grants = append(grants, a)
	a = life("active-expired-before", model.Active, W.Add(-5*h), W.Add(-h))
	a.DecideBy = W.Add(2 * h) // not its deadline
	grants = append(grants, a)
	// A final grant lives until EndedAt.
	f := life("final-ended-before", model.Revoked, W.Add(-5*h), W.Add(-4*h))
	f.ExpiresAt = W.Add(5 * h) // not its deadline
	grants = append(grants, f)
	// A grant without a deadline is still live.
	grants = append(grants,
		grant("open-ended-old", model.Pending, W.Add(-100*day)),
		grant("open-ended-after", model.Pending, U.Add(6*h)),
	)
	grown := life("grown-by-update", model.Pending, W.Add(-10*day), W.Add(-10*day+h))

	write(t, s, func(ctx context.Context, tx store.Tx) {
		for _, g := range grants {
			must(t, tx.CreateGrant(ctx, g), "CreateGrant "+g.ID)
		}
		must(t, tx.CreateGrant(ctx, grown), "CreateGrant grown")
	})
	// An update that makes a grant's lifetime much longer than any other
	// must still be found.
	write(t, s, func(ctx context.Context, tx store.Tx) {
		grown.Status = model.Active
		grown.ExpiresAt = W.Add(2 * h)
		must(t, tx.UpdateGrant(ctx, grown), "UpdateGrant grown")
	})

	inWindow := []string{
		"long-straddles", "open-ended-old", "grown-by-update", "active-expires-inside", "ends-at-since",
		"pending-decide-by-inside", "covers-window", "straddles-since", "inside", "straddles-until", "starts-just-before-until",
	}
	check := func(name string, f store.GrantFilter, want []string) {
		t.Helper()
		got, err := s.Grants(ctx, f)
		must(t, err, "Grants "+name)
		slices.Sort(want)
		g := ids(got)
		gs := slices.Clone(g)
		slices.Sort(gs)
		if !slices.Equal(gs, want) {
			var missing, extra []string
			for _, id := range want {
				if !slices.Contains(gs, id) {
					missing = append(missing, id)
				}
			}
			for _, id := range gs {
				if !slices.Contains(want, id) {
					extra = append(extra, id)
				}
			}
			t.Fatalf("Grants %s: missing %q, unexpected %q", name, missing, extra)
		}
		for i := 1; i < len(got); i++ {
			a, b := got[i-1], got[i]
			if b.RequestedAt.Before(a.RequestedAt) || (b.RequestedAt.Equal(a.RequestedAt) && b.ID < a.ID) {
				t.Fatalf("Grants %s: not ordered by RequestedAt, ID: %q", name, g)
			}
		}
	}
	check("day window", store.GrantFilter{Since: W, Until: U}, inWindow)
	check("day window, account", store.GrantFilter{Account: "111122223333", Since: W, Until: U}, inWindow)
	check("day window, other account", store.GrantFilter{Account: "999", Since: W, Until: U}, nil)
	check("day window, identity+status", store.GrantFilter{Identity: "log-triage-bot", Status: []model.GrantStatus{model.Pending}, Since: W, Until: U},
		[]string{"open-ended-old", "pending-decide-by-inside"})
	check("day window in another zone", store.GrantFilter{Since: W.In(zone), Until: U.In(zone)}, inWindow)

	var all, sinceOnly, untilOnly []string
	for _, g := range append(slices.Clone(grants), grown) {
		all = append(all, g.ID)
		if d := g.Deadline(); d.IsZero() || !d.Before(W) {
			sinceOnly = append(sinceOnly, g.ID)
		}
		if g.RequestedAt.Before(U) {
			untilOnly = append(untilOnly, g.ID)
		}
	}
	check("no window", store.GrantFilter{}, all)
	check("since only", store.GrantFilter{Since: W}, sinceOnly)
	check("until only", store.GrantFilter{Until: U}, untilOnly)
	check("empty window", store.GrantFilter{Since: W, Until: W}, nil)
	check("inverted window", store.GrantFilter{Since: U, Until: W}, nil)
	check("one nanosecond at since", store.GrantFilter{Since: W, Until: W.Add(1)},
		[]string{"long-straddles", "open-ended-old", "grown-by-update", "active-expires-inside", "ends-at-since",
			"pending-decide-by-inside", "covers-window", "straddles-since"})
}

// testGrantsWindowRandom compares Grants with a direct evaluation of the
// filter over random grants, windows and filters.
func testGrantsWindowRandom(t *testing.T, s store.Store) {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(1, 2))
	statuses := []model.GrantStatus{model.Pending, model.Active, model.Expired, model.Revoked, model.Ended, model.Denied, model.Cancelled}
	accounts := []string{"A", "B", "C"}
	targets := []string{"t1", "t2", "t3"}
	idents := []string{"i1", "i2", "i3", "i4"}
	span := func() time.Duration {
		switch rng.IntN(10) {
		case 0:
			return time.Duration(rng.Int64N(int64(60 * 24 * time.Hour))) // up to 60 days
		case 1:
			return -1 // no deadline
		default:
			return time.Duration(rng.Int64N(int64(12 * time.Hour)))
		}
	}
	base := t0.Add(-30 * 24 * time.Hour)
	var grants []model.Grant
	for i := range 400 {
		g := grant(fmt.Sprintf("g_%03d", i), statuses[rng.IntN(len(statuses))],
			base.Add(time.Duration(rng.Int64N(int64(60*24*time.Hour)))))
		if i%7 == 0 && i > 0 { // same RequestedAt as a previous grant
			g.RequestedAt = grants[rng.IntN(len(grants))].RequestedAt
		}
		g.Account = accounts[rng.IntN(len(accounts))]
		g.Target = targets[rng.IntN(len(targets))]
		g.Identity = idents[rng.IntN(len(idents))]
		if d := span(); d >= 0 {
			g = withLife(g, g.RequestedAt, g.RequestedAt.Add(d))
		}
		grants = append(grants, g)
	}
	write(t, s, func(ctx context.Context, tx store.Tx) {
		for _, g := range grants {
			must(t, tx.CreateGrant(ctx, g), "CreateGrant")
		}
	})
	// Move some grants along their lifecycle, changing their deadlines.
	write(t, s, func(ctx context.Context, tx store.Tx) {
		for i := range grants {
			if rng.IntN(4) != 0 {
				continue
			}
			g := &grants[i]
			g.Status = statuses[rng.IntN(len(statuses))]
			g.DecideBy, g.ExpiresAt, g.EndedAt = time.Time{}, time.Time{}, time.Time{}
			if d := span(); d >= 0 {
				*g = withLife(*g, g.RequestedAt, g.RequestedAt.Add(d))
			}
			must(t, tx.UpdateGrant(ctx, *g), "UpdateGrant")
		}
	})

	match := func(g model.Grant, f store.GrantFilter) bool {
		switch {
		case f.Account != "" && g.Account != f.Account,
			f.Target != "" && g.Target != f.Target,
			f.Identity != "" && g.Identity != f.Identity,
			len(f.Status) > 0 && !slices.Contains(f.Status, g.Status),
			!f.Until.IsZero() && !g.RequestedAt.Before(f.Until):
			return false
		}
		if !f.Since.IsZero() {
			if d := g.Deadline(); !d.IsZero() && d.Before(f.Since) {
				return false
			}
		}
		return true
	}
	for i := range 300 {
		var f store.GrantFilter
		if rng.IntN(2) == 0 {
			f.Account = accounts[rng.IntN(len(accounts))]
		}
		if rng.IntN(4) == 0 {
			f.Target = targets[rng.IntN(len(targets))]
		}
		if rng.IntN(4) == 0 {
			f.Identity = idents[rng.IntN(len(idents))]
		}
		if rng.IntN(4) == 0 {
			f.Status = []model.GrantStatus{statuses[rng.IntN(len(statuses))], statuses[rng.IntN(len(statuses))]}
		}
		start := base.Add(time.Duration(rng.Int64N(int64(70 * 24 * time.Hour))))
		length := time.Duration(rng.Int64N(int64(3*24*time.Hour))) + 1
		switch rng.IntN(5) {
		case 0:
			f.Since = start
		case 1:
			f.Until = start
		default:
			f.Since, f.Until = start, start.Add(length)
		}
		if rng.IntN(4) == 0 {
			f.Limit = 1 + rng.IntN(10)
		}
		var want []model.Grant
		for _, g := range grants {
			if match(g, f) {
				want = append(want, g)
			}
		}
		slices.SortFunc(want, func(a, b model.Grant) int {
			if c := a.RequestedAt.Compare(b.RequestedAt); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		if f.Limit > 0 && len(want) > f.Limit {
			want = want[:f.Limit]
		}
		got, err := s.Grants(ctx, f)
		must(t, err, "Grants")
		if g, w := ids(got), ids(want); !slices.Equal(g, w) {
			t.Fatalf("case %d: Grants(%+v)\n got %q\nwant %q", i, f, g, w)
		}
		if f.Limit == 0 {
			// Read a page at a time through the cursor, the whole answer
			// again, in order and each grant once, whatever the window
			// (the long-lived grants come from the query's second SELECT).
			f.Limit = 1 + rng.IntN(7)
			var paged []model.Grant
			for {
				page, err := s.Grants(ctx, f)
				must(t, err, "Grants page")
				paged = append(paged, page...)
				if len(page) < f.Limit {
					break
				}
				if len(paged) > len(want) {
					t.Fatalf("case %d: Grants(%+v) a page at a time: more than the %d grants of the query", i, f, len(want))
				}
				last := page[len(page)-1]
				f.After = store.GrantKey{RequestedAt: last.RequestedAt, ID: last.ID}
			}
			if g, w := ids(paged), ids(want); !slices.Equal(g, w) {
				t.Fatalf("case %d: Grants(%+v) a page at a time\n got %q\nwant %q", i, f, g, w)
			}
		}
	}
}

// testSessionsPage: a grant's sessions read a page at a time through the
// cursor are Sessions' answer, in its order (a session without a start
// first, then by start, ties by id), each once, whatever the page size.
func testSessionsPage(t *testing.T, s store.Store) {
	ctx := t.Context()
	var all []model.Session
	for i := range 23 {
		ss := model.Session{ID: fmt.Sprintf("s_%02d", (i*7)%23), GrantID: "g_1", StartedAt: t0.Add(time.Duration(i%5) * time.Minute)}
		if i%9 == 0 {
			ss.StartedAt = time.Time{} // none: listed first
		}
		all = append(all, ss)
	}
	write(t, s, func(ctx context.Context, tx store.Tx) {
		for _, ss := range all {
			must(t, tx.PutSession(ctx, ss), "PutSession")
		}
		must(t, tx.PutSession(ctx, model.Session{ID: "s_other", GrantID: "g_2", StartedAt: t0}), "PutSession")
	})
	want, err := s.Sessions(ctx, "g_1")
	must(t, err, "Sessions")
	sid := func(ss []model.Session) []string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = s.ID
		}
		return out
	}
	if len(want) != len(all) || !want[0].StartedAt.IsZero() || !want[2].StartedAt.IsZero() || want[0].ID > want[1].ID {
		t.Fatalf("Sessions: %q, want the %d sessions, those without a start first", sid(want), len(all))
	}
	for limit := 1; limit <= 8; limit++ {
		var got []model.Session
		f := store.SessionFilter{GrantID: "g_1", Limit: limit}
		for {
			page, err := s.SessionsPage(ctx, f)
			must(t, err, "SessionsPage")
			got = append(got, page...)
			if len(page) < limit {
				break
			}
			if len(got) > len(want) {
				t.Fatalf("SessionsPage by %d: more than the %d sessions", limit, len(want))
			}
			last := page[len(page)-1]
			f.After = store.SessionKey{StartedAt: last.StartedAt, ID: last.ID}
		}
		if g, w := sid(got), sid(want); !slices.Equal(g, w) {
			t.Fatalf("SessionsPage by %d:\n got %q\nwant %q", limit, g, w)
		}
	}
	page, err := s.SessionsPage(ctx, store.SessionFilter{GrantID: "g_1", After: store.SessionKey{StartedAt: want[len(want)-1].StartedAt, ID: want[len(want)-1].ID}})
	must(t, err, "SessionsPage after the last")
	if len(page) != 0 {
		t.Fatalf("after the last: %q", sid(page))
	}
}

func testUsage(t *testing.T, s store.Store) {
	ctx := t.Context()
	g1 := grant("g_1", model.Active, t0)
	g1.ExpiresAt = t0.Add(time.Hour)
	g2 := grant("g_2", model.Active, t0.Add(time.Minute))
	g2.ExpiresAt = t0.Add(time.Hour)
	sessions := []model.Session{
		{ID: "s_1", GrantID: "g_1", StartedAt: t0.Add(time.Minute), Calls: 10, Denied: 1, BytesIn: 100, BytesOut: 1000,
			Used: []string{"s3:ListBucket arn:aws:s3:::logs", "s3:GetObject arn:aws:s3:::logs/app/a"}},
		{ID: "s_2", GrantID: "g_1", StartedAt: t0.Add(2 * time.Minute), Calls: 5, Denied: 0, BytesIn: 50, BytesOut: 500,
			Used: []string{"s3:GetObject arn:aws:s3:::logs/app/a", "s3:GetObject arn:aws:s3:::logs/app/b"}},
		{ID: "s_3", GrantID: "g_1", StartedAt: t0.Add(3 * time.Minute), Calls: 2, Denied: 2},
		{ID: "s_other", GrantID: "g_other", StartedAt: t0, Calls: 1000, Used: []string{"x y"}},
	}
	want1 := model.Usage{Sessions: 3, Calls: 17, DeniedCalls: 3, BytesIn: 150, BytesOut: 1500,
		ScopeUsed: []string{"s3:GetObject arn:aws:s3:::logs/app/a", "s3:GetObject arn:aws:s3:::logs/app/b", "s3:ListBucket arn:aws:s3:::logs"}}
	checkUsage := func(what string, got model.Usage, want model.Usage) {
		t.Helper()
		used := slices.Clone(got.ScopeUsed)
		slices.Sort(used)
		if !slices.Equal(slices.Compact(slices.Clone(used)), used) {
			t.Fatalf("%s: ScopeUsed has duplicates: %q", what, got.ScopeUsed)
		}
		got.ScopeUsed = used
		same(t, what, got, want)
	}
	// The record alone (what) is Grant's answer (got, g_1's) without the
	// usage, and a missing grant ErrNotFound.
	checkRecord := func(ctx context.Context, what string, read func(context.Context, string) (model.Grant, error), got model.Grant) {
		t.Helper()
		rec, err := read(ctx, "g_1")
		must(t, err, what)
		want := got
		want.Usage = model.Usage{}
		same(t, what, rec, want)
		_, err = read(ctx, "g_nope")
		wantErr(t, err, store.ErrNotFound, what)
	}
	write(t, s, func(ctx context.Context, tx store.Tx) {
		must(t, tx.CreateGrant(ctx, g1), "CreateGrant")
		must(t, tx.CreateGrant(ctx, g2), "CreateGrant")
		for _, ss := range sessions {
			must(t, tx.PutSession(ctx, ss), "PutSession")
		}
		got, err := tx.Grant(ctx, "g_1")
		must(t, err, "tx.Grant")
		checkUsage("tx.Grant usage", got.Usage, want1)
		if gr, ok := tx.(store.GrantRecordTx); ok {
			checkRecord(ctx, "tx.GrantRecord", gr.GrantRecord, got)
		}
		if gs, ok := tx.(store.GrantStatusTx); ok {
			st, err := gs.GrantStatus(ctx, "g_1")
			must(t, err, "tx.GrantStatus")
			if st != model.Active {
				t.Fatalf("tx.GrantStatus: %q, want active", st)
			}
			_, err = gs.GrantStatus(ctx, "g_nope")
			wantErr(t, err, store.ErrNotFound, "tx.GrantStatus")
		}
		open, err := tx.OpenGrants(ctx)
		must(t, err, "OpenGrants")
		sameIDs(t, "OpenGrants", open, "g_1", "g_2")
		checkUsage("OpenGrants usage", open[0].Usage, want1)
		checkUsage("OpenGrants usage g_2", open[1].Usage, model.Usage{})
	})
	got, err := s.Grant(ctx, "g_1")
	must(t, err, "Grant")
	checkUsage("Grant usage", got.Usage, want1)
	checkRecord(ctx, "GrantRecord", s.GrantRecord, got)
	got, err = s.Grant(ctx, "g_2")
	must(t, err, "Grant")
	checkUsage("Grant usage without sessions", got.Usage, model.Usage{})
	list, err := s.Grants(ctx, store.GrantFilter{Since: t0, Until: t0.Add(time.Hour)})
	must(t, err, "Grants")
	sameIDs(t, "Grants", list, "g_1", "g_2")
	checkUsage("Grants usage", list[0].Usage, want1)
	checkUsage("Grants usage without sessions", list[1].Usage, model.Usage{})
	// RecordsOnly: the same grants, each Grants' answer without the usage,
	// with a window and without one.
	for _, f := range []store.GrantFilter{{Since: t0, Until: t0.Add(time.Hour)}, {}} {
		f.RecordsOnly = true
		recs, err := s.Grants(ctx, f)
		must(t, err, "Grants RecordsOnly")
		want := slices.Clone(list)
		for i := range want {
			want[i].Usage = model.Usage{}
		}
		same(t, fmt.Sprintf("Grants RecordsOnly (window %v)", !f.Since.IsZero()), recs, want)
	}

	// Replacing a session replaces its contribution.
	s2 := sessions[1]
	s2.Calls, s2.Used = 6, []string{"s3:GetObject arn:aws:s3:::logs/app/c"}
	write(t, s, func(ctx context.Context, tx store.Tx) {
		must(t, tx.PutSession(ctx, s2), "PutSession replace")
	})
	want1.Calls = 18
	want1.ScopeUsed = []string{"s3:GetObject arn:aws:s3:::logs/app/a", "s3:GetObject arn:aws:s3:::logs/app/c", "s3:ListBucket arn:aws:s3:::logs"}
	got, err = s.Grant(ctx, "g_1")
	must(t, err, "Grant")
	checkUsage("Grant usage after session replaced", got.Usage, want1)
}

func testSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	s1 := model.Session{
		ID: "s_1", GrantID: "g_1", Identity: "bot", Target: "aws-prod", Client: "aws-cli/2.15 10.0.0.7",
		StartedAt: t0.Add(2*time.Hour + 5).In(zone), EndedAt: t0.Add(3*time.Hour + 9),
		Calls: 10, Denied: 2, BytesIn: 300, BytesOut: 4000, Used: []string{"s3:GetObject arn:aws:s3:::logs/app/a"},
	}
	s2 := model.Session{ID: "s_2", GrantID: "g_1", StartedAt: t0.Add(time.Hour)}
	s3 := model.Session{ID: "s_3", GrantID: "g_2", StartedAt: t0}
	write(t, s, func(ctx context.Context, tx store.Tx) {
		for _, ss := range []model.Session{s1, s2, s3} {
			must(t, tx.PutSession(ctx, ss), "PutSession")
		}
	})
	got, err := s.Session(ctx, "s_1")
	must(t, err, "Session")
	same(t, "Session(s_1)", got, s1)
	got, err = s.Session(ctx, "s_2")
	must(t, err, "Session")
	same(t, "Session(s_2)", got, s2)
	list, err := s.Sessions(ctx, "g_1")
	must(t, err, "Sessions")
	same(t, "Sessions(g_1) ordered by StartedAt", list, []model.Session{s2, s1})

	s1.Calls, s1.EndedAt = 11, t0.Add(4*time.Hour)
	write(t, s, func(ctx context.Context, tx store.Tx) {
		must(t, tx.PutSession(ctx, s1), "PutSession replace")
	})
	got, err = s.Session(ctx, "s_1")
	must(t, err, "Session")
	same(t, "Session(s_1) after replace", got, s1)
	list, err = s.Sessions(ctx, "g_1")
	must(t, err, "Sessions")
	if len(list) != 2 {
		t.Fatalf("Sessions after replace: %d sessions, want 2", len(list))
	}

	// InsertSession writes a new row, but never over an existing one
	// (the summary written since a session.started entry was stored).
	s4 := model.Session{ID: "s_4", GrantID: "g_2", Identity: "bot", Target: "db", Client: "psql 127.0.0.1", StartedAt: t0.Add(time.Minute)}
	write(t, s, func(ctx context.Context, tx store.Tx) {
		must(t, tx.InsertSession(ctx, s4), "InsertSession new")
		must(t, tx.InsertSession(ctx, model.Session{ID: "s_1", GrantID: "g_1", StartedAt: t0}), "InsertSession existing")
	})
	got, err = s.Session(ctx, "s_4")
	must(t, err, "Session")
	same(t, "Session(s_4) inserted", got, s4)
	got, err = s.Session(ctx, "s_1")
	must(t, err, "Session")
	same(t, "Session(s_1) after InsertSession of its ID", got, s1)

	// EndSession writes the end and the final summary into the row, once.
	end := model.Session{ID: "s_4", EndedAt: t0.Add(time.Hour).In(zone), Calls: 4, Denied: 1, BytesIn: 10, BytesOut: 20, Used: []string{"pg:select db.public.t"}}
	write(t, s, func(ctx context.Context, tx store.Tx) {
		ok, err := tx.EndSession(ctx, end)
		must(t, err, "EndSession")
		if !ok {
			t.Error("EndSession of an open session: false")
		}
		again := end
		again.EndedAt, again.Calls = t0.Add(2*time.Hour), 99
		if ok, err := tx.EndSession(ctx, again); err != nil || ok {
			t.Errorf("EndSession of an ended session: %v %v, want false, nil", ok, err)
		}
		if _, err := tx.EndSession(ctx, model.Session{ID: "s_none", EndedAt: t0}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("EndSession without a row: %v, want ErrNotFound", err)
		}
	})
	got, err = s.Session(ctx, "s_4")
	must(t, err, "Session")
	want4 := s4
	want4.EndedAt, want4.Calls, want4.Denied, want4.BytesIn, want4.BytesOut, want4.Used = end.EndedAt, 4, 1, 10, 20, end.Used
	same(t, "Session(s_4) after EndSession", got, want4)

	// OpenSessions: those whose row states no end, however they were
	// written (PutSession, InsertSession, EndSession).
	lister, ok := s.(store.OpenSessionLister)
	if !ok {
		t.Fatal("the store does not list open sessions")
	}
	open, err := lister.OpenSessions(ctx)
	must(t, err, "OpenSessions")
	var openIDs []string
	for _, o := range open {
		openIDs = append(openIDs, o.ID)
	}
	if strings.Join(openIDs, ",") != "s_2,s_3" {
		t.Fatalf("OpenSessions = %v, want s_2,s_3", openIDs)
	}
}

func testAppendLog(t *testing.T, s store.Store) {
	ctx := t.Context()
	size := func() int64 {
		t.Helper()
		n, err := s.LogSize(ctx)
		must(t, err, "LogSize")
		return n
	}
	if n := size(); n != 0 {
		t.Fatalf("empty LogSize = %d", n)
	}
	first := entries(0, 3)
	first[1].GrantID, first[1].SessionID = "", "s_1"
	first[2].Data = nil
	write(t, s, func(ctx context.Context, tx store.Tx) {
		must(t, tx.AppendLog(ctx, nil), "AppendLog(empty)")
		must(t, tx.AppendLog(ctx, first), "AppendLog")
		wantErr(t, tx.AppendLog(ctx, entries(2, 2)), store.ErrConflict, "AppendLog overlapping")
		wantErr(t, tx.AppendLog(ctx, entries(4, 1)), store.ErrConflict, "AppendLog leaving a gap")
		wantErr(t, tx.AppendLog(ctx, entries(0, 1)), store.ErrConflict, "AppendLog from 0 again")
		gap := append(entries(3, 1), entries(5, 1)...)
		wantErr(t, tx.AppendLog(ctx, gap), store.ErrConflict, "AppendLog with a gap inside the batch")
		dup := append(entries(3, 1), entries(3, 1)...)
		wantErr(t, tx.AppendLog(ctx, dup), store.ErrConflict, "AppendLog with a repeated seq")
		// The failed batches stored nothing: 3 continues the log.
		must(t, tx.AppendLog(ctx, entries(3, 1)), "AppendLog after conflicts")
	})
	if n := size(); n != 4 {
		t.Fatalf("LogSize = %d, want 4", n)
	}
	write(t, s, func(ctx context.Context, tx store.Tx) {
		must(t, tx.AppendLog(ctx, entries(4, 2)), "AppendLog second transaction")
	})
	if n := size(); n != 6 {
		t.Fatalf("LogSize = %d, want 6", n)
	}
	var got []store.LogEntry
	must(t, s.ScanLog(ctx, 0, 6, func(e store.LogEntry) error {
		got = append(got, e)
		return nil
	}), "ScanLog")
	want := append(append(first, entries(3, 1)...), entries(4, 2)...)
	same(t, "log entries", got, want)
	if got[0].Time.Nanosecond() != 7 {
		t.Errorf("log entry time lost nanoseconds: %v", got[0].Time)
	}
}

func testScanLog(t *testing.T, s store.Store) {
	ctx := t.Context()
	write(t, s, func(ctx context.Context, tx store.Tx) {
		must(t, tx.AppendLog(ctx, entries(0, 10)), "AppendLog")
	})
	scan := func(from, to int64) []int64 {
		t.Helper()
		var out []int64
		must(t, s.ScanLog(ctx, from, to, func(e store.LogEntry) error {
			out = append(out, e.Seq)
			return nil
		}), fmt.Sprintf("ScanLog(%d, %d)", from, to))
		return out
	}
	cases := []struct {
		from, to int64
		want     []int64
	}{
		{0, 10, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{3, 7, []int64{3, 4, 5, 6}},
		{8, 100, []int64{8, 9}},
		{9, 10, []int64{9}},
		{5, 5, nil},
		{7, 3, nil},
		{10, 20, nil},
	}
	for _, c := range cases {
		if got := scan(c.from, c.to); !slices.Equal(got, c.want) {
			t.Errorf("ScanLog(%d, %d) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
	errStop := errors.New("stop")
	calls := 0
	err := s.ScanLog(ctx, 0, 10, func(e store.LogEntry) error {
		calls++
		if e.Seq == 4 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("ScanLog early stop returned %v, want the callback's error", err)
	}
	if calls != 5 {
		t.Fatalf("ScanLog called fn %d times after it returned an error at seq 4, want 5", calls)
	}
	// fn may read the store while the scan is running.
	must(t, s.ScanLog(ctx, 0, 3, func(e store.LogEntry) error {
		_, err := s.LogSize(ctx)
		return err
	}), "ScanLog with reads inside fn")

	ls, ok := s.(store.LogLeafScanner)
	if !ok {
		return
	}
	// ScanLogLeaves gives what ScanLog gives, bytes and leaf hashes the
	// caller may keep.
	for _, c := range cases {
		var want, got []store.LogEntry
		must(t, s.ScanLog(ctx, c.from, c.to, func(e store.LogEntry) error {
			want = append(want, store.LogEntry{Seq: e.Seq, Data: bytes.Clone(e.Data), LeafHash: bytes.Clone(e.LeafHash)})
			return nil
		}), "ScanLog")
		must(t, ls.ScanLogLeaves(ctx, c.from, c.to, func(seq int64, data, leaf []byte) error {
			got = append(got, store.LogEntry{Seq: seq, Data: data, LeafHash: leaf})
			return nil
		}), "ScanLogLeaves")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ScanLogLeaves(%d, %d) = %v, want %v", c.from, c.to, got, want)
		}
	}
	calls = 0
	err = ls.ScanLogLeaves(ctx, 0, 10, func(seq int64, _, _ []byte) error {
		calls++
		if seq == 4 {
			return errStop
		}
		return nil
	})
	if !errors.Is(err, errStop) || calls != 5 {
		t.Fatalf("ScanLogLeaves early stop: %v after %d calls, want the callback's error after 5", err, calls)
	}
}

func testLogEntries(t *testing.T, s store.Store) {
	ctx := t.Context()
	es := entries(0, 10)
	spec := []struct{ grant, session, typ string }{
		{"g_1", "", "grant.requested"},
		{"g_1", "", "grant.approved"},
		{"g_1", "s_1", "session.started"},
		{"g_2", "", "grant.requested"},
		{"g_1", "s_1", "session.call"},
		{"g_1", "s_2", "session.call"},
		{"", "", "checkpoint"},
		{"g_1", "s_1", "session.call"},
		// Findings are listed through each store's own index
		// (store.IndexedLogTypes): one of a grant, one of no grant.
		{"g_2", "", "finding"},
		{"", "", "finding"},
	}
	for i, sp := range spec {
		es[i].GrantID, es[i].SessionID, es[i].Type = sp.grant, sp.session, sp.typ
	}
	write(t, s, func(ctx context.Context, tx store.Tx) {
		must(t, tx.AppendLog(ctx, es), "AppendLog")
	})
	cases := []struct {
		name string
		f    store.LogFilter
		want []int64
	}{
		{"grant", store.LogFilter{GrantID: "g_1"}, []int64{0, 1, 2, 4, 5, 7}},
		{"other grant", store.LogFilter{GrantID: "g_2"}, []int64{3, 8}},
		{"session", store.LogFilter{SessionID: "s_1"}, []int64{2, 4, 7}},
		{"type", store.LogFilter{Type: "session.call"}, []int64{4, 5, 7}},
		{"grant+type", store.LogFilter{GrantID: "g_1", Type: "grant.approved"}, []int64{1}},
		{"session+type", store.LogFilter{SessionID: "s_1", Type: "session.call"}, []int64{4, 7}},
		{"grant+limit", store.LogFilter{GrantID: "g_1", Limit: 2}, []int64{0, 1}},
		{"no match", store.LogFilter{GrantID: "g_3"}, nil},
		{"findings", store.LogFilter{Type: "finding"}, []int64{8, 9}},
		{"grant+findings", store.LogFilter{GrantID: "g_2", Type: "finding"}, []int64{8}},
		{"findings+limit", store.LogFilter{Type: "finding", Limit: 1}, []int64{8}},
		{"session+findings", store.LogFilter{SessionID: "s_1", Type: "finding"}, nil},
		// After is a page's cursor: the entries past it, with any other
		// condition and the page's limit.
		{"findings after", store.LogFilter{Type: "finding", After: 8}, []int64{9}},
		{"findings after last", store.LogFilter{Type: "finding", After: 9}, nil},
		{"findings after+limit", store.LogFilter{Type: "finding", After: 3, Limit: 1}, []int64{8}},
		{"grant after+limit", store.LogFilter{GrantID: "g_1", After: 2, Limit: 2}, []int64{4, 5}},
		{"session after", store.LogFilter{SessionID: "s_1", After: 4}, []int64{7}},
		{"type after", store.LogFilter{Type: "session.call", After: 4}, []int64{5, 7}},
		// A grant's own entries (of no session), through their own
		// index: with a cursor, a limit, a type.
		{"grant own", store.LogFilter{GrantID: "g_1", NoSession: true}, []int64{0, 1}},
		{"grant own+limit", store.LogFilter{GrantID: "g_1", NoSession: true, Limit: 1}, []int64{0}},
		{"grant own after", store.LogFilter{GrantID: "g_1", NoSession: true, After: 1}, nil},
		{"other grant own after", store.LogFilter{GrantID: "g_2", NoSession: true, After: 3}, []int64{8}},
		{"other grant own", store.LogFilter{GrantID: "g_2", NoSession: true}, []int64{3, 8}},
		{"other grant own+findings", store.LogFilter{GrantID: "g_2", NoSession: true, Type: "finding"}, []int64{8}},
		{"no session", store.LogFilter{NoSession: true, Type: "finding"}, []int64{8, 9}},
	}
	for _, c := range cases {
		got, err := s.LogEntries(ctx, c.f)
		must(t, err, "LogEntries "+c.name)
		if g := seqs(got); !slices.Equal(g, c.want) {
			t.Errorf("LogEntries %s = %v, want %v", c.name, g, c.want)
		}
	}
	got, err := s.LogEntries(ctx, store.LogFilter{SessionID: "s_2"})
	must(t, err, "LogEntries")
	same(t, "LogEntries(s_2) entry", got, []store.LogEntry{es[5]})
}

func testCheckpoints(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.LatestCheckpoint(ctx)
	wantErr(t, err, store.ErrNotFound, "LatestCheckpoint on empty store")
	n := 0
	must(t, s.ScanCheckpoints(ctx, func(store.Checkpoint) error { n++; return nil }), "ScanCheckpoints empty")
	if n != 0 {
		t.Fatalf("ScanCheckpoints on empty store called fn %d times", n)
	}

	mk := func(size int64) store.Checkpoint {
		return store.Checkpoint{
			ID:        999, // ignored: the store assigns IDs
			Size:      size,
			Root:      []byte{byte(size), 0xaa},
			Note:      []byte(fmt.Sprintf("airlock\n%d\nroot\n\n— sig\n", size)),
			Frontier:  []byte{1, 2, 3, byte(size)},
			CreatedAt: t0.Add(time.Duration(size)*time.Minute + 3).In(zone),
		}
	}
	write(t, s, func(ctx context.Context, tx store.Tx) {
		must(t, tx.PutCheckpoint(ctx, mk(1)), "PutCheckpoint")
		must(t, tx.PutCheckpoint(ctx, mk(3)), "PutCheckpoint")
	})
	write(t, s, func(ctx context.Context, tx store.Tx) {
		must(t, tx.PutCheckpoint(ctx, mk(2)), "PutCheckpoint") // smaller size, later ID
	})
	var got []store.Checkpoint
	must(t, s.ScanCheckpoints(ctx, func(c store.Checkpoint) error {
		got = append(got, c)
		return nil
	}), "ScanCheckpoints")
	if len(got) != 3 {
		t.Fatalf("ScanCheckpoints: %d checkpoints, want 3", len(got))
	}
	for i, size := range []int64{1, 3, 2} {
		want := mk(size)
		want.ID = got[i].ID
		same(t, fmt.Sprintf("checkpoint %d", i), got[i], want)
		if i > 0 && got[i].ID <= got[i-1].ID {
			t.Fatalf("checkpoint IDs not increasing: %d then %d", got[i-1].ID, got[i].ID)
		}
	}
	latest, err := s.LatestCheckpoint(ctx)
	must(t, err, "LatestCheckpoint")
	same(t, "LatestCheckpoint (highest ID)", latest, got[2])

	errStop := errors.New("stop")
	n = 0
	err = s.ScanCheckpoints(ctx, func(store.Checkpoint) error { n++; return errStop })
	if !errors.Is(err, errStop) || n != 1 {
		t.Fatalf("ScanCheckpoints early stop: err %v after %d calls", err, n)
	}
}

func testSavepoints(t *testing.T, s store.Store) {
	ctx := t.Context()
	write(t, s, func(ctx context.Context, tx store.Tx) {
		must(t, tx.CreateGrant(ctx, grant("g_keep", model.Pending, t0)), "CreateGrant")
		must(t, tx.AppendLog(ctx, entries(0, 1)), "AppendLog")

		// One caller's changes, undone.
		must(t, tx.Savepoint(ctx, "caller_1"), "Savepoint")
		must(t, tx.CreateGrant(ctx, grant("g_undone", model.Pending, t0)), "CreateGrant")
		must(t, tx.PutSession(ctx, model.Session{ID: "s_undone", GrantID: "g_keep", StartedAt: t0, Calls: 5}), "PutSession")
		must(t, tx.PutIdentity(ctx, model.Identity{Name: "undone", Kind: model.Agent}), "PutIdentity")
		must(t, tx.PutCheckpoint(ctx, store.Checkpoint{Size: 1}), "PutCheckpoint")
		must(t, tx.AppendLog(ctx, entries(1, 2)), "AppendLog")
		g, err := tx.Grant(ctx, "g_keep")
		must(t, err, "tx.Grant")
		g.Status, g.ExpiresAt = model.Active, t0.Add(time.Hour)
		must(t, tx.UpdateGrant(ctx, g), "UpdateGrant")
		must(t, tx.RollbackTo(ctx, "caller_1"), "RollbackTo")
		must(t, tx.Release(ctx, "caller_1"), "Release")

		_, err = tx.Grant(ctx, "g_undone")
		wantErr(t, err, store.ErrNotFound, "tx.Grant of a grant rolled back to a savepoint")
		g, err = tx.Grant(ctx, "g_keep")
		must(t, err, "tx.Grant")
		if g.Status != model.Pending || g.Usage.Sessions != 0 {
			t.Fatalf("g_keep after RollbackTo: status %s, %d sessions", g.Status, g.Usage.Sessions)
		}
		// The log continues where it was before the savepoint.
		must(t, tx.AppendLog(ctx, entries(1, 1)), "AppendLog after RollbackTo")

		// Another caller's changes, kept.
		must(t, tx.Savepoint(ctx, "caller_2"), "Savepoint")
		must(t, tx.CreateGrant(ctx, grant("g_kept", model.Pending, t0)), "CreateGrant")
		wantErr(t, tx.CreateGrant(ctx, grant("g_kept", model.Pending, t0)), store.ErrConflict, "CreateGrant duplicate")
		must(t, tx.Release(ctx, "caller_2"), "Release")

		// Nested savepoints: rolling back the inner one keeps the outer
		// one's changes; rolling back the outer one drops both.
		must(t, tx.Savepoint(ctx, "outer"), "Savepoint outer")
		must(t, tx.CreateGrant(ctx, grant("g_outer", model.Pending, t0)), "CreateGrant")
		must(t, tx.Savepoint(ctx, "inner"), "Savepoint inner")
		must(t, tx.CreateGrant(ctx, grant("g_inner", model.Pending, t0)), "CreateGrant")
		must(t, tx.RollbackTo(ctx, "inner"), "RollbackTo inner")
		_, err = tx.Grant(ctx, "g_outer")
		must(t, err, "g_outer after RollbackTo inner")
		_, err = tx.Grant(ctx, "g_inner")
		wantErr(t, err, store.ErrNotFound, "g_inner after RollbackTo inner")
		must(t, tx.RollbackTo(ctx, "outer"), "RollbackTo outer")
		must(t, tx.Release(ctx, "outer"), "Release outer")
		_, err = tx.Grant(ctx, "g_outer")
		wantErr(t, err, store.ErrNotFound, "g_outer after RollbackTo outer")

		// A savepoint name must be an identifier; a bad one changes
		// nothing and leaves the transaction usable.
		if err := tx.Savepoint(ctx, `x"; DROP TABLE grants; --`); err == nil {
			t.Fatal("Savepoint accepted a name that is not an identifier")
		}
		if err := tx.RollbackTo(ctx, ""); err == nil {
			t.Fatal("RollbackTo accepted an empty name")
		}
		must(t, tx.CreateGrant(ctx, grant("g_last", model.Pending, t0)), "CreateGrant after bad savepoint names")
	})
	for _, id := range []string{"g_keep", "g_kept", "g_last"} {
		_, err := s.Grant(ctx, id)
		must(t, err, "Grant "+id)
	}
	for _, id := range []string{"g_undone", "g_inner", "g_outer"} {
		_, err := s.Grant(ctx, id)
		wantErr(t, err, store.ErrNotFound, "Grant "+id)
	}
	_, err := s.Session(ctx, "s_undone")
	wantErr(t, err, store.ErrNotFound, "Session rolled back")
	_, err = s.Identity(ctx, "undone")
	wantErr(t, err, store.ErrNotFound, "Identity rolled back")
	_, err = s.LatestCheckpoint(ctx)
	wantErr(t, err, store.ErrNotFound, "Checkpoint rolled back")
	if n, err := s.LogSize(ctx); err != nil || n != 2 {
		t.Fatalf("LogSize = %d, %v; want 2", n, err)
	}
	g, err := s.Grant(ctx, "g_keep")
	must(t, err, "Grant")
	if g.Status != model.Pending {
		t.Fatalf("update inside a rolled-back savepoint survived: %s", g.Status)
	}
}

func testRollback(t *testing.T, s store.Store) {
	ctx := t.Context()
	tx, err := s.Begin(ctx)
	must(t, err, "Begin")
	must(t, tx.CreateGrant(ctx, grant("g_1", model.Pending, t0)), "CreateGrant")
	must(t, tx.PutIdentity(ctx, model.Identity{Name: "bot", Kind: model.Agent}), "PutIdentity")
	must(t, tx.PutSession(ctx, model.Session{ID: "s_1", GrantID: "g_1"}), "PutSession")
	must(t, tx.AppendLog(ctx, entries(0, 3)), "AppendLog")
	must(t, tx.PutCheckpoint(ctx, store.Checkpoint{Size: 3}), "PutCheckpoint")
	must(t, tx.Savepoint(ctx, "sp"), "Savepoint")
	must(t, tx.Rollback(), "Rollback")

	_, err = s.Grant(ctx, "g_1")
	wantErr(t, err, store.ErrNotFound, "Grant after Rollback")
	_, err = s.Identity(ctx, "bot")
	wantErr(t, err, store.ErrNotFound, "Identity after Rollback")
	_, err = s.Session(ctx, "s_1")
	wantErr(t, err, store.ErrNotFound, "Session after Rollback")
	_, err = s.LatestCheckpoint(ctx)
	wantErr(t, err, store.ErrNotFound, "LatestCheckpoint after Rollback")
	if n, err := s.LogSize(ctx); err != nil || n != 0 {
		t.Fatalf("LogSize after Rollback = %d, %v", n, err)
	}
	// The writer is free again, and the log starts over at 0.
	write(t, s, func(ctx context.Context, tx store.Tx) {
		must(t, tx.AppendLog(ctx, entries(0, 1)), "AppendLog after Rollback")
	})
}

func testIsolation(t *testing.T, s store.Store) {
	// Reads outside the transaction must neither see its writes nor wait
	// for it; a deadline turns a blocked read into a failure.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	write(t, s, func(ctx context.Context, tx store.Tx) {
		must(t, tx.CreateGrant(ctx, grant("g_old", model.Pending, t0)), "CreateGrant")
		must(t, tx.AppendLog(ctx, entries(0, 1)), "AppendLog")
	})

	tx, err := s.Begin(ctx)
	must(t, err, "Begin")
	defer tx.Rollback()
	g := fullGrant("g_new", t0)
	g.Status, g.EndedAt = model.Active, time.Time{}
	must(t, tx.CreateGrant(ctx, g), "CreateGrant")
	must(t, tx.PutIdentity(ctx, model.Identity{Name: "bot", Kind: model.Agent}), "PutIdentity")
	must(t, tx.PutSession(ctx, model.Session{ID: "s_1", GrantID: "g_new", Calls: 4}), "PutSession")
	must(t, tx.AppendLog(ctx, entries(1, 2)), "AppendLog")
	must(t, tx.PutCheckpoint(ctx, store.Checkpoint{Size: 3}), "PutCheckpoint")
	old, err := tx.Grant(ctx, "g_old")
	must(t, err, "tx.Grant g_old")
	old.Status, old.DecideBy = model.Cancelled, time.Time{}
	old.EndedAt = t0.Add(time.Hour)
	must(t, tx.UpdateGrant(ctx, old), "UpdateGrant")

	// The transaction sees its own writes.
	got, err := tx.Grant(ctx, "g_new")
	must(t, err, "tx.Grant")
	if got.Usage.Calls != 4 {
		t.Fatalf("tx.Grant usage: %+v", got.Usage)
	}
	_, err = tx.GrantByCredential(ctx, g.CredentialID)
	must(t, err, "tx.GrantByCredential")
	_, err = tx.Identity(ctx, "bot")
	must(t, err, "tx.Identity")
	open, err := tx.OpenGrants(ctx)
	must(t, err, "tx.OpenGrants")
	sameIDs(t, "tx.OpenGrants", open, "g_new")

	// Others do not, and are not blocked.
	_, err = s.Grant(ctx, "g_new")
	wantErr(t, err, store.ErrNotFound, "Grant outside the transaction")
	got, err = s.Grant(ctx, "g_old")
	must(t, err, "Grant g_old outside")
	if got.Status != model.Pending {
		t.Fatalf("outside reader sees uncommitted update: %s", got.Status)
	}
	_, err = s.Identity(ctx, "bot")
	wantErr(t, err, store.ErrNotFound, "Identity outside the transaction")
	_, err = s.Session(ctx, "s_1")
	wantErr(t, err, store.ErrNotFound, "Session outside the transaction")
	if n, err := s.LogSize(ctx); err != nil || n != 1 {
		t.Fatalf("LogSize outside the transaction = %d, %v; want 1", n, err)
	}
	_, err = s.LatestCheckpoint(ctx)
	wantErr(t, err, store.ErrNotFound, "LatestCheckpoint outside the transaction")
	list, err := s.Grants(ctx, store.GrantFilter{})
	must(t, err, "Grants outside")
	sameIDs(t, "Grants outside the transaction", list, "g_old")

	must(t, tx.Commit(), "Commit")
	_, err = s.Grant(ctx, "g_new")
	must(t, err, "Grant after Commit")
	if n, err := s.LogSize(ctx); err != nil || n != 3 {
		t.Fatalf("LogSize after Commit = %d, %v; want 3", n, err)
	}
	got, err = s.Grant(ctx, "g_old")
	must(t, err, "Grant g_old")
	if got.Status != model.Cancelled {
		t.Fatalf("g_old after Commit: %s", got.Status)
	}
}

func testBeginWaits(t *testing.T, s store.Store) {
	ctx := t.Context()
	tx1, err := s.Begin(ctx)
	must(t, err, "Begin")

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err = s.Begin(short)
	cancel()
	if err == nil {
		t.Fatal("a second Begin succeeded while the first transaction was open")
	}

	type result struct {
		tx  store.Tx
		err error
	}
	second := make(chan result, 1)
	go func() {
		tx, err := s.Begin(ctx)
		second <- result{tx, err}
	}()
	select {
	case r := <-second:
		if r.tx != nil {
			r.tx.Rollback()
		}
		t.Fatalf("second Begin returned (err %v) while the first transaction was open", r.err)
	case <-time.After(100 * time.Millisecond):
	}
	must(t, tx1.CreateGrant(ctx, grant("g_1", model.Pending, t0)), "CreateGrant")
	must(t, tx1.Commit(), "Commit")
	select {
	case r := <-second:
		must(t, r.err, "second Begin")
		if _, err := r.tx.Grant(ctx, "g_1"); err != nil {
			t.Fatalf("second transaction does not see the first's commit: %v", err)
		}
		must(t, r.tx.Commit(), "second Commit")
	case <-time.After(10 * time.Second):
		t.Fatal("second Begin still waiting after the first transaction committed")
	}
}

func testTxDone(t *testing.T, s store.Store) {
	ctx := t.Context()
	tx, err := s.Begin(ctx)
	must(t, err, "Begin")
	must(t, tx.Commit(), "Commit")
	if err := tx.Commit(); err == nil {
		t.Error("second Commit succeeded")
	}
	if err := tx.CreateGrant(ctx, grant("g_1", model.Pending, t0)); err == nil {
		t.Error("CreateGrant after Commit succeeded")
	}
	if err := tx.AppendLog(ctx, entries(0, 1)); err == nil {
		t.Error("AppendLog after Commit succeeded")
	}
	if _, err := s.Grant(ctx, "g_1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("write after Commit reached the store: %v", err)
	}
	// And the writer is free.
	write(t, s, func(ctx context.Context, tx store.Tx) {})

	tx, err = s.Begin(ctx)
	must(t, err, "Begin")
	must(t, tx.Rollback(), "Rollback")
	if err := tx.Commit(); err == nil {
		t.Error("Commit after Rollback succeeded")
	}
	write(t, s, func(ctx context.Context, tx store.Tx) {})
}

// testClaimAction: a key is claimed once until it expires, whichever
// transaction asks; a rolled-back claim is no claim; an expired one is
// removed and may be claimed again.
func testClaimAction(t *testing.T, s store.Store) {
	claim := func(tx store.Tx, key string, now, expires time.Time) bool {
		t.Helper()
		c, ok := tx.(store.ActionClaimer)
		if !ok {
			t.Fatalf("%T does not implement store.ActionClaimer", tx)
		}
		fresh, err := c.ClaimAction(t.Context(), key, now, expires)
		must(t, err, "ClaimAction")
		return fresh
	}
	exp := t0.Add(10 * time.Minute)
	write(t, s, func(ctx context.Context, tx store.Tx) {
		if !claim(tx, "k1", t0, exp) {
			t.Error("a new key was not fresh")
		}
		if claim(tx, "k1", t0, exp) {
			t.Error("a key claimed in the same transaction was fresh again")
		}
	})
	tx, err := s.Begin(t.Context())
	must(t, err, "Begin")
	if !claim(tx, "k2", t0, exp) {
		t.Error("k2 was not fresh")
	}
	must(t, tx.Rollback(), "Rollback")
	write(t, s, func(ctx context.Context, tx store.Tx) {
		if claim(tx, "k1", t0.Add(time.Minute), exp) {
			t.Error("a committed claim was fresh in the next transaction")
		}
		if !claim(tx, "k2", t0.Add(time.Minute), exp) {
			t.Error("a rolled-back claim was remembered")
		}
	})
	write(t, s, func(ctx context.Context, tx store.Tx) {
		if claim(tx, "k1", exp, exp) {
			t.Error("a claim was forgotten at its expiry, not after it")
		}
		if !claim(tx, "k1", exp.Add(time.Nanosecond), exp.Add(time.Hour)) {
			t.Error("an expired claim was not forgotten")
		}
	})
}
