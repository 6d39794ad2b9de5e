package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestCloseWithAHungPostgresStore: a PostgreSQL store that stops answering
// (here another session holds the log's and the sessions' tables locked)
// does not hold the server's Close for ever: the sessions recorder's last
// writes are cancelled at their bound, and what still waits on the store
// (the log's batch in flight, whose COMMIT waits on the lock until
// pgstore's CommitTimeout, and the batches queued behind it) is left
// behind at closeBound, as a crash would leave it. Nothing durable is
// lost: after a restart, the session left open is ended from its logged
// calls, its summary counting every one of them.
func TestCloseWithAHungPostgresStore(t *testing.T) {
	dsn := pgDatabase(t)
	cfg := pgConfig(t, dsn)
	// A stable replica id (replicaID: the host and the API's port; Open
	// does not listen), so that the restart's first sweep ends the earlier
	// run's sessions at once.
	cfg.Listen.API = "127.0.0.1:21517"
	ctx := context.Background()

	s := openServer(t, cfg)
	_, ses := activeSession(t, s)
	get := gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a.log", Allowed: true}
	for range 3 {
		if err := gatewaytest.Record(ctx, ses, get); err != nil {
			t.Fatal(err)
		}
	}

	tx := testenv.LockPostgresTables(t, dsn, "log_entries, sessions")
	// A result for the recorder to log, which the store holds.
	res := get
	res.Kind, res.Status, res.BytesOut = "result", "200", 10
	if err := gatewaytest.Record(ctx, ses, res); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the flusher's round (100 ms) is held by the lock

	closed := make(chan time.Duration, 1)
	t0 := time.Now()
	go func() {
		s.Close()
		closed <- time.Since(t0)
	}()
	select {
	case d := <-closed:
		t.Logf("Close took %v with the store hung", d.Round(time.Millisecond))
		// closeBound, with slack for a loaded machine.
		if d > closeBound+3*time.Second {
			t.Fatalf("Close took %v with the store hung", d)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("Close had not returned 40 s after it began, with the store hung")
	}
	endProcess(t, tx)

	// The restart's first sweep ends the earlier run's session at its last
	// recorded event, counting the three calls from the log.
	s = openServer(t, cfg)
	defer s.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		row, err := s.store.Session(ctx, ses.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !row.EndedAt.IsZero() {
			if row.Calls != 3 {
				t.Fatalf("the recovered session counts %d calls, want the 3 logged", row.Calls)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session left open is not ended 20 s after the restart: %+v", row)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rep, err := s.Verify(ctx); err != nil || !rep.OK || !rep.Rows {
		t.Fatalf("verify after restart: %+v, %v", rep, err)
	}
}

// activeSession has the bot granted a read of aws-prod (approved by policy)
// and starts a session under the grant, as the AWS gateway would.
func activeSession(t *testing.T, s *Server) (model.Grant, *gateway.Session) {
	t.Helper()
	ctx := context.Background()
	g, err := s.Service.Request(ctx, bot, grants.RequestInput{Target: "aws-prod",
		Scope: []string{"s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*"}, Duration: "10m", Reason: "billing errors too"})
	if err != nil || g.Status != model.Active {
		t.Fatalf("request: %v, %v", g.Status, err)
	}
	gg, err := s.Service.Authority().Lookup(g.CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	ses, err := s.Service.Authority().StartSession(ctx, gg, "test-client")
	if err != nil {
		t.Fatal(err)
	}
	return g, ses
}

// TestCloseDeliversNotificationsAlongside: the notifications' last
// deliveries (notify's CloseGrace, 5 s) run alongside the service's and
// the log's close, not after them. Here the store hangs, so the sessions
// recorder's close takes its full bound (5 s), and the webhook receiver
// never answers: its delivery is cut at CloseGrace from the start of
// Close. One after the other, it was cut only once the recorder had given
// up, 10 s in, when closeBound had passed too.
func TestCloseDeliversNotificationsAlongside(t *testing.T) {
	cut := make(chan time.Time, 16)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // then the server sees the client leave
		<-r.Context().Done()        // never answers
		cut <- time.Now()
	}))
	defer recv.Close()
	t.Setenv("TEST_HOOK_SECRET", "a-webhook-secret-of-the-test-0123")
	dsn := pgDatabase(t)
	cfg := auditConfig(t, fmt.Sprintf("store: %q\nnotify:\n  webhooks:\n    - {url: %s/hook, secret_env: TEST_HOOK_SECRET}\n", dsn, recv.URL))
	ctx := context.Background()
	s := openServer(t, cfg)
	_, ses := activeSession(t, s) // grant.requested is being delivered
	get := gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a.log", Allowed: true}
	if err := gatewaytest.Record(ctx, ses, get); err != nil {
		t.Fatal(err)
	}
	tx := testenv.LockPostgresTables(t, dsn, "log_entries, sessions")
	res := get
	res.Kind, res.Status = "result", "200"
	if err := gatewaytest.Record(ctx, ses, res); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the flusher's round is held by the lock

	t0 := time.Now()
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case at := <-cut:
		// CloseGrace, with slack for a loaded machine; after the
		// recorder's bound it would be 10 s.
		if d := at.Sub(t0); d > 8*time.Second {
			t.Fatalf("the delivery in flight was cut %v after Close began", d.Round(time.Millisecond))
		} else {
			t.Logf("the delivery in flight was cut %v after Close began", d.Round(time.Millisecond))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the delivery in flight was not cut 20 s after Close began")
	}
	<-closed
	endProcess(t, tx)
}

// endProcess ends the connections of a server left behind by Close, as
// its process's exit would (their backends, waiting on the lock, would
// otherwise commit once it is released), and releases tx's lock.
func endProcess(t *testing.T, tx pgx.Tx) {
	t.Helper()
	ctx := context.Background()
	if _, err := tx.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
}
