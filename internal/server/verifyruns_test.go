package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
)

// TestVerifyRunsOneAtATime: requests that arrive while a verification
// runs share the next run (which starts after they asked), so ten
// requests during one run cost two runs, never more than one at a time; a
// caller that leaves does not cancel the run others wait on; a panic in a
// run is that run's error.
func TestVerifyRunsOneAtATime(t *testing.T) {
	var v verifyRuns
	var runs, concurrent, most atomic.Int64
	release := make(chan struct{})
	run := func(ctx context.Context) (auditlog.Report, error) {
		n := runs.Add(1)
		if c := concurrent.Add(1); c > most.Load() {
			most.Store(c)
		}
		defer concurrent.Add(-1)
		<-release
		if ctx.Err() != nil {
			return auditlog.Report{}, ctx.Err()
		}
		return auditlog.Report{Entries: n}, nil
	}

	first := make(chan auditlog.Report, 1)
	go func() {
		rep, _ := v.do(context.Background(), run)
		first <- rep
	}()
	waitFor(t, func() bool { return runs.Load() == 1 })

	// A caller that gives up while waiting; then ten that wait.
	leaving, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() {
		_, err := v.do(leaving, run)
		gone <- err
	}()
	var wg sync.WaitGroup
	reps := make(chan auditlog.Report, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := v.do(context.Background(), run)
			if err != nil {
				t.Error(err)
			}
			reps <- rep
		}()
	}
	waitFor(t, func() bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		return v.next != nil && v.next.waiters == 11
	})
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller that left got %v", err)
	}
	close(release)
	if rep := <-first; rep.Entries != 1 {
		t.Fatalf("first caller got run %d", rep.Entries)
	}
	wg.Wait()
	close(reps)
	for rep := range reps {
		if rep.Entries != 2 {
			t.Errorf("a caller that asked during run 1 got run %d, want 2 (one that started after it asked)", rep.Entries)
		}
	}
	if runs.Load() != 2 || most.Load() != 1 {
		t.Fatalf("%d runs, at most %d at once; want 2 and 1", runs.Load(), most.Load())
	}

	if _, err := v.do(context.Background(), func(context.Context) (auditlog.Report, error) { panic("boom") }); err == nil {
		t.Fatal("a panicking run reported no error")
	}
}

// waitFor polls cond for up to ten seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
