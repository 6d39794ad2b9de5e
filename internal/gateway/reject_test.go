package gateway

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

type rejectSink struct {
	mu   sync.Mutex
	ones []Rejection
	sums []RejectionSummary
	fail bool
}

func (s *rejectSink) one(_ context.Context, r Rejection) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ones = append(s.ones, r)
	return nil
}

func (s *rejectSink) sum(_ context.Context, r RejectionSummary) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("log down")
	}
	s.sums = append(s.sums, r)
	return nil
}

// total is every attempt the log holds: individual plus counted.
func (s *rejectSink) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.ones)
	for _, x := range s.sums {
		n += x.Count
	}
	return n
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newAgg(p RejectPolicy) (*RejectAggregator, *rejectSink, *fakeClock) {
	s := &rejectSink{}
	clk := &fakeClock{t: time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)}
	return NewRejectAggregator(p, clk.now, s.one, s.sum), s, clk
}

// A flood from one source becomes PerKey individual entries and one
// summary per interval, and every attempt is counted.
func TestRejectAggregatorFlood(t *testing.T) {
	a, s, clk := newAgg(RejectPolicy{Interval: 10 * time.Second, PerKey: 3})
	ctx := context.Background()
	for i := range 1000 {
		r := Rejection{Gateway: "postgres", Client: fmt.Sprintf("127.0.0.1:%d", 40000+i), CredentialID: fmt.Sprintf("AKAL%d", i), Reason: "password authentication failed"}
		if err := a.Reject(ctx, r); err != nil {
			t.Fatal(err)
		}
		clk.add(time.Millisecond)
	}
	if len(s.ones) != 3 || len(s.sums) != 0 {
		t.Fatalf("before the interval ends: %d individual, %d summaries; want 3, 0", len(s.ones), len(s.sums))
	}
	if err := a.Flush(ctx); err != nil { // 1s in: not due yet
		t.Fatal(err)
	}
	if len(s.sums) != 0 {
		t.Fatalf("summary written before its interval ended")
	}
	clk.add(10 * time.Second)
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if len(s.sums) != 1 {
		t.Fatalf("%d summaries, want 1", len(s.sums))
	}
	sum := s.sums[0]
	if sum.Count != 997 || sum.Client != "127.0.0.1" || sum.Gateway != "postgres" || len(sum.CredentialIDs) != maxSampleIDs {
		t.Errorf("summary %+v", sum)
	}
	if !sum.First.Before(sum.Last) || sum.Last.Sub(sum.First) != 996*time.Millisecond {
		t.Errorf("first %v last %v", sum.First, sum.Last)
	}
	if s.total() != 1000 {
		t.Errorf("the log holds %d attempts, want 1000", s.total())
	}
	// The next interval starts afresh: individual entries again.
	if err := a.Reject(ctx, Rejection{Gateway: "postgres", Client: "127.0.0.1:1", Reason: "password authentication failed"}); err != nil {
		t.Fatal(err)
	}
	if len(s.ones) != 4 {
		t.Errorf("%d individual entries after the interval, want 4", len(s.ones))
	}
}

// Distinct keys are bounded: beyond MaxKeys they share one overflow
// summary, and the individual entries stop at MaxIndividual.
func TestRejectAggregatorBoundsKeys(t *testing.T) {
	a, s, _ := newAgg(RejectPolicy{PerKey: 1, MaxIndividual: 5, MaxKeys: 10})
	ctx := context.Background()
	for i := range 5000 {
		r := Rejection{Gateway: "aws", Client: fmt.Sprintf("10.0.%d.%d:443 curl", i/256, i%256), Reason: "InvalidAccessKeyId"}
		if err := a.Reject(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	a.mu.Lock()
	keys := len(a.keys)
	a.mu.Unlock()
	if keys > 11 {
		t.Errorf("%d keys held, want at most 11", keys)
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(s.ones) != 5 {
		t.Errorf("%d individual entries, want 5", len(s.ones))
	}
	if len(s.sums) > 11 {
		t.Errorf("%d summaries, want at most 11", len(s.sums))
	}
	var overflow bool
	for _, x := range s.sums {
		if x.Client == "*" && x.Reason == overflowReason {
			overflow = true
		}
	}
	if !overflow {
		t.Errorf("no overflow summary: %+v", s.sums)
	}
	if s.total() != 5000 {
		t.Errorf("the log holds %d attempts, want 5000", s.total())
	}
}

// A summary that cannot be written is kept and written later.
func TestRejectAggregatorRetriesSummary(t *testing.T) {
	a, s, clk := newAgg(RejectPolicy{Interval: time.Second, PerKey: 1})
	ctx := context.Background()
	for range 10 {
		_ = a.Reject(ctx, Rejection{Gateway: "postgres", Client: "127.0.0.1:5", Reason: "x"})
	}
	s.fail = true
	clk.add(2 * time.Second)
	if err := a.Flush(ctx); err == nil {
		t.Fatal("Flush hid the write failure")
	}
	s.fail = false
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if s.total() != 10 {
		t.Errorf("the log holds %d attempts, want 10", s.total())
	}
}

func TestSourceHost(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5432":           "127.0.0.1",
		"[::1]:80 aws-cli/2 x":     "::1",
		"10.1.2.3:9 Boto3/1.0 a b": "10.1.2.3",
		"weird":                    "weird",
	} {
		if got := SourceHost(in); got != want {
			t.Errorf("SourceHost(%q) = %q, want %q", in, got, want)
		}
	}
}
