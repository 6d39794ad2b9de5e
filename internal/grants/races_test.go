package grants_test

import (
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
)

// The race tests run many rounds, each racing operations on several grants
// at once, and check that every grant ends in one state on which the store,
// the gateway cache and the log agree.

const raceRounds = 8
const racePerRound = 4

// race runs fns concurrently, released together.
func race(fns ...func()) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	for _, f := range fns {
		wg.Go(func() { <-start; f() })
	}
	close(start)
	wg.Wait()
}

func TestRaceTwoApprovers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ali, car := h.id(alice), h.id(carol)
	for range raceRounds {
		type result struct {
			g    model.Grant
			res  [2]model.Grant
			errs [2]error
		}
		rs := make([]*result, racePerRound)
		var fns []func()
		for i := range rs {
			r := &result{g: h.request(bot, humanReq("10m"), model.Pending)}
			rs[i] = r
			for j, who := range []model.Identity{ali, car} {
				fns = append(fns, func() { r.res[j], r.errs[j] = h.Svc.Approve(h.ctx, who, r.g.ID, "") })
			}
		}
		rand.Shuffle(len(fns), func(i, j int) { fns[i], fns[j] = fns[j], fns[i] })
		race(fns...)
		for _, r := range rs {
			var winner int
			switch {
			case r.errs[0] == nil && isConflict(r.errs[1]):
				winner = 0
			case r.errs[1] == nil && isConflict(r.errs[0]):
				winner = 1
			default:
				t.Fatalf("%s: approvals returned %v and %v; want exactly one success and one conflict", r.g.ID, r.errs[0], r.errs[1])
			}
			rec := h.grant(r.g.ID)
			who := []string{alice, carol}[winner]
			if rec.Status != model.Active || len(rec.Approvals) != 1 || rec.Approvals[0].Approver != who || rec.CredentialID != r.res[winner].CredentialID {
				t.Fatalf("%s: record %s approvals %+v cred %s (winner %s, cred %s)", r.g.ID, rec.Status, rec.Approvals, rec.CredentialID, who, r.res[winner].CredentialID)
			}
			types := h.types(r.g.ID)
			if count(types, "grant.approved") != 1 || count(types, "grant.activated") != 1 {
				t.Fatalf("%s: log %v", r.g.ID, types)
			}
			if d := entryData(t, h.entries(r.g.ID)[2]); d["approver"] != who {
				t.Fatalf("%s: approved entry names %v, winner %s", r.g.ID, d["approver"], who)
			}
			if gg, err := h.Svc.Authority().Lookup(rec.CredentialID); err != nil || gg.ID != rec.ID {
				t.Fatalf("%s: not in the cache: %v", r.g.ID, err)
			}
		}
	}
}

func TestRaceApproveVersusCancel(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ali, requester := h.id(alice), h.id(bot)
	var approvedFirst, cancelledFirst int
	for range raceRounds {
		type result struct {
			g          model.Grant
			a, e       model.Grant
			errA, errE error
		}
		rs := make([]*result, racePerRound)
		var fns []func()
		for i := range rs {
			r := &result{g: h.request(bot, humanReq("10m"), model.Pending)}
			rs[i] = r
			fns = append(fns,
				func() { r.a, r.errA = h.Svc.Approve(h.ctx, ali, r.g.ID, "") },
				func() { r.e, r.errE = h.Svc.End(h.ctx, requester, r.g.ID, "") })
		}
		rand.Shuffle(len(fns), func(i, j int) { fns[i], fns[j] = fns[j], fns[i] })
		race(fns...)
		for _, r := range rs {
			rec := h.grant(r.g.ID)
			types := h.types(r.g.ID)
			switch {
			case r.errE == nil && r.e.Status == model.Cancelled && isConflict(r.errA):
				// The withdrawal won: the approval found nothing to approve.
				cancelledFirst++
				if rec.Status != model.Cancelled || rec.CredentialID != "" || len(rec.Approvals) != 0 ||
					count(types, "grant.approved") != 0 || count(types, "grant.cancelled") != 1 || len(types) != 3 {
					t.Fatalf("%s: cancelled first but record %s cred %q log %v", r.g.ID, rec.Status, rec.CredentialID, types)
				}
			case r.errA == nil && r.errE == nil && r.e.Status == model.Ended:
				// The approval won; the requester's End then gave the active grant up.
				approvedFirst++
				if rec.Status != model.Ended || rec.CredentialID != r.a.CredentialID || len(rec.Approvals) != 1 ||
					count(types, "grant.approved") != 1 || count(types, "grant.activated") != 1 || count(types, "grant.ended") != 1 || len(types) != 5 {
					t.Fatalf("%s: approved first but record %s log %v", r.g.ID, rec.Status, types)
				}
				if _, err := h.Svc.Authority().Lookup(rec.CredentialID); !errors.Is(err, gateway.ErrNoGrant) {
					t.Fatalf("%s: ended grant still in the cache", r.g.ID)
				}
			default:
				t.Fatalf("%s: approve → %v (%s), end → %v (%s)", r.g.ID, r.errA, r.a.Status, r.errE, r.e.Status)
			}
		}
	}
	t.Logf("approval first %d, withdrawal first %d", approvedFirst, cancelledFirst)
}

func TestRaceRevokeDuringApproval(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ali, car := h.id(alice), h.id(carol)
	var revoked, stayed int
	for range raceRounds {
		type result struct {
			g          model.Grant
			a, r       model.Grant
			errA, errR error
		}
		rs := make([]*result, racePerRound)
		var fns []func()
		for i := range rs {
			r := &result{g: h.request(bot, humanReq("10m"), model.Pending)}
			rs[i] = r
			fns = append(fns,
				func() { r.a, r.errA = h.Svc.Approve(h.ctx, ali, r.g.ID, "") },
				func() { r.r, r.errR = h.Svc.Revoke(h.ctx, car, r.g.ID, "not this one") })
		}
		rand.Shuffle(len(fns), func(i, j int) { fns[i], fns[j] = fns[j], fns[i] })
		race(fns...)
		for _, r := range rs {
			if r.errA != nil {
				t.Fatalf("%s: approval failed: %v", r.g.ID, r.errA)
			}
			rec := h.grant(r.g.ID)
			types := h.types(r.g.ID)
			_, lerr := h.Svc.Authority().Lookup(rec.CredentialID)
			switch {
			case isConflict(r.errR):
				// The revoke came first and found it pending.
				stayed++
				if rec.Status != model.Active || lerr != nil || count(types, "grant.revoked") != 0 {
					t.Fatalf("%s: revoke refused but record %s, lookup %v, log %v", r.g.ID, rec.Status, lerr, types)
				}
			case r.errR == nil:
				revoked++
				if rec.Status != model.Revoked || rec.EndedBy != carol || !errors.Is(lerr, gateway.ErrNoGrant) ||
					count(types, "grant.approved") != 1 || count(types, "grant.revoked") != 1 || types[len(types)-1] != "grant.revoked" {
					t.Fatalf("%s: revoked but record %s, lookup %v, log %v", r.g.ID, rec.Status, lerr, types)
				}
			default:
				t.Fatalf("%s: revoke → %v", r.g.ID, r.errR)
			}
		}
	}
	t.Logf("revoked after approval %d, revoke refused while pending %d", revoked, stayed)
}

// TestRaceExpiryVersusApproval approves requests around their decision
// deadline (PendingTimeout 400ms, approvals from 60ms before it to 40ms after): each ends
// either approved (and later expired at ExpiresAt) or cancelled at
// DecideBy, never both.
func TestRaceExpiryVersusApproval(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{PendingTimeout: 400 * time.Millisecond})
	ali, requester := h.id(alice), h.id(bot)
	const n = 40
	h.Svc.SetMaxPending(n) // all from one identity, open at once
	type result struct {
		g, a       model.Grant
		errG, errA error
	}
	rs := make([]*result, n)
	var wg sync.WaitGroup
	for i := range rs {
		r := &result{}
		rs[i] = r
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 10 * time.Millisecond) // stagger
			r.g, r.errG = h.Svc.Request(h.ctx, requester, humanReq("300ms"))
			if r.errG != nil {
				return
			}
			jitter := time.Duration(rand.IntN(100)-60) * time.Millisecond
			time.Sleep(time.Until(r.g.DecideBy.Add(jitter)))
			r.a, r.errA = h.Svc.Approve(h.ctx, ali, r.g.ID, "")
		})
	}
	wg.Wait()
	var approved, cancelled int
	for _, r := range rs {
		if r.errG != nil || r.g.Status != model.Pending {
			t.Fatalf("request: %v %s", r.errG, r.g.Status)
		}
		switch {
		case r.errA == nil:
			approved++
			if !r.a.StartedAt.Before(r.g.DecideBy) {
				t.Errorf("%s: approved at %v, deadline %v", r.g.ID, r.a.StartedAt, r.g.DecideBy)
			}
			rec := h.waitStatus(r.g.ID, model.Expired, 5*time.Second)
			if !rec.EndedAt.Equal(r.a.ExpiresAt) || len(rec.Approvals) != 1 {
				t.Errorf("%s: expired at %v, expires %v", r.g.ID, rec.EndedAt, r.a.ExpiresAt)
			}
			if types := h.types(r.g.ID); count(types, "grant.cancelled") != 0 || count(types, "grant.expired") != 1 || count(types, "grant.approved") != 1 {
				t.Errorf("%s: log %v", r.g.ID, types)
			}
		case isConflict(r.errA):
			cancelled++
			rec := h.waitStatus(r.g.ID, model.Cancelled, 5*time.Second)
			if !rec.EndedAt.Equal(r.g.DecideBy) || len(rec.Approvals) != 0 || rec.CredentialID != "" {
				t.Errorf("%s: cancelled at %v, deadline %v, approvals %v", r.g.ID, rec.EndedAt, r.g.DecideBy, rec.Approvals)
			}
			if types := h.types(r.g.ID); count(types, "grant.cancelled") != 1 || count(types, "grant.approved") != 0 || len(types) != 3 {
				t.Errorf("%s: log %v", r.g.ID, types)
			}
		default:
			t.Errorf("%s: approve → %v", r.g.ID, r.errA)
		}
	}
	t.Logf("approved in time %d, cancelled at the deadline %d", approved, cancelled)
	if msgs := h.errs.list(); len(msgs) != 0 {
		t.Errorf("errors logged: %v", msgs)
	}
}

// TestRaceRevokeVersusExpiry revokes active grants around their expiry.
func TestRaceRevokeVersusExpiry(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	ali, holder := h.id(alice), h.id(bot)
	const n = 40
	type result struct {
		g, r             model.Grant
		gg               *gateway.Grant
		errG, errL, errR error
	}
	rs := make([]*result, n)
	var wg sync.WaitGroup
	for i := range rs {
		r := &result{}
		rs[i] = r
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 10 * time.Millisecond) // stagger
			r.g, r.errG = h.Svc.Request(h.ctx, holder, autoReq("1s"))
			if r.errG != nil {
				return
			}
			if r.gg, r.errL = h.Svc.Authority().Lookup(r.g.CredentialID); r.errL != nil {
				return // a very slow request: expired before we looked
			}
			jitter := time.Duration(rand.IntN(100)-60) * time.Millisecond
			time.Sleep(time.Until(r.g.ExpiresAt.Add(jitter)))
			r.r, r.errR = h.Svc.Revoke(h.ctx, ali, r.g.ID, "race")
		})
	}
	wg.Wait()
	var revoked, expired, revokedLate int
	for _, r := range rs {
		if r.errG != nil {
			t.Fatalf("request: %v", r.errG)
		}
		if r.errL != nil {
			if h.clock.Now().Before(r.g.ExpiresAt) {
				t.Fatalf("%s: lookup before expiry: %v", r.g.ID, r.errL)
			}
			h.waitStatus(r.g.ID, model.Expired, 5*time.Second)
			continue
		}
		waitClosed(t, r.gg.Done(), 5*time.Second, r.g.ID+" Done")
		if _, err := h.Svc.Authority().Lookup(r.g.CredentialID); !errors.Is(err, gateway.ErrNoGrant) {
			t.Errorf("%s: still in the cache", r.g.ID)
		}
		var rec model.Grant
		deadline := time.Now().Add(5 * time.Second)
		for rec = h.grant(r.g.ID); rec.Status == model.Active && time.Now().Before(deadline); rec = h.grant(r.g.ID) {
			time.Sleep(5 * time.Millisecond)
		}
		types := h.types(r.g.ID)
		ends := count(types, "grant.revoked") + count(types, "grant.expired")
		if ends != 1 {
			t.Errorf("%s: %d end events: %v", r.g.ID, ends, types)
		}
		switch rec.Status {
		case model.Revoked:
			revoked++
			if r.errR != nil || r.r.Status != model.Revoked || r.gg.EndReason() != "revoked" || rec.EndedBy != alice || types[len(types)-1] != "grant.revoked" {
				t.Errorf("%s: revoked record, but revoke → %v, gateway reason %q, log %v", r.g.ID, r.errR, r.gg.EndReason(), types)
			}
			if !rec.EndedAt.Before(rec.ExpiresAt) {
				revokedLate++
				t.Errorf("%s: revoked at %v, after it expired at %v", r.g.ID, rec.EndedAt, rec.ExpiresAt)
			}
		case model.Expired:
			expired++
			if !isConflict(r.errR) || r.gg.EndReason() != "expired" || !rec.EndedAt.Equal(rec.ExpiresAt) || types[len(types)-1] != "grant.expired" {
				t.Errorf("%s: expired record, but revoke → %v, gateway reason %q, ended %v expires %v", r.g.ID, r.errR, r.gg.EndReason(), rec.EndedAt, rec.ExpiresAt)
			}
		default:
			t.Errorf("%s: status %s", r.g.ID, rec.Status)
		}
	}
	t.Logf("revoked %d (recorded after ExpiresAt: %d), expired %d", revoked, revokedLate, expired)
}

// TestConcurrentRequests: many identities request at once; every grant is
// recorded once with its own credential.
func TestConcurrentRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	const n = 60
	out := make([]model.Grant, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		who := h.id([]string{bot, bot2}[i%2])
		wg.Go(func() { out[i], errs[i] = h.Svc.Request(h.ctx, who, autoReq("10m")) })
	}
	wg.Wait()
	creds := map[string]bool{}
	for i, g := range out {
		if errs[i] != nil || g.Status != model.Active {
			t.Fatalf("request %d: %v %s", i, errs[i], g.Status)
		}
		if creds[g.CredentialID] {
			t.Fatalf("credential %s issued twice", g.CredentialID)
		}
		creds[g.CredentialID] = true
		if gg, err := h.Svc.Authority().Lookup(g.CredentialID); err != nil || gg.ID != g.ID || gg.Identity != g.Identity {
			t.Fatalf("%s not cached: %v", g.ID, err)
		}
		if types := h.types(g.ID); len(types) != 3 {
			t.Fatalf("%s: log %v", g.ID, types)
		}
	}
	if h.grantCount() != n {
		t.Errorf("%d grants stored, want %d", h.grantCount(), n)
	}
}
