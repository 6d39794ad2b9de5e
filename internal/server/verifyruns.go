package server

import (
	"context"
	"fmt"
	"sync"

	"github.com/airlock-dev/airlock/internal/auditlog"
)

// verifyRuns runs the whole-log verification (Verify) one run at a time.
// A request that arrives while a run is under way waits for the next run,
// which starts when that one ends and answers every request that waited
// for it: each caller gets a verification that started after it asked,
// and however many people (or scripts) press "verify now" at once, at most
// one run takes a core. Before, each request ran its own, concurrently: a
// few dozen requests against a large log held every core.
type verifyRuns struct {
	mu      sync.Mutex
	running bool
	next    *verifyCall // the run that starts after the current one, if asked for
}

type verifyCall struct {
	done    chan struct{}
	waiters int // how many callers joined (for tests)
	rep     auditlog.Report
	err     error
}

// do runs (or joins the next run of) run. The run's context is not the
// caller's: others wait on the same run, so one leaving must not cancel it.
func (v *verifyRuns) do(ctx context.Context, run func(context.Context) (auditlog.Report, error)) (auditlog.Report, error) {
	v.mu.Lock()
	if v.next == nil {
		v.next = &verifyCall{done: make(chan struct{})}
	}
	c := v.next
	c.waiters++
	if !v.running {
		v.start(context.WithoutCancel(ctx), run)
	}
	v.mu.Unlock()
	select {
	case <-c.done:
		return c.rep, c.err
	case <-ctx.Done():
		return auditlog.Report{}, ctx.Err()
	}
}

// start runs v.next; v.mu held.
func (v *verifyRuns) start(ctx context.Context, run func(context.Context) (auditlog.Report, error)) {
	c := v.next
	v.next, v.running = nil, true
	go func() {
		c.rep, c.err = safeRun(ctx, run)
		close(c.done)
		v.mu.Lock()
		defer v.mu.Unlock()
		v.running = false
		if v.next != nil {
			v.start(ctx, run)
		}
	}()
}

// safeRun is run with a panic turned into its error: the run is on a
// goroutine of its own, where net/http's recovery does not reach.
func safeRun(ctx context.Context, run func(context.Context) (auditlog.Report, error)) (rep auditlog.Report, err error) {
	defer func() {
		if v := recover(); v != nil {
			rep, err = auditlog.Report{}, fmt.Errorf("audit verification failed: internal error (%T)", v)
		}
	}()
	return run(ctx)
}
