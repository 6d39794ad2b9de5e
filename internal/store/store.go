// Package store defines the narrow persistence interface Airlock runs on.
//
// Every implementation (the embedded SQLite one in sqlitestore, the
// PostgreSQL one in pgstore) must pass the conformance suite in storetest, so
// that callers never depend on a particular database.
//
// Writes happen only inside a Tx. The audit log's writer owns the single
// write path: it batches many callers' changes into one transaction (group
// commit), isolating each caller's changes with a savepoint, and appends the
// log entries describing those changes in the same transaction, so a state
// change and its audit record commit together or not at all.
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
)

// ErrNotFound is returned when a record does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a create collides with an existing record.
var ErrConflict = errors.New("already exists")

// ErrCommitUnknown is wrapped by Tx.Commit when the commit's answer was lost
// and the store could not learn whether it took effect before it was closed
// or its bound on asking passed: the transaction may or may not be stored.
var ErrCommitUnknown = errors.New("outcome of the commit unknown")

// Store is the read side plus the way in to a write transaction.
type Store interface {
	// Identity returns one identity by name.
	Identity(ctx context.Context, name string) (model.Identity, error)
	// Identities returns every identity, ordered by name.
	Identities(ctx context.Context) ([]model.Identity, error)

	// Grant returns one grant with its Usage filled from its sessions.
	Grant(ctx context.Context, id string) (model.Grant, error)
	// GrantRecord returns one grant's record without its Usage (zero),
	// its sessions unread: for a reader that needs the record alone (its
	// status, holder, target, end), where Grant would sum the usage of
	// every one of the grant's sessions. ErrNotFound as Grant.
	GrantRecord(ctx context.Context, id string) (model.Grant, error)
	// Grants returns the grants matching f, ordered by RequestedAt then ID,
	// with Usage filled unless f.RecordsOnly.
	Grants(ctx context.Context, f GrantFilter) ([]model.Grant, error)

	// Session returns one session.
	Session(ctx context.Context, id string) (model.Session, error)
	// Sessions returns a grant's sessions ordered by StartedAt.
	Sessions(ctx context.Context, grantID string) ([]model.Session, error)
	// SessionsPage returns the sessions of f.GrantID in the order of
	// Sessions (StartedAt, a session without one first, then ID) that come
	// after f.After, at most f.Limit of them (0: no cap).
	SessionsPage(ctx context.Context, f SessionFilter) ([]model.Session, error)

	// LogSize is the number of log entries: the highest Seq plus one, so a
	// deleted entry in the middle does not shrink it (verification finds it).
	LogSize(ctx context.Context) (int64, error)
	// ScanLog calls fn for every entry with from <= Seq < to, in Seq order,
	// as stored (no checking: verification is the caller's job). It stops at
	// the first error fn returns and returns it.
	ScanLog(ctx context.Context, from, to int64, fn func(LogEntry) error) error
	// LogEntries returns the entries matching f in Seq order.
	LogEntries(ctx context.Context, f LogFilter) ([]LogEntry, error)
	// ScanCheckpoints calls fn for every checkpoint in ID (insertion) order.
	ScanCheckpoints(ctx context.Context, fn func(Checkpoint) error) error
	// LatestCheckpoint returns the checkpoint with the highest ID, or
	// ErrNotFound when none was written yet.
	LatestCheckpoint(ctx context.Context) (Checkpoint, error)

	// Begin starts the write transaction. Implementations allow only one at
	// a time; a second Begin waits for the first to finish.
	Begin(ctx context.Context) (Tx, error)

	Close() error
}

// Tx is a write transaction. Reads inside it see its own writes.
type Tx interface {
	Grant(ctx context.Context, id string) (model.Grant, error)
	// CreateGrant inserts a new grant; ErrConflict if the id or credential
	// id exists. A zero RequestedAt or an invalid Status is an error.
	CreateGrant(ctx context.Context, g model.Grant) error
	// UpdateGrant replaces a grant's record; ErrNotFound if it does not exist.
	// Usage is ignored (it is derived from sessions).
	UpdateGrant(ctx context.Context, g model.Grant) error
	// GrantByCredential returns the grant holding a credential id.
	GrantByCredential(ctx context.Context, credentialID string) (model.Grant, error)
	// OpenGrants returns every pending or active grant (used at start-up to
	// re-arm timers and to end grants that went overdue while stopped).
	OpenGrants(ctx context.Context) ([]model.Grant, error)

	Identity(ctx context.Context, name string) (model.Identity, error)
	// PutIdentity inserts or replaces an identity.
	PutIdentity(ctx context.Context, id model.Identity) error

	// PutSession inserts or replaces a session record.
	PutSession(ctx context.Context, s model.Session) error
	// InsertSession inserts a session record unless one with its ID
	// exists, which is then left as it is: the row a session.started
	// entry implies, written as the entry is stored (review.StoreRows),
	// must never overwrite a summary written since.
	InsertSession(ctx context.Context, s model.Session) error
	// EndSession records the end of session end.ID in its row: end's
	// EndedAt, Calls, Denied, BytesIn, BytesOut and Used (unless nil)
	// replace the row's, the rest of the row stays. A row that already
	// records an end is left as it is (false). ErrNotFound if the session
	// has no row.
	EndSession(ctx context.Context, end model.Session) (bool, error)

	// AppendLog stores entries; their Seq values must continue the log
	// without a gap (ErrConflict otherwise). It keeps nothing of entries
	// (their Data and LeafHash) once it returns: the audit log reuses
	// their memory once the transaction commits.
	AppendLog(ctx context.Context, entries []LogEntry) error
	// PutCheckpoint stores a checkpoint (ID is assigned by the store).
	PutCheckpoint(ctx context.Context, c Checkpoint) error

	// Savepoint, RollbackTo and Release scope one caller's changes inside a
	// group-committed batch so a failing caller does not abort the others.
	Savepoint(ctx context.Context, name string) error
	RollbackTo(ctx context.Context, name string) error
	Release(ctx context.Context, name string) error

	Commit() error
	Rollback() error
}

// EndedRow is session row cur with the end stated by end (as
// Tx.EndSession writes it), and false if cur already records an end.
func EndedRow(cur, end model.Session) (model.Session, bool) {
	if !cur.EndedAt.IsZero() {
		return cur, false
	}
	cur.EndedAt, cur.Calls, cur.Denied, cur.BytesIn, cur.BytesOut = end.EndedAt, end.Calls, end.Denied, end.BytesIn, end.BytesOut
	if end.Used != nil {
		cur.Used = end.Used
	}
	return cur, true
}

// GrantFilter selects grants for the review query. Zero fields do not filter.
type GrantFilter struct {
	Account  string
	Target   string
	Identity string
	Status   []model.GrantStatus
	// Since and Until select grants whose lifetime, from RequestedAt to
	// Deadline(), overlaps [Since, Until). Either may be zero (unbounded).
	// A grant whose Deadline() is zero counts as still live.
	Since, Until time.Time
	// After, when its ID is set, selects only the grants that come after
	// it in the order (RequestedAt, then ID): the cursor of a list read a
	// page at a time (GET /v1/grants), each page starting after the last
	// grant of the one before. The other fields still filter every page.
	After GrantKey
	// Limit caps the result; 0 means no cap.
	Limit int
	// RecordsOnly answers the grants' records alone, Usage zero, their
	// sessions unread: for a listing that needs only the grants' rows,
	// such as a sweep that re-reads each grant it ends (GrantRecord).
	// With Usage, the listing reads every session of every grant listed.
	RecordsOnly bool
}

// GrantKey is a grant's place in the order the review query answers in:
// its RequestedAt, then its ID (which is unique, so the order is total).
type GrantKey struct {
	RequestedAt time.Time
	ID          string
}

// SessionFilter selects a page of a grant's sessions (GET
// /v1/grants/{id}/sessions).
type SessionFilter struct {
	GrantID string
	// After, when its ID is set, selects only the sessions that come after
	// it: the cursor of a list read a page at a time.
	After SessionKey
	Limit int
}

// SessionKey is a session's place in the order a grant's sessions are
// listed in: its StartedAt (zero, a session without one, first), then its
// ID.
type SessionKey struct {
	StartedAt time.Time
	ID        string
}

// IndexedLogTypes are the entry types that stores index on their own, so
// that listing them (a rare type among millions of calls, such as the
// findings an auditor asks for, the log.refused entries whose named entries
// every derivation leaves out) reads their entries only, not the whole log.
// pgstore matches these in its query as literals, so that a generic plan
// of a cached statement still uses the partial index: they are constants,
// never a caller's input.
var IndexedLogTypes = map[string]bool{"finding": true, "log.refused": true}

// LogFilter selects log entries by grant or session.
type LogFilter struct {
	GrantID   string
	SessionID string
	Type      string
	// After, when positive, selects only the entries with a greater
	// sequence number: the cursor of a list read a page at a time (GET
	// /v1/findings), each page starting after the last entry of the one
	// before.
	After int64
	Limit int
	// NoSession selects only the entries of no session (SessionID must be
	// empty): with GrantID, the grant's own entries (its lifecycle,
	// commands, findings), which both stores index apart, so that reading
	// them reads them alone. A grant whose agent records each command
	// between its calls holds thousands of them among its sessions'
	// entries, and proving its record reads them all again
	// (internal/grants: grantproof.go).
	NoSession bool
}

// SharedLogTx is implemented by the write transactions of stores that
// several processes (replicas) write at once, such as pgstore: Begin takes a
// lock that serializes every process's writers, after which
// LatestCheckpoint reads the log's newest checkpoint including those
// committed by other processes (ErrNotFound when there is none). The audit
// log reads it at the start of every batch to continue the shared log.
type SharedLogTx interface {
	LatestCheckpoint(ctx context.Context) (Checkpoint, error)
}

// LockWaiter is implemented by stores whose write transactions can wait,
// with no bound of their own, on what other sessions of the database hold
// (pgstore: another process's writer holding the writers' lock, a table
// someone locked). Whoever runs a transaction on such a store bounds it
// through the contexts it passes (the audit log's Options.BatchTimeout).
// SQLite's waits are bounded by its busy timeout already.
type LockWaiter interface {
	WaitsOnOtherSessions()
}

// GrantStatusTx is implemented by write transactions that read a grant's
// status alone (both stores): the shared audit log checks it for every
// gateway record of a grant another replica may have ended
// (auditlog.AppendLive), and a credential issue or command for its grant
// (grants' appendWhileActive), in the log's writer, where Grant would sum
// the usage of all the grant's sessions.
type GrantStatusTx interface {
	GrantStatus(ctx context.Context, id string) (model.GrantStatus, error)
}

// GrantRecordTx is implemented by write transactions that read a grant's
// stored record without its Usage (both stores): what a write that changes
// only the record reads (UpdateGrant ignores Usage). Summing the usage
// reads every session of the grant, inside the log's writer, which holds
// every gateway's records meanwhile: a finding read it on a grant of
// thousands of sessions, once per finding. GrantRecord locks the row as
// Grant does (pgstore), and answers ErrNotFound as Grant does.
type GrantRecordTx interface {
	GrantRecord(ctx context.Context, id string) (model.Grant, error)
}

// LogCheckpointAppender is implemented by write transactions that can
// store entries and the checkpoint covering them in one statement (pgstore),
// which the audit log uses for the last entries of a batch. Its contract is
// AppendLog's followed by PutCheckpoint's: both or neither are stored.
type LogCheckpointAppender interface {
	AppendLogCheckpoint(ctx context.Context, entries []LogEntry, c Checkpoint) error
}

// CheckpointFinder is implemented by stores that can find a checkpoint by
// the size of the tree it covers (indexed). It returns the newest such
// checkpoint, or ErrNotFound.
type CheckpointFinder interface {
	CheckpointOfSize(ctx context.Context, size int64) (Checkpoint, error)
}

// LogLeafScanner is implemented by stores that can stream only what
// verification reads of each entry (a third of the columns), which makes
// `audit verify` faster. Its contract is ScanLog's; data and leaf belong to
// fn, which may keep them.
type LogLeafScanner interface {
	ScanLogLeaves(ctx context.Context, from, to int64, fn func(seq int64, data, leaf []byte) error) error
}

// LogEntry is one record of the append-only log. Data is the exact byte
// string that was hashed into the Merkle tree; the other fields are copies
// kept for indexing and are not trusted by verification.
type LogEntry struct {
	Seq       int64
	Time      time.Time
	Type      string
	GrantID   string
	SessionID string
	Data      []byte
	// LeafHash is the RFC 6962 record hash of Data as computed at append
	// time; verification recomputes it to pinpoint a modified entry.
	LeafHash []byte
}

// Checkpoint is a signed tree head written after a batch of appends.
type Checkpoint struct {
	ID   int64
	Size int64
	Root []byte
	// Note is the signed checkpoint text (a golang.org/x/mod/sumdb/note).
	Note []byte
	// Frontier holds the hashes of the perfect subtrees that make up the tree
	// of this size, concatenated, so appending can resume after a restart
	// without rereading the log.
	Frontier  []byte
	CreatedAt time.Time
	// MAC is what releases from 3 December 2026 wrote beside a shared
	// log's checkpoints (pgstore's head_mac) and took in place of the
	// signature: an HMAC under a key derived from the credential key.
	// package auditlog no longer writes or reads it (a replica continues
	// only from a head the log's key signed); stores keep the column.
	MAC []byte
}

// MaxSpanDiff describes what is wrong with a store's max_span_nanos (its
// text, and whether it is there at all) given longest, the longest lifetime
// up to 30 days of any grant as its record says, or returns "". A review
// of a time window scans only the grants requested at most max_span_nanos
// before it (and those that lived longer than 30 days), so a value lowered
// behind the store's back hides the grants requested before the window and
// live in it from `airlock grants --since/--day` (GET /v1/grants with a
// window); both stores' IndexDiffs report it. (The evidence export finds
// its grants in the log.)
func MaxSpanDiff(stored string, present bool, longest int64) string {
	n, err := strconv.ParseInt(stored, 10, 64)
	switch {
	case !present && longest == 0:
		return ""
	case !present || err != nil || n < 0:
		return fmt.Sprintf("meta max_span_nanos is %q, not a number of nanoseconds: reviews of a time window are not bounded by the grants' lifetimes (the longest lived %d ns)", stored, longest)
	case n < longest:
		return fmt.Sprintf("meta max_span_nanos is %d, but a grant lived %d ns: reviews of a time window (grants --since/--day) skip the grants requested more than %d ns before it", n, longest, n)
	}
	return ""
}
