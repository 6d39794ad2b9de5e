package replicaset

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestReapDeadReplica: a live replica's sessions are left alone; once its
// lock is gone (its process died), a survivor ends each of its sessions
// once, and forgets them.
func TestReapDeadReplica(t *testing.T) {
	dsn := testenv.PostgresDatabase(t, testenv.PostgresDSN(t), "cluster_replicaset")
	ctx := context.Background()
	var mu sync.Mutex
	var ended []string
	recover := func(_ context.Context, id string) error {
		mu.Lock()
		ended = append(ended, id)
		mu.Unlock()
		return nil
	}
	log := slog.New(slog.DiscardHandler)
	a, err := Open(ctx, dsn, "r_a", recover, log)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(ctx, dsn, "r_b", recover, log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, err := Open(ctx, dsn, "r_c", recover, log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := Open(ctx, dsn, "r_a", recover, log); err == nil {
		t.Fatal("a second process took r_a's lock")
	}
	for _, id := range []string{"s_1", "s_2", "s_3"} {
		if err := a.Started(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	a.Ended(ctx, "s_3")
	for _, s := range []*Set{a, b, c} {
		s.mu.Lock()
		s.grace = 0
		s.mu.Unlock()
	}
	if err := b.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	if len(ended) != 0 {
		t.Fatalf("a live replica's sessions were ended: %v", ended)
	}
	// a dies: its lock connection goes with it (Close without ending its
	// sessions, as kill -9 would leave them).
	a.stop()
	<-a.done
	a.lock.Close(ctx)
	// The first look only notes the lock free; the next ends the sessions.
	var wg sync.WaitGroup
	for range 2 {
		for _, s := range []*Set{b, c} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Reap(ctx); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	slices.Sort(ended)
	if !slices.Equal(ended, []string{"s_1", "s_2"}) {
		t.Fatalf("ended %v, want s_1 and s_2 once each", ended)
	}
	if err := b.Ready(); err != nil {
		t.Fatal(err)
	}
	a.pool.Close()
}

// TestGraceAfterRestart: a replica whose lock was free at one look and held
// at the next (it took it again after a database restart) keeps its
// sessions; a replica that took its own lock only just now does not reap.
func TestGraceAfterRestart(t *testing.T) {
	dsn := testenv.PostgresDatabase(t, testenv.PostgresDSN(t), "cluster_replicaset")
	ctx := context.Background()
	var ended []string
	recover := func(_ context.Context, id string) error { ended = append(ended, id); return nil }
	log := slog.New(slog.DiscardHandler)
	a, err := Open(ctx, dsn, "r_a", recover, log)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, dsn, "r_b", recover, log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.Started(ctx, "s_1"); err != nil {
		t.Fatal(err)
	}
	// b just took its lock: it does not reap yet, whatever it sees.
	if err := b.Reap(ctx); err != nil || len(ended) != 0 {
		t.Fatalf("a fresh replica reaped: %v %v", ended, err)
	}
	b.mu.Lock()
	b.lockAt = time.Now().Add(-time.Hour)
	b.mu.Unlock()
	// a loses its lock connection (the database restarted) …
	a.mu.Lock()
	a.lock.Close(ctx)
	a.mu.Unlock()
	b.Reap(ctx) // … b sees it free once …
	a.relock(ctx)
	b.Reap(ctx) // … and held again: a is alive.
	b.mu.Lock()
	_, noted := b.freeSince["r_a"]
	b.mu.Unlock()
	if len(ended) != 0 || noted {
		t.Fatalf("a replica back after a restart was taken for dead: ended %v, still noted free %v", ended, noted)
	}
}
