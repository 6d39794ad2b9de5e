package pgroles

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// terminateWait is how long pg_terminate_backend waits for each backend to
// exit, so that DROP ROLE does not run while a session still holds the role.
const terminateWait = 5 * time.Second

// roleRowWait is how long ALTER ROLE waits for the role's row
// (lock_timeout, in milliseconds); only a session of the role itself holds
// it that long, since Managers work on a role under its advisory lock.
const roleRowWait = "250"

// lockTimedOut says err is lock_not_available (55P03): lock_timeout ran out.
func lockTimedOut(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "55P03"
}

// concurrentlyUpdated says err is PostgreSQL's refusal (XX000, "tuple
// concurrently updated") to rewrite a catalog row that another transaction
// changed after this one read it. GRANT, REVOKE and DROP OWNED rewrite the
// privileges in the catalog rows of the database, its schemas and tables,
// and fail that way rather than wait. Managers serialise on lockACL, but a
// DBA's GRANT, or another tool's, takes no lock of Airlock's; the
// transaction is simply run again, since the other writer has committed by
// then.
func concurrentlyUpdated(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "XX000" && strings.Contains(pe.Message, "tuple concurrently updated")
}

// pauseRetry waits a little longer each round before a transaction that
// lost a race on a catalog row is run again, or until ctx ends.
func pauseRetry(ctx context.Context, round int) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(round+1) * 10 * time.Millisecond):
		return nil
	}
}

// terminateRounds bounds the NOLOGIN-then-terminate loop: a backend that
// passed its login check just before NOLOGIN committed appears in
// pg_stat_activity a moment later, and a second round catches it.
const terminateRounds = 10

// Drop removes a grant's role: ALTER ROLE NOLOGIN first (no new sessions), terminate its
// backends (pg_terminate_backend for every pid of that usename), then REVOKE/DROP OWNED BY and
// DROP ROLE. Idempotent (a missing role is fine).
//
// DROP OWNED also drops objects the role owns in this database (it can own
// some only where PUBLIC may CREATE); the data an agent made under a grant
// does not outlive the grant. A role in our name space that is not ours
// (another database's, or a real role) is refused, never altered.
func (m *Manager) Drop(ctx context.Context, grantID string) error {
	name, err := roleFor(grantID)
	if err != nil {
		return err
	}
	e := m.entryFor(grantID)
	defer e.mu.Unlock()
	return m.dropLocked(ctx, grantID, name, e)
}

// dropLocked is Drop with the grant's entry already locked.
func (m *Manager) dropLocked(ctx context.Context, grantID, name string, e *entry) error {
	conn, err := m.pool.acquire(ctx)
	if err != nil {
		return err
	}
	err = m.drop(ctx, conn, name)
	m.pool.release(conn, err != nil)
	// Whatever happened, the cached Role may no longer log in (NOLOGIN may
	// have committed): never hand it out again.
	e.role = nil
	if err != nil {
		return err
	}
	m.forget(grantID, e)
	return nil
}

func (m *Manager) drop(ctx context.Context, conn *pgx.Conn, name string) error {
	ident := pgx.Identifier{name}.Sanitize()
	// Committed on its own so that it takes effect before the backends go:
	// from here on no new session can start as this role. Under the role's
	// lock: the replicas that had the grant all drop its role at once.
	killed := 0
	for round := 0; ; round++ {
		gone, err := m.inRoleTx(ctx, conn, name, false, func(tx pgx.Tx) error {
			// A grant role may change its own password (the gateway
			// refuses only the statements it can read): left uncommitted
			// in an open transaction, that change holds the role's
			// catalog row, and NOLOGIN would wait for it as long as the
			// session pleases. So it waits briefly, and on lock_timeout
			// the role's sessions are terminated and NOLOGIN tried again.
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = "+roleRowWait); err != nil {
				return fmt.Errorf("pgroles: set lock_timeout: %w", err)
			}
			if _, err := tx.Exec(ctx, "ALTER ROLE "+ident+" NOLOGIN"); err != nil {
				return fmt.Errorf("pgroles: set %s NOLOGIN: %w", name, err)
			}
			return m.ensureMember(ctx, tx, name)
		})
		if !lockTimedOut(err) || round == terminateRounds {
			if err != nil || gone {
				return err
			}
			break
		}
		n, err := m.terminateOurs(ctx, conn, name)
		if err != nil {
			return err
		}
		killed += n
	}
	for round := 0; ; round++ {
		n, found, err := terminate(ctx, conn, name)
		if err != nil {
			return err
		}
		killed += n
		if found == 0 {
			break
		}
		if round == terminateRounds {
			return fmt.Errorf("pgroles: %d sessions of %s still running after %d rounds of pg_terminate_backend", found-n, name, terminateRounds)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	var gone bool
	var err error
	for round := 0; ; round++ {
		gone, err = m.inRoleTx(ctx, conn, name, true, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "DROP OWNED BY "+ident); err != nil {
				return fmt.Errorf("pgroles: drop owned by %s: %w", name, err)
			}
			if _, err := tx.Exec(ctx, "DROP ROLE "+ident); err != nil {
				// 2BP01: it still holds privileges in another database; only a
				// Manager for that database (or a DBA) can clear them.
				return fmt.Errorf("pgroles: drop role %s: %w", name, err)
			}
			return nil
		})
		// A writer outside Airlock's locks changed a catalog row the
		// revokes rewrite: start over from a fresh snapshot.
		if !concurrentlyUpdated(err) || round == terminateRounds {
			break
		}
		if err = pauseRetry(ctx, round); err != nil {
			return err
		}
	}
	if err != nil || gone {
		return err
	}
	m.logger.Info("pgroles: grant role dropped", "role", name, "sessions_terminated", killed)
	return nil
}

// inRoleTx runs fn in a transaction holding the role's lock (and, with
// acl, the database's ACL lock: see lockACL), if the role exists and is
// ours; gone says it does not exist (any more: another replica dropped it).
func (m *Manager) inRoleTx(ctx context.Context, conn *pgx.Conn, name string, acl bool, fn func(pgx.Tx) error) (gone bool, err error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("pgroles: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := m.lockRole(ctx, tx, name); err != nil {
		return false, err
	}
	if acl {
		if err := m.lockACL(ctx, tx); err != nil {
			return false, err
		}
	}
	exists, ours, err := m.lookupRole(ctx, tx, name)
	if err != nil {
		return false, err
	}
	if !exists {
		return true, nil
	}
	if !ours {
		return false, fmt.Errorf("pgroles: role %s %w", name, errNotOurs)
	}
	if err := fn(tx); err != nil {
		return false, err
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("pgroles: commit on %s: %w", name, err)
	}
	return false, nil
}

// terminate signals every backend of role, waiting for each to exit, and
// says how many it ended and how many it found. Drop repeats it until it
// finds none.
func terminate(ctx context.Context, q querier, role string) (killed, found int, err error) {
	err = q.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, $2)),
			count(*) FILTER (WHERE pid IS NOT NULL)
		FROM pg_catalog.pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()`,
		role, terminateWait.Milliseconds()).Scan(&killed, &found)
	if err != nil {
		return 0, 0, fmt.Errorf("pgroles: terminate sessions of %s: %w", role, err)
	}
	return killed, found, nil
}

// Terminate kills the grant role's backends without dropping the role.
// It returns how many it ended.
func (m *Manager) Terminate(ctx context.Context, grantID string) (int, error) {
	name, err := roleFor(grantID)
	if err != nil {
		return 0, err
	}
	conn, err := m.pool.acquire(ctx)
	if err != nil {
		return 0, err
	}
	n, err := m.terminateOurs(ctx, conn, name)
	m.pool.release(conn, err != nil)
	return n, err
}

// TerminateBackend ends backend pid if it is one of the grant role's and
// started before since (pg_stat_activity.backend_start), and reports
// whether there was one to end: a statement the gateway could not stop
// when its session ended (pggw's cancel.go). The pid is matched with the
// role's name and the backend's start, so a pid the server has given since
// to another role's backend, or to a later backend of the same role (a pid
// reused after the first exited), is left alone. since is a time.Now of
// this process: only its age is used (on the monotonic clock), against
// the server's own clock, so an offset between the two hosts' clocks does
// not move the bound.
func (m *Manager) TerminateBackend(ctx context.Context, grantID string, pid uint32, since time.Time) (bool, error) {
	name, err := roleFor(grantID)
	if err != nil {
		return false, err
	}
	conn, err := m.pool.acquire(ctx)
	if err != nil {
		return false, err
	}
	ended, err := m.terminatePID(ctx, conn, name, pid, since)
	m.pool.release(conn, err != nil)
	return ended, err
}

func (m *Manager) terminatePID(ctx context.Context, conn *pgx.Conn, name string, pid uint32, since time.Time) (bool, error) {
	exists, ours, err := m.lookupRole(ctx, conn, name)
	if err != nil || !exists {
		return false, err
	}
	if !ours {
		return false, fmt.Errorf("pgroles: role %s %w", name, errNotOurs)
	}
	// Signalling a role's backends takes membership in it.
	if err := m.ensureMember(ctx, conn, name); err != nil {
		return false, err
	}
	// The backend's start and the server's clock, then since's age taken
	// once they are back: the server's "now" less that age is at or
	// before since, whatever the round trip took, so a backend started
	// after since is never taken for one started before it.
	var start, now time.Time
	err = conn.QueryRow(ctx, `SELECT backend_start, pg_catalog.statement_timestamp()
		FROM pg_catalog.pg_stat_activity WHERE usename = $1 AND pid = $2 AND backend_start IS NOT NULL`,
		name, int64(pid)).Scan(&start, &now)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("pgroles: look up backend %d of %s: %w", pid, name, err)
	}
	if start.After(now.Add(-time.Since(since))) {
		return false, nil // the pid is a later backend's
	}
	// Signalled, not waited for: nothing here needs the backend gone.
	var ended bool
	err = conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) > 0
		FROM pg_catalog.pg_stat_activity WHERE usename = $1 AND pid = $2 AND backend_start = $3`,
		name, int64(pid), start).Scan(&ended)
	if err != nil {
		return false, fmt.Errorf("pgroles: terminate backend %d of %s: %w", pid, name, err)
	}
	return ended, nil
}

func (m *Manager) terminateOurs(ctx context.Context, conn *pgx.Conn, name string) (int, error) {
	exists, ours, err := m.lookupRole(ctx, conn, name)
	if err != nil || !exists {
		return 0, err
	}
	if !ours {
		return 0, fmt.Errorf("pgroles: role %s %w", name, errNotOurs)
	}
	if err := m.ensureMember(ctx, conn, name); err != nil {
		return 0, err
	}
	n, _, err := terminate(ctx, conn, name)
	return n, err
}

// Reconcile drops every role named airlock_g_* that is not in keep (grant ids), for start-up
// after a crash: roles of grants that ended while Airlock was down must not survive.
//
// Only roles made for this Manager's database are considered (roles are
// shared by the cluster, and another target's grants are not in keep).
// It tries every orphan and returns the failures joined. With several
// replicas, use ReconcileLive: another replica's grants are not in keep.
func (m *Manager) Reconcile(ctx context.Context, keep []string) error {
	kept := map[string]bool{}
	for _, id := range keep {
		kept[strings.ToLower(id)] = true
	}
	return m.ReconcileLive(ctx, func(context.Context, []string) (map[string]bool, error) { return kept, nil })
}

// ReconcileLive is Reconcile for replicas sharing the grants: it lists the
// grant roles first and then asks live which of their grant ids are still
// active (from the shared store), and drops the others. In that order a
// role made by another replica for a grant approved a moment ago is
// always kept (the grant was committed before its role was made), while
// the roles of grants that ended, including those a dead replica made and
// never dropped, go.
func (m *Manager) ReconcileLive(ctx context.Context, live func(ctx context.Context, grantIDs []string) (map[string]bool, error)) error {
	conn, err := m.pool.acquire(ctx)
	if err != nil {
		return err
	}
	rows, err := conn.Query(ctx, `SELECT rolname FROM pg_catalog.pg_roles
		WHERE left(rolname, length($1)) = $1 AND pg_catalog.shobj_description(oid, 'pg_authid') = ANY($2)
		ORDER BY rolname`, rolePrefix, m.markers())
	var names []string
	if err == nil {
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	m.pool.release(conn, err != nil)
	if err != nil {
		return fmt.Errorf("pgroles: list grant roles: %w", err)
	}
	ids := make([]string, 0, len(names))
	for _, name := range names {
		if id, ok := grantIDOf(name); ok {
			ids = append(ids, id)
		}
	}
	kept, err := live(ctx, ids)
	if err != nil {
		return fmt.Errorf("pgroles: which grants are live: %w", err)
	}
	var errs []error
	dropped := 0
	for _, name := range names {
		id, ok := grantIDOf(name)
		if !ok || kept[id] {
			continue
		}
		// A role this Manager made for a live grant is not an orphan, even
		// if keep was computed before the grant started.
		e := m.entryFor(id)
		if e.role != nil {
			e.mu.Unlock()
			continue
		}
		err := m.dropLocked(ctx, id, name, e)
		e.mu.Unlock()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		dropped++
	}
	m.logger.Info("pgroles: reconciled grant roles", "database", m.db, "found", len(names), "dropped", dropped, "failed", len(errs))
	return errors.Join(errs...)
}
