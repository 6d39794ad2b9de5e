package grants

import (
	"fmt"
	"testing"
	"time"
)

// TestKeyLocksApart: holding one key's lock never holds up another's (a
// striped table made about one key in 64 wait for any other), the same
// key's waits in turn, and nothing is kept once released.
func TestKeyLocksApart(t *testing.T) {
	var k keyLocks
	release := k.lock("g_held")
	for i := range 500 {
		done := make(chan struct{})
		go func() {
			k.lock(fmt.Sprintf("g_%d", i))()
			k.lock(fmt.Sprintf("identity:%d", i))()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("key %d waited for another key's lock", i)
		}
	}
	got := make(chan struct{})
	go func() {
		k.lock("g_held")()
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("the same key's lock was taken while held")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	<-got
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.m) != 0 {
		t.Fatalf("%d locks kept after release", len(k.m))
	}
}

// TestServiceLocksApart: the Service's per-grant lock is per key.
func TestServiceLocksApart(t *testing.T) {
	s := &Service{}
	release := s.lock("g_held")
	defer release()
	for i := range 500 {
		done := make(chan struct{})
		go func() {
			s.lock(fmt.Sprintf("identity:agent-%d", i))()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("identity %d waited for grant g_held's lock", i)
		}
	}
}
