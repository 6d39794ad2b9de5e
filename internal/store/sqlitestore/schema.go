package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/internal/store/storerow"
)

// applicationID marks the file as an Airlock database (PRAGMA application_id,
// "Arlk"), so `file airlock.db` and Open can tell it from other SQLite files.
const applicationID = 0x41726c6b

// longSpan is the longest grant lifetime counted in max_span_nanos (both
// stores'). Longer (and open-ended) grants are found through the
// grants_long partial index. It must match the constant in the grants_long
// index definition and in the review query.
const longSpan = storerow.LongSpan

// openEnded is the span_end of a grant without a deadline: it is still live.
const openEnded = storerow.OpenEnded

// migrations are applied in order; migration i (0-based) is schema version
// i+1. Never edit a released migration: append a new one.
var migrations = []string{
	// 1: the initial schema.
	`
CREATE TABLE identities (
	name        TEXT PRIMARY KEY,
	kind        TEXT NOT NULL,
	owner       TEXT NOT NULL DEFAULT '',
	groups_json TEXT NOT NULL DEFAULT '[]',
	key_sha256  TEXT NOT NULL DEFAULT '',
	source      TEXT NOT NULL DEFAULT '',
	disabled    INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER,
	created_by  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX identities_key_sha256 ON identities(key_sha256);

-- requested_at and span_end (= Deadline(), or 9223372036854775807 while a
-- grant has no deadline) are unix nanoseconds. record is the JSON of the
-- whole model.Grant without its Usage, which is derived from sessions.
CREATE TABLE grants (
	id            TEXT PRIMARY KEY,
	identity      TEXT NOT NULL,
	target        TEXT NOT NULL,
	account       TEXT NOT NULL,
	status        TEXT NOT NULL,
	requested_at  INTEGER NOT NULL,
	span_end      INTEGER NOT NULL,
	credential_id TEXT UNIQUE,
	record        BLOB NOT NULL
);
-- The review indexes: an equality column, then the requested_at range that
-- bounds the scan; span_end rides along so that grants that ended before the
-- window are skipped without reading their record.
CREATE INDEX grants_account_time  ON grants(account, requested_at, span_end);
CREATE INDEX grants_target_time   ON grants(target, requested_at, span_end);
CREATE INDEX grants_identity_time ON grants(identity, requested_at, span_end);
CREATE INDEX grants_time          ON grants(requested_at, span_end);
CREATE INDEX grants_status_time   ON grants(status, requested_at, span_end);
-- Grants living longer than longSpan (30 days), or without a deadline.
CREATE INDEX grants_long ON grants(requested_at, span_end) WHERE span_end - requested_at > 2592000000000000;

-- The counters and used_json are copies of the record's fields, kept so that
-- Usage can be summed without decoding whole session records.
CREATE TABLE sessions (
	id         TEXT PRIMARY KEY,
	grant_id   TEXT NOT NULL,
	started_at INTEGER,
	calls      INTEGER NOT NULL DEFAULT 0,
	denied     INTEGER NOT NULL DEFAULT 0,
	bytes_in   INTEGER NOT NULL DEFAULT 0,
	bytes_out  INTEGER NOT NULL DEFAULT 0,
	used_json  TEXT,
	record     BLOB NOT NULL
);
CREATE INDEX sessions_grant ON sessions(grant_id, started_at);

CREATE TABLE log_entries (
	seq        INTEGER PRIMARY KEY,
	time       INTEGER,
	type       TEXT,
	grant_id   TEXT,
	session_id TEXT,
	data       BLOB,
	leaf_hash  BLOB
);
CREATE INDEX log_entries_grant   ON log_entries(grant_id);
CREATE INDEX log_entries_session ON log_entries(session_id);

CREATE TABLE log_checkpoints (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	size       INTEGER,
	root       BLOB,
	note       BLOB,
	frontier   BLOB,
	created_at INTEGER
);

CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT
);
INSERT INTO meta(key, value) VALUES ('max_span_nanos', '0');

PRAGMA application_id = 1098017899;
`,
	// 2: a session's log entries are found through runs of sequence
	// numbers, not an index entry per log entry (see "The log's session
	// runs" in the package documentation). Existing entries get their runs
	// here, split where a session's next entry is more than runGap
	// entries after its previous one, as AppendLog splits them.
	`
CREATE TABLE log_session_runs (
	session_id TEXT NOT NULL,
	first_seq  INTEGER NOT NULL,
	last_seq   INTEGER NOT NULL,
	PRIMARY KEY (session_id, first_seq)
) WITHOUT ROWID;
INSERT INTO log_session_runs (session_id, first_seq, last_seq)
	SELECT session_id, MIN(seq), MAX(seq) FROM (
		SELECT session_id, seq, SUM(brk) OVER (PARTITION BY session_id ORDER BY seq) AS run FROM (
			SELECT session_id, seq,
				CASE WHEN seq - LAG(seq) OVER (PARTITION BY session_id ORDER BY seq) <= 32 THEN 0 ELSE 1 END AS brk
			FROM log_entries WHERE session_id IS NOT NULL AND session_id <> ''))
	GROUP BY session_id, run;
DROP INDEX log_entries_session;
`,
	// 3: a grant's log entries likewise, through runs.
	`
CREATE TABLE log_grant_runs (
	grant_id  TEXT NOT NULL,
	first_seq INTEGER NOT NULL,
	last_seq  INTEGER NOT NULL,
	PRIMARY KEY (grant_id, first_seq)
) WITHOUT ROWID;
INSERT INTO log_grant_runs (grant_id, first_seq, last_seq)
	SELECT grant_id, MIN(seq), MAX(seq) FROM (
		SELECT grant_id, seq, SUM(brk) OVER (PARTITION BY grant_id ORDER BY seq) AS run FROM (
			SELECT grant_id, seq,
				CASE WHEN seq - LAG(seq) OVER (PARTITION BY grant_id ORDER BY seq) <= 32 THEN 0 ELSE 1 END AS brk
			FROM log_entries WHERE grant_id IS NOT NULL AND grant_id <> ''))
	GROUP BY grant_id, run;
DROP INDEX log_entries_grant;
`,
	// 4: the findings, a rare type, are listed through a partial index
	// rather than a scan of the whole log (store.IndexedLogTypes). Only
	// findings enter it; every other entry costs SQLite the check of its
	// type, about 640 instructions of the indexer's 21,000 per entry
	// (BenchmarkIndexBatch under callgrind, 8 sessions).
	`
CREATE INDEX log_entries_findings ON log_entries(seq) WHERE type = 'finding';
`,
	// 5: the open sessions (store.OpenSessionLister), through a partial
	// index of those alone: a record is JSON whose "ended_at" key is left
	// out while the session is open (and a string's quotes inside it are
	// escaped, so the pattern is only ever that key). At start, a process
	// alone on its data_dir ends those its last run left open, whatever
	// became of their grants.
	`
CREATE INDEX sessions_open ON sessions(id) WHERE instr(record, '"ended_at":') = 0;
`,
	// 6: the signed integration requests already handled
	// (store.ActionClaimer), so that a Slack click or a webhook's decision
	// replayed after a restart, within its signature's minutes, is refused.
	// key is a hash of the request's identity; expires is in Unix
	// nanoseconds.
	`
CREATE TABLE integration_actions (
	key     TEXT PRIMARY KEY,
	expires INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX integration_actions_expires ON integration_actions(expires);
`,
	// 7: a configured identity's bindings other than its key (email,
	// slack_user, oidc: model.Bindings as JSON), as its newest identity.*
	// entry recorded them, so that a start finds a change in airlock.yaml
	// by comparing one row per identity rather than reading the log. ''
	// is none recorded: every existing row, as no entry before this
	// version stated them.
	`
ALTER TABLE identities ADD COLUMN bindings_json TEXT NOT NULL DEFAULT '';
`,
	// 8: a grant's sessions are paged in the order their starts were
	// stored (store.SessionLogOrder), not by started_at: a session's
	// started_at is the clock's reading before its start is stored, and a
	// step of the clock back (NTP) gave a session started after a reader
	// took a page's cursor a time before that cursor, so no later page
	// held it. start_seq is the sequence of the session.started entry the
	// row is written from (assigned in the transaction that stores the
	// row): every session stored later has a higher one. A row written
	// from no entry keeps 0. One scan of the log fills the rows a database
	// holds (a session's entries have no index of their own but runs).
	`
ALTER TABLE sessions ADD COLUMN start_seq INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET start_seq = st.seq FROM (
	SELECT session_id, MIN(seq) AS seq FROM log_entries
	WHERE type = 'session.started' AND session_id IS NOT NULL AND session_id <> '' GROUP BY session_id) AS st
	WHERE st.session_id = sessions.id;
CREATE INDEX sessions_grant_seq ON sessions(grant_id, start_seq, id);
`,
	// 9: a grant's own entries (of no session: its lifecycle, commands,
	// findings) are read through a partial index of those alone
	// (store.LogFilter.NoSession): proving a grant's record reads them
	// again, and an agent that records each command between its calls
	// scatters thousands of them among its sessions' entries, which the
	// grant's runs read with them. They are a few among the calls; every
	// other entry costs SQLite the check of its session_id, as the
	// findings' index costs the check of its type (migration 4).
	`
CREATE INDEX log_entries_grant_own ON log_entries(grant_id, seq) WHERE session_id IS NULL AND grant_id IS NOT NULL;
`,
	// 10: the log.refused entries (the entries of a batch whose callers
	// were told it failed, which they name, are void) are read through a
	// partial index of those alone (store.IndexedLogTypes), as the
	// findings are (migration 4): whatever derives a record from the log
	// reads them first (audit verify once a walk, a grant's and a
	// session's pages on every read), and they are a few among the calls.
	`
CREATE INDEX log_entries_refused ON log_entries(seq) WHERE type = 'log.refused';
`,
}

// SchemaVersion is the schema version this build writes.
func SchemaVersion() int { return len(migrations) }

// ErrNewerSchema is returned by Open for a database written by a newer
// Airlock.
var ErrNewerSchema = errors.New("database schema is newer than this airlock")

// ErrNotAirlock is returned by Open for a SQLite file that is not an Airlock
// database.
var ErrNotAirlock = errors.New("not an airlock database")

func migrate(ctx context.Context, db *sql.DB, path string) error {
	tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: one migrator at a time
	if err != nil {
		return fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	defer tx.Rollback()

	var appID int64
	if err := tx.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	var tables, hasMigrations int
	if err := tx.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE name = 'schema_migrations')
		FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).Scan(&tables, &hasMigrations); err != nil {
		return fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	switch {
	case appID != 0 && appID != applicationID:
		return fmt.Errorf("sqlitestore: open %s: %w (application_id %#x)", path, ErrNotAirlock, appID)
	case tables > 0 && hasMigrations == 0:
		return fmt.Errorf("sqlitestore: open %s: %w (it has tables but no schema_migrations)", path, ErrNotAirlock)
	}

	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		applied_at TEXT
	)`); err != nil {
		return fmt.Errorf("sqlitestore: open %s: create schema_migrations: %w", path, err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return fmt.Errorf("sqlitestore: open %s: read schema version: %w", path, err)
	}
	if current > len(migrations) {
		return fmt.Errorf("sqlitestore: open %s: %w: schema version %d, this build knows up to %d; upgrade airlock",
			path, ErrNewerSchema, current, len(migrations))
	}
	if current == len(migrations) {
		return nil // nothing to do; the deferred rollback ends the read
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for v := current + 1; v <= len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			return fmt.Errorf("sqlitestore: open %s: migration %d: %w", path, v, err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)", v, now); err != nil {
			return fmt.Errorf("sqlitestore: open %s: record migration %d: %w", path, v, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: open %s: commit migrations: %w", path, err)
	}
	return nil
}
