package console

import (
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestSessionsPerIdentityBound: one person signing in again and again
// loses their own oldest sessions, not other people's. Before, the table
// (here 40 sessions) evicted the oldest session of anyone, so 40 sign-ins
// by mallory signed alice out.
func TestSessionsPerIdentityBound(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC))
	s := newSessions(clk, 8*time.Hour, time.Hour, 40)
	alice, _ := s.create("alice", "key", "", time.Time{}, model.SignIn{})
	var first string
	for i := range 3 * maxPerIdentity {
		clk.Advance(time.Second)
		id, _ := s.create("mallory", "key", "", time.Time{}, model.SignIn{})
		if i == 0 {
			first = id
		}
	}
	if s.get(alice, false) == nil {
		t.Fatal("mallory's sign-ins ended alice's session")
	}
	if s.get(first, false) != nil {
		t.Fatal("mallory's first session outlived her later sign-ins")
	}
	s.mu.Lock()
	n := s.countLocked("mallory")
	s.mu.Unlock()
	if n != maxPerIdentity {
		t.Fatalf("mallory holds %d sessions, want %d", n, maxPerIdentity)
	}
}
