package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/store/pgstore"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// pgDatabase creates an empty database with a random name on the test
// server, drops it when t ends, and returns its DSN.
func pgDatabase(t *testing.T) string {
	t.Helper()
	admin := testenv.PostgresDSN(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("connecting to AIRLOCK_TEST_PG_DSN: %v", err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	name := "airlock_server_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("dropping %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("dropping %s: %v", name, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// pgConfig writes a configuration with `store: dsn` and its own data_dir.
func pgConfig(t *testing.T, dsn string) *config.Config {
	t.Helper()
	return auditConfig(t, fmt.Sprintf("store: %q\n", dsn))
}

// TestPostgresStore runs a server on `store: postgres://…`: grants, sessions
// and the log land in PostgreSQL (none in data_dir), survive a restart,
// verify, and a row forged in the database is caught; a second server on
// the same database refuses to start.
func TestPostgresStore(t *testing.T) {
	dsn := pgDatabase(t)
	cfg := pgConfig(t, dsn)
	ctx := context.Background()

	s := openServer(t, cfg)
	if _, ok := s.store.(*pgstore.Store); !ok {
		t.Fatalf("server store is %T, want *pgstore.Store", s.store)
	}
	g, ses := activeSession(t, s)
	for _, c := range []gateway.Call{
		{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a.log", Allowed: true, BytesOut: 100},
		{Kind: "request", Action: "s3:DeleteObject", Resource: "arn:aws:s3:::logs/app/b.log", Allowed: false},
	} {
		if err := gatewaytest.Record(ctx, ses, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := ses.End(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify(ctx)
	if err != nil || !rep.OK || !rep.Rows {
		t.Fatalf("verify: %+v, %v", rep, err)
	}

	// A second server on the same database with a signing key of its own
	// refuses to continue a log signed by another key; with the shared
	// key (copied into its data_dir) it joins as a replica of the log.
	cfg2 := pgConfig(t, dsn)
	// (serverkeys refuses it first: it would not generate keys of its own
	// on a database that has some; TestReplicaKeys covers the other cases.)
	if s2, err := Open(ctx, cfg2, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "not validly signed") && !strings.Contains(err.Error(), "give this replica the keys the others use") {
		if err == nil {
			s2.Close()
		}
		t.Fatalf("second server with another signing key: %v, want a refusal", err)
	}
	for _, f := range []string{auditlog.SignerKeyFile, auditlog.VerifierKeyFile, CredentialKeyFile} {
		b, err := os.ReadFile(filepath.Join(cfg.DataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cfg2.DataDir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s2 := openServer(t, cfg2)
	if err := s2.log.Append(ctx, auditlog.Event{Type: "test.replica", Actor: "replica-2"}); err != nil {
		t.Fatalf("append on the second replica: %v", err)
	}
	if err := s.log.Append(ctx, auditlog.Event{Type: "test.replica", Actor: "replica-1"}); err != nil {
		t.Fatalf("append on the first replica after the second: %v", err)
	}
	for i, srv := range []*Server{s, s2} {
		if rep, err := srv.Verify(ctx); err != nil || !rep.OK || !rep.Rows {
			t.Fatalf("verify on replica %d: %+v, %v", i+1, rep, err)
		}
	}
	s2.Close()

	s.Close()
	if _, err := os.Stat(filepath.Join(cfg.DataDir, DatabaseFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("data_dir has %s (%v); the store is PostgreSQL", DatabaseFile, err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var nGrants, nEntries int
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM grants), (SELECT count(*) FROM log_entries)").Scan(&nGrants, &nEntries); err != nil {
		t.Fatal(err)
	}
	if nGrants != 1 || nEntries < 5 {
		t.Fatalf("PostgreSQL holds %d grants and %d log entries", nGrants, nEntries)
	}

	// Restart: the grant
	// and its usage are read back from PostgreSQL.
	s = openServer(t, cfg)
	defer s.Close()
	got, err := s.Service.Get(ctx, alice, g.ID)
	if err != nil || got.Usage.Calls != 1 || got.Usage.DeniedCalls != 1 || len(got.LogMismatch) != 0 {
		t.Fatalf("grant after restart: %+v, %v", got, err)
	}
	if rep, err := s.Verify(ctx); err != nil || !rep.OK {
		t.Fatalf("verify after restart: %+v, %v", rep, err)
	}

	// A row changed in the database behind Airlock's back is caught.
	if _, err := conn.Exec(ctx, `UPDATE grants SET record = convert_to(replace(convert_from(record, 'UTF8'),
		'"reason":"billing errors too"', '"reason":"routine"'), 'UTF8')`); err != nil {
		t.Fatal(err)
	}
	rep, err = s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, "forged row", rep, fmt.Sprintf(`grant %s: reason is "routine", log says "billing errors too"`, g.ID))
}

// TestStoreThatDoesNotOpenIsReported: a PostgreSQL store that cannot be
// opened makes Open return why, not panic. Open closed what it had opened
// after the error, and a failed pgstore.Open's nil *Store, held as a
// non-nil store.Store, made that Close dereference nil: every such
// failure (a refused synchronous_commit, an unreachable server, a missing
// schema) crashed `airlock serve` without its reason.
func TestStoreThatDoesNotOpenIsReported(t *testing.T) {
	cases := map[string]struct{ dsn, want string }{
		"unreachable": {"postgres://nobody@127.0.0.1:1/airlock?sslmode=disable&connect_timeout=2", "127.0.0.1"},
		"sync off":    {"postgres://nobody@127.0.0.1:1/airlock?sslmode=disable&synchronous_commit=off", "synchronous_commit"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := pgConfig(t, c.dsn)
			var s *Server
			var err error
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("Open panicked: %v", r)
					}
				}()
				s, err = Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
			}()
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded on a store that cannot open")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open: %v; want the reason (%q)", err, c.want)
			}
		})
	}
}
