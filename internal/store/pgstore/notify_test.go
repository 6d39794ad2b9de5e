package pgstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// listening runs s's Listener named name until stop is called or the test
// ends, and returns the notices it receives.
func listening(t *testing.T, s *Store, name string) (notices <-chan string, stop func()) {
	t.Helper()
	got, connected, lost := make(chan string, 16), make(chan struct{}, 4), make(chan error, 4)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Listener(name).Run(ctx, func(id, origin string) { got <- id + "|" + origin },
			func(context.Context) error { connected <- struct{}{}; return nil },
			func(err error) { lost <- err })
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	select {
	case <-connected:
	case err := <-lost:
		t.Fatalf("listener %s: %v", name, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("listener %s did not connect", name)
	}
	return got, stop
}

// TestNotifyOnCommitOnly: a notice queued in a write transaction reaches
// the listeners of the same schema when it commits, never when it rolls
// back (or when its savepoint is rolled back), and never another schema's.
func TestNotifyOnCommitOnly(t *testing.T) {
	s, _ := openFresh(t)
	other, _ := openFresh(t)
	ctx := t.Context()
	notices, _ := listening(t, s, "a")
	otherNotices, _ := listening(t, other, "b")

	write := func(commit bool, fn func(tx *Tx)) {
		t.Helper()
		tx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fn(tx.(*Tx))
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	write(false, func(tx *Tx) {
		if err := tx.NotifyGrant(ctx, "g_rolledback", "r1"); err != nil {
			t.Fatal(err)
		}
	})
	write(true, func(tx *Tx) {
		if err := tx.Savepoint(ctx, "sp"); err != nil {
			t.Fatal(err)
		}
		if err := tx.NotifyGrant(ctx, "g_savepoint", "r1"); err != nil {
			t.Fatal(err)
		}
		if err := tx.RollbackTo(ctx, "sp"); err != nil {
			t.Fatal(err)
		}
		if err := tx.NotifyGrant(ctx, "g_1", "r1"); err != nil {
			t.Fatal(err)
		}
		if err := tx.NotifyIdentity(ctx, "bot", "r1"); err != nil {
			t.Fatal(err)
		}
	})
	for _, want := range []string{"g_1|r1", store.IdentityNotice + "bot|r1"} {
		select {
		case got := <-notices:
			if got != want {
				t.Fatalf("notice %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no notice %q", want)
		}
	}
	select {
	case got := <-notices:
		t.Fatalf("unexpected notice %q", got)
	case got := <-otherNotices:
		t.Fatalf("another schema's listener heard %q", got)
	case <-time.After(200 * time.Millisecond):
	}
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := tx.(*Tx).NotifyGrant(ctx, "g 1", "r1"); err == nil {
		t.Error("a grant id with a space was sent")
	}
}

// TestReplicaAliveAndUnique: a replica is alive while its listener holds
// its lock; a second listener of the same name takes over from a stale
// connection of the first (which is told it lost it), and the name is
// dead once no listener runs.
func TestReplicaAliveAndUnique(t *testing.T) {
	// The second name is longer than PostgreSQL keeps of an
	// application_name (63 bytes).
	for _, name := range []string{"host-1:8080", "ip-10-20-30-40.eu-central-1.compute.internal.example-corp.net:8080"} {
		t.Run(name[:6], func(t *testing.T) { testReplicaAliveAndUnique(t, name) })
	}
}

func testReplicaAliveAndUnique(t *testing.T, name string) {
	s, dsn := openFresh(t)
	ctx := t.Context()
	alive := func(name string) bool {
		t.Helper()
		ok, err := s.ReplicaAlive(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if alive(name) {
		t.Fatal("a replica that never ran is alive")
	}
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	up := make(chan struct{}, 4)
	lost := make(chan error, 4)
	wg.Go(func() {
		// Told of its loss, the first listener stays in the callback
		// until it is stopped: otherwise, 100 ms later (listenBackoffMin),
		// it would take the name back from the second, which a test
		// goroutine slow to stop it (-race on a loaded machine) saw as
		// the name not alive.
		s.Listener(name).Run(lctx, func(string, string) {}, func(context.Context) error { up <- struct{}{}; return nil },
			func(err error) { lost <- err; <-lctx.Done() })
	})
	<-up
	if !alive(name) || alive("host-2:8080") {
		t.Fatal("ReplicaAlive does not see the running listener's lock (or sees it under another name)")
	}
	// A second process under the same name (or this one's next
	// connection, the server not yet knowing the first died) takes it.
	s2, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	_, stop := listening(t, s2, name)
	select {
	case err := <-lost:
		if err == nil {
			t.Fatal("nil loss")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first listener was not told it lost its connection")
	}
	cancel()
	wg.Wait()
	if !alive(name) {
		t.Fatal("the name is not alive while the second listener runs")
	}
	stop()
	// The lock goes with the listener's backend, which PostgreSQL ends
	// a moment after the client closes its connection: wait for that,
	// boundedly.
	deadline := time.Now().Add(5 * time.Second)
	for alive(name) {
		if time.Now().After(deadline) {
			t.Fatal("the name is still alive 5 s after its last listener stopped")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGrantByCredential reads a grant by credential id outside a write
// transaction.
func TestGrantByCredential(t *testing.T) {
	s, _ := openFresh(t)
	ctx := t.Context()
	t0 := time.Unix(1_700_000_000, 0)
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	g := model.Grant{ID: "g_c", Identity: "bot", Status: model.Active, RequestedAt: t0, StartedAt: t0, ExpiresAt: t0.Add(time.Hour), CredentialID: "AKALAAAAAAAAAAAAAAAA"}
	if err := tx.CreateGrant(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := s.GrantByCredential(ctx, g.CredentialID)
	if err != nil || got.ID != g.ID || got.Status != model.Active {
		t.Fatalf("GrantByCredential = %+v, %v", got, err)
	}
	for _, id := range []string{"", "AKALBBBBBBBBBBBBBBBB"} {
		if _, err := s.GrantByCredential(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GrantByCredential(%q) = %v, want ErrNotFound", id, err)
		}
	}
}
