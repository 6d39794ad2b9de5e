package auditlog

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// outcomes records which appended events were acknowledged and which
// failed, by id.
type outcomes struct {
	mu     sync.Mutex
	acked  map[string]bool
	failed map[string]bool
}

func (o *outcomes) add(id string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err == nil {
		o.acked[id] = true
	} else {
		o.failed[id] = true
	}
}

// checkLog checks that the log holds every acknowledged event exactly once
// and none of the failed ones.
func (o *outcomes) checkLog(t *testing.T, st store.Store) {
	t.Helper()
	seen := map[string]int{}
	if err := st.ScanLog(context.Background(), 0, 1<<62, func(e store.LogEntry) error {
		var x struct {
			Data struct{ ID string } `json:"data"`
		}
		if err := json.Unmarshal(e.Data, &x); err != nil {
			return err
		}
		seen[x.Data.ID]++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for id, n := range seen {
		switch {
		case o.failed[id]:
			t.Errorf("event %s was reported failed but is in the log", id)
		case !o.acked[id]:
			t.Errorf("event %s is in the log but was never appended", id)
		case n != 1:
			t.Errorf("event %s is in the log %d times", id, n)
		}
	}
	for id := range o.acked {
		if seen[id] == 0 {
			t.Errorf("acknowledged event %s is not in the log", id)
		}
	}
	t.Logf("%d events acknowledged, %d failed", len(o.acked), len(o.failed))
}

// waitFor polls cond every 10 ms for up to d (a bound for a stuck test,
// not a timing claim).
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
	}
}

// TestSharedLogSurvivesPostgresRestart: two replicas' Logs append to a
// private PostgreSQL cluster that is stopped (cleanly, then as a crash) and
// started again under them.
// While it is down appends fail and Err reports it; nothing acknowledged is
// lost and nothing reported failed appears (a commit whose answer was lost
// is resolved, not guessed); appends resume by themselves (the pools
// reconnect) and the log verifies.
func TestSharedLogSurvivesPostgresRestart(t *testing.T) {
	pg := testenv.StartPrivatePostgres(t)
	dsn := testenv.PostgresDatabase(t, pg.DSN, "replog_restart")
	signer, v := testKey(t)
	dir := t.TempDir()
	const replicas, writers = 2, 8
	logs := make([]*Log, replicas)
	stores := make([]store.Store, replicas)
	for i := range replicas {
		stores[i] = openPG(t, dsn)
		logs[i] = openLog(t, stores[i], signer, replicaOptions(dir, v, i))
	}
	out := &outcomes{acked: map[string]bool{}, failed: map[string]bool{}}
	var (
		stop    atomic.Bool
		phase   atomic.Int32 // 0 up, 1 down, 2 up again
		stops   atomic.Int32 // stops begun so far
		okAfter [replicas]atomic.Int64
		total   atomic.Int64
	)
	var wg sync.WaitGroup
	for r, l := range logs {
		for w := range writers {
			wg.Go(func() {
				for i := 0; !stop.Load(); i++ {
					id := fmt.Sprintf("%d/%d/%d", r, w, i)
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					p, s0 := phase.Load(), stops.Load()
					err := l.Append(ctx, Event{Type: "test.append", Data: map[string]string{"id": id}})
					cancel()
					out.add(id, err)
					if err == nil {
						total.Add(1)
						if p == 2 {
							okAfter[r].Add(1)
						}
					} else if p != 1 && phase.Load() != 1 && stops.Load() == s0 {
						// (An append in flight across a whole stop may
						// fail: its commit's outcome is learnt only once
						// the server is back.)
						t.Errorf("replica %d: append failed while PostgreSQL was up: %v", r, err)
					}
					if err != nil {
						time.Sleep(5 * time.Millisecond) // a failing writer does not spin
					}
				}
			})
		}
	}
	waitFor(t, 10*time.Second, "200 appends before the restart", func() bool { return total.Load() >= 200 })
	// A clean stop (open transactions rolled back, the WAL flushed), then
	// a crash (whatever was not flushed is lost).
	for _, mode := range []string{"fast", "immediate"} {
		phase.Store(1)
		stops.Add(1)
		pg.Stop(t, mode)
		waitFor(t, 10*time.Second, "every Log reporting the failure", func() bool {
			for _, l := range logs {
				if l.Err() == nil {
					return false
				}
			}
			return true
		})
		for _, l := range logs {
			// The writer may be waiting to learn the outcome of a commit
			// cut by the stop: Probe then waits behind it until ctx ends.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			err := l.Probe(ctx)
			cancel()
			if err == nil {
				t.Errorf("Probe succeeded while PostgreSQL was down (%s stop)", mode)
			}
		}
		pg.Start(t)
		// Appends already in flight when the server came back may still
		// fail; count only those started after it is up again.
		time.Sleep(100 * time.Millisecond)
		for i := range okAfter {
			okAfter[i].Store(0)
		}
		phase.Store(2)
		waitFor(t, 15*time.Second, "100 appends per replica after the restart", func() bool {
			for i := range replicas {
				if okAfter[i].Load() < 100 {
					return false
				}
			}
			return true
		})
	}
	stop.Store(true)
	wg.Wait()
	for i, l := range logs {
		if err := l.Err(); err != nil {
			t.Errorf("replica %d: Err after recovery: %v", i, err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	out.checkLog(t, stores[0])
	for i := range replicas {
		witness, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("checkpoint-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(context.Background(), stores[i], v, witness)
		if err != nil || !rep.OK {
			t.Fatalf("verify after the restart: %+v, %v", rep, err)
		}
	}
}
