package pgstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/storetest"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// The test run's database: created with a random name by the first test
// that needs it, dropped by TestMain when the run ends. Each store gets a
// fresh schema of its own in it (search_path in its DSN), which is much
// faster than a database per test and isolates them as well: the tables,
// the migrations and the advisory locks are all per schema.
var (
	runDBOnce sync.Once
	runDBURL  *url.URL // nil until created
	runDBErr  error
	adminDSN  string
	runDBName string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if runDBName != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if conn, err := pgx.Connect(ctx, adminDSN); err != nil {
			fmt.Fprintf(os.Stderr, "dropping %s: %v\n", runDBName, err)
			code = max(code, 1)
		} else {
			if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+runDBName+" WITH (FORCE)"); err != nil {
				fmt.Fprintf(os.Stderr, "dropping %s: %v\n", runDBName, err)
				code = max(code, 1)
			}
			conn.Close(ctx)
		}
		cancel()
	}
	os.Exit(code)
}

// runDB returns the URL of the run's database. Where the server has ICU, its
// default collation is en-US, so that any ordering that depends on the
// locale instead of COLLATE "C" shows up ("g_B" sorts after "g_a" in en-US,
// before it in Go).
func runDB(t testing.TB) url.URL {
	t.Helper()
	admin := testenv.PostgresDSN(t)
	runDBOnce.Do(func() {
		adminDSN = admin
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			runDBErr = fmt.Errorf("connecting to AIRLOCK_TEST_PG_DSN: %w", err)
			return
		}
		defer conn.Close(ctx)
		name := "airlock_pgstore_" + randHex()
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"); err != nil {
			t.Logf("no ICU database (%v); using the server's default locale", err)
			if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
				runDBErr = fmt.Errorf("CREATE DATABASE: %w", err)
				return
			}
		}
		runDBName = name
		u, err := url.Parse(admin)
		if err != nil {
			runDBErr = fmt.Errorf("AIRLOCK_TEST_PG_DSN must be a URL: %w", err)
			return
		}
		u.Path = "/" + name
		runDBURL = u
	})
	if runDBErr != nil {
		t.Fatal(runDBErr)
	}
	return *runDBURL
}

func randHex() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// freshDB creates an empty schema in the run's database, drops it when t
// ends, and returns a DSN whose search_path is that schema.
func freshDB(t testing.TB) string {
	t.Helper()
	u := runDB(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	schema := "t_" + randHex()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, u.String())
		if err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func openFresh(t testing.TB) (*Store, string) {
	t.Helper()
	dsn := freshDB(t)
	s, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s, dsn
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := openFresh(t)
		return s
	})
}

// TestConcurrentOpenMigratesOnce starts several stores on one empty
// database at once, as replicas starting together would: each migration is
// applied exactly once and every Open succeeds.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	dsn := freshDB(t)
	ctx := t.Context()
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]*Store, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			stores[i], errs[i] = Open(ctx, dsn)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	var versions, count int
	if err := stores[0].pool.QueryRow(ctx, "SELECT COALESCE(MAX(version), 0), count(*) FROM "+migrationsTable).Scan(&versions, &count); err != nil {
		t.Fatal(err)
	}
	if versions != SchemaVersion() || count != SchemaVersion() {
		t.Fatalf("%s: max version %d, %d rows; want %d of each", migrationsTable, versions, count, SchemaVersion())
	}
	// And a reopen applies nothing.
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	s.Close()
}

func TestNewerSchemaFails(t *testing.T) {
	s, dsn := openFresh(t)
	ctx := t.Context()
	if _, err := s.pool.Exec(ctx, "INSERT INTO "+migrationsTable+" (version) VALUES ($1)", SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err := Open(ctx, dsn)
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open of a newer schema: %v, want ErrNewerSchema", err)
	}
}

func TestNotAnAirlockDatabase(t *testing.T) {
	dsn := freshDB(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE schema_migrations (version text); CREATE TABLE grants (x int)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	_, err = Open(ctx, dsn)
	if !errors.Is(err, ErrNotAirlock) {
		t.Fatalf("Open of another application's schema: %v, want ErrNotAirlock", err)
	}
}

// TestSearchPathSchema keeps Airlock's tables in their own schema of a
// shared database, chosen with search_path in the DSN.
func TestSearchPathSchema(t *testing.T) {
	dsn := freshDB(t) // search_path is a schema holding another application's table
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	own := "airlock_" + randHex()
	if _, err := conn.Exec(ctx, "CREATE TABLE other_app (x int); CREATE SCHEMA "+own); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), dsn)
		if err == nil {
			conn.Exec(context.Background(), "DROP SCHEMA "+own+" CASCADE")
			conn.Close(context.Background())
		}
	})
	if _, err := Open(ctx, dsn); !errors.Is(err, ErrNotAirlock) {
		t.Fatalf("Open into a schema with another application's table: %v, want ErrNotAirlock", err)
	}
	u, _ := url.Parse(dsn)
	q := u.Query()
	q.Set("search_path", own)
	u.RawQuery = q.Encode()
	s, err := Open(ctx, u.String())
	if err != nil {
		t.Fatalf("Open with search_path=%s: %v", own, err)
	}
	defer s.Close()
	if s.schema != own {
		t.Fatalf("schema %q, want %s", s.schema, own)
	}
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'grants'", own).Scan(&n); err != nil || n != 1 {
		t.Fatalf("grants table in schema %s: %d, %v", own, n, err)
	}
}

// TestWritersOfTwoProcessesSerialize opens two stores on one database, as two
// replicas would, and races two approvals of one pending grant: the second
// writer waits for the first to commit and then sees its decision, so
// exactly one approval wins and the other finds the grant already active.
func TestWritersOfTwoProcessesSerialize(t *testing.T) {
	a, dsn := openFresh(t)
	defer a.Close()
	b, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := t.Context()
	t0 := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)
	g := model.Grant{ID: "g_1", Identity: "bot", Target: "aws", Account: "A", Status: model.Pending,
		RequestedAt: t0, DecideBy: t0.Add(time.Hour)}
	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.CreateGrant(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	// approve approves the grant if it is still pending, and reports
	// whether it did.
	approve := func(s *Store, approver string, hold <-chan struct{}) (bool, error) {
		tx, err := s.Begin(ctx)
		if err != nil {
			return false, err
		}
		defer tx.Rollback()
		cur, err := tx.Grant(ctx, "g_1")
		if err != nil {
			return false, err
		}
		if cur.Status != model.Pending {
			return false, tx.Commit()
		}
		if hold != nil {
			<-hold
		}
		cur.Status = model.Active
		cur.DecidedAt, cur.StartedAt, cur.ExpiresAt = t0.Add(time.Minute), t0.Add(time.Minute), t0.Add(time.Hour)
		cur.Approvals = append(cur.Approvals, model.Approval{Approver: approver, Decision: "approved", At: t0.Add(time.Minute)})
		if err := tx.UpdateGrant(ctx, cur); err != nil {
			return false, err
		}
		return true, tx.Commit()
	}

	hold := make(chan struct{})
	type res struct {
		won bool
		err error
	}
	first := make(chan res, 1)
	go func() {
		won, err := approve(a, "alice", hold)
		first <- res{won, err}
	}()
	// Let alice's transaction take the writer lock and read the grant.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting bool
		if err := b.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND classid::bigint = ($1::bigint >> 32) & 4294967295 AND objid::bigint = $1::bigint & 4294967295)`, a.writerLock).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("alice's transaction never took the writer lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	second := make(chan res, 1)
	go func() {
		won, err := approve(b, "bob", nil)
		second <- res{won, err}
	}()
	select {
	case r := <-second:
		t.Fatalf("bob's transaction on another store ran while alice's was open: won %v, err %v", r.won, r.err)
	case <-time.After(200 * time.Millisecond):
	}
	close(hold)
	ra, rb := <-first, <-second
	if ra.err != nil || rb.err != nil {
		t.Fatalf("approvals: alice %v, bob %v", ra.err, rb.err)
	}
	if !ra.won || rb.won {
		t.Fatalf("alice won %v, bob won %v; want alice only", ra.won, rb.won)
	}
	got, err := b.Grant(ctx, "g_1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != model.Active || len(got.Approvals) != 1 || got.Approvals[0].Approver != "alice" {
		t.Fatalf("grant after the race: %s, approvals %+v", got.Status, got.Approvals)
	}
}

// TestFailedStatementRecoveredBySavepoint checks what the audit log's writer
// relies on: a statement that fails inside a caller's savepoint aborts the
// PostgreSQL transaction only until RollbackTo, and the batch then commits.
func TestFailedStatementRecoveredBySavepoint(t *testing.T) {
	s, _ := openFresh(t)
	defer s.Close()
	ctx := t.Context()
	t0 := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := tx.CreateGrant(ctx, model.Grant{ID: "g_1", Status: model.Pending, RequestedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Savepoint(ctx, "caller"); err != nil {
		t.Fatal(err)
	}
	ptx := tx.(*Tx)
	if _, err := ptx.tx.Exec(ctx, "SELECT 1/0"); err == nil {
		t.Fatal("division by zero succeeded")
	}
	if _, err := tx.Grant(ctx, "g_1"); err == nil {
		t.Fatal("a read succeeded in an aborted transaction")
	}
	if err := tx.RollbackTo(ctx, "caller"); err != nil {
		t.Fatal(err)
	}
	if err := tx.Release(ctx, "caller"); err != nil {
		t.Fatal(err)
	}
	if err := tx.CreateGrant(ctx, model.Grant{ID: "g_2", Status: model.Pending, RequestedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"g_1", "g_2"} {
		if _, err := s.Grant(ctx, id); err != nil {
			t.Fatalf("Grant %s: %v", id, err)
		}
	}
}

// TestTextPostgreSQLCannotStore checks that a NUL byte or invalid UTF-8 in
// an indexed text field fails that one call and leaves the transaction
// usable (a failed statement would abort it).
func TestTextPostgreSQLCannotStore(t *testing.T) {
	s, _ := openFresh(t)
	defer s.Close()
	ctx := t.Context()
	t0 := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := tx.CreateGrant(ctx, model.Grant{ID: "g_\x00", Status: model.Pending, RequestedAt: t0}); err == nil {
		t.Fatal("a grant id with NUL was accepted")
	}
	if err := tx.AppendLog(ctx, []store.LogEntry{{Seq: 0, Type: "x\xff"}}); err == nil {
		t.Fatal("a log type with invalid UTF-8 was accepted")
	}
	if err := tx.PutIdentity(ctx, model.Identity{Name: "a\x00b"}); err == nil {
		t.Fatal("an identity name with NUL was accepted")
	}
	if err := tx.AppendLog(ctx, []store.LogEntry{{Seq: 0, Type: "ok", Data: []byte("\x00\xff")}}); err != nil {
		t.Fatalf("AppendLog after rejected text: %v", err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// TestBadDSNIsNotEchoed checks that a DSN that fails to parse is not quoted
// with its password in the error (pgx replaces it; this guards that).
func TestBadDSNIsNotEchoed(t *testing.T) {
	for _, dsn := range []string{
		"postgres://airlock:s3cret-pw@127.0.0.1:notaport/airlock",
		"postgres://airlock@127.0.0.1/airlock?password=s3cret-pw&sslmode=bogus",
		"host=127.0.0.1 password=s3cret-pw port=zz",
	} {
		_, err := Open(t.Context(), dsn)
		if err == nil {
			t.Fatal("Open accepted a bad DSN")
		}
		if s := err.Error(); strings.Contains(s, "s3cret-pw") {
			t.Fatalf("error quotes the password: %s", s)
		}
	}
}

// TestSynchronousCommit: the store's sessions commit durably even when the
// server's (or role's) default is synchronous_commit=off, and a DSN asking
// for off is refused.
func TestSynchronousCommit(t *testing.T) {
	dsn := freshDB(t)
	ctx := t.Context()
	// The test server's default is on; make it off for this database's
	// sessions, as a careless operator might.
	u, _ := url.Parse(dsn)
	var db string
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" SET synchronous_commit = off"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	t.Cleanup(func() { // the run's database is shared by the other tests
		conn, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "ALTER DATABASE "+pgx.Identifier{db}.Sanitize()+" RESET synchronous_commit"); err != nil {
			t.Error(err)
		}
	})
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var v string
	if err := s.pool.QueryRow(ctx, "SHOW synchronous_commit").Scan(&v); err != nil || v != "on" {
		t.Fatalf("store session synchronous_commit = %q, %v; want on", v, err)
	}
	q := u.Query()
	q.Set("synchronous_commit", "off")
	u.RawQuery = q.Encode()
	if _, err := Open(ctx, u.String()); err == nil || !strings.Contains(err.Error(), "synchronous_commit=off") {
		t.Fatalf("Open with synchronous_commit=off: %v, want a refusal", err)
	}
}

// TestByteOrder: ties on RequestedAt and identity lists are ordered by
// bytes, as Go orders strings, even in a database whose locale orders them
// otherwise (the run's database is en-US where ICU is available).
func TestByteOrder(t *testing.T) {
	s, _ := openFresh(t)
	defer s.Close()
	ctx := t.Context()
	var collate string
	if err := s.pool.QueryRow(ctx, "SELECT COALESCE(daticulocale, datcollate) FROM pg_database WHERE datname = current_database()").Scan(&collate); err != nil {
		t.Fatal(err)
	}
	t.Logf("database locale %s", collate)
	t0 := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)
	ids := []string{"g_a", "g_B", "g-c", "g_10", "g_9", "G_z"}
	names := []string{"alice", "Zed", "bob", "_svc", "Émile"}
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := tx.CreateGrant(ctx, model.Grant{ID: id, Account: "A", Status: model.Pending, RequestedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		if err := tx.PutIdentity(ctx, model.Identity{Name: n, Kind: model.Human}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	gs, err := s.Grants(ctx, store.GrantFilter{Account: "A", Since: t0, Until: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range gs {
		got = append(got, g.ID)
	}
	want := slices.Sorted(slices.Values(ids))
	if !slices.Equal(got, want) {
		t.Errorf("grants with one RequestedAt: %q, want Go's order %q", got, want)
	}
	list, err := s.Identities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, id := range list {
		got = append(got, id.Name)
	}
	if want := slices.Sorted(slices.Values(names)); !slices.Equal(got, want) {
		t.Errorf("identities: %q, want Go's order %q", got, want)
	}
}

// logEntries are entries from, from+1, … from+n-1 of a test log.
func logEntries(from, n int64) []store.LogEntry {
	var out []store.LogEntry
	for i := from; i < from+n; i++ {
		out = append(out, store.LogEntry{Seq: i, Time: time.Unix(0, i), Type: "t", GrantID: "g", Data: []byte(fmt.Sprint(i)), LeafHash: []byte{byte(i)}})
	}
	return out
}

// logCheckpoint is a (fake) checkpoint of a test log of size entries.
func logCheckpoint(size int64) store.Checkpoint {
	return store.Checkpoint{Size: size, Root: []byte{1}, Note: []byte("n"), Frontier: []byte{2}, CreatedAt: time.Unix(1, 0)}
}

// TestAppendLogCheckpoint: entries and their checkpoint are stored by one
// statement, both or neither; entries that do not continue the log are a
// conflict that leaves the transaction usable.
func TestAppendLogCheckpoint(t *testing.T) {
	s, _ := openFresh(t)
	ctx := t.Context()
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ptx := tx.(*Tx)
	if err := ptx.AppendLogCheckpoint(ctx, logEntries(0, 3), logCheckpoint(3)); err != nil {
		t.Fatal(err)
	}
	if err := ptx.AppendLogCheckpoint(ctx, logEntries(5, 2), logCheckpoint(7)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a gap: %v, want ErrConflict", err)
	}
	if err := ptx.AppendLogCheckpoint(ctx, logEntries(3, 2), logCheckpoint(5)); err != nil {
		t.Fatalf("after a conflict: %v", err)
	}
	head, err := ptx.LatestCheckpoint(ctx)
	if err != nil || head.Size != 5 {
		t.Fatalf("head in the transaction: %+v, %v", head, err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	var nc int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM log_checkpoints").Scan(&nc); err != nil {
		t.Fatal(err)
	}
	if n, err := s.LogSize(ctx); err != nil || n != 5 || nc != 2 {
		t.Fatalf("log size %d (%v), %d checkpoints; want 5 and 2", n, err, nc)
	}
}

// TestCommitLogCheckpoint: entries, their checkpoint and the COMMIT go in
// one round trip; entries that do not continue the log (a gap, or a log
// that moved on) fail the statement, so nothing of the transaction is
// committed, not even its other writes, and the writer is free again.
func TestCommitLogCheckpoint(t *testing.T) {
	s, _ := openFresh(t)
	ctx := t.Context()
	// commit writes an identity and then commits entries [from, from+n).
	commit := func(name string, from, n int64) error {
		tx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.PutIdentity(ctx, model.Identity{Name: name, Kind: model.Agent}); err != nil {
			t.Fatal(err)
		}
		return tx.(*Tx).CommitLogCheckpoint(logEntries(from, n), logCheckpoint(from+n))
	}
	if err := commit("first", 0, 3); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		from, n int64
	}{{"gap", 5, 2}, {"behind", 2, 2}, {"stale", 0, 3}} {
		if err := commit(c.name, c.from, c.n); !errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: %v, want ErrConflict", c.name, err)
		}
		if _, err := s.Identity(ctx, c.name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: the failed transaction's identity was committed (%v)", c.name, err)
		}
	}
	if err := commit("second", 3, 2); err != nil {
		t.Fatalf("after the conflicts: %v", err)
	}
	var nc int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM log_checkpoints").Scan(&nc); err != nil {
		t.Fatal(err)
	}
	if n, err := s.LogSize(ctx); err != nil || n != 5 || nc != 2 {
		t.Fatalf("log size %d (%v), %d checkpoints; want 5 and 2", n, err, nc)
	}
	for _, name := range []string{"first", "second"} {
		if _, err := s.Identity(ctx, name); err != nil {
			t.Errorf("identity %s: %v", name, err)
		}
	}
}

// TestCommitLogCheckpointValues: the entries and checkpoint
// CommitLogCheckpoint encodes itself (binary arrays, see logParams) read
// back as they were given: NULL times and ids, empty and missing data,
// text outside ASCII, a checkpoint with and without a MAC.
func TestCommitLogCheckpointValues(t *testing.T) {
	s, _ := openFresh(t)
	ctx := t.Context()
	in := []store.LogEntry{
		{Seq: 0, Time: time.Unix(0, 1700000000123456789).UTC(), Type: "grant.requested", GrantID: "g-1", Data: []byte(`{"a":1}`), LeafHash: bytes.Repeat([]byte{7}, 32)},
		{Seq: 1, Type: "session.call", GrantID: "g-1", SessionID: "s-ü", Data: []byte{}, LeafHash: []byte{1}},
		{Seq: 2, Time: time.Unix(5, 0).UTC(), Type: "", Data: nil, LeafHash: nil},
	}
	cps := []store.Checkpoint{
		{Size: 3, Root: bytes.Repeat([]byte{9}, 32), Note: []byte("note\n"), Frontier: []byte{1, 2, 3}, CreatedAt: time.Unix(1, 2).UTC(), MAC: bytes.Repeat([]byte{5}, 32)},
		{Size: 4, Root: []byte{8}, Note: []byte("n2"), Frontier: []byte{4}},
	}
	for i, cp := range cps {
		tx, err := s.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		entries := in
		if i == 1 {
			entries = []store.LogEntry{{Seq: 3, Type: "t", LeafHash: []byte{3}}}
		}
		if err := tx.(*Tx).CommitLogCheckpoint(entries, cp); err != nil {
			t.Fatal(err)
		}
		got, err := s.LatestCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got.ID = 0
		if !reflect.DeepEqual(got, cp) {
			t.Errorf("checkpoint read back:\n%+v\nwant\n%+v", got, cp)
		}
	}
	out, err := s.LogEntries(ctx, store.LogFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 4 {
		t.Fatalf("%d entries, want 4", len(out))
	}
	for i, want := range in {
		got := out[i]
		if got.Seq != want.Seq || !got.Time.Equal(want.Time) || got.Type != want.Type || got.GrantID != want.GrantID ||
			got.SessionID != want.SessionID || !bytes.Equal(got.Data, want.Data) || (got.Data == nil) != (want.Data == nil) || !bytes.Equal(got.LeafHash, want.LeafHash) {
			t.Errorf("entry %d read back as %+v, want %+v", i, got, want)
		}
	}
}

// TestFindingsQueryPlan: listing the findings reads them through their
// partial index (migration 6), also under the generic plan a cached
// prepared statement gets, rather than scanning every call of the log.
func TestFindingsQueryPlan(t *testing.T) {
	s, _ := openFresh(t)
	ctx := t.Context()
	// 20,000 entries, 2 of them findings, as the log of a busy gateway.
	if _, err := s.pool.Exec(ctx, `INSERT INTO log_entries (seq, time, type, grant_id, session_id, data, leaf_hash)
		SELECT i, 0, CASE WHEN i % 7000 = 6999 THEN 'finding' ELSE 'session.call' END, 'g_1', 's_1', '\x7b7d', '\x00'
		FROM generate_series(0, 19999) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, "ANALYZE log_entries"); err != nil {
		t.Fatal(err)
	}
	got, err := s.LogEntries(ctx, store.LogFilter{Type: "finding"})
	if err != nil {
		t.Fatal(err)
	}
	if g := len(got); g != 2 || got[0].Seq != 6999 || got[1].Seq != 13999 {
		t.Fatalf("findings: %d entries %v", g, got)
	}
	conn := genericPlans(t, s)
	// A prepared statement under a generic plan, as pgx's statement
	// cache may end up with: only a literal type lets it use the index.
	for i, f := range []store.LogFilter{{Type: "finding"}, {Type: "finding", Limit: 10}, {GrantID: "g_1", Type: "finding"}} {
		if plan := preparedPlan(t, conn, fmt.Sprintf("findings_%d", i), f); !strings.Contains(plan, "log_entries_findings") {
			t.Errorf("findings plan (%+v):\n%s", f, plan)
		}
	}
}

// genericPlans is a connection of s's pool whose prepared statements
// get the generic plan a cached statement may end up with
// (plan_cache_mode = force_generic_plan), until the test ends.
func genericPlans(t *testing.T, s *Store) *pgxpool.Conn {
	t.Helper()
	ctx := t.Context()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
		conn.Release()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Exec(context.Background(), "RESET plan_cache_mode")
		conn.Release()
	})
	return conn
}

// preparedPlan is the plan of LogEntries' statement for f, prepared on
// conn as name and explained with its parameters: under
// plan_cache_mode = force_generic_plan, the generic plan a cached
// statement may get.
func preparedPlan(t *testing.T, conn *pgxpool.Conn, name string, f store.LogFilter) string {
	t.Helper()
	ctx := t.Context()
	q, p := logEntriesQuery(f)
	var args []string // the parameters as SQL literals
	for _, v := range p {
		switch v := v.(type) {
		case string:
			args = append(args, "'"+v+"'")
		default:
			args = append(args, fmt.Sprint(v))
		}
	}
	call := ""
	if len(args) > 0 {
		call = "(" + strings.Join(args, ", ") + ")"
	}
	if _, err := conn.Exec(ctx, "PREPARE "+name+" AS "+q); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "EXPLAIN (COSTS OFF) EXECUTE "+name+call, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
