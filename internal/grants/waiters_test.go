package grants_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestWaitOnUnknownGrantLeavesNothing: waiting on a grant that does not
// exist, or that the caller may not see, answers 404 at once and leaves no
// waiter behind (each used to leave a channel in a map for good).
func TestWaitOnUnknownGrantLeavesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	other := h.request(bot2, humanReq("10m"), model.Pending)
	for i := range 1000 {
		id := fmt.Sprintf("g_nosuchgrant%08d", i)
		if i%2 == 1 {
			id = other.ID // pending, but bot2's: bot may not see it
		}
		_, err := h.Svc.Wait(h.ctx, h.id(bot), id, time.Minute)
		wantAPIErr(t, err, http.StatusNotFound, apierr.CodeNotFound, "")
	}
	if g, w := h.Svc.OpenWaits(); g != 0 || w != 0 {
		t.Errorf("after 1000 waits on grants bot cannot see: %d grants watched, %d waiters open; want none", g, w)
	}
}

// TestWaitersBounded: a caller may hold MaxWaitersPerIdentity long polls
// at once, everyone together MaxWaiters; beyond that a wait is a 429, and
// once waits end their places are free again.
func TestWaitersBounded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{MaxWaiters: 3, MaxWaitersPerIdentity: 2})
	var pending []model.Grant
	for range 3 {
		pending = append(pending, h.request(bot, humanReq("10m"), model.Pending))
	}
	other := h.request(bot2, humanReq("10m"), model.Pending)

	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 4)
	wait := func(who, id string) {
		go func() {
			_, err := h.Svc.Wait(ctx, h.id(who), id, time.Minute)
			done <- err
		}()
	}
	waitOpen := func(want int) {
		t.Helper()
		for range 2000 {
			if _, n := h.Svc.OpenWaits(); n == want {
				return
			}
			time.Sleep(time.Millisecond)
		}
		_, n := h.Svc.OpenWaits()
		t.Fatalf("%d waits open, want %d", n, want)
	}
	wait(bot, pending[0].ID)
	wait(bot, pending[1].ID)
	waitOpen(2)
	_, err := h.Svc.Wait(h.ctx, h.id(bot), pending[2].ID, time.Minute)
	wantAPIErr(t, err, http.StatusTooManyRequests, apierr.CodeResourceExhausted, "")

	wait(bot2, other.ID) // bot2 has none open: admitted, the third in total
	waitOpen(3)
	_, err = h.Svc.Wait(h.ctx, h.id(bot2), other.ID, time.Minute)
	wantAPIErr(t, err, http.StatusTooManyRequests, apierr.CodeResourceExhausted, "")
	// A 404 is still a 404, whatever the count.
	_, err = h.Svc.Wait(h.ctx, h.id(bot), "g_nosuchgrant", time.Minute)
	wantAPIErr(t, err, http.StatusNotFound, apierr.CodeNotFound, "")

	// An approval wakes its waiter and frees the place.
	if _, err := h.Svc.Approve(h.ctx, h.id(alice), pending[0].ID, ""); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the approved grant's waiter: %v", err)
	}
	waitOpen(2)
	if g, err := h.Svc.Wait(h.ctx, h.id(bot), pending[2].ID, time.Nanosecond); err != nil || g.Status != model.Pending {
		t.Errorf("a wait once a place is free: %v %v", g.Status, err)
	}
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Errorf("a cancelled wait: %v", err)
		}
	}
	if g, w := h.Svc.OpenWaits(); g != 0 || w != 0 {
		t.Errorf("after every wait ended: %d grants watched, %d waiters open; want none", g, w)
	}
}
