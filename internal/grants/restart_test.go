package grants_test

import (
	"errors"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestRestartRecovery stops the service, lets time pass while it is down
// (by moving the service clock), and starts it again on the same data
// directory.
func TestRestartRecovery(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{PendingTimeout: 5 * time.Minute})
	short := h.request(bot, autoReq("60s"), model.Active)     // expires while down
	overdue := h.request(bot, humanReq("10m"), model.Pending) // its deadline passes while down
	long := h.request(bot, autoReq("900s"), model.Active)     // survives the restart
	cShort, cLong := h.creds(bot, short.ID), h.creds(bot, long.ID)
	loadedBefore := len(h.entriesOfType("policy.loaded"))

	h.stop()
	// While down, the clock moves on to 3s before long's expiry.
	h.clock.Advance(time.Until(long.ExpiresAt) - 3*time.Second)
	h.start()

	rec := h.grant(short.ID)
	if rec.Status != model.Expired || !rec.EndedAt.Equal(short.ExpiresAt) || rec.EndReason != "expired" || rec.EndedBy != "airlock" {
		t.Errorf("grant expired while down: %s ended %v (expires %v) by %q", rec.Status, rec.EndedAt, short.ExpiresAt, rec.EndedBy)
	}
	es := h.entries(short.ID)
	if d := entryData(t, es[len(es)-1]); es[len(es)-1].Type != "grant.expired" || !entryTime(t, d, "at").Equal(short.ExpiresAt) {
		t.Errorf("last entry %s %v", es[len(es)-1].Type, d)
	}
	if _, err := h.Svc.Authority().Authenticate(cShort.AccessKeyID, cShort.SecretAccessKey); !errors.Is(err, gateway.ErrNoGrant) {
		t.Errorf("expired credentials after restart: %v", err)
	}

	rec = h.grant(overdue.ID)
	if rec.Status != model.Cancelled || !rec.EndedAt.Equal(overdue.DecideBy) || rec.EndedBy != "airlock" {
		t.Errorf("request overdue while down: %s ended %v (decide by %v)", rec.Status, rec.EndedAt, overdue.DecideBy)
	}
	if got := h.types(overdue.ID); count(got, "grant.cancelled") != 1 {
		t.Errorf("log %v", got)
	}

	if got := len(h.entriesOfType("policy.loaded")); got != loadedBefore+1 {
		t.Errorf("policy.loaded entries: %d, want %d", got, loadedBefore+1)
	}

	// The surviving grant is back in the cache with the same credentials.
	if rec := h.grant(long.ID); rec.Status != model.Active {
		if !h.clock.Now().Before(long.ExpiresAt) && rec.Status == model.Expired && rec.EndedAt.Equal(long.ExpiresAt) {
			// The restart took longer than the 3s left: it expired, correctly.
			t.Skipf("the restart took over 3s; the surviving grant expired at start")
		}
		t.Fatalf("surviving grant is %s", rec.Status)
	}
	gg, err := h.Svc.Authority().Authenticate(cLong.AccessKeyID, cLong.SecretAccessKey)
	if err != nil {
		t.Fatalf("credentials of a surviving grant after restart: %v", err)
	}
	if gg.ID != long.ID || !gg.Allows(h.clock.Now(), "s3:GetObject", "arn:aws:s3:::logs/app/a.log") {
		t.Errorf("surviving gateway grant %+v", gg.Info)
	}
	if c, err := h.Svc.Credentials(h.ctx, h.id(bot), long.ID); err == nil && c.SecretAccessKey != cLong.SecretAccessKey {
		t.Error("the secret changed across the restart")
	}

	// ... and it still expires on time.
	waitClosed(t, gg.Done(), 5*time.Second, "Done of the surviving grant")
	if now := h.clock.Now(); now.Before(long.ExpiresAt) {
		t.Errorf("cut off at %v, before its expiry %v", now, long.ExpiresAt)
	}
	rec = h.waitStatus(long.ID, model.Expired, 5*time.Second)
	if !rec.EndedAt.Equal(long.ExpiresAt) {
		t.Errorf("surviving grant ended %v, expires %v", rec.EndedAt, long.ExpiresAt)
	}

	// A pending request still in time survives a restart and can be approved.
	p := h.request(bot, humanReq("10m"), model.Pending)
	h.restart()
	if rec := h.grant(p.ID); rec.Status != model.Pending {
		t.Fatalf("pending request after restart: %s", rec.Status)
	}
	if q, err := h.pending(h.id(alice)); err != nil || len(q) != 1 || q[0].ID != p.ID {
		t.Errorf("alice's queue after restart: %v %v", q, err)
	}
	a, err := h.Svc.Approve(h.ctx, h.id(alice), p.ID, "")
	if err != nil || a.Status != model.Active {
		t.Fatalf("approve after restart: %v", err)
	}
	c := h.creds(bot, p.ID)
	if _, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey); err != nil {
		t.Error(err)
	}
	// Every record change of the earlier grants happened once.
	for _, id := range []string{short.ID, overdue.ID, long.ID} {
		got := h.types(id)
		ends := count(got, "grant.expired") + count(got, "grant.cancelled") + count(got, "grant.revoked") + count(got, "grant.ended")
		if ends != 1 {
			t.Errorf("%s: %d end events: %v", id, ends, got)
		}
	}
	if msgs := h.errs.list(); len(msgs) != 0 {
		t.Errorf("errors logged: %v", msgs)
	}
}

// TestRestartPendingTimerRearmed: a pending request's deadline timer is
// re-armed on start, and cancels it at its true deadline.
func TestRestartPendingTimerRearmed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{PendingTimeout: 10 * time.Minute})
	p := h.request(bot, humanReq("10m"), model.Pending)
	h.stop()
	h.clock.Advance(time.Until(p.DecideBy) - 1500*time.Millisecond)
	h.start()
	if rec := h.grant(p.ID); rec.Status != model.Pending && h.clock.Now().Before(p.DecideBy) {
		t.Fatalf("after restart, before its deadline: %s", rec.Status)
	}
	rec := h.waitStatus(p.ID, model.Cancelled, 5*time.Second)
	if !rec.EndedAt.Equal(p.DecideBy) || rec.EndedBy != "airlock" {
		t.Errorf("cancelled at %v by %q, decide by %v", rec.EndedAt, rec.EndedBy, p.DecideBy)
	}
}
