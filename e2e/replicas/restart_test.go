package replicas

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestStoreRestartUnderLoad: the store's PostgreSQL is restarted while
// clients PUT through two replicas and insert rows through one. Calls are refused while it is down,
// nothing acknowledged is lost, and service resumes by itself.
func TestStoreRestartUnderLoad(t *testing.T) {
	// A cluster of the test's own: the shared PostgreSQL is never stopped.
	pg := testenv.StartPrivatePostgres(t)
	// The default grace before a replica counts as dead: while the
	// database is down every replica looks gone, and a replica's
	// notification connection comes back up to 5 s (its backoff) after it.
	c := newCluster(t, pg.DSN, 2, "AIRLOCK_SESSION_SWEEP=5s", "AIRLOCK_REPLICA_GRACE=30s")
	c.seedS3(t, map[string][]byte{"burst/seed.txt": []byte("seed")})
	ctx := context.Background()
	id := grantID(t, mustOK(t, c.cli(t, c.replicas[0], c.bot, "request", "aws-prod", "--allow", "s3:PutObject,s3:GetObject arn:aws:s3:::logs/burst/*",
		"--for", "10m", "--reason", "uploads across a database restart"), "request"))

	insID := grantID(t, mustOK(t, c.cli(t, c.replicas[0], c.bot, "request", "orders-db", "--allow", "pg:insert "+c.ordersDB+".public.events",
		"--for", "10m", "--reason", "inserts across a database restart"), "request pg"))

	var acks, stmts acked
	var refused, okAfter, pgRefused, pgAfter atomic.Int64
	var restarted atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// SQL through the second replica, reconnecting after a failure.
	pgCreds := c.creds(t, c.replicas[1], insID)
	wg.Add(1)
	go func() {
		defer wg.Done()
		var conn *pgx.Conn
		defer func() {
			if conn != nil {
				conn.Close(context.Background())
			}
		}()
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			var err error
			if conn == nil {
				conn, err = grantPG(cctx, pgCreds)
			}
			if err == nil {
				_, err = conn.Exec(cctx, fmt.Sprintf("insert into events values (%d, 'r-%d')", n, n))
			}
			cancel()
			if err != nil {
				pgRefused.Add(1)
				if conn != nil {
					conn.Close(context.Background())
					conn = nil
				}
				time.Sleep(50 * time.Millisecond)
				continue
			}
			stmts.add(fmt.Sprintf("'r-%d'", n))
			if restarted.Load() {
				pgAfter.Add(1)
			}
		}
	}()
	for i, r := range c.replicas {
		cl := grantS3(c.creds(t, r, id))
		for w := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					key := fmt.Sprintf("burst/r%d-w%d-%d.txt", i, w, n)
					cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					_, err := cl.PutObject(cctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String(key), Body: bytes.NewReader([]byte(key))})
					cancel()
					if err != nil {
						refused.Add(1)
						time.Sleep(20 * time.Millisecond)
						continue
					}
					acks.add(key)
					if restarted.Load() {
						okAfter.Add(1)
					}
				}
			}()
		}
	}
	for deadline := time.Now().Add(20 * time.Second); len(acks.all()) < 40 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	before := len(acks.all())
	// The restart, held down long enough to look at the replicas meanwhile:
	// not ready, and a call of each kind refused.
	down := grantS3(c.creds(t, c.replicas[0], id))
	pg.Stop(t, "fast")
	for _, r := range c.replicas {
		code, body := 0, ""
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if code, body = r.ready(); code == 503 {
				break
			}
		}
		if code != 503 {
			t.Errorf("%s with its store down: /readyz %d %s, want 503", r.name, code, body)
		}
	}
	if _, err := down.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("burst/while-down.txt"), Body: bytes.NewReader([]byte("x"))}); err == nil {
		t.Error("a PUT was acknowledged while the store was down")
	}
	if conn, err := grantPG(ctx, pgCreds); err == nil {
		if _, err := conn.Exec(ctx, "insert into events values (0, 'while-down')"); err == nil {
			t.Error("an INSERT was acknowledged while the store was down")
		}
		conn.Close(ctx)
	}
	pg.Start(t)
	restarted.Store(true)
	// Service resumes by itself: both replicas ready and PUTs succeeding
	// again, without anyone touching them.
	resumed := time.Now()
	for _, r := range c.replicas {
		if !r.waitReady(30 * time.Second) {
			code, body := r.ready()
			t.Fatalf("%s not ready 30s after the restart: %d %s\n%s", r.name, code, body, r.stderr)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); (okAfter.Load() < 20 || pgAfter.Load() < 5) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d PUTs acknowledged before the restart, %d in all, %d refused; ready and serving again %v after pg_ctl start returned",
		before, len(acks.all()), refused.Load(), time.Since(resumed).Round(time.Millisecond))
	t.Logf("SQL: %d statements acknowledged, %d refused, %d after the restart", len(stmts.all()), pgRefused.Load(), pgAfter.Load())
	if okAfter.Load() < 20 || pgAfter.Load() < 5 {
		t.Fatalf("only %d PUTs and %d statements succeeded after the restart", okAfter.Load(), pgAfter.Load())
	}
	if refused.Load() == 0 {
		t.Errorf("no PUT of the load was refused while the database was down")
	}
	for grant, want := range map[string][]string{id: prefixed("logs/", acks.all()), insID: stmts.all()} {
		rec := mustOK(t, c.cli(t, c.replicas[1], c.alice, "session", "show", grant, "-o", "json"), "session show")
		missing := 0
		for _, k := range want {
			if !strings.Contains(rec, k) {
				if missing++; missing < 5 {
					t.Errorf("acknowledged call %s is not in the log", k)
				}
			}
		}
		if missing > 0 {
			t.Errorf("%d of %d acknowledged calls missing from the log", missing, len(want))
		}
	}
	// With the grants over, every session is ended by the replica serving
	// it (a replica flushes only its own sessions' rows before verifying),
	// and the log and every row agree, on both replicas.
	for _, g := range []string{id, insID} {
		mustOK(t, c.cli(t, c.replicas[0], c.alice, "revoke", g, "--reason", "test over"), "revoke")
	}
	for _, r := range c.replicas {
		mustOK(t, c.cli(t, r, c.alice, "audit", "verify"), "audit verify on "+r.name)
	}
}

func prefixed(p string, ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = p + s
	}
	return out
}
