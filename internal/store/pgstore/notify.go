package pgstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/storerow"
)

// Grant change notices between replicas (see package grants, "Several
// replicas"). A write transaction that changes a grant calls NotifyGrant,
// which runs pg_notify inside it: PostgreSQL delivers the notice to every
// listener only when the transaction commits, and in commit order. Each
// replica listens on one dedicated connection outside the pool (a pooled
// connection could be handed to a query mid-LISTEN, and the pool may
// close idle ones), opened by a Listener.

var (
	_ store.GrantNotifier     = (*Tx)(nil)
	_ store.SessionTx         = (*Tx)(nil)
	_ store.CredentialReader  = (*Store)(nil)
	_ store.ReplicaRegistry   = (*Store)(nil)
	_ store.ClockTx           = (*Tx)(nil)
	_ store.ServerClock       = (*Store)(nil)
	_ store.OpenSessionLister = (*Store)(nil)
	_ store.SessionLogOrder   = (*Store)(nil)
	_ store.SessionStartTx    = (*Tx)(nil)
)

// Now reads the database server's clock (clock_timestamp(): the time of
// the call, not of the transaction's start) inside the write transaction
// (store.ClockTx).
func (t *Tx) Now(ctx context.Context) (time.Time, error) {
	if err := t.usable(); err != nil {
		return time.Time{}, err
	}
	var now time.Time
	if err := t.tx.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("pgstore: the database's clock: %w", err)
	}
	return now, nil
}

// ServerNow reads the database server's clock outside any transaction
// (store.ServerClock): one round trip on a pooled connection, which the
// replica's periodic measurement of its offset from that clock times.
func (s *Store) ServerNow(ctx context.Context) (time.Time, error) {
	var now time.Time
	if err := s.pool.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("pgstore: the database's clock: %w", err)
	}
	return now, nil
}

// replicaLockKey names the advisory lock a replica holds while it runs
// (hashed by PostgreSQL: hashtextextended(key, 0)).
func (s *Store) replicaLockKey(name string) string { return "airlock.replica/" + s.schema + "/" + name }

// replicaLockHolders selects the pids holding the advisory lock of key $1
// (a bigint advisory lock shows in pg_locks split into classid and objid).
const replicaLockHolders = `SELECT l.pid FROM pg_catalog.pg_locks l, (SELECT hashtextextended($1, 0) AS k) k
	WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
		AND l.classid::bigint = (k.k >> 32) & 4294967295 AND l.objid::bigint = k.k & 4294967295`

// Session reads a session inside the write transaction (store.SessionTx).
func (t *Tx) Session(ctx context.Context, id string) (model.Session, error) {
	if err := t.usable(); err != nil {
		return model.Session{}, err
	}
	return getSession(ctx, t.tx, id)
}

// getSession reads one session through q (the pool or a transaction).
func getSession(ctx context.Context, q querier, id string) (model.Session, error) {
	var rec []byte
	err := q.QueryRow(ctx, "SELECT record FROM sessions WHERE id = $1", id).Scan(&rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return model.Session{}, fmt.Errorf("pgstore: session %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return model.Session{}, fmt.Errorf("pgstore: session %q: %w", id, err)
	}
	ss, err := storerow.DecodeSession(rec)
	if err != nil {
		return model.Session{}, fmt.Errorf("pgstore: session %q: %w", id, err)
	}
	return ss, nil
}

// ReplicaAlive says whether a process runs as replica name: whether its
// listener's connection holds the replica's advisory lock
// (store.ReplicaRegistry). It only looks at pg_locks; it takes nothing.
func (s *Store) ReplicaAlive(ctx context.Context, name string) (bool, error) {
	var alive bool
	err := s.pool.QueryRow(ctx, "SELECT EXISTS ("+replicaLockHolders+")", s.replicaLockKey(name)).Scan(&alive)
	if err != nil {
		return false, fmt.Errorf("pgstore: is replica %q alive: %w", name, err)
	}
	return alive, nil
}

// grantChannel is the notification channel of the store's schema: schemas
// of one database share the channel namespace, so two Airlock
// installations in one database must not hear each other. A hash keeps the
// name within PostgreSQL's 63 bytes whatever the schema's name.
func (s *Store) grantChannel() string {
	h := fnv.New64a()
	h.Write([]byte(s.schema))
	return fmt.Sprintf("airlock_grants_%016x", h.Sum64())
}

// NotifyGrant queues a notice that grantID changed, from replica origin,
// delivered at commit (store.GrantNotifier). Neither may contain a space.
func (t *Tx) NotifyGrant(ctx context.Context, grantID, origin string) error {
	if err := t.usable(); err != nil {
		return err
	}
	if grantID == "" || strings.ContainsAny(grantID+origin, " \x00") {
		return fmt.Errorf("pgstore: notify: grant id %q or origin %q is empty or has a space", grantID, origin)
	}
	if _, err := t.tx.Exec(ctx, "SELECT pg_notify($1, $2)", t.s.grantChannel(), grantID+" "+origin); err != nil {
		return fmt.Errorf("pgstore: notify change of grant %s: %w", grantID, err)
	}
	return nil
}

// NotifyIdentity queues a notice that identity name changed, received as
// store.IdentityNotice + name (store.GrantNotifier).
func (t *Tx) NotifyIdentity(ctx context.Context, name, origin string) error {
	return t.NotifyGrant(ctx, store.IdentityNotice+name, origin)
}

// GrantByCredential returns the grant holding a credential id, outside any
// write transaction and without its Usage (store.CredentialReader): one
// index lookup, as a gateway's cache miss needs nothing more.
func (s *Store) GrantByCredential(ctx context.Context, credentialID string) (model.Grant, error) {
	if credentialID == "" {
		return model.Grant{}, fmt.Errorf("pgstore: grant with empty credential id: %w", store.ErrNotFound)
	}
	var rec []byte
	err := s.pool.QueryRow(ctx, "SELECT record FROM grants WHERE credential_id = $1", credentialID).Scan(&rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return model.Grant{}, fmt.Errorf("pgstore: grant with credential id %q: %w", credentialID, store.ErrNotFound)
	}
	if err != nil {
		return model.Grant{}, fmt.Errorf("pgstore: grant with credential id %q: %w", credentialID, err)
	}
	return storerow.DecodeGrant(rec)
}

// Listener timings. A silent connection (a network partition sends no
// reset) is found by a ping after listenIdle without a notice, which fails
// if it has no answer within listenPing: a replica whose listening
// connection is cut silently finds out within listenIdle+listenPing (3 s;
// TestListenerSilentPartition measures it), and from then refuses every
// credential until it has reconnected and re-read the open grants. A ping
// costs the server a SELECT 1 per idle second per replica; listenPing is
// well above what a SELECT 1 takes on a loaded server, since a ping that
// times out costs a reconnection and a re-read of every open grant.
const (
	listenIdle       = time.Second
	listenPing       = 2 * time.Second
	listenConnect    = 5 * time.Second
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 5 * time.Second
)

// Listener receives the grant change notices of a Store on a connection
// of its own. See Run.
type Listener struct {
	s    *Store
	name string
}

// Listener returns the store's grant change listener; nothing happens
// until Run. name (the replica's id) is added to the connection's
// application_name ("airlock-listen <name>"), so that an operator can tell
// the replicas' listeners apart in pg_stat_activity.
func (s *Store) Listener(name string) *Listener { return &Listener{s: s, name: name} }

// Run listens until ctx ends, reconnecting with backoff (100 ms doubling
// to 5 s) whenever the connection fails. After each LISTEN it calls
// connected, which must re-read whatever may have changed while nobody
// listened; if connected fails, the connection is dropped and the cycle
// starts again. Each notice then calls changed (one at a time, in commit
// order). When the connection fails, or a connection attempt does, lost is
// called with the reason before the next attempt. The callbacks run on
// Run's goroutine.
func (l *Listener) Run(ctx context.Context, changed func(grantID, origin string), connected func(ctx context.Context) error, lost func(error)) {
	backoff := listenBackoffMin
	for {
		wasUp, err := l.session(ctx, changed, connected)
		if ctx.Err() != nil {
			return
		}
		lost(err)
		if wasUp {
			backoff = listenBackoffMin
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, listenBackoffMax)
	}
}

// takeReplicaLock takes the replica's lock on conn. If a listener of the
// same name holds it, that is this replica's previous connection, which
// the server has not yet seen die (a network failure sends no reset):
// it is terminated and the lock taken again. Replica names must be unique;
// two processes sharing one would take it from each other in turn, and
// each time log the error below.
func (l *Listener) takeReplicaLock(ctx context.Context, conn *pgx.Conn, appName string) error {
	key := l.s.replicaLockKey(l.name)
	for attempt := 0; ; attempt++ {
		var mine bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key).Scan(&mine); err != nil {
			return err
		}
		if mine {
			return nil
		}
		if attempt == 1 {
			return fmt.Errorf("another process is running as replica %q (replica names must be unique)", l.name)
		}
		// PostgreSQL keeps at most 63 bytes of an application_name, so
		// the holder's is a prefix of this one's.
		if _, err := conn.Exec(ctx, `SELECT pg_catalog.pg_terminate_backend(h.pid, 2000) FROM (`+replicaLockHolders+`) h
			JOIN pg_catalog.pg_stat_activity a ON a.pid = h.pid
			WHERE a.application_name <> '' AND starts_with($2, a.application_name)`, key, appName); err != nil {
			return err
		}
	}
}

// session runs one connection: connect, LISTEN, connected, then notices
// until the connection fails. wasUp says whether connected succeeded.
func (l *Listener) session(ctx context.Context, changed func(grantID, origin string), connected func(ctx context.Context) error) (wasUp bool, err error) {
	cfg := l.s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = strings.TrimSpace(listenAppPrefix + l.name)
	// A wait that times out must leave the connection usable: a deadline
	// on the socket does, where pgx's default (a cancel request) would
	// open a connection to the server at every idle interval.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	cctx, cancel := context.WithTimeout(ctx, listenConnect)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err == nil {
		_, err = conn.Exec(cctx, "LISTEN "+pgx.Identifier{l.s.grantChannel()}.Sanitize())
	}
	if err == nil && l.name != "" {
		// The replica's lock says it runs (ReplicaAlive) for as long as
		// this connection lives; a second process with the same name is
		// refused rather than mistaken for this one.
		err = l.takeReplicaLock(cctx, conn, cfg.RuntimeParams["application_name"])
		if err == nil {
			// For LiveReplicas: the name, whole, and the backend that
			// holds its lock.
			_, err = conn.Exec(cctx, `INSERT INTO replica_listeners (name, pid) VALUES ($1, pg_backend_pid())
				ON CONFLICT (name) DO UPDATE SET pid = excluded.pid`, l.name)
		}
	}
	cancel()
	if err != nil {
		if conn != nil {
			conn.Close(context.Background())
		}
		return false, fmt.Errorf("pgstore: listen for grant changes on %s: %w", l.s.where(), err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn.Close(cctx)
		cancel()
	}()
	if err := connected(ctx); err != nil {
		return false, fmt.Errorf("pgstore: after LISTEN: %w", err)
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, listenIdle)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return true, ctx.Err()
		case err == nil:
			id, origin, _ := strings.Cut(n.Payload, " ")
			changed(id, origin)
		case pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded):
			pctx, cancel := context.WithTimeout(ctx, listenPing)
			_, err = conn.Exec(pctx, "SELECT 1")
			cancel()
			if err != nil {
				return true, fmt.Errorf("pgstore: grant listener connection: ping: %w", err)
			}
		default:
			return true, fmt.Errorf("pgstore: grant listener connection: %w", err)
		}
	}
}
