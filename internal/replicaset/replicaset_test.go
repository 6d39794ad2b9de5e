package replicaset

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"

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
	var wg sync.WaitGroup
	for _, s := range []*Set{b, c} {
		wg.Add(1)
		go func() { defer wg.Done(); s.Reap(ctx) }()
	}
	wg.Wait()
	b.Reap(ctx)
	slices.Sort(ended)
	if !slices.Equal(ended, []string{"s_1", "s_2"}) {
		t.Fatalf("ended %v, want s_1 and s_2 once each", ended)
	}
	if err := b.Ready(); err != nil {
		t.Fatal(err)
	}
	a.pool.Close()
}
