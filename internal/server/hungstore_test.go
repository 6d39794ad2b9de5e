package server

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestCloseWithAHungPostgresStore: a PostgreSQL store that stops answering
// (here another session holds the log's and the sessions' tables locked)
// does not hold the server's Close for ever: the sessions recorder's last
// writes are cancelled at their bound, and what still waits on the store
// (the log's batch in flight, whose COMMIT waits on the lock) is left
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

	other, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	tx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE log_entries, sessions IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
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
		_ = tx.Rollback(ctx)
		t.Fatal("Close had not returned 40 s after it began, with the store hung")
	}
	// The process ends there: its connections go with it (their
	// backends, waiting on the lock, would otherwise commit once it is
	// released).
	if _, err := tx.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

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
