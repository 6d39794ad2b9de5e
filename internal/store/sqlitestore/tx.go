package sqlitestore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/bits"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/storerow"
)

// ErrTxAborted is returned by every method of a Tx after SQLite rolled the
// transaction back on its own (as it may after an interrupted statement, an
// I/O error, a full disk or an out-of-memory condition). The writer must
// treat the whole batch as failed.
var ErrTxAborted = errors.New("transaction was rolled back by SQLite")

// Tx is the write transaction. It is not safe for concurrent use: the audit
// log's writer drives it from one goroutine.
type Tx struct {
	s     *Store
	conn  *sql.Conn
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
	done  bool
	// aborted is set when SQLite ended the transaction behind our back:
	// from then on statements would run in autocommit mode, so they must
	// not run at all.
	aborted error
}

var _ store.Tx = (*Tx)(nil)

var _ store.SessionStartTx = (*Tx)(nil)

var (
	_ store.GrantStatusTx = (*Tx)(nil)
	_ store.GrantRecordTx = (*Tx)(nil)
)

const (
	insertGrantSQL = `INSERT INTO grants
		(id, identity, target, account, status, requested_at, span_end, credential_id, record)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	updateGrantSQL = `UPDATE grants SET identity = ?, target = ?, account = ?, status = ?,
		requested_at = ?, span_end = ?, credential_id = ?, record = ? WHERE id = ?`
	bumpMaxSpanSQL = `INSERT INTO meta(key, value) VALUES ('max_span_nanos', ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value
		WHERE CAST(excluded.value AS INTEGER) > COALESCE(CAST(meta.value AS INTEGER), 0)`
	putSessionSQL = `INSERT INTO sessions
		(id, grant_id, started_at, calls, denied, bytes_in, bytes_out, used_json, record)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(id) DO UPDATE SET grant_id = excluded.grant_id, started_at = excluded.started_at,
			calls = excluded.calls, denied = excluded.denied, bytes_in = excluded.bytes_in,
			bytes_out = excluded.bytes_out, used_json = excluded.used_json, record = excluded.record`
	insertSessionSQL = `INSERT INTO sessions
		(id, grant_id, started_at, calls, denied, bytes_in, bytes_out, used_json, record)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(id) DO NOTHING`
	insertSessionFromSQL = `INSERT INTO sessions
		(id, grant_id, started_at, calls, denied, bytes_in, bytes_out, used_json, record, start_seq)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(id) DO NOTHING`
	putIdentitySQL = `INSERT INTO identities (` + identityCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET kind = excluded.kind, owner = excluded.owner,
			groups_json = excluded.groups_json, key_sha256 = excluded.key_sha256,
			source = excluded.source, disabled = excluded.disabled,
			created_at = excluded.created_at, created_by = excluded.created_by,
			bindings_json = excluded.bindings_json`
	logSizeSQL = `SELECT COALESCE(MAX(seq) + 1, 0) FROM log_entries`
	// putCheckpointSQL ends every indexer transaction.
	putCheckpointSQL = `INSERT INTO log_checkpoints (size, root, note, frontier, created_at) VALUES (?, ?, ?, ?, ?)`
)

// runGap is the most entries a session's (or grant's) run of log entries
// may skip between two of its entries (others' entries, read and dropped
// when its entries are read): a longer gap starts a new run. Migrations 2
// and 3 split existing entries the same way.
const runGap = 32

// logInsertRows is the most log rows one INSERT statement takes: 768
// parameters, far below SQLite's limit (32,766). Each statement costs the
// driver about 8,000 instructions besides its rows (binding, stepping,
// resetting, clearing its parameters): 128 rows rather than 32 saved 195
// of the 15,767 instructions per entry of BenchmarkIndexBatch.
const logInsertRows = 128

// logSizes is the number of sizes of the log's multi-row INSERTs: 1, 2,
// 4, ... logInsertRows rows.
var logSizes = bits.Len(logInsertRows)

// A log INSERT's form says which of a row's strings the statement binds
// once, as ?1, ?2 ... for all its rows, rather than once a row: its type
// (shareType), its grant (shareGrant), its session (shareSession). The
// driver copies every string argument into C memory, binds it, binds NULL
// over it after the step and frees it, about 900 instructions an argument
// under callgrind; the rows of a statement mostly share their type and
// grant, and some their session: 13 % of BenchmarkIndexBatch's
// instructions an entry with 8 sessions, 21 % with one (bench/HISTORY.md,
// "The log per record: a log INSERT's shared strings bound once"). SQLite
// stores the same values either way.
const (
	shareType = 1 << iota
	shareGrant
	shareSession
	logForms = 1 << 3
)

// logStmt is the index in insertLogSQL (and rawSQL) of the INSERT of 1<<k
// rows in form.
func logStmt(form, k int) int { return form*logSizes + k }

// insertLogSQL[logStmt(form, k)] inserts 1<<k log rows, for 1<<k up to
// logInsertRows, in form: a batch goes in as many full statements as it
// fills, then one statement for each set bit of what is left (at most
// seven), never one per row.
//
// The rows name no seq: SQLite gives each the table's largest rowid plus
// one, which is the entry's Seq, since AppendLog checked that the entries
// follow the log's last one by one. An explicit rowid in a statement of
// several rows makes SQLite check that each is an integer, a check that
// may abort the statement half done, so every such statement kept a
// statement journal: a copy of each page it changed, about a twentieth of
// the indexer's instructions (BenchmarkIndexBatch). Only the log's first
// entry, seq 0, is inserted with its seq (insertFirstLogSQL): an empty
// table's next rowid is 1.
var insertLogSQL = func() []string {
	qs := make([]string, logForms*logSizes)
	for form := range logForms {
		for k := range logSizes {
			qs[logStmt(form, k)] = insertLogQuery(form, 1<<k)
		}
	}
	return qs
}()

// insertLogQuery is the INSERT of n log rows in form. The shared columns
// come first in its column list, as ?1, ?2 ... in every row: an anonymous
// parameter is numbered one more than the largest before it, so the first
// row's others follow them and each later row's follow the row before.
func insertLogQuery(form, n int) string {
	var shared, own []string
	for i, col := range []string{"type", "grant_id", "session_id"} {
		if form&(1<<i) != 0 {
			shared = append(shared, col)
		} else {
			own = append(own, col)
		}
	}
	cols := slices.Concat(shared, []string{"time"}, own, []string{"data", "leaf_hash"})
	row := make([]string, 0, len(cols))
	for i := range shared {
		row = append(row, "?"+strconv.Itoa(i+1))
	}
	for range len(cols) - len(shared) {
		row = append(row, "?")
	}
	r := "(" + strings.Join(row, ", ") + ")"
	return `INSERT INTO log_entries (` + strings.Join(cols, ", ") + `) VALUES ` +
		strings.TrimSuffix(strings.Repeat(r+", ", n), ", ")
}

// runsMaxRows is the most runs one INSERT of runs takes.
const runsMaxRows = 64

// insertRunsSQL returns the multi-row forms of an INSERT of runs into
// table, keyed by col, as insertLogSQL's: [k] takes 1<<k runs. A run
// already there (a log truncated and written again) is widened: a run may
// cover more than its key's entries, never fewer.
func insertRunsSQL(table, col string) []string {
	var qs []string
	for n := 1; n <= runsMaxRows; n *= 2 {
		qs = append(qs, `INSERT INTO `+table+` (`+col+`, first_seq, last_seq) VALUES `+
			strings.TrimSuffix(strings.Repeat("(?, ?, ?), ", n), ", ")+
			` ON CONFLICT(`+col+`, first_seq) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)`)
	}
	return qs
}

// rawSQL are the writer's statements run on the driver's connection
// (Tx.execRaw): the log's rows, then its session runs, then its grant
// runs, each in its multi-row forms.
var (
	rawSQL = slices.Concat(insertLogSQL,
		insertRunsSQL("log_session_runs", "session_id"), insertRunsSQL("log_grant_runs", "grant_id"))
	rawSessionRuns = len(insertLogSQL)
	rawGrantRuns   = rawSessionRuns + len(insertRunsSQL("log_session_runs", "session_id"))
)

// insertFirstLogSQL inserts one entry with its seq: the log's first.
const insertFirstLogSQL = `INSERT INTO log_entries (seq, time, type, grant_id, session_id, data, leaf_hash) VALUES (?, ?, ?, ?, ?, ?, ?)`

// hotWriteStatements are prepared once on the writer connection.
// The log's multi-row INSERTs (rawSQL) are not among them: they run on the
// driver's connection (Tx.execRaw).
var hotWriteStatements = []string{
	insertGrantSQL, updateGrantSQL, bumpMaxSpanSQL, putSessionSQL, putIdentitySQL, logSizeSQL,
	insertFirstLogSQL, putCheckpointSQL,
}

// usable reports why the transaction can no longer be used, if it cannot.
func (t *Tx) usable() error {
	switch {
	case t.done:
		return fmt.Errorf("sqlitestore: %w", sql.ErrTxDone)
	case t.aborted != nil:
		return t.aborted
	}
	return nil
}

// check inspects a failed statement's error: if SQLite rolled the whole
// transaction back because of it, the Tx is marked aborted. It returns err.
func (t *Tx) check(err error) error {
	if err == nil || t.aborted != nil || t.done {
		return err
	}
	// BEGIN fails inside a transaction and succeeds outside one.
	if _, perr := t.tx.ExecContext(context.Background(), "BEGIN"); perr == nil {
		t.tx.ExecContext(context.Background(), "ROLLBACK")
		t.aborted = fmt.Errorf("sqlitestore: %w after: %v", ErrTxAborted, err)
	}
	return err
}

// stmt returns q prepared for this transaction.
func (t *Tx) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := t.stmts[q]; ok {
		return st, nil
	}
	var (
		st  *sql.Stmt
		err error
	)
	if ps, ok := t.s.wstmts[q]; ok {
		st = t.tx.StmtContext(ctx, ps)
	} else if st, err = t.tx.PrepareContext(ctx, q); err != nil {
		return nil, err
	}
	if t.stmts == nil {
		t.stmts = make(map[string]*sql.Stmt)
	}
	t.stmts[q] = st
	return st, nil
}

// execRaw runs rawSQL[i] with args on the writer's driver connection,
// past database/sql: its checks and conversion of each argument, and the
// copy of the arguments it makes for every statement, were about a
// twentieth of the log's copy into the store (BenchmarkIndexBatch), for
// values that are already the driver's own (int64, string, []byte, nil).
// The statements are the writer's, prepared once (Store.rawStmt).
func (t *Tx) execRaw(ctx context.Context, i int, args []driver.NamedValue) error {
	err := t.conn.Raw(func(dc any) error {
		st, err := t.s.rawStmt(ctx, dc, i)
		if err != nil {
			return err
		}
		_, err = st.ExecContext(ctx, args)
		return err
	})
	return t.check(err)
}

func (t *Tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	st, err := t.stmt(ctx, q)
	if err != nil {
		return nil, t.check(err)
	}
	res, err := st.ExecContext(ctx, args...)
	return res, t.check(err)
}

// Grant returns one grant with its Usage, as this transaction sees it.
func (t *Tx) Grant(ctx context.Context, id string) (model.Grant, error) {
	if err := t.usable(); err != nil {
		return model.Grant{}, err
	}
	g, err := getGrant(ctx, t.tx, "id", id)
	if !errors.Is(err, store.ErrNotFound) {
		t.check(err)
	}
	return g, err
}

// GrantStatus implements store.GrantStatusTx: one read of the status
// column by the primary key, without the record or the usage.
func (t *Tx) GrantStatus(ctx context.Context, id string) (model.GrantStatus, error) {
	if err := t.usable(); err != nil {
		return "", err
	}
	var st string
	err := t.tx.QueryRowContext(ctx, "SELECT status FROM grants WHERE id = ?", id).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("sqlitestore: grant %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("sqlitestore: grant status: %w", t.check(err))
	}
	return model.GrantStatus(st), nil
}

// GrantRecord implements store.GrantRecordTx: the grant's record, as this
// transaction sees it, without reading its sessions (Usage is zero).
func (t *Tx) GrantRecord(ctx context.Context, id string) (model.Grant, error) {
	if err := t.usable(); err != nil {
		return model.Grant{}, err
	}
	g, err := getGrantRecord(ctx, t.tx, "id", id)
	if !errors.Is(err, store.ErrNotFound) {
		t.check(err)
	}
	return g, err
}

// GrantByCredential returns the grant holding a credential id.
func (t *Tx) GrantByCredential(ctx context.Context, credentialID string) (model.Grant, error) {
	if err := t.usable(); err != nil {
		return model.Grant{}, err
	}
	if credentialID == "" {
		return model.Grant{}, fmt.Errorf("sqlitestore: grant with empty credential id: %w", store.ErrNotFound)
	}
	g, err := getGrant(ctx, t.tx, "credential_id", credentialID)
	if !errors.Is(err, store.ErrNotFound) {
		t.check(err)
	}
	return g, err
}

// OpenGrants returns every pending or active grant, ordered by RequestedAt
// then ID, with Usage.
func (t *Tx) OpenGrants(ctx context.Context) ([]model.Grant, error) {
	if err := t.usable(); err != nil {
		return nil, err
	}
	gs, err := queryGrants(ctx, t.tx, openGrantsSQL)
	if err == nil {
		err = fillUsage(ctx, t.tx, gs)
	}
	if err != nil {
		return nil, t.check(err)
	}
	return gs, nil
}

// CreateGrant inserts a new grant; store.ErrConflict if the id or the
// credential id is taken. Usage is ignored.
func (t *Tx) CreateGrant(ctx context.Context, g model.Grant) error {
	if err := t.usable(); err != nil {
		return err
	}
	r, err := encodeGrant(g)
	if err != nil {
		return fmt.Errorf("sqlitestore: create grant: %w", err)
	}
	_, err = t.exec(ctx, insertGrantSQL, r.ID, r.Identity, r.Target, r.Account, r.Status,
		r.RequestedAt, r.SpanEnd, r.credentialID, r.Record)
	if isConstraint(err) {
		return fmt.Errorf("sqlitestore: create grant %q (credential %q): %w", g.ID, g.CredentialID, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlitestore: create grant %q: %w", g.ID, err)
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
		return fmt.Errorf("sqlitestore: update grant: %w", err)
	}
	res, err := t.exec(ctx, updateGrantSQL, r.Identity, r.Target, r.Account, r.Status,
		r.RequestedAt, r.SpanEnd, r.credentialID, r.Record, r.ID)
	if isConstraint(err) {
		return fmt.Errorf("sqlitestore: update grant %q: credential %q: %w", g.ID, g.CredentialID, store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("sqlitestore: update grant %q: %w", g.ID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlitestore: update grant %q: %w", g.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlitestore: update grant %q: %w", g.ID, store.ErrNotFound)
	}
	return t.bumpMaxSpan(ctx, r)
}

// bumpMaxSpan raises max_span_nanos to the grant's lifetime if it is longer
// and not longer than longSpan. It runs in the same transaction (and
// savepoint) as the grant write, so a rolled-back write rolls it back too.
func (t *Tx) bumpMaxSpan(ctx context.Context, r grantRow) error {
	span, counted := r.Span()
	if !counted || span <= 0 {
		return nil
	}
	if _, err := t.exec(ctx, bumpMaxSpanSQL, strconv.FormatInt(span, 10)); err != nil {
		return fmt.Errorf("sqlitestore: grant %q: update max_span_nanos: %w", r.ID, err)
	}
	return nil
}

// Identity returns one identity by name, as this transaction sees it.
func (t *Tx) Identity(ctx context.Context, name string) (model.Identity, error) {
	if err := t.usable(); err != nil {
		return model.Identity{}, err
	}
	id, err := getIdentity(ctx, t.tx, identityCols, name)
	if !errors.Is(err, store.ErrNotFound) {
		t.check(err)
	}
	return id, err
}

// PutIdentity inserts or replaces an identity.
func (t *Tx) PutIdentity(ctx context.Context, id model.Identity) error {
	if err := t.usable(); err != nil {
		return err
	}
	r, err := encodeIdentity(id)
	if err != nil {
		return fmt.Errorf("sqlitestore: put identity: %w", err)
	}
	if _, err := t.exec(ctx, putIdentitySQL, r.Name, r.Kind, r.Owner, r.Groups, r.Key, r.Source,
		r.Disabled, r.createdAt, r.CreatedBy, r.Bindings); err != nil {
		return fmt.Errorf("sqlitestore: put identity %q: %w", id.Name, err)
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
	var rec []byte
	err := t.tx.QueryRowContext(ctx, "SELECT record FROM sessions WHERE id = ?", end.ID).Scan(&rec)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("sqlitestore: end session %q: %w", end.ID, store.ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("sqlitestore: end session %q: %w", end.ID, t.check(err))
	}
	cur, err := storerow.DecodeSession(rec)
	if err != nil {
		return false, fmt.Errorf("sqlitestore: end session %q: %w", end.ID, err)
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
		return fmt.Errorf("sqlitestore: %s session: %w", verb, err)
	}
	args := append([]any{r.ID, r.GrantID, r.startedAt, r.Calls, r.Denied,
		r.BytesIn, r.BytesOut, r.usedJSON, r.Record}, extra...)
	if _, err := t.exec(ctx, query, args...); err != nil {
		return fmt.Errorf("sqlitestore: %s session %q: %w", verb, s.ID, err)
	}
	return nil
}

// InsertSession inserts a session record unless one with its ID exists.
func (t *Tx) InsertSession(ctx context.Context, s model.Session) error {
	return t.writeSession(ctx, insertSessionSQL, "insert", s)
}

// InsertSessionFrom is InsertSession of the row written from the
// session.started entry at seq, which orders the grant's sessions' pages
// (store.SessionStartTx, migration 8).
func (t *Tx) InsertSessionFrom(ctx context.Context, s model.Session, seq int64) error {
	return t.writeSession(ctx, insertSessionFromSQL, "insert", s, seq)
}

// AppendLog stores entries. The first Seq must equal the current log size
// and the others must follow it one by one; store.ErrConflict otherwise,
// with nothing stored.
func (t *Tx) AppendLog(ctx context.Context, entries []store.LogEntry) error {
	if err := t.usable(); err != nil {
		return err
	}
	if len(entries) == 0 {
		return nil
	}
	st, err := t.stmt(ctx, logSizeSQL)
	if err != nil {
		return fmt.Errorf("sqlitestore: append log: %w", t.check(err))
	}
	var size int64
	if err := st.QueryRowContext(ctx).Scan(&size); err != nil {
		return fmt.Errorf("sqlitestore: append log: log size: %w", t.check(err))
	}
	for i, e := range entries {
		if want := size + int64(i); e.Seq != want {
			return fmt.Errorf("sqlitestore: append log: entry %d has seq %d, want %d (log size %d): %w",
				i, e.Seq, want, size, store.ErrConflict)
		}
	}
	// Check every time first, so a bad entry fails the batch before
	// anything is written; each is converted again as its row's argument
	// (timeArg), which costs less than the slice of them this kept (16
	// bytes an entry).
	for _, e := range entries {
		if _, err := nullNanos(e.Time); err != nil {
			return fmt.Errorf("sqlitestore: append log: entry %d: %w", e.Seq, err)
		}
	}
	// Rows go in statements of logInsertRows, then of the powers of two
	// that make up the rest: a statement per row spent about twice the
	// CPU per row of a statement of 32 (BenchmarkAppendLog).
	i := 0
	if size == 0 {
		e := entries[0]
		if _, err := t.exec(ctx, insertFirstLogSQL, e.Seq, timeArg(e.Time), e.Type, nullArg(e.GrantID), nullArg(e.SessionID), e.Data, e.LeafHash); err != nil {
			return fmt.Errorf("sqlitestore: append log: entry %d: %w", e.Seq, err)
		}
		i = 1
	}
	if i == len(entries) {
		return t.appendRuns(ctx, entries, nil)
	}
	// The arguments' slice is the writer's, kept from one transaction to
	// the next (768 of them, 30 KiB), and cleared after use so that it
	// holds no entry's bytes.
	args := t.s.logArgs[:0]
	defer func() {
		clear(args[:cap(args)])
		t.s.logArgs = args[:0]
	}()
	var strs argCache
	for i < len(entries) {
		k := logSizes - 1
		for 1<<k > len(entries)-i {
			k--
		}
		n := 1 << k
		rows := entries[i : i+n]
		form := 0
		if n > 1 {
			form = sharedForm(rows)
		}
		args = args[:0]
		first := &rows[0]
		for j, s := range [...]string{first.Type, first.GrantID, first.SessionID} {
			if form&(1<<j) != 0 {
				args = append(args, driver.NamedValue{Ordinal: len(args) + 1, Value: strs.arg(s)})
			}
		}
		for _, e := range rows {
			args = append(args, driver.NamedValue{Ordinal: len(args) + 1, Value: timeArg(e.Time)})
			for j, s := range [...]string{e.Type, e.GrantID, e.SessionID} {
				if form&(1<<j) == 0 {
					args = append(args, driver.NamedValue{Ordinal: len(args) + 1, Value: strs.arg(s)})
				}
			}
			o := len(args)
			args = append(args,
				driver.NamedValue{Ordinal: o + 1, Value: e.Data},
				driver.NamedValue{Ordinal: o + 2, Value: e.LeafHash})
		}
		if err := t.execRaw(ctx, logStmt(form, k), args); err != nil {
			return fmt.Errorf("sqlitestore: append log: entries %d-%d: %w", entries[i].Seq, entries[i+n-1].Seq, err)
		}
		i += n
	}
	return t.appendRuns(ctx, entries, args)
}

// sharedForm is the form of rows' INSERT: the strings every row holds the
// same of.
func sharedForm(rows []store.LogEntry) int {
	form := shareType | shareGrant | shareSession
	first := &rows[0]
	for i := 1; i < len(rows) && form != 0; i++ {
		e := &rows[i]
		if e.Type != first.Type {
			form &^= shareType
		}
		if e.GrantID != first.GrantID {
			form &^= shareGrant
		}
		if e.SessionID != first.SessionID {
			form &^= shareSession
		}
	}
	return form
}

// timeArg is an entry's time as its row's argument: nanoseconds, or NULL
// for the zero time. AppendLog checked that nullNanos takes it.
func timeArg(tm time.Time) any {
	ns, _ := nullNanos(tm)
	if !ns.Valid {
		return nil
	}
	return ns.Int64
}

// appendRuns stores the runs of entries' sessions and grants, in
// statements of several runs: a statement per run cost about 14,000
// instructions, 420 per entry of BenchmarkIndexBatch's transactions of 300
// entries of 8 sessions. args is a buffer to build the arguments in.
func (t *Tx) appendRuns(ctx context.Context, entries []store.LogEntry, args []driver.NamedValue) error {
	for _, kind := range []struct {
		what string
		raw  int
		key  func(*store.LogEntry) string
	}{
		{"session", rawSessionRuns, func(e *store.LogEntry) string { return e.SessionID }},
		{"grant", rawGrantRuns, func(e *store.LogEntry) string { return e.GrantID }},
	} {
		runs := logRuns(entries, kind.key)
		for len(runs) > 0 {
			// The largest statement that the runs fill.
			k := min(bits.Len(uint(len(runs)))-1, rawGrantRuns-rawSessionRuns-1)
			n := 1 << k
			args = args[:0]
			for _, r := range runs[:n] {
				o := len(args)
				args = append(args,
					driver.NamedValue{Ordinal: o + 1, Value: r.key},
					driver.NamedValue{Ordinal: o + 2, Value: r.first},
					driver.NamedValue{Ordinal: o + 3, Value: r.last})
			}
			if err := t.execRaw(ctx, kind.raw+k, args); err != nil {
				return fmt.Errorf("sqlitestore: append log: %s %q entries %d-%d and %d more runs: %w",
					kind.what, runs[0].key, runs[0].first, runs[0].last, n-1, err)
			}
			runs = runs[n:]
		}
	}
	return nil
}

// nullArg is s as a statement's argument, NULL when empty, as nullString
// gives it but as a value the driver takes as it is: database/sql passes a
// driver.Valuer such as sql.NullString through reflection first, for each
// of the log's rows (AppendLog).
func nullArg(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// argCache hands out a batch's recurring strings (its entries' type, grant
// and sessions) as arguments boxed once: a string in an interface is an
// allocation, and the log's rows repeat a few such strings hundreds of
// times. Empty strings are NULL, as nullArg gives them.
type argCache struct {
	keys  [16]string
	boxes [16]any
	n     int // entries filled; then the next to replace, modulo 16
}

func (c *argCache) arg(s string) any {
	if s == "" {
		return nil
	}
	for i := range min(c.n, len(c.keys)) {
		if c.keys[i] == s {
			return c.boxes[i]
		}
	}
	i := c.n % len(c.keys)
	c.keys[i], c.boxes[i] = s, s
	c.n++
	return c.boxes[i]
}

// logRun is a range of log entries that holds entries of one session
// (or grant), and maybe others'.
type logRun struct {
	key         string
	first, last int64
}

// logRuns returns the runs covering entries' sessions (or grants, as key
// returns): one per key per batch, split where it skips more than runGap
// entries. Entries whose key is empty have none.
func logRuns(entries []store.LogEntry, key func(*store.LogEntry) string) []logRun {
	var (
		runs []logRun
		open map[string]int // a key's newest run in runs
	)
	for i := range entries {
		e := &entries[i]
		k := key(e)
		if k == "" {
			continue
		}
		if j, ok := open[k]; ok && e.Seq-runs[j].last <= runGap {
			runs[j].last = e.Seq
			continue
		}
		if open == nil {
			open = make(map[string]int)
		}
		open[k] = len(runs)
		runs = append(runs, logRun{k, e.Seq, e.Seq})
	}
	return runs
}

// PutCheckpoint stores a checkpoint; its ID is assigned by the store (c.ID is
// ignored).
func (t *Tx) PutCheckpoint(ctx context.Context, c store.Checkpoint) error {
	if err := t.usable(); err != nil {
		return err
	}
	created, err := nullNanos(c.CreatedAt)
	if err != nil {
		return fmt.Errorf("sqlitestore: put checkpoint: %w", err)
	}
	if _, err := t.exec(ctx, putCheckpointSQL, c.Size, c.Root, c.Note, c.Frontier, created); err != nil {
		return fmt.Errorf("sqlitestore: put checkpoint: %w", err)
	}
	return nil
}

var savepointRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

func (t *Tx) savepointCmd(ctx context.Context, verb, name string) error {
	if err := t.usable(); err != nil {
		return err
	}
	if !savepointRE.MatchString(name) {
		return fmt.Errorf("sqlitestore: %s: savepoint name %q is not an identifier", verb, name)
	}
	if _, err := t.tx.ExecContext(ctx, verb+` "`+name+`"`); err != nil {
		return fmt.Errorf("sqlitestore: %s %s: %w", verb, name, t.check(err))
	}
	return nil
}

// Savepoint starts a savepoint (SQL SAVEPOINT). name must be an identifier.
func (t *Tx) Savepoint(ctx context.Context, name string) error {
	return t.savepointCmd(ctx, "SAVEPOINT", name)
}

// RollbackTo undoes everything since the savepoint, which stays open (SQL
// ROLLBACK TO).
func (t *Tx) RollbackTo(ctx context.Context, name string) error {
	return t.savepointCmd(ctx, "ROLLBACK TO", name)
}

// Release ends the savepoint, keeping its changes in the transaction (SQL
// RELEASE).
func (t *Tx) Release(ctx context.Context, name string) error {
	return t.savepointCmd(ctx, "RELEASE", name)
}

// release hands the writer's connection back.
func (t *Tx) release() {
	t.s.txOpen.Store(false)
	t.conn.Close()
}

// Commit makes the transaction durable (the WAL is fsynced before Commit
// returns) and releases the writer.
func (t *Tx) Commit() error {
	if t.done {
		return fmt.Errorf("sqlitestore: commit: %w", sql.ErrTxDone)
	}
	t.done = true
	defer t.release()
	if t.aborted != nil {
		t.tx.Rollback()
		return fmt.Errorf("sqlitestore: commit: %w", t.aborted)
	}
	if err := t.tx.Commit(); err != nil {
		return fmt.Errorf("sqlitestore: commit: %w", err)
	}
	return nil
}

// Rollback discards the transaction and releases the writer. After Commit it
// returns an error wrapping sql.ErrTxDone and does nothing.
func (t *Tx) Rollback() error {
	if t.done {
		return fmt.Errorf("sqlitestore: rollback: %w", sql.ErrTxDone)
	}
	t.done = true
	defer t.release()
	if err := t.tx.Rollback(); err != nil && t.aborted == nil {
		return fmt.Errorf("sqlitestore: rollback: %w", err)
	}
	return nil
}
