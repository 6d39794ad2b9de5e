package pgstore

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLiveReplicasAndNotifyNow: the live replicas are those whose listener
// holds its lock, by name, and no other (a listener without a name, or a
// stopped one, is not listed); a notice sent outside a transaction reaches
// every listener at once.
func TestLiveReplicasAndNotifyNow(t *testing.T) {
	s, _ := openFresh(t)
	ctx := t.Context()
	live := func() []string {
		t.Helper()
		names, err := s.LiveReplicas(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	if got := live(); len(got) != 0 {
		t.Fatalf("live replicas before any listener: %q", got)
	}
	a, _ := listening(t, s, "gw-1:8700")
	_, stopB := listening(t, s, "gw-2:8700")
	listening(t, s, "") // a listener of no replica
	// A name longer than the 63 bytes PostgreSQL keeps of an
	// application_name.
	long := "gw-3." + strings.Repeat("x", 60) + ":8700"
	_, stopC := listening(t, s, long)
	if got := live(); !slices.Equal(got, []string{"gw-1:8700", "gw-2:8700", long}) {
		t.Fatalf("live replicas: %q", got)
	}
	if err := s.NotifyNow(ctx, "flush:f_1", "gw-2:8700"); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-a:
		if n != "flush:f_1|gw-2:8700" {
			t.Fatalf("notice %q", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the notice did not arrive")
	}
	if err := s.NotifyNow(ctx, "flush: f_1", "x"); err == nil {
		t.Fatal("a notice with a space was sent")
	}
	stopB()
	stopC()
	// The lock goes with the backend, a moment after the client closes.
	deadline := time.Now().Add(5 * time.Second)
	for got := live(); !slices.Equal(got, []string{"gw-1:8700"}); got = live() {
		if time.Now().After(deadline) {
			t.Fatalf("live replicas after gw-2 stopped: %q", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
