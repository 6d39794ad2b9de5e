// Package pgstore is the PostgreSQL implementation of store.Store, selected
// by `store: postgres://…` in the configuration. It uses pgx through a
// pgxpool connection pool, and passes the same storetest conformance suite
// as the embedded SQLite store (sqlitestore), whose semantics it copies.
//
// # Schema and migrations
//
// The schema is created and upgraded by the embedded, versioned migrations in
// migrations/ (NNNN_name.sql is version NNNN), recorded in
// airlock_schema_migrations. Open applies the pending ones in one
// transaction under a transaction-scoped advisory lock, so replicas started
// at the same moment never race: one applies them, the others wait and then
// find the schema current. Open fails on a schema written by a newer Airlock,
// and on a schema that holds other tables but no Airlock version table. The
// tables live in the DSN's current schema (the first of its search_path):
// give Airlock its own database, or its own schema with
// `?search_path=airlock` in the DSN.
//
// Times are unix nanoseconds in bigint columns, as in the SQLite store:
// callers compare times to the nanosecond, which timestamptz would round to
// microseconds. Text that is ordered or compared is COLLATE "C", so orders
// are Go's byte order whatever the database's locale. Grants and sessions
// are kept as JSON records (bytea, byte for byte) plus the indexed columns
// the review query filters on; see sqlitestore for how the review window is
// answered with index range scans and max_span_nanos. Here each review is a
// single statement (grants and their sessions' usage in one snapshot).
//
// # Writes and isolation
//
// Begin allows one write transaction at a time, like the SQLite store: a
// second Begin waits. Inside one process the wait is a semaphore (bounded by
// Begin's ctx); across processes sharing the database, every write
// transaction first takes a transaction-scoped advisory lock, so writers of
// different processes are serialized too. The transaction runs at READ
// COMMITTED, and the lock is taken by its first statement, so every later
// statement sees everything committed by the writer that held the lock
// before: two approvals of one grant, from two processes, resolve in lock
// order, and the second sees the first's decision. (A snapshot isolation
// level would be wrong here: its snapshot would date from before the lock
// wait.) Reads of grants also lock the rows they return (FOR UPDATE), which
// keeps per-grant decisions serialized should writers ever run in parallel.
//
// A statement that fails inside a PostgreSQL transaction aborts it until the
// enclosing savepoint is rolled back. Expected failures (a duplicate id or
// credential, a log sequence that does not continue the log, text PostgreSQL
// cannot store) are therefore detected without failing a statement, so the
// transaction stays usable for the rest of a group-committed batch, as the
// SQLite store's does.
//
// A write transaction's COMMIT is asynchronous (synchronous_commit off for
// that transaction only): it makes the transaction visible and releases the
// writers' lock without waiting for the WAL flush. A small synchronous
// transaction (flushSQL) follows it on the same connection, in the same
// round trip (a pipeline), and its commit waits for the WAL to be flushed,
// and replicated to a synchronous standby if the DSN asks for it, up to a
// point after the writer's commit record; Commit returns only then. So
// Commit still returns only once the transaction is durable, but the next
// writer (of any replica) takes the lock while this one waits for the
// disk, and the flushes of several replicas share one fsync (PostgreSQL
// flushes the WAL for every waiting backend at once): the lock is not held
// across a disk flush. Another writer may see (and build on) a
// transaction before it is durable; its own commit is durable only with
// everything before it in the WAL, so a crash can lose the two together
// but never the first alone, and neither was acknowledged. Readers may
// likewise see a transaction a moment before it is durable, as PostgreSQL's
// own synchronous replication allows.
//
// Round trips are what a writer holding the lock waits on, so a write
// transaction spends as few as it can: Begin sends BEGIN, the lock
// statement and the log's head read in one pipeline, and Commit sends the
// COMMIT and the flush in another, with the audit log's last entries and
// their checkpoint in front of them when it uses CommitLogCheckpoint. A
// batch of the shared log is thus two round trips, one of them under the
// lock. Entries sent ahead of the COMMIT that do not continue the log fail
// their statement (airlock_log_conflict), so the server skips the COMMIT
// and nothing of the transaction is committed.
//
// A COMMIT whose answer is lost (the connection broke, the server restarted,
// or no answer came within Options.CommitTimeout, 10 s by default, and the
// connection was closed) may have committed or not. Commit then asks the
// database, on another connection, for the transaction's status
// (pg_xact_status of the id Begin recorded), retrying until the database
// answers: it returns nil if the transaction committed and an error only if
// it did not, so a batch the audit log reports as failed never appears in
// the log later. (pgx cancels the statement in flight as it closes a connection, so a
// pipeline the server had not finished usually ends aborted; the status
// tells either way.) That cancel is best effort, though (a request on a
// connection of its own, which a load balancer may route to another
// server, or which may arrive between two statements), and a server
// process does not notice that its client is gone while it waits (on a
// lock, on a synchronous standby): it would run the COMMIT it was sent
// once the wait ends. While the status says "in progress", Commit
// therefore ends the process still running the transaction
// (pg_terminate_backend, which a role may do to its own sessions; the
// process is matched by its pid and the transaction's id, both recorded by
// Begin, so that a session given the same transaction id again after a
// crash is never ended for it), so that
// the transaction ends now, aborted unless its COMMIT had run, and the
// status is final. That also frees the writers' lock it held, for the
// other replicas.
//
// Once the transaction is over, a flush runs, and then
// the outcome is read again: for a transaction that stored a checkpoint
// (every batch of the audit log), from the log itself (is its checkpoint
// there?), because after a crash the transaction id of a commit that never
// reached the disk may be given to another transaction, and a
// "committed" heard just before the crash covers nothing the flush after
// the restart can make durable. Only if the database does not answer
// within Options.OutcomeTimeout (a minute by default: a restart or a
// failover takes less), or the store is closed first, does Commit return
// an error wrapping store.ErrCommitUnknown: the transaction may or may not
// be in the database. The audit log then fails the batch's callers, and
// does not retry it: its next batch, under the writers' lock, continues
// from the log as stored, with the batch in it or not.
//
// Commit returns once the transaction is committed with its WAL flushed to
// disk (by the flush transaction described above): the store's sessions run
// with synchronous_commit on whatever the server's default (a DSN may choose
// remote_write or remote_apply for a synchronous standby; off is refused).
//
// # Connection settings
//
// The DSN is a libpq-style URL or key/value string: TLS options go in it
// (sslmode, sslrootcert, …), and a password, if any, comes from the
// environment (PGPASSWORD) or ~/.pgpass (PGPASSFILE), both read by pgx, so
// it need not appear in the configuration file. Errors never include the
// password (pgx redacts it when it quotes a DSN).
package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/airlock-dev/airlock/internal/pgtls"
	"github.com/airlock-dev/airlock/internal/store"
)

// Store is a store.Store backed by a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
	// schema is the schema the tables live in.
	schema string
	// writer holds one token: Begin takes it, Commit or Rollback returns it.
	writer chan struct{}
	// writerLock is the advisory lock key every write transaction takes.
	writerLock int64
	// life ends at Close; it bounds the wait to learn a commit's outcome.
	life    context.Context
	closing context.CancelFunc
	// opts holds the bounds on waiting for the database (defaults filled).
	opts Options
	// attemptTimeout bounds each try of the outcome check's statements
	// (attemptTimeout, or less in tests).
	attemptTimeout time.Duration
	// flushSQL is the flush statement (flushSQL, or a slower one in tests).
	flushSQL string
}

// attemptTimeout bounds one try of a statement of Commit's outcome check
// on a connection: one that does not answer by then is taken for broken,
// and the next try gets another.
const attemptTimeout = 5 * time.Second

// Options are the store's bounds on waiting for a database that does not
// answer. A zero field takes its default.
type Options struct {
	// CommitTimeout bounds Commit's round trip (the COMMIT and the flush
	// after it, with CommitLogCheckpoint's entries ahead of them), and
	// Rollback's. Past it the connection is closed, and Commit learns the
	// outcome as it does when a connection breaks. Zero means
	// DefaultCommitTimeout.
	CommitTimeout time.Duration
	// OutcomeTimeout bounds the outcome check that follows a COMMIT
	// whose answer was lost: past it, Commit returns an error wrapping
	// store.ErrCommitUnknown. Zero means DefaultOutcomeTimeout.
	OutcomeTimeout time.Duration
}

// DefaultCommitTimeout is the default Options.CommitTimeout. A healthy
// COMMIT round trip takes milliseconds, a few hundred of them with a
// synchronous standby across a WAN or a checkpoint's fsyncs. Until its COMMIT is done a
// writer holds the writers' lock that every replica's writes wait on, and
// every replica's log reports itself stalled after auditlog.StallAfter
// (5 s) of it (/readyz fails): twice that leaves a loaded database room,
// and ends what is not slow but stuck (a COMMIT behind a table someone
// holds locked, a synchronous standby that is gone, a connection that
// stopped forwarding) before the callers waiting on the batch, whose calls
// are held until their records are durable, time out on their own. The
// transaction is not simply left to the server then: the
// outcome check ends its server process (see xactCommitted), so that its
// outcome is known and the writers' lock is free for the other replicas.
const DefaultCommitTimeout = 10 * time.Second

// DefaultOutcomeTimeout is the default Options.OutcomeTimeout. The check
// it bounds is there to ride out a PostgreSQL restart (crash recovery) or
// a failover to a standby, which take from seconds to about a minute in
// common setups (a managed database's failover, one to two): through
// those the outcome is learned exactly. The replica's writer waits for it
// meanwhile, and with it every caller of the batch and every write queued
// behind it, so it cannot wait for ever. Past it the outcome is
// reported unknown: the callers are told their batch failed (it may be in
// the log nonetheless), and the next batch, under the writers' lock,
// continues from whatever the log holds.
const DefaultOutcomeTimeout = time.Minute

var _ store.Store = (*Store)(nil)

var _ store.LockWaiter = (*Store)(nil)

// WaitsOnOtherSessions implements store.LockWaiter: Begin waits for every
// process's writers, and a statement for any lock another session holds.
func (s *Store) WaitsOnOtherSessions() {}

// Open connects to the database at dsn and brings its schema up to date,
// with the default Options.
func Open(ctx context.Context, dsn string) (*Store, error) {
	return OpenWith(ctx, dsn, Options{})
}

// OpenWith is Open with the bounds of o.
func OpenWith(ctx context.Context, dsn string, o Options) (*Store, error) {
	o.CommitTimeout = cmp.Or(o.CommitTimeout, DefaultCommitTimeout)
	o.OutcomeTimeout = cmp.Or(o.OutcomeTimeout, DefaultOutcomeTimeout)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx quotes the DSN with its password replaced by xxxxx
		// (TestBadDSNIsNotEchoed keeps it so).
		return nil, fmt.Errorf("pgstore: the store DSN: %w", err)
	}
	// The whole log crosses it.
	if err := pgtls.Check(&cfg.ConnConfig.Config); err != nil {
		return nil, fmt.Errorf("pgstore: the store DSN's %w", err)
	}
	// Reads may run while the writer holds a connection and ScanLog
	// streams on another, so the pool needs a few.
	cfg.MaxConns = max(cfg.MaxConns, 4)
	// A commit must be durable before the log acknowledges a call (fail
	// closed): whatever the server's default, the sessions run with
	// synchronous_commit on, unless the DSN asks for a stronger or equally
	// durable level; off is refused.
	params := cfg.ConnConfig.RuntimeParams
	switch v := strings.ToLower(params["synchronous_commit"]); v {
	case "":
		params["synchronous_commit"] = "on"
	case "on", "local", "remote_write", "remote_apply":
	default:
		return nil, fmt.Errorf("pgstore: the store DSN sets synchronous_commit=%s; Airlock needs commits to be durable (on, local, remote_write or remote_apply)", v)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: connect: %w", err)
	}
	s := &Store{pool: pool, writer: make(chan struct{}, 1), opts: o, attemptTimeout: attemptTimeout, flushSQL: flushSQL}
	s.life, s.closing = context.WithCancel(context.Background())
	s.writer <- struct{}{}
	if err := s.init(ctx); err != nil {
		s.closing()
		pool.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init(ctx context.Context) error {
	var schema *string
	if err := s.pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return fmt.Errorf("pgstore: connect to %s: %w", s.where(), err)
	}
	if schema == nil {
		return fmt.Errorf("pgstore: %s: no schema of the search_path exists; create it or set search_path in the DSN", s.where())
	}
	s.schema = *schema
	if err := s.pool.QueryRow(ctx, "SELECT hashtextextended($1, 0)", "airlock.writer/"+s.schema).Scan(&s.writerLock); err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	if err := migrate(ctx, s.pool, s.schema); err != nil {
		return fmt.Errorf("%w (database %s)", err, s.where())
	}
	return nil
}

// where names the database for messages, without credentials.
func (s *Store) where() string {
	c := s.pool.Config().ConnConfig
	return fmt.Sprintf("%q on %s:%d", c.Database, c.Host, c.Port)
}

// Close closes the connection pool, waiting for connections in use to be
// returned.
func (s *Store) Close() error {
	s.closing()
	s.pool.Close()
	return nil
}

// Begin starts the write transaction, waiting (as long as ctx allows) for
// the previous one, in this process or another sharing the database, to end.
// ctx bounds the wait only: the transaction itself lives until Commit or
// Rollback; each statement is bound by the ctx given to it.
func (s *Store) Begin(ctx context.Context) (store.Tx, error) {
	select {
	case <-s.writer:
	case <-ctx.Done():
		return nil, fmt.Errorf("pgstore: begin: waiting for the writer: %w", context.Cause(ctx))
	}
	for attempt := 0; ; attempt++ {
		t, err := s.begin(ctx)
		if err == nil {
			return t, nil
		}
		// An idle connection of the pool that the network cut since it
		// was last used fails at once, with nothing done on the server
		// (a broken connection ends its transaction and releases the
		// lock): the batch need not fail for it. Once, with a new one.
		var pgErr *pgconn.PgError
		if attempt == 0 && ctx.Err() == nil && !errors.As(err, &pgErr) && errors.Is(err, errBrokenConn) {
			continue
		}
		s.writer <- struct{}{}
		return nil, err
	}
}

// errBrokenConn marks a begin that failed because its connection was
// broken (closed by the network or the server) before anything ran.
var errBrokenConn = errors.New("connection broken")

// begin is one attempt of Begin, the writer's token held.
func (s *Store) begin(ctx context.Context) (*Tx, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("pgstore: begin: %w", err)
	}
	// BEGIN, the writers' lock and the log's head go in one round trip
	// (a pipeline: the server runs each once the one before is done). A
	// cancelled wait breaks the connection (pgx's default), which ends the
	// transaction and the wait on the server. The transaction id, assigned
	// by the lock statement, is how Commit learns the outcome of a commit
	// whose answer was lost.
	//
	// The head (the log's newest checkpoint) is read once the lock is
	// granted, with a snapshot taken then (READ COMMITTED), so it sees
	// every earlier writer's commit, and the audit log's head read (the
	// first thing a batch does under the lock) costs no round trip of its
	// own.
	t := &Tx{s: s, tx: conn}
	b := &pgx.Batch{}
	b.Queue(beginTxSQL)
	b.Queue(beginSQL, s.writerLock)
	b.Queue(latestCheckpointSQL)
	br := conn.SendBatch(ctx, b)
	_, err = br.Exec()
	if err == nil {
		err = br.QueryRow().Scan(&t.xid, &t.pid)
	}
	if err == nil {
		t.head, err = scanCheckpoint(br.QueryRow())
		if errors.Is(err, pgx.ErrNoRows) {
			t.head, err = store.Checkpoint{}, nil
			t.headMissing = true
		}
		t.headRead = err == nil
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		broken := conn.Conn().IsClosed()
		t.abandon()
		if broken {
			return nil, fmt.Errorf("pgstore: begin: waiting for another process's writer: %w: %w", errBrokenConn, err)
		}
		return nil, fmt.Errorf("pgstore: begin: waiting for another process's writer: %w", err)
	}
	return t, nil
}

// beginTxSQL starts a write transaction: READ COMMITTED, so that each
// statement after the lock sees every earlier writer's commit.
const beginTxSQL = "BEGIN ISOLATION LEVEL READ COMMITTED"

// beginSQL is a write transaction's first statement: it waits for the
// writers' lock, makes the COMMIT asynchronous (see Commit) and returns the
// transaction's id and its server process's (the server's, even behind a
// pooler that hands out pids of its own).
const beginSQL = `SELECT pg_current_xact_id()::text::bigint, pg_backend_pid()
	FROM (SELECT pg_advisory_xact_lock($1), set_config('synchronous_commit', 'off', true)) l`

// flushSQL is a transaction of its own that writes WAL and commits at the
// session's synchronous_commit level (on, or the DSN's standby level): its
// commit waits until the WAL is flushed (and replicated) up to its commit
// record, so up to every commit before it, the writer's included. A
// transactional logical message is the smallest WAL record that needs a
// transaction id, so that the commit is synchronous; any role may emit one.
const flushSQL = `SELECT pg_logical_emit_message(true, 'airlock', '')`

// readTx starts a read-only transaction on one snapshot, for a read that
// takes several statements.
func (s *Store) readTx(ctx context.Context) (pgx.Tx, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("pgstore: begin read: %w", err)
	}
	return tx, nil
}

// querier is what *pgxpool.Pool and pgx.Tx have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// isUniqueViolation reports whether err is a uniqueness or primary-key
// violation.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
