package pgstore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// logConflictCode is the SQLSTATE airlock_log_conflict raises (migration
// 0003).
const logConflictCode = "AL409"

// ErrTxDone is returned by every method of a Tx after Commit or Rollback.
var ErrTxDone = errors.New("pgstore: transaction has already been committed or rolled back")

// Tx is the write transaction. It is not safe for concurrent use: the audit
// log's writer drives it from one goroutine.
type Tx struct {
	s *Store
	// tx is the connection the transaction runs on: Begin sends BEGIN on
	// it, and Commit sends COMMIT in the same round trip as the statements
	// before and after it (pgx.Tx would spend a round trip of its own).
	tx   *pgxpool.Conn
	xid  int64 // the transaction's id (pg_current_xact_id)
	pid  int32 // its server process's id (pg_backend_pid)
	done bool
	// released is set once tx is back in the pool.
	released bool
	// marker is the last checkpoint this transaction stores, if any: its
	// presence in the log, once the transaction is over, is the commit's
	// outcome (see commit).
	marker *store.Checkpoint
	// head is the log's newest checkpoint as read by Begin, valid while
	// headRead (cleared when this transaction stores a checkpoint);
	// headMissing if there was none.
	head        store.Checkpoint
	headRead    bool
	headMissing bool
}

var (
	_ store.Tx                    = (*Tx)(nil)
	_ store.SharedLogTx           = (*Tx)(nil)
	_ store.LogCheckpointAppender = (*Tx)(nil)
)

const (
	// insertGrantSQL reports a duplicate id or credential id as no row
	// inserted rather than as an error, which would abort the transaction.
	insertGrantSQL = `INSERT INTO grants
		(id, identity, target, account, status, requested_at, span_end, long_lived, credential_id, record)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`
	// updateGrantSQL updates the grant unless its new credential id is
	// another grant's, and says which happened: (credential taken,
	// rows updated).
	updateGrantSQL = `WITH taken AS (
		SELECT EXISTS (SELECT 1 FROM grants WHERE credential_id = $8 AND id <> $10) AS taken
	), upd AS (
		UPDATE grants SET identity = $1, target = $2, account = $3, status = $4,
			requested_at = $5, span_end = $6, long_lived = $7, credential_id = $8, record = $9
		WHERE id = $10 AND NOT (SELECT taken FROM taken)
		RETURNING 1
	)
	SELECT (SELECT taken FROM taken), (SELECT count(*) FROM upd)`
	bumpMaxSpanSQL = `UPDATE meta SET value = $1::bigint::text
		WHERE key = 'max_span_nanos' AND COALESCE(value::bigint, 0) < $1::bigint`
	putSessionSQL = `INSERT INTO sessions
		(id, grant_id, started_at, calls, denied, bytes_in, bytes_out, used_json, record, open)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (id) DO UPDATE SET grant_id = excluded.grant_id, started_at = excluded.started_at,
			calls = excluded.calls, denied = excluded.denied, bytes_in = excluded.bytes_in,
			bytes_out = excluded.bytes_out, used_json = excluded.used_json, record = excluded.record,
			open = excluded.open`
	insertSessionSQL = `INSERT INTO sessions
		(id, grant_id, started_at, calls, denied, bytes_in, bytes_out, used_json, record, open)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (id) DO NOTHING`
	insertSessionFromSQL = `INSERT INTO sessions
		(id, grant_id, started_at, calls, denied, bytes_in, bytes_out, used_json, record, open, start_seq)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (id) DO NOTHING`
	putIdentitySQL = `INSERT INTO identities (` + identityCols + `)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, owner = excluded.owner,
			groups_json = excluded.groups_json, key_sha256 = excluded.key_sha256,
			source = excluded.source, disabled = excluded.disabled,
			created_at = excluded.created_at, created_by = excluded.created_by,
			bindings_json = excluded.bindings_json`
	// insertLogSQL inserts any number of rows in one statement (and one
	// cached plan) from parallel arrays.
	insertLogSQL = `INSERT INTO log_entries (seq, time, type, grant_id, session_id, data, leaf_hash)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::bytea[])
		WHERE ($1::bigint[])[1] = (SELECT COALESCE(MAX(seq) + 1, 0) FROM log_entries)`
	// commitLogCheckpointSQL is appendLogCheckpointSQL sent in one round
	// trip with the COMMIT: entries that do not continue the log must fail
	// the statement (airlock_log_conflict raises logConflictCode), or the
	// COMMIT after it would commit the rest of the transaction without
	// them.
	commitLogCheckpointSQL = logCheckpointCTE + `
	SELECT CASE WHEN (SELECT count(*) FROM c) = 1 THEN 1
		ELSE airlock_log_conflict(($1::bigint[])[1], (SELECT COALESCE(MAX(seq) + 1, 0) FROM log_entries)) END`
	putCheckpointSQL = `INSERT INTO log_checkpoints (size, root, note, frontier, created_at, head_mac) VALUES ($1, $2, $3, $4, $5, $6)`
	// logCheckpointCTE inserts the entries ($1-$7) if the first continues
	// the log, and then the checkpoint ($8-$13) if every entry was stored.
	logCheckpointCTE = `WITH e AS (
		INSERT INTO log_entries (seq, time, type, grant_id, session_id, data, leaf_hash)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bytea[], $7::bytea[])
		WHERE ($1::bigint[])[1] = (SELECT COALESCE(MAX(seq) + 1, 0) FROM log_entries)
		RETURNING 1
	), c AS (
		INSERT INTO log_checkpoints (size, root, note, frontier, created_at, head_mac)
		SELECT $8, $9, $10, $11, $12, $13 WHERE (SELECT count(*) FROM e) = cardinality($1::bigint[])
		RETURNING 1
	)`
	// appendLogCheckpointSQL is insertLogSQL and putCheckpointSQL in one
	// statement: the checkpoint is stored only if every entry was, which
	// they are only if the first continues the log. It answers how many
	// entries and checkpoints it stored.
	appendLogCheckpointSQL = logCheckpointCTE + `
	SELECT (SELECT count(*) FROM e), (SELECT count(*) FROM c)`
)

func (t *Tx) usable() error {
	if t.done {
		return ErrTxDone
	}
	return nil
}

// GrantStatus implements store.GrantStatusTx: one indexed read of the
// status column, without the record, the usage or a row lock.
func (t *Tx) GrantStatus(ctx context.Context, id string) (model.GrantStatus, error) {
	if err := t.usable(); err != nil {
		return "", err
	}
	var st string
	err := t.tx.QueryRow(ctx, "SELECT status FROM grants WHERE id = $1", id).Scan(&st)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("pgstore: grant %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("pgstore: grant status: %w", err)
	}
	return model.GrantStatus(st), nil
}

var (
	_ store.GrantStatusTx = (*Tx)(nil)
	_ store.GrantRecordTx = (*Tx)(nil)
)

// GrantRecord implements store.GrantRecordTx: the grant's record without
// its usage (Usage is zero), its sessions unread, and its row locked until
// the transaction ends, as Grant locks it.
func (t *Tx) GrantRecord(ctx context.Context, id string) (model.Grant, error) {
	if err := t.usable(); err != nil {
		return model.Grant{}, err
	}
	return getGrantRecord(ctx, t.tx, id, true)
}

// Grant returns one grant with its Usage, as this transaction sees it, and
// locks its row until the transaction ends.
func (t *Tx) Grant(ctx context.Context, id string) (model.Grant, error) {
	if err := t.usable(); err != nil {
		return model.Grant{}, err
	}
	return getGrant(ctx, t.tx, "id", id, true)
}

// GrantByCredential returns the grant holding a credential id, and locks its
// row until the transaction ends.
func (t *Tx) GrantByCredential(ctx context.Context, credentialID string) (model.Grant, error) {
	if err := t.usable(); err != nil {
		return model.Grant{}, err
	}
	if credentialID == "" {
		return model.Grant{}, fmt.Errorf("pgstore: grant with empty credential id: %w", store.ErrNotFound)
	}
	return getGrant(ctx, t.tx, "credential_id", credentialID, true)
}

// OpenGrants returns every pending or active grant, ordered by RequestedAt
// then ID, with Usage, and locks their rows until the transaction ends.
func (t *Tx) OpenGrants(ctx context.Context) ([]model.Grant, error) {
	if err := t.usable(); err != nil {
		return nil, err
	}
	return queryGrants(ctx, t.tx, withUsage(openGrantsSQL))
}

// CreateGrant inserts a new grant; store.ErrConflict if the id or the
// credential id is taken. Usage is ignored.
func (t *Tx) CreateGrant(ctx context.Context, g model.Grant) error {
	if err := t.usable(); err != nil {
		return err
	}
	r, err := encodeGrant(g)
	if err != nil {
		return fmt.Errorf("pgstore: create grant: %w", err)
	}
	tag, err := t.tx.Exec(ctx, insertGrantSQL, r.ID, r.Identity, r.Target, r.Account, r.Status,
		r.RequestedAt, r.SpanEnd, r.LongLived(), r.credentialID, r.Record)
	if err != nil {
		return fmt.Errorf("pgstore: create grant %q: %w", g.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("pgstore: create grant %q (credential %q): %w", g.ID, g.CredentialID, store.ErrConflict)
	}
	return t.bumpMaxSpan(ctx, r)
}

// UpdateGrant replaces a grant's record; store.ErrNotFound if it does not
// exist, store.ErrConflict if its new credential id is another grant's.
// Usage is ignored.
func (t *Tx) UpdateGrant(ctx context.Context, g model.Grant) error {
	if err := t.usable(); err != nil {
		return err
	}
	r, err := encodeGrant(g)
	if err != nil {
		return fmt.Errorf("pgstore: update grant: %w", err)
	}
	var (
		taken bool
		n     int64
	)
	err = t.tx.QueryRow(ctx, updateGrantSQL, r.Identity, r.Target, r.Account, r.Status,
		r.RequestedAt, r.SpanEnd, r.LongLived(), r.credentialID, r.Record, r.ID).Scan(&taken, &n)
	switch {
	case err != nil && isUniqueViolation(err):
		return fmt.Errorf("pgstore: update grant %q: credential %q: %w", g.ID, g.CredentialID, store.ErrConflict)
	case err != nil:
		return fmt.Errorf("pgstore: update grant %q: %w", g.ID, err)
	case taken:
		return fmt.Errorf("pgstore: update grant %q: credential %q: %w", g.ID, g.CredentialID, store.ErrConflict)
	case n == 0:
		return fmt.Errorf("pgstore: update grant %q: %w", g.ID, store.ErrNotFound)
	}
	return t.bumpMaxSpan(ctx, r)
}

// bumpMaxSpan raises max_span_nanos to the grant's lifetime if it is longer
// and not longer than storerow.LongSpan, in the same transaction (and savepoint) as
// the grant write.
func (t *Tx) bumpMaxSpan(ctx context.Context, r grantRow) error {
	span, counted := r.Span()
	if !counted || span <= 0 {
		return nil
	}
	if _, err := t.tx.Exec(ctx, bumpMaxSpanSQL, span); err != nil {
		return fmt.Errorf("pgstore: grant %q: update max_span_nanos: %w", r.ID, err)
	}
	return nil
}

// Identity returns one identity by name, as this transaction sees it.
func (t *Tx) Identity(ctx context.Context, name string) (model.Identity, error) {
	if err := t.usable(); err != nil {
		return model.Identity{}, err
	}
	return getIdentity(ctx, t.tx, name)
}

// PutIdentity inserts or replaces an identity.
func (t *Tx) PutIdentity(ctx context.Context, id model.Identity) error {
	if err := t.usable(); err != nil {
		return err
	}
	r, err := encodeIdentity(id)
	if err != nil {
		return fmt.Errorf("pgstore: put identity: %w", err)
	}
	if _, err := t.tx.Exec(ctx, putIdentitySQL, r.Name, r.Kind, r.Owner, r.Groups, r.Key, r.Source,
		r.Disabled, r.createdAt, r.CreatedBy, r.Bindings); err != nil {
		return fmt.Errorf("pgstore: put identity %q: %w", id.Name, err)
	}
	return nil
}

// PutSession inserts or replaces a session record.
func (t *Tx) PutSession(ctx context.Context, s model.Session) error {
	return t.writeSession(ctx, putSessionSQL, "put", s)
}

// EndSession records the end of a session in its row, unless the row
// already records one.
func (t *Tx) EndSession(ctx context.Context, end model.Session) (bool, error) {
	if err := t.usable(); err != nil {
		return false, err
	}
	cur, err := getSession(ctx, t.tx, end.ID)
	if err != nil {
		return false, err
	}
	row, ok := store.EndedRow(cur, end)
	if !ok {
		return false, nil
	}
	return true, t.writeSession(ctx, putSessionSQL, "end", row)
}

// writeSession writes s with query (putSessionSQL or insertSessionSQL;
// insertSessionFromSQL with its start's sequence in extra).
func (t *Tx) writeSession(ctx context.Context, query, verb string, s model.Session, extra ...any) error {
	if err := t.usable(); err != nil {
		return err
	}
	r, err := encodeSession(s)
	if err != nil {
		return fmt.Errorf("pgstore: %s session: %w", verb, err)
	}
	args := append([]any{r.ID, r.GrantID, r.startedAt, r.Calls, r.Denied,
		r.BytesIn, r.BytesOut, r.usedJSON, r.Record, r.open}, extra...)
	if _, err := t.tx.Exec(ctx, query, args...); err != nil {
		return fmt.Errorf("pgstore: %s session %q: %w", verb, s.ID, err)
	}
	return nil
}

// InsertSession inserts a session record unless one with its ID exists.
func (t *Tx) InsertSession(ctx context.Context, s model.Session) error {
	return t.writeSession(ctx, insertSessionSQL, "insert", s)
}

// InsertSessionFrom is InsertSession of the row written from the
// session.started entry at seq, which orders the grant's sessions' pages
// (store.SessionStartTx, migration 0011).
func (t *Tx) InsertSessionFrom(ctx context.Context, s model.Session, seq int64) error {
	return t.writeSession(ctx, insertSessionFromSQL, "insert", s, seq)
}

// logRows is a batch of entries as the insert's parallel arrays.
type logRows struct {
	seqs     []int64
	times    []*int64
	types    []string
	grants   []*string
	sessions []*string
	data     [][]byte
	leaves   [][]byte
}

func (r *logRows) args() []any {
	return []any{r.seqs, r.times, r.types, r.grants, r.sessions, r.data, r.leaves}
}

// logRowsOf converts and checks every entry first, so a bad one fails the
// batch before anything is sent; the sequence numbers must follow each
// other.
func logRowsOf(entries []store.LogEntry) (*logRows, error) {
	n := len(entries)
	r := &logRows{seqs: make([]int64, n), times: make([]*int64, n), types: make([]string, n),
		grants: make([]*string, n), sessions: make([]*string, n), data: make([][]byte, n), leaves: make([][]byte, n)}
	for i, e := range entries {
		tm, err := nullNanos(e.Time)
		if err != nil {
			return nil, fmt.Errorf("pgstore: append log: entry %d: %w", e.Seq, err)
		}
		if err := checkText("log entry field", e.Type, e.GrantID, e.SessionID); err != nil {
			return nil, fmt.Errorf("pgstore: append log: entry %d: %w", e.Seq, err)
		}
		if want := entries[0].Seq + int64(i); e.Seq != want {
			return nil, fmt.Errorf("pgstore: append log: entry %d has seq %d, want %d: %w", i, e.Seq, want, store.ErrConflict)
		}
		r.seqs[i], r.times[i], r.types[i] = e.Seq, tm, e.Type
		r.grants[i], r.sessions[i] = nullString(e.GrantID), nullString(e.SessionID)
		r.data[i], r.leaves[i] = e.Data, e.LeafHash
	}
	return r, nil
}

// AppendLog stores entries in one statement. The first Seq must equal the
// current log size and the others must follow it one by one;
// store.ErrConflict otherwise, with nothing stored (and the transaction
// still usable).
func (t *Tx) AppendLog(ctx context.Context, entries []store.LogEntry) error {
	if err := t.usable(); err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	r, err := logRowsOf(entries)
	if err != nil {
		return err
	}
	// One statement inserts the rows only if the first continues the log
	// (the writers' lock keeps the size from changing meanwhile), sparing
	// a round trip inside the lock.
	tag, err := t.tx.Exec(ctx, insertLogSQL, r.args()...)
	if err != nil {
		return t.appendErr(entries, err)
	}
	if tag.RowsAffected() != int64(len(entries)) {
		return t.seqConflict(ctx, entries)
	}
	return nil
}

// AppendLogCheckpoint is AppendLog followed by PutCheckpoint, in one
// statement: both or neither are stored (store.LogCheckpointAppender).
func (t *Tx) AppendLogCheckpoint(ctx context.Context, entries []store.LogEntry, c store.Checkpoint) error {
	if err := t.usable(); err != nil {
		return err
	}
	if len(entries) == 0 {
		return t.PutCheckpoint(ctx, c)
	}
	r, err := logRowsOf(entries)
	if err != nil {
		return err
	}
	created, err := nullNanos(c.CreatedAt)
	if err != nil {
		return fmt.Errorf("pgstore: put checkpoint: %w", err)
	}
	t.headRead = false
	var ne, nc int64
	if err := t.tx.QueryRow(ctx, appendLogCheckpointSQL, append(r.args(), c.Size, c.Root, c.Note, c.Frontier, created, c.MAC)...).Scan(&ne, &nc); err != nil {
		return t.appendErr(entries, err)
	}
	if ne != int64(len(entries)) || nc != 1 {
		return t.seqConflict(ctx, entries)
	}
	t.marker = &c
	return nil
}

func (t *Tx) appendErr(entries []store.LogEntry, err error) error {
	if isUniqueViolation(err) {
		err = fmt.Errorf("%w: %v", store.ErrConflict, err)
	}
	return fmt.Errorf("pgstore: append log: entries %d-%d: %w", entries[0].Seq, entries[len(entries)-1].Seq, err)
}

// seqConflict reports entries that do not continue the log.
func (t *Tx) seqConflict(ctx context.Context, entries []store.LogEntry) error {
	var size int64
	if err := t.tx.QueryRow(ctx, logSizeSQL).Scan(&size); err != nil {
		return fmt.Errorf("pgstore: append log: log size: %w", err)
	}
	return fmt.Errorf("pgstore: append log: entry 0 has seq %d, want %d (log size %d): %w",
		entries[0].Seq, size, size, store.ErrConflict)
}

// PutCheckpoint stores a checkpoint; its ID is assigned by the store (c.ID is
// ignored).
func (t *Tx) PutCheckpoint(ctx context.Context, c store.Checkpoint) error {
	if err := t.usable(); err != nil {
		return err
	}
	created, err := nullNanos(c.CreatedAt)
	if err != nil {
		return fmt.Errorf("pgstore: put checkpoint: %w", err)
	}
	t.headRead = false
	if _, err := t.tx.Exec(ctx, putCheckpointSQL, c.Size, c.Root, c.Note, c.Frontier, created, c.MAC); err != nil {
		return fmt.Errorf("pgstore: put checkpoint: %w", err)
	}
	t.marker = &c
	return nil
}

var savepointRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

func (t *Tx) savepointCmd(ctx context.Context, verb, name string) error {
	if err := t.usable(); err != nil {
		return err
	}
	if !savepointRE.MatchString(name) {
		return fmt.Errorf("pgstore: %s: savepoint name %q is not an identifier", verb, name)
	}
	if _, err := t.tx.Exec(ctx, verb+` "`+name+`"`); err != nil {
		return fmt.Errorf("pgstore: %s %s: %w", verb, name, err)
	}
	return nil
}

// Savepoint starts a savepoint (SQL SAVEPOINT). name must be an identifier.
func (t *Tx) Savepoint(ctx context.Context, name string) error {
	return t.savepointCmd(ctx, "SAVEPOINT", name)
}

// RollbackTo undoes everything since the savepoint, which stays open (SQL
// ROLLBACK TO SAVEPOINT). It also ends the aborted state a failed statement
// leaves the transaction in.
func (t *Tx) RollbackTo(ctx context.Context, name string) error {
	return t.savepointCmd(ctx, "ROLLBACK TO SAVEPOINT", name)
}

// Release ends the savepoint, keeping its changes in the transaction (SQL
// RELEASE SAVEPOINT).
func (t *Tx) Release(ctx context.Context, name string) error {
	return t.savepointCmd(ctx, "RELEASE SAVEPOINT", name)
}

// finish ends the transaction once and frees the connection and the
// writer.
func (t *Tx) finish(what string, end func(context.Context) error) error {
	if t.done {
		return fmt.Errorf("pgstore: %s: %w", what, ErrTxDone)
	}
	t.done = true
	defer func() { t.s.writer <- struct{}{} }()
	// Bounded: past CommitTimeout pgx closes the connection, and Commit
	// learns the outcome on others.
	ctx, cancel := context.WithTimeout(context.Background(), t.s.opts.CommitTimeout)
	defer cancel()
	if err := end(ctx); err != nil {
		return fmt.Errorf("pgstore: %s: %w", what, err)
	}
	return nil
}

// abandon rolls back whatever the connection still has open and returns it
// to the pool, which closes it rather than reuse it if the rollback failed
// (pgxpool never reuses a connection inside a transaction).
func (t *Tx) abandon() {
	if t.released {
		return
	}
	t.released = true
	if !t.tx.Conn().IsClosed() && t.tx.Conn().PgConn().TxStatus() != 'I' {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = t.tx.Exec(ctx, "ROLLBACK")
		cancel()
	}
	t.tx.Release()
}

// Commit commits the transaction and frees the writer. A transaction that a
// failed statement left aborted (outside a savepoint rolled back since) is
// rolled back instead, and Commit reports it. Commit returns once the
// transaction is durable: the COMMIT itself is asynchronous, and a flush
// follows it in the same round trip (see "Writes and isolation" in the
// package documentation). If the COMMIT or the flush fails in any other
// way, Commit asks the database whether the transaction committed and
// returns nil if it did, once it is durable.
func (t *Tx) Commit() error {
	return t.finish("commit", func(ctx context.Context) error { return t.commit(ctx, nil) })
}

// CommitLogCheckpoint is AppendLogCheckpoint followed by Commit, sent in one
// round trip with the COMMIT: the shared log's last statement under the
// writers' lock costs no round trip of its own. If the entries do not
// continue the log, the statement fails (store.ErrConflict), so nothing of
// the transaction is committed.
func (t *Tx) CommitLogCheckpoint(entries []store.LogEntry, c store.Checkpoint) error {
	if len(entries) == 0 {
		return errors.New("pgstore: commit log checkpoint: no entries")
	}
	params, err := logParams(entries, c)
	if err != nil {
		_ = t.Rollback()
		return err
	}
	t.marker = &c
	return t.finish("commit", func(ctx context.Context) error {
		// Prepared once per connection (pgx keeps it by name).
		sd, err := t.tx.Conn().Prepare(ctx, "airlock_commit_log_checkpoint", commitLogCheckpointSQL)
		if err != nil {
			t.abandon()
			return fmt.Errorf("append log: preparing: %w", err)
		}
		if !logStmtTypesMatch(sd) {
			t.abandon()
			return fmt.Errorf("append log: the server prepared the statement with parameter types %v, not %v", sd.ParamOIDs, logStmtOIDs)
		}
		return t.commit(ctx, &firstStmt{sd: sd, params: params})
	})
}

// firstStmt is a prepared statement sent in the COMMIT's round trip, ahead
// of it, with its parameters already encoded (binary).
type firstStmt struct {
	sd     *pgconn.StatementDescription
	params [][]byte
}

// commit sends the statements first queues (if any), the COMMIT and the
// flush in one pipeline, and learns the outcome.
func (t *Tx) commit(ctx context.Context, first *firstStmt) error {
	defer t.abandon()
	b := &pgconn.Batch{}
	if first != nil {
		b.ExecStatement(first.sd, first.params, binaryFormats, nil)
	}
	b.ExecParams("COMMIT", nil, nil, nil, nil)
	b.ExecParams(t.s.flushSQL, nil, nil, nil, nil)
	mrr := t.tx.Conn().PgConn().ExecBatch(ctx, b)
	next := func() (pgconn.CommandTag, error) {
		if !mrr.NextResult() {
			if err := mrr.Close(); err != nil {
				return pgconn.CommandTag{}, err
			}
			return pgconn.CommandTag{}, errors.New("pgstore: the server sent fewer results than statements")
		}
		return mrr.ResultReader().Close()
	}
	var err error
	if first != nil {
		if _, err = next(); err != nil && isServerError(err) {
			// The server refused the statement, so it skipped the
			// COMMIT: nothing was committed.
			mrr.Close()
			if isLogConflict(err) || isUniqueViolation(err) {
				return fmt.Errorf("pgstore: append log: %w: %v", store.ErrConflict, err)
			}
			return fmt.Errorf("pgstore: append log: %w", err)
		}
	}
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = next()
	}
	if err == nil && tag.String() != "COMMIT" {
		// The transaction was aborted by a failed statement; PostgreSQL
		// rolls it back and answers ROLLBACK.
		mrr.Close()
		return pgx.ErrTxCommitRollback
	}
	if err == nil {
		if _, err = next(); err != nil {
			err = fmt.Errorf("flushing the commit: %w", err)
		}
	}
	if cerr := mrr.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("flushing the commit: %w", cerr)
	}
	if err == nil {
		return nil
	}
	// The COMMIT's answer or the flush failed, or did not come within
	// CommitTimeout: learn the outcome, and make a commit durable before
	// reporting it, on other connections (this one is broken, or no
	// longer trusted), within OutcomeTimeout.
	t.abandon()
	octx, cancel := context.WithTimeout(t.s.life, t.s.opts.OutcomeTimeout)
	defer cancel()
	committed, rerr := t.s.xactCommitted(octx, t.xid, t.pid)
	if rerr != nil {
		return fmt.Errorf("%w: %w (and asking for its outcome: %v)", store.ErrCommitUnknown, err, rerr)
	}
	if !committed && t.marker == nil {
		return err
	}
	if rerr := t.s.flushUntilDone(octx); rerr != nil {
		return fmt.Errorf("%w: committed, but flushing it: %w (%v)", store.ErrCommitUnknown, err, rerr)
	}
	// The flush proves the commit durable only if the server did not lose
	// it in between: "committed" may have come from a server that then
	// crashed before writing the commit to disk, and a flush after the
	// restart covers nothing of it. Worse, after such a crash the
	// transaction's id may be given to another transaction, whose status
	// pg_xact_status then reports. So the outcome is asked again after the
	// flush, and of the data when the transaction stored a checkpoint (as
	// every batch of the audit log does): the transaction is over by now
	// (xactCommitted waits while it is in progress), so its checkpoint is
	// in the log, covered by the flush or restored from the disk by the
	// crash recovery, if and only if it committed durably.
	if t.marker != nil {
		stored, rerr := t.s.checkpointStored(octx, *t.marker)
		switch {
		case rerr != nil:
			return fmt.Errorf("%w: %w (and looking for its checkpoint: %v)", store.ErrCommitUnknown, err, rerr)
		case !stored:
			return fmt.Errorf("not committed, or lost in a crash: %w", err)
		}
		return nil
	}
	committed, rerr = t.s.xactCommitted(octx, t.xid, t.pid)
	if rerr != nil {
		return fmt.Errorf("%w: %w (and asking for its outcome again: %v)", store.ErrCommitUnknown, err, rerr)
	}
	if !committed {
		return fmt.Errorf("lost in a crash after it committed: %w", err)
	}
	return nil
}

// checkpointStored reports whether checkpoint c (its size and signed note)
// is in the log, retrying on other connections until the database answers
// or octx ends (the store is closed, or OutcomeTimeout passed).
func (s *Store) checkpointStored(octx context.Context, c store.Checkpoint) (bool, error) {
	pause := 20 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(octx, s.attemptTimeout)
		var found bool
		err := s.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM log_checkpoints WHERE size = $1 AND note = $2)", c.Size, c.Note).Scan(&found)
		cancel()
		if err == nil {
			return found, nil
		}
		select {
		case <-time.After(pause):
		case <-octx.Done():
			return false, err
		}
		pause = min(2*pause, time.Second)
	}
}

// isServerError reports whether err is an error the server answered to a
// statement, which aborts the transaction without ending the session, as
// opposed to a broken connection (whose statement's outcome is unknown).
func isServerError(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Severity == "ERROR"
}

// isLogConflict reports whether err is commitLogCheckpointSQL refusing
// entries that do not continue the log.
func isLogConflict(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == logConflictCode
}

// flush waits until every commit so far is durable (see flushSQL).
func (s *Store) flush(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, s.flushSQL); err != nil {
		return fmt.Errorf("flushing the commit: %w", err)
	}
	return nil
}

// flushUntilDone retries flush, on other connections, until it succeeds or
// octx ends. Each try may take twice as long as the one before: a flush
// that is slow rather than stuck (with remote_apply, a synchronous
// standby's replay, which may lag by its max_standby_streaming_delay, 30 s
// by default) then gets done, where tries of attemptTimeout each never
// would, and a connection that broke silently still costs only a short
// first try. The flush in the COMMIT's round trip is cut at CommitTimeout
// already.
func (s *Store) flushUntilDone(octx context.Context) error {
	pause, try := 20*time.Millisecond, s.attemptTimeout
	for {
		ctx, cancel := context.WithTimeout(octx, try)
		err := s.flush(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-time.After(pause):
		case <-octx.Done():
			return err
		}
		pause, try = min(2*pause, time.Second), 2*try
	}
}

// xactCommitted asks the database whether transaction xid, run by server
// process pid, committed, retrying on other connections until it answers
// "committed" or "aborted" (a transaction still in progress when its
// connection broke is aborted by the server once it notices, or ended) or
// octx ends. After a crash, an asynchronous commit that did not reach the
// disk reads as aborted.
func (s *Store) xactCommitted(octx context.Context, xid int64, pid int32) (bool, error) {
	pause := 20 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(octx, s.attemptTimeout)
		var status *string
		err := s.pool.QueryRow(ctx, "SELECT pg_xact_status($1::text::xid8)", strconv.FormatInt(xid, 10)).Scan(&status)
		cancel()
		switch {
		case err == nil && status != nil && *status == "committed":
			return true, nil
		case err == nil && status != nil && *status == "aborted":
			return false, nil
		case isFutureXid(err):
			// A database restored or failed over to a point before the
			// transaction: it is not in this database's history.
			return false, nil
		case err == nil && status != nil && *status == "in progress":
			// Its connection is closed on this side, but its server
			// process has not noticed (pgx's cancel of the statement in
			// flight is best effort): it waits (on a lock, a standby),
			// and would still run the COMMIT it was sent once the wait
			// ends. Ended, it ends the transaction: aborted, unless the
			// COMMIT had run.
			s.endXact(octx, xid, pid)
		}
		select {
		case <-time.After(pause):
		case <-octx.Done():
			if err == nil {
				err = fmt.Errorf("transaction %d still in progress", xid)
			}
			return false, err
		}
		pause = min(2*pause, time.Second)
	}
}

// endXactSQL ends server process $2 if it still runs transaction $1. Both
// must match: after a crash a transaction id that never reached the disk
// may be given again, to another session, which must not be ended for it
// (nor may a pid the system gave again). Behind a pooler the pid is still
// the server's (beginSQL).
const endXactSQL = `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	WHERE pid = $2 AND backend_xid = xid($1::text::xid8) AND pid <> pg_backend_pid()`

// endXact ends server process pid if it still runs transaction xid, whose
// connection Commit gave up on. A failure (the database out of reach, a
// role not allowed to) leaves the transaction to end on its own:
// xactCommitted goes on asking.
func (s *Store) endXact(octx context.Context, xid int64, pid int32) {
	ctx, cancel := context.WithTimeout(octx, s.attemptTimeout)
	defer cancel()
	_, _ = s.pool.Exec(ctx, endXactSQL, strconv.FormatInt(xid, 10), pid)
}

// isFutureXid reports whether err is pg_xact_status refusing a transaction
// id the database has not reached.
func isFutureXid(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "22023" && strings.Contains(pe.Message, "future")
}

// LatestCheckpoint returns the log's newest checkpoint as this transaction
// sees it: after Begin's lock, everything committed by every process's
// earlier writers (store.SharedLogTx).
func (t *Tx) LatestCheckpoint(ctx context.Context) (store.Checkpoint, error) {
	if err := t.usable(); err != nil {
		return store.Checkpoint{}, err
	}
	if t.headRead {
		if t.headMissing {
			return store.Checkpoint{}, fmt.Errorf("pgstore: latest checkpoint: %w", store.ErrNotFound)
		}
		return t.head, nil
	}
	c, err := scanCheckpoint(t.tx.QueryRow(ctx, latestCheckpointSQL))
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Checkpoint{}, fmt.Errorf("pgstore: latest checkpoint: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Checkpoint{}, fmt.Errorf("pgstore: latest checkpoint: %w", err)
	}
	return c, nil
}

// Rollback discards the transaction and frees the writer. After Commit it
// returns an error wrapping ErrTxDone and does nothing.
func (t *Tx) Rollback() error {
	return t.finish("rollback", func(ctx context.Context) error {
		if t.tx.Conn().IsClosed() {
			t.abandon()
			// The server ends the transaction with the session, once it
			// notices. A statement cut by its context (the audit log's
			// BatchTimeout) while it waited on a lock closed the
			// connection; pgx's cancel request is best effort (see
			// xactCommitted), and until the wait ends the process would
			// hold the writers' lock every replica's writes wait on. So
			// it is ended, as a stuck COMMIT's is, off the writer's path
			// (the database may be what is gone).
			go t.s.endXact(t.s.life, t.xid, t.pid)
			return nil
		}
		_, err := t.tx.Exec(ctx, "ROLLBACK")
		t.abandon()
		return err
	})
}
