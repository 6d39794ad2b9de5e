package sqlitestore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store/storerow"
)

// ErrReadOnly is returned by Begin on a store opened with OpenReadOnly.
var ErrReadOnly = errors.New("sqlitestore: opened read-only")

// OpenReadOnly opens the database at path for reading only, for
// verification that must not change what it verifies: nothing is created,
// migrated or written, in the database file or beside it.
//
// A database without a write-ahead log (a cleanly stopped server) is opened
// in SQLite's immutable mode, which takes no locks and writes no -shm file.
// If a -wal file with content is present (an unclean stop, or a running
// server), its content is part of the database: the database and its WAL
// are then copied into a private temporary directory and the copy is
// opened, so the original is still never written. cleanup removes that
// copy; call it after Close.
func OpenReadOnly(ctx context.Context, path string) (_ *Store, cleanup func(), err error) {
	cleanup = func() {}
	if strings.ContainsAny(path, "?#") {
		return nil, cleanup, fmt.Errorf("sqlitestore: database path %q must not contain '?' or '#'", path)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, cleanup, fmt.Errorf("sqlitestore: %w", err)
	}
	open := path
	q := url.Values{}
	q.Set("mode", "ro")
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		dir, err := os.MkdirTemp("", "airlock-verify-")
		if err != nil {
			return nil, cleanup, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		open = filepath.Join(dir, filepath.Base(path))
		for _, suffix := range []string{"", "-wal"} {
			if err := copyFile(path+suffix, open+suffix); err != nil {
				cleanup()
				return nil, func() {}, fmt.Errorf("sqlitestore: copying the database to read it: %w", err)
			}
		}
	} else {
		q.Set("immutable", "1")
	}
	abs, err := filepath.Abs(open)
	if err != nil {
		cleanup()
		return nil, func() {}, err
	}
	u := url.URL{Scheme: "file", Path: abs, RawQuery: q.Encode()}
	dsn := u.String() + "&_pragma=" + url.QueryEscape("query_only(1)")
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		cleanup()
		return nil, func() {}, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	s := &Store{path: path, w: db, r: db}
	var appID int64
	if err := db.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		s.Close()
		cleanup()
		return nil, func() {}, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	if appID != applicationID {
		s.Close()
		cleanup()
		return nil, func() {}, fmt.Errorf("sqlitestore: open %s: %w (application_id %#x)", path, ErrNotAirlock, appID)
	}
	// A database from before schema version 2 or 3 (not migrated: this
	// open never migrates) has no session or grant runs: those entries
	// are found through log_entries' own indexes.
	var sessionRuns, grantRuns int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE name = 'log_session_runs'), count(*) FILTER (WHERE name = 'log_grant_runs')
		FROM sqlite_schema WHERE type = 'table'`).Scan(&sessionRuns, &grantRuns); err != nil {
		s.Close()
		cleanup()
		return nil, func() {}, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	s.noSessionRuns, s.noGrantRuns = sessionRuns == 0, grantRuns == 0
	var bindings int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('identities') WHERE name = 'bindings_json'`).Scan(&bindings); err != nil {
		s.Close()
		cleanup()
		return nil, func() {}, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	s.noBindings = bindings == 0
	var startSeq int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('sessions') WHERE name = 'start_seq'`).Scan(&startSeq); err != nil {
		s.Close()
		cleanup()
		return nil, func() {}, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	s.noStartSeq = startSeq == 0
	var ownIndex int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'log_entries_grant_own'`).Scan(&ownIndex); err != nil {
		s.Close()
		cleanup()
		return nil, func() {}, fmt.Errorf("sqlitestore: open %s: %w", path, err)
	}
	s.noOwnIndex = ownIndex == 0
	return s, cleanup, nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ScanSessions calls fn for every session, in ID order (for verification,
// which compares every row with the log).
func (s *Store) ScanSessions(ctx context.Context, fn func(model.Session) error) error {
	tx, err := s.readTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "SELECT record FROM sessions ORDER BY id")
	if err != nil {
		return fmt.Errorf("sqlitestore: scan sessions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var rec []byte
		if err := rows.Scan(&rec); err != nil {
			return fmt.Errorf("sqlitestore: scan sessions: %w", err)
		}
		ss, err := storerow.DecodeSession(rec)
		if err != nil {
			return fmt.Errorf("sqlitestore: scan sessions: %w", err)
		}
		// The count columns are what a grant's usage sums; they are
		// checked through each grant's usage.
		if err := fn(ss); err != nil {
			return err
		}
	}
	return rows.Err()
}
