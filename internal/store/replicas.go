package store

import (
	"context"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
)

// Optional interfaces for stores that several Airlock replicas share (issue
// 14). A store that one process owns (sqlitestore) implements none of them,
// and package grants then keeps its single-process behaviour.

// GrantNotifier is implemented by the Tx of a shared store. NotifyGrant
// queues a notice that grant grantID changed, sent by origin (the replica's
// id); the store delivers it to the other replicas' listeners only if and
// when the transaction commits (PostgreSQL NOTIFY), and never if it rolls
// back, so a replica is never told of a change that did not happen.
// NotifyIdentity does the same for a change of the identity named name;
// listeners receive it as the id IdentityNotice + name.
type GrantNotifier interface {
	NotifyGrant(ctx context.Context, grantID, origin string) error
	NotifyIdentity(ctx context.Context, name, origin string) error
}

// IdentityNotice prefixes the names of identities in change notices, to
// tell them from grant ids (which never contain a colon).
const IdentityNotice = "identity:"

// CredentialReader is implemented by a shared store whose grants other
// replicas create: it reads the grant holding a credential id outside any
// write transaction (ErrNotFound if none; Usage left empty), for a replica
// that does not yet have the grant in memory.
type CredentialReader interface {
	GrantByCredential(ctx context.Context, credentialID string) (model.Grant, error)
}

// SessionTx is implemented by the Tx of a shared store: it reads a session
// inside the write transaction, after the writers' lock, so that two
// replicas ending a dead replica's session see each other's end and write
// it once.
type SessionTx interface {
	Session(ctx context.Context, id string) (model.Session, error)
}

// ReplicaRegistry is implemented by a shared store: ReplicaAlive says
// whether a process is running as the replica named name (pgstore: it
// holds that replica's lock, taken on its listening connection).
type ReplicaRegistry interface {
	ReplicaAlive(ctx context.Context, name string) (bool, error)
}

// ClockTx is implemented by the Tx of a shared store: Now reads the
// database's clock from inside the write transaction. The replicas' own
// clocks may disagree; the database's is the one they share, so a
// deadline checked against it (a request's decision deadline) holds
// whichever replica decides.
type ClockTx interface {
	Now(ctx context.Context) (time.Time, error)
}

// ServerClock is implemented by a shared store: ServerNow reads the
// database's clock outside any transaction. Each replica measures its
// offset from it and writes, and enforces, every time in the database's
// time (package grants), so that replicas whose clocks disagree still
// agree on when a grant started and when it ends.
type ServerClock interface {
	ServerNow(ctx context.Context) (time.Time, error)
}

// OpenSessionLister is implemented by both stores: OpenSessions returns
// every session whose row records no end, through an index of those alone,
// so that the sweep of dead replicas' sessions, and a lone process's
// recovery at start, cost what is open, not what was ever recorded.
type OpenSessionLister interface {
	OpenSessions(ctx context.Context) ([]model.Session, error)
}

// SessionSlots is implemented by a shared store: the slots that bound a
// grant's PostgreSQL sessions across the replicas (a postgres target's
// max_sessions_per_grant). Each replica takes one for a session it admits
// and gives it back at the session's end; a slot's lease, which its
// replica pushes forward while it runs, measured on the database's clock
// as the replicas read it (package grants), lets the others count a dead
// replica's slots out once it has passed.
type SessionSlots interface {
	// TakeSlot takes slot s for s.GrantID if fewer than max unexpired
	// slots of the grant are held at now, deleting those expired. If only
	// kept slots (Slot.Kept) stand in the way, as many as needed are taken
	// over (deleted and returned in stolen: their replica must close the
	// connection each stands for), this replica's own first. taken is
	// false, and nothing changed but the expired slots, if the grant's
	// sessions alone reach max.
	TakeSlot(ctx context.Context, s Slot, max int, now time.Time) (taken bool, stolen []Slot, err error)
	// KeepSlot marks slot id kept: its session ended and the upstream
	// connection it stands for waits for the grant's next session.
	KeepSlot(ctx context.Context, id string) error
	// ReleaseSlots deletes the slots ids (those already gone are no error).
	ReleaseSlots(ctx context.Context, ids []string) error
	// RenewSlots pushes the leases of slots (one replica's) to until. A
	// kept slot that is missing (taken over, or its lease passed and
	// another replica deleted it) is returned in lost; a session's is
	// returned in missing, not written: its replica takes it again
	// (TakeSlot), under the grant's bound, since the others may have
	// filled the grant meanwhile (the rows gone with a restart of the
	// database, say).
	RenewSlots(ctx context.Context, replica string, slots []Slot, until time.Time) (lost, missing []string, err error)
	// ClearSlots deletes every slot of replica: a replica's earlier run's,
	// as it starts again under the same name.
	ClearSlots(ctx context.Context, replica string) error
}

// Slot is one of a grant's session slots (SessionSlots).
type Slot struct {
	ID, GrantID, Replica string
	// Kept: the session ended and its upstream connection is kept.
	Kept       bool
	LeaseUntil time.Time
}

// SessionLogOrder is implemented by both stores: a grant's sessions paged
// in the order their session.started entries were stored (the log's
// sequence, assigned under the writers' lock every replica takes), not by
// their StartedAt. A session's StartedAt is its replica's time (its clock
// plus its measured offset from the database's), taken before its start
// is stored: another replica's may lag it, a start may be stored after a
// later one, and a lone server's clock may step back (NTP), so a cursor on
// StartedAt could step past a session stored after the page that held the
// cursor. A cursor on the sequence cannot: every session stored later
// comes after it.
type SessionLogOrder interface {
	// SessionsInLogOrder returns up to limit (all if not positive) of
	// grantID's sessions after the one whose start is stored at afterSeq
	// (0: from the first), in that order, with each one's start sequence.
	// A session whose row has none (written before schema version 11,
	// 8 on SQLite, from no entry) reads as 0 and comes first, by ID:
	// afterID is then the cursor's place among those.
	SessionsInLogOrder(ctx context.Context, grantID string, afterSeq int64, afterID string, limit int) ([]model.Session, []int64, error)
}

// SessionStartTx is implemented by the transactions of a store that pages
// sessions in log order (SessionLogOrder): InsertSession that also stores
// seq, the sequence of the session.started entry the row is written from.
type SessionStartTx interface {
	InsertSessionFrom(ctx context.Context, s model.Session, seq int64) error
}
