// Package sqlitestore is the embedded SQLite implementation of store.Store,
// the default persistence of a single Airlock server. The database is one
// file, <data_dir>/airlock.db, opened with the pure-Go modernc.org/sqlite
// driver (no cgo).
//
// # Durability and concurrency
//
// The database runs in WAL (write-ahead log) mode with synchronous=FULL:
//
//   - synchronous=FULL makes SQLite fsync the WAL on every COMMIT, so a
//     transaction that Commit reported as committed survives a crash or a
//     power cut. The audit log acknowledges a call (and so lets it reach an
//     upstream) only after the commit that holds its record, which is the
//     "fail closed" promise of the product; synchronous=NORMAL would trade
//     the last few commits for speed and break it.
//   - WAL lets readers work on a consistent snapshot while a write is in
//     progress: the review query, the console and verification never wait
//     behind the writer, and the writer never waits for them.
//
// There is exactly one writer: a *sql.DB limited to one connection whose
// transactions start with BEGIN IMMEDIATE. SQLite serialises writers anyway;
// doing it in the process turns lock contention (SQLITE_BUSY, retries,
// deadlock-prone lock upgrades from a read to a write transaction) into an
// orderly wait in Begin, and it matches how the audit log's writer uses the
// store: it batches many callers' changes into one transaction (group
// commit), so one fsync covers the whole batch. Reads go through a separate
// pool of read-only connections.
//
// # Schema
//
// The schema is created and upgraded by an ordered list of migrations, each
// applied once in a transaction and recorded in schema_migrations. Open fails
// on a database written by a newer Airlock (a higher schema version) and on a
// SQLite file that is not an Airlock database.
//
// Grants are kept as a JSON record of the whole model.Grant plus the indexed
// columns the review query filters on. Times in indexed columns are unix
// nanoseconds (UTC); the JSON record keeps every time exactly.
//
// The review query ("grants whose lifetime [RequestedAt, Deadline()] overlaps
// [Since, Until)") is answered with index range scans only. The store keeps,
// in the meta table, max_span_nanos: the longest Deadline()-RequestedAt of any
// grant ever written, up to longSpan. A grant that overlaps the window must
// then have been requested within [Since-max_span, Until), which bounds the
// range scan of the (account, requested_at, span_end) index (or the identity,
// target, status or plain requested_at one); span_end in the index drops the
// grants that ended before Since without reading their records. Grants whose
// lifetime is longer than longSpan (30 days), or open-ended (no deadline),
// are not counted in max_span, so a single odd record cannot turn every later
// review into a full scan; they are found through a small partial index
// instead. Usage is then summed from the sessions of the returned grants
// only, through the (grant_id) index.
//
// A grant with a zero Deadline() (say, pending without DecideBy) is treated
// as still live: it overlaps every window that ends after its RequestedAt.
//
// The audit log tables (log_entries, log_checkpoints) hold data exactly as
// given: they are not protected against modification here, because detecting
// modification is the job of the Merkle tree and the signed checkpoints.
//
// # The log's session and grant runs
//
// log_entries is keyed by seq (its rowid) and has no other index but three
// partial ones, of the rare entries alone: the findings, the log.refused
// entries, and a grant's own entries (of no session: its lifecycle,
// commands; store.LogFilter's NoSession). A session's entries are found through log_session_runs, a
// grant's through log_grant_runs: AppendLog stores, for each session and each grant in the
// batch, the ranges of seq that hold its entries (one per batch, split
// where it skips more than runGap entries), and LogEntries reads each
// range of the table, keeping the rows whose session_id (or grant_id)
// matches. An index entry per log entry, with the gateways' concurrent
// sessions interleaved in the session index, was about two fifths of the
// instructions of the audit log's copy into the store, and the session
// index a fifth of its page writes (BenchmarkIndexBatch, bench/HISTORY.md);
// a run per session and grant per batch is a few rows per transaction.
// Reading a session or grant costs at most runGap+1 rows per row it
// returns, and usually about as many as the sessions (grants) interleaved
// with it. A run may cover rows that are not its key's (they are filtered
// out), never fewer than its key's rows as AppendLog stored them. (A session_id or
// grant_id edited in place is not followed to its new value; like type,
// these columns are untrusted copies of the entry's bytes for queries, and
// readers that need the truth decode the bytes, which the log's hashes
// cover.)
package sqlitestore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/airlock-dev/airlock/internal/procpolicy"
	"github.com/airlock-dev/airlock/internal/store"
)

// busyTimeout is how long a connection waits for a lock held by another
// process (another airlock command opening the same file) before failing.
const busyTimeout = 10 * time.Second

// Page cache sizes, per connection. The cache is process memory that grows
// with the database until it reaches its size, so the sizes bound what the
// store adds to the gateway's RSS: 16 MiB for the writer and 4 MiB for
// each reader, 32 MiB in all with four readers (it was 128 MiB, which
// pushed a long-running gateway's RSS past 100 MB). Measured on the 2-core
// CI machine kind: BenchmarkAppend8 (the journal's copy into the store)
// and BenchmarkReviewQuery (1,000,000 grants) did not change beyond
// run-to-run noise, because pages missing from the cache are read from the
// kernel's file cache.
//
// The sizes are given to SQLite in pages, not KiB (a negative
// cache_size): SQLite turns KiB into pages with the page size in force when
// cache_size runs, and on a database Open creates that is the default
// 4 KiB, before page_size makes it 16: the writer then cached four times
// its size (64 MiB, about 80 MB resident; TestWriterCacheMemoryBound). A
// database made with 4 KiB pages by an earlier release keeps them, and
// caches a quarter of these sizes.
//
// Each cached page costs about 20 KiB resident: modernc's allocator gives
// every allocation above 16 KiB a region of its own, and a page comes with
// its header.
const (
	// pageSize is the page size of a new database.
	pageSize = 16 << 10

	writerCacheKiB = 16 << 10
	readerCacheKiB = 4 << 10
)

// Store is a store.Store backed by one SQLite database file.
type Store struct {
	path string
	// w is the single writer connection (MaxOpenConns 1, BEGIN IMMEDIATE).
	w *sql.DB
	// r is the pool of read-only connections.
	r *sql.DB
	// wstmts are the writer's hot statements, prepared once on the writer
	// connection and bound to each transaction with Tx.StmtContext.
	wstmts map[string]*sql.Stmt
	// logStmts are the log's INSERTs (rawSQL), prepared on the writer's
	// driver connection logConn and run past database/sql (Tx.execRaw). Only the writer's transaction, one at a time, uses
	// them.
	logConn  any
	logStmts []driver.StmtExecContext
	// logArgs is the writer's buffer for those statements' arguments.
	logArgs []driver.NamedValue
	// txOpen is set while a write transaction holds the writer.
	txOpen atomic.Bool
	// noSessionRuns and noGrantRuns are set for a database opened
	// read-only from before the log's session runs (schema version 2) or
	// grant runs (3): see OpenReadOnly.
	noSessionRuns, noGrantRuns bool
	// noOwnIndex is set for a database opened read-only from before the
	// grants' own entries' index (schema version 9): they are read
	// through the grant's runs, keeping those of no session.
	noOwnIndex bool
	// noBindings is set for a database opened read-only from before the
	// identities' bindings column (schema version 7): its rows read as
	// recording none, as every row then did.
	noBindings bool
	// noStartSeq is set for a database opened read-only from before the
	// sessions' start_seq column (schema version 8): IndexDiffs has no
	// such column to check, and SessionsInLogOrder no order to read.
	noStartSeq bool
}

var _ store.Store = (*Store)(nil)

var _ store.SessionLogOrder = (*Store)(nil)

// Open opens the Airlock database at path, creating it if it does not exist,
// and brings its schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlitestore: empty database path")
	}
	if strings.ContainsRune(path, '?') {
		// The driver splits its DSN at the first '?'.
		return nil, fmt.Errorf("sqlitestore: database path %q must not contain '?'", path)
	}
	if strings.HasPrefix(path, "file:") || path == ":memory:" {
		return nil, fmt.Errorf("sqlitestore: database path %q must be a file path", path)
	}

	common := url.Values{}
	common.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	common.Add("_pragma", "foreign_keys(1)")
	common.Add("_pragma", "synchronous(FULL)")

	wq := cloneValues(common)
	// A new database gets 16 KiB pages, set before WAL mode writes its
	// first page (the driver runs the _pragma list, sorted by name, before
	// the _journal_mode key); an existing one keeps its size, which only a VACUUM outside
	// WAL mode could change. The audit log's copy into the store writes
	// each dirty page to the WAL and again at SQLite's checkpoint, one
	// pwrite per page (and reads it back once, one pread per page): with
	// 16 KiB pages those were 0.24 system calls per log entry instead of
	// 0.77 (BenchmarkIndexBatch, bench/HISTORY.md), for the same bytes and
	// the same instructions in SQLite.
	wq.Add("_pragma", fmt.Sprintf("page_size(%d)", pageSize))
	wq.Set("_journal_mode", "WAL")
	// Writes touch random pages of several indexes (grant and credential
	// ids are random); a larger cache keeps a big batch from spilling.
	wq.Add("_pragma", fmt.Sprintf("cache_size(%d)", writerCacheKiB/(pageSize>>10))) // pages
	// A multi-row statement inside a transaction (the log's entries, copied
	// in batches) keeps a statement journal of the pages it changes, and
	// past 64 KiB SQLite spills it to a temporary file: about one pwrite
	// per page, under load more pwrites than the journal's own. In memory
	// it is bounded by one statement's changes to existing pages.
	wq.Add("_pragma", "temp_store(MEMORY)")
	wq.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	s := &Store{path: path, w: w}
	if err := s.init(ctx); err != nil {
		w.Close()
		return nil, err
	}

	rq := cloneValues(common)
	rq.Add("_pragma", "query_only(1)")
	rq.Add("_pragma", fmt.Sprintf("cache_size(%d)", readerCacheKiB/(pageSize>>10))) // pages
	r, err := sql.Open("sqlite", path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	n := max(4, procpolicy.Procs())
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxLifetime(0)
	r.SetConnMaxIdleTime(5 * time.Minute)
	s.r = r
	if err := r.PingContext(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}

	s.wstmts = make(map[string]*sql.Stmt, len(hotWriteStatements))
	for _, q := range hotWriteStatements {
		st, err := w.PrepareContext(ctx, q)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("sqlitestore: prepare %q: %w", q, err)
		}
		s.wstmts[q] = st
	}
	return s, nil
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// init checks that the file is an Airlock database in WAL mode and applies
// the pending migrations.
func (s *Store) init(ctx context.Context) error {
	var mode string
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("sqlitestore: open %s: %w", s.path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlitestore: open %s: journal mode is %q, want wal (is the file on a file system without shared-memory support?)", s.path, mode)
	}
	if err := migrate(ctx, s.w, s.path); err != nil {
		return err
	}
	// SQLite copies the WAL into the database (a checkpoint, run by the
	// commit that passes the threshold, while it holds the writer) every
	// 1,000 pages by default: 4 MiB with 4 KiB pages. Keep it at 4 MiB
	// whatever the page size, so that bigger pages do not make each of
	// those commits, and whoever waits for the writer meanwhile, four
	// times longer. The writer is one connection that is kept open, so the
	// setting holds (a replacement would get SQLite's default).
	var ps int64
	if err := s.w.QueryRowContext(ctx, "PRAGMA page_size").Scan(&ps); err != nil {
		return fmt.Errorf("sqlitestore: open %s: %w", s.path, err)
	}
	if _, err := s.w.ExecContext(ctx, fmt.Sprintf("PRAGMA wal_autocheckpoint = %d", max(walCheckpointBytes/ps, 1))); err != nil {
		return fmt.Errorf("sqlitestore: open %s: %w", s.path, err)
	}
	return nil
}

// walCheckpointBytes is how much the WAL grows between checkpoints.
const walCheckpointBytes = 4 << 20

// Path is the database file's path.
func (s *Store) Path() string { return s.path }

// rawStmt returns rawSQL[i] prepared on dc, the writer's driver
// connection, preparing it on first use. The writer is one connection kept
// open; if database/sql ever replaced it, the statements of the old one
// are dropped with it (finalizing them would use a closed connection) and
// prepared again on the new one.
func (s *Store) rawStmt(ctx context.Context, dc any, i int) (driver.StmtExecContext, error) {
	if dc != s.logConn {
		s.logConn, s.logStmts = dc, make([]driver.StmtExecContext, len(rawSQL))
	}
	if st := s.logStmts[i]; st != nil {
		return st, nil
	}
	pc, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, fmt.Errorf("driver connection %T cannot prepare with a context", dc)
	}
	ds, err := pc.PrepareContext(ctx, rawSQL[i])
	if err != nil {
		return nil, err
	}
	st, ok := ds.(driver.StmtExecContext)
	if !ok {
		ds.Close()
		return nil, fmt.Errorf("driver statement %T cannot execute with a context", ds)
	}
	s.logStmts[i] = st
	return st, nil
}

// closeLogStmts finalizes the log's statements on the writer's connection
// before it closes. With a transaction still open (Close does not wait for
// it) they are left to SQLite, which frees the connection when the process
// ends instead.
func (s *Store) closeLogStmts() error {
	if s.logConn == nil || s.txOpen.Load() {
		return nil
	}
	conn, err := s.w.Conn(context.Background())
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		var errs []error
		if dc == s.logConn {
			for _, st := range s.logStmts {
				if st != nil {
					errs = append(errs, st.(driver.Stmt).Close())
				}
			}
		}
		s.logConn, s.logStmts = nil, nil
		return errors.Join(errs...)
	})
}

// Close closes both connection pools. A transaction still open is rolled
// back when it ends.
func (s *Store) Close() error {
	var errs []error
	errs = append(errs, s.closeLogStmts())
	for _, st := range s.wstmts {
		errs = append(errs, st.Close())
	}
	if s.r != nil && s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlitestore: close: %w", err)
	}
	return nil
}

// Begin starts the write transaction, waiting (as long as ctx allows) for the
// previous one to end. ctx bounds the wait only: the transaction itself lives
// until Commit or Rollback, so a batch is never torn down underneath its
// writer; each statement is bound by the ctx given to it.
func (s *Store) Begin(ctx context.Context) (store.Tx, error) {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: begin: %w", err)
	}
	tx, err := conn.BeginTx(context.WithoutCancel(ctx), nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("sqlitestore: begin: %w", err)
	}
	s.txOpen.Store(true)
	return &Tx{s: s, conn: conn, tx: tx}, nil
}

// readTx starts a read transaction: one consistent snapshot for a read that
// takes several statements.
func (s *Store) readTx(ctx context.Context) (*sql.Tx, error) {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("sqlitestore: begin read: %w", err)
	}
	return tx, nil
}

// querier is what *sql.DB, *sql.Tx and *sql.Conn have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// isConstraint reports whether err is a uniqueness or primary-key violation.
func isConstraint(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return true
	}
	return false
}
