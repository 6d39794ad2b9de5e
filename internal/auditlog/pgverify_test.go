package auditlog

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/airlock-dev/airlock/internal/store"
)

// pgTamperer edits a log stored in PostgreSQL with SQL, as someone with
// write access to the database would.
type pgTamperer struct{ pool *pgxpool.Pool }

func (q pgTamperer) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := q.pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatal(err)
	}
}

func (q pgTamperer) entry(t *testing.T, seq int64) (data, leaf []byte) {
	if err := q.pool.QueryRow(context.Background(), `SELECT data, leaf_hash FROM log_entries WHERE seq = $1`, seq).Scan(&data, &leaf); err != nil {
		t.Fatal(err)
	}
	return data, leaf
}

func (q pgTamperer) setEntry(t *testing.T, seq int64, data, leaf []byte) {
	q.exec(t, `UPDATE log_entries SET data = $1, leaf_hash = $2 WHERE seq = $3`, data, leaf, seq)
}

func (q pgTamperer) insertEntry(t *testing.T, seq int64, data, leaf []byte) {
	q.exec(t, `INSERT INTO log_entries (seq, time, type, grant_id, session_id, data, leaf_hash)
		VALUES ($1, 1735689600000000000, 'grant.approved', 'g_1', NULL, $2, $3)`, seq, data, leaf)
}

func (q pgTamperer) deleteEntries(t *testing.T, from, to int64) {
	q.exec(t, `DELETE FROM log_entries WHERE seq >= $1 AND seq < $2`, from, to)
}

func (q pgTamperer) deleteCheckpointsAbove(t *testing.T, size int64) {
	q.exec(t, `DELETE FROM log_checkpoints WHERE size > $1`, size)
}

func (q pgTamperer) copyCheckpoint(t *testing.T, id int64) {
	q.exec(t, `INSERT INTO log_checkpoints (size, root, note, frontier, created_at, head_mac)
		SELECT size, root, note, frontier, created_at, head_mac FROM log_checkpoints WHERE id = $1`, id)
}

func (q pgTamperer) checkpointNote(t *testing.T, id int64) (n []byte) {
	if err := q.pool.QueryRow(context.Background(), `SELECT note FROM log_checkpoints WHERE id = $1`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (q pgTamperer) setCheckpointNote(t *testing.T, id int64, n []byte) {
	q.exec(t, `UPDATE log_checkpoints SET note = $1 WHERE id = $2`, n, id)
}

func (q pgTamperer) setCheckpointSize(t *testing.T, id, size int64) {
	q.exec(t, `UPDATE log_checkpoints SET size = $1 WHERE id = $2`, size, id)
}

func (q pgTamperer) setCheckpointFrontier(t *testing.T, id int64, f []byte) {
	q.exec(t, `UPDATE log_checkpoints SET frontier = $1 WHERE id = $2`, f, id)
}

// TestPGVerifyDetectsTampering runs the tamper cases on a log a replica
// wrote to PostgreSQL, tampered with by SQL on the real server.
func TestPGVerifyDetectsTampering(t *testing.T) {
	s, v := sharedKey(t)
	runTamperCases(t, v, func(t *testing.T) (func() store.Store, tamperer, string) {
		dsn := pgDatabase(t)
		dir := t.TempDir()
		l := openLog(t, openPG(t, dsn), s, replicaOptions(dir, v, 0))
		appendFixture(t, l)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		pool, err := pgxpool.New(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		return func() store.Store { return openPG(t, dsn) }, pgTamperer{pool}, filepath.Join(dir, "checkpoint-0")
	})
}
