package grants_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
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

// stallingRead is a store whose reads of grant id stall, from the nth on,
// until their context ends, as a read on a loaded machine can outlast
// the wait it serves.
type stallingRead struct {
	*sqlitestore.Store
	mu      sync.Mutex
	id      string
	n       int
	stalled chan struct{}
}

func (r *stallingRead) Grant(ctx context.Context, id string) (model.Grant, error) {
	r.mu.Lock()
	stall := false
	if id == r.id && r.n > 0 {
		if r.n--; r.n == 0 {
			stall = true
		}
	}
	r.mu.Unlock()
	if stall {
		close(r.stalled)
		<-ctx.Done()
		return model.Grant{}, fmt.Errorf("sqlitestore: grant: %w", ctx.Err())
	}
	return r.Store.Grant(ctx, id)
}

// TestWaitEndedMidReadReturnsTheGrant: a wait whose caller goes away while
// the wait re-reads the grant answers the grant as last read, as a wait
// that times out does, not the read's "context canceled". Under load
// TestWaitersBounded's cancelled waits met this now and then: a waiter
// counted as open was still in its first read when the test cancelled.
func TestWaitEndedMidReadReturnsTheGrant(t *testing.T) {
	t.Parallel()
	st := &stallingRead{stalled: make(chan struct{})}
	h := newHarness(t, harnessOptions{Store: func(s store.Store) store.Store {
		st.Store = s.(*sqlitestore.Store)
		return st
	}})
	p := h.request(bot, humanReq("10m"), model.Pending)
	st.mu.Lock()
	st.id, st.n = p.ID, 2 // Wait reads the grant once, then again once it watches it
	st.mu.Unlock()
	ctx, cancel := context.WithCancel(h.ctx)
	type answer struct {
		g   model.Grant
		err error
	}
	done := make(chan answer, 1)
	go func() {
		g, err := h.Svc.Wait(ctx, h.id(bot), p.ID, time.Minute)
		done <- answer{g, err}
	}()
	select {
	case <-st.stalled:
	case <-time.After(30 * time.Second):
		t.Fatal("the wait never re-read the grant")
	}
	cancel()
	a := <-done
	if a.err != nil {
		t.Fatalf("a wait ended mid-read: %v (context.Canceled: %t)", a.err, errors.Is(a.err, context.Canceled))
	}
	if a.g.ID != p.ID || a.g.Status != model.Pending {
		t.Errorf("a wait ended mid-read answered %q %s, want %q pending", a.g.ID, a.g.Status, p.ID)
	}
	if g, w := h.Svc.OpenWaits(); g != 0 || w != 0 {
		t.Errorf("after the wait ended: %d grants watched, %d waiters open; want none", g, w)
	}
}
