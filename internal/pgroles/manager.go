package pgroles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/pgtls"
	"github.com/airlock-dev/airlock/internal/scope"
)

// Manager makes and removes the grant roles of one postgres target, through
// the target's admin DSN. It is safe for concurrent use.
type Manager struct {
	pool  *pool
	db    string
	admin string
	super bool
	// version is the server's server_version_num, read at New.
	version int
	logger  *slog.Logger

	// passwordKey, if set, derives each role's password from the grant
	// id (WithPasswordKey) instead of drawing it at random.
	passwordKey []byte
	// inst names the installation in the roles' marker (WithInstallation).
	inst string
	// builtins are the names Role.ShadowsBuiltins looks for
	// (WithBuiltinNames); nil for every pg_catalog function's.
	builtins []string

	mu      sync.Mutex
	entries map[string]*entry
}

// Option configures a Manager.
type Option func(*Manager)

// WithPasswordKey makes every role's password HMAC-SHA256(key, database
// and grant id) instead of random, so that Managers of several Airlock
// replicas given the same key (at least 32 bytes) agree on it: whichever
// replica creates a grant's role, every replica's gateway can log in as
// it, and one that meets the role already made sets the same password
// again rather than a new one that would lock the others out. The key
// must stay secret: with it and a grant id, anyone can log in as that
// grant's role while it exists.
func WithPasswordKey(key []byte) Option {
	return func(m *Manager) { m.passwordKey = append([]byte(nil), key...) }
}

// WithInstallation names the Airlock installation (airlock serve uses its
// log's id, the same on every replica) in the comment of every role the
// Manager makes, and makes the Manager leave alone the roles of other
// installations in front of the same database: without it two
// installations each dropped the other's grant roles as orphans.
func WithInstallation(id string) Option {
	return func(m *Manager) { m.inst = id }
}

// WithBuiltinNames names the built-in functions whose unqualified calls
// the gateway lets travel before their records are durable; a function
// outside pg_catalog of one of these names then sets Role.ShadowsBuiltins.
// Without it, one named like any function of pg_catalog does.
func WithBuiltinNames(names []string) Option {
	return func(m *Manager) { m.builtins = append([]string{}, names...) }
}

// entry serialises the work on one grant's role and holds its Role once
// made: the password exists only here, so a second Ensure must return this
// one rather than reset it under a connection that already uses it.
type entry struct {
	mu   sync.Mutex
	role *Role
}

// New connects (pgxpool or a small pool via pgx) to the admin DSN of one target.
// database is the target's database (the DSN's dbname).
//
// It fails unless the admin role has CREATEROLE (or is a superuser) and
// standard_conforming_strings is on (the few literals this package must
// write into utility statements rely on it). Its connections search only
// pg_catalog (adminSearchPath), whatever the DSN or the role's settings say.
func New(ctx context.Context, adminDSN string, logger *slog.Logger, opts ...Option) (*Manager, error) {
	if logger == nil {
		logger = slog.Default()
	}
	cfg, err := pgx.ParseConfig(adminDSN)
	if err != nil {
		// The parse error quotes the DSN, and redacting a password from a
		// malformed DSN is guesswork: say only that it failed.
		return nil, errors.New("pgroles: the admin DSN does not parse as a PostgreSQL connection string")
	}
	// The admin's password and every role's SCRAM verifier cross it.
	if err := pgtls.Check(&cfg.Config); err != nil {
		return nil, fmt.Errorf("pgroles: the admin DSN's %w", err)
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "airlock-pgroles"
	}
	// The admin runs SQL with unqualified functions and operators (left,
	// =, hashtext…) as a CREATEROLE role owning the tables. With the
	// default "$user", public, a function or operator that a grant role
	// defined in a schema where PUBLIC may CREATE (public, in a database
	// pg_upgrade'd from PostgreSQL 14 or older) can match a call more
	// exactly than pg_catalog's and run as the admin. Only pg_catalog is
	// searched; pg_temp last, so not even the session's own temporary
	// relations come first. Set in the startup packet, which overrides the
	// DSN's options and any ALTER ROLE/DATABASE … SET search_path.
	cfg.RuntimeParams["search_path"] = adminSearchPath
	m := &Manager{pool: newPool(cfg), logger: logger, entries: map[string]*entry{}}
	for _, o := range opts {
		o(m)
	}
	if m.passwordKey != nil && len(m.passwordKey) < 32 {
		m.Close()
		return nil, errors.New("pgroles: the password key must be at least 32 bytes")
	}
	conn, err := m.pool.acquire(ctx)
	if err != nil {
		return nil, err
	}
	var createRole bool
	var scs, path string
	err = conn.QueryRow(ctx, `SELECT current_database(), current_user, r.rolsuper, r.rolcreaterole,
			current_setting('standard_conforming_strings'), current_setting('search_path'),
			current_setting('server_version_num')::int4
		FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`).
		Scan(&m.db, &m.admin, &m.super, &createRole, &scs, &path, &m.version)
	m.pool.release(conn, err != nil)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("pgroles: inspect admin role: %w", err)
	}
	if !m.super && !createRole {
		m.Close()
		return nil, fmt.Errorf("pgroles: admin role %q lacks CREATEROLE; it cannot make grant roles (ALTER ROLE %s CREATEROLE as a superuser)",
			m.admin, pgx.Identifier{m.admin}.Sanitize())
	}
	if scs != "on" {
		m.Close()
		return nil, errors.New("pgroles: standard_conforming_strings is off on the admin connection; refusing to build SQL literals")
	}
	if path != adminSearchPath {
		m.Close()
		return nil, fmt.Errorf("pgroles: search_path on the admin connection is %q, not %q; refusing to run unqualified SQL as the admin", path, adminSearchPath)
	}
	return m, nil
}

// adminSearchPath is the admin connections' search_path: see New.
const adminSearchPath = "pg_catalog, pg_temp"

// Database is the target database, as PostgreSQL names it (current_database()).
func (m *Manager) Database() string { return m.db }

// Admin is the role the Manager acts as.
func (m *Manager) Admin() string { return m.admin }

// Close closes the admin connections.
func (m *Manager) Close() { m.pool.close() }

// Plan returns the GRANT plan for a scope (for tests, docs and `airlock grant show`):
// e.g. []string{"SELECT ON orders.public.customers", ...} as Privilege.String.
// It fails with a *GrantError when the admin cannot grant part of it.
func (m *Manager) Plan(ctx context.Context, sc scope.Scope) ([]Privilege, error) {
	privs, _, err := m.Explain(ctx, sc)
	return privs, err
}

// Explain is Plan plus the notes on statements that grant nothing (another
// database, a missing schema, no matching table, a system schema).
func (m *Manager) Explain(ctx context.Context, sc scope.Scope) ([]Privilege, []string, error) {
	conn, err := m.pool.acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	privs, notes, err := plan(ctx, conn, m.db, sc)
	var ge *GrantError
	m.pool.release(conn, err != nil && !errors.As(err, &ge))
	return privs, notes, err
}

// entryFor returns the grant's entry, locked. The caller unlocks it.
func (m *Manager) entryFor(grantID string) *entry {
	for {
		m.mu.Lock()
		e, ok := m.entries[grantID]
		if !ok {
			e = &entry{}
			m.entries[grantID] = e
		}
		m.mu.Unlock()
		e.mu.Lock()
		m.mu.Lock()
		current := m.entries[grantID] == e
		m.mu.Unlock()
		if current {
			return e
		}
		// Drop removed this entry while we waited for it.
		e.mu.Unlock()
	}
}

// forget removes a grant's entry; the caller holds e.mu.
func (m *Manager) forget(grantID string, e *entry) {
	m.mu.Lock()
	if m.entries[grantID] == e {
		delete(m.entries, grantID)
	}
	m.mu.Unlock()
}

// lookupRole says whether role exists and whether it is one of ours for
// this database.
func (m *Manager) lookupRole(ctx context.Context, q querier, role string) (exists, ours bool, err error) {
	var comment string
	err = q.QueryRow(ctx, `SELECT coalesce(pg_catalog.shobj_description(oid, 'pg_authid'), '')
		FROM pg_catalog.pg_roles WHERE rolname = $1`, role).Scan(&comment)
	if err == pgx.ErrNoRows {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("pgroles: look up role %s: %w", role, err)
	}
	return true, slices.Contains(m.markers(), comment), nil
}

// lockRole takes a transaction-scoped advisory lock on the role's name, so
// that two Managers (two Airlock processes, or a restart overlapping the
// old process) never interleave work on one role.
func (m *Manager) lockRole(ctx context.Context, q querier, role string) error {
	if err := m.advisoryLock(ctx, q, "airlock-pgroles:"+role); err != nil {
		return fmt.Errorf("pgroles: lock role %s: %w", role, err)
	}
	return nil
}

// lockACL takes a transaction-scoped advisory lock on the target
// database's privileges. GRANT, REVOKE and DROP OWNED rewrite the ACL in
// the catalog row of each table, schema and the database itself, and
// PostgreSQL fails a transaction that rewrites a row another one changed
// meanwhile ("tuple concurrently updated") instead of waiting: two grants
// on one table, prepared at once (by one process, or by every replica
// hearing of the same activations), would fail each other. Always taken
// after lockRole, so the two never deadlock.
func (m *Manager) lockACL(ctx context.Context, q querier) error {
	if err := m.advisoryLock(ctx, q, "airlock-pgroles-acl:"+m.db); err != nil {
		return fmt.Errorf("pgroles: lock privileges of the database: %w", err)
	}
	return nil
}

// lockRetry is the pause between two attempts at a lock held elsewhere.
const lockRetry = 20 * time.Millisecond

// advisoryLock takes the transaction-scoped advisory lock hashtext(key)
// (the keys every version and replica use). Advisory locks need no
// privilege and these keys are derived from public names, so a grant
// role's session can take them too and keep them as long as it lives:
// Drop would then wait until its deadline with the role still able to
// log in and its session running past the grant's end, and every other
// grant's Ensure on the database would wait behind it. Only Managers,
// through admin sessions, hold these locks legitimately, so while the
// lock is taken every grant role's session that holds or awaits it is
// terminated (those the admin may signal: its own grants' roles), and the
// lock tried again until ctx ends.
func (m *Manager) advisoryLock(ctx context.Context, q querier, key string) error {
	for {
		var got bool
		if err := q.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtext($1))`, key).Scan(&got); err != nil {
			return err
		}
		if got {
			return nil
		}
		var evicted int
		if err := q.QueryRow(ctx, evictLockSQL, key, rolePrefix).Scan(&evicted); err != nil {
			return fmt.Errorf("end grant role sessions holding the lock: %w", err)
		}
		if evicted > 0 {
			m.logger.Warn("pgroles: terminated grant role sessions holding a lock of Airlock's", "sessions", evicted)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(lockRetry):
		}
	}
}

// evictLockSQL terminates the grant roles' backends holding or awaiting
// the advisory lock hashtext($1) in this database ($2: the grant roles'
// prefix). A bigint advisory key is in pg_locks as classid (high half),
// objid (low half) and objsubid 1.
const evictLockSQL = `WITH k AS (SELECT hashtext($1)::int8 AS k)
	SELECT count(*) FILTER (WHERE pg_terminate_backend(l.pid))
	FROM k, pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
	WHERE l.locktype = 'advisory' AND l.objsubid = 1
	  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	  AND l.classid = ((k.k >> 32) & 4294967295)::oid AND l.objid = (k.k & 4294967295)::oid
	  AND left(a.usename, length($2)) = $2 AND l.pid <> pg_backend_pid()
	  AND pg_has_role(current_user, a.usesysid, 'USAGE')`

// ensureMember makes the admin a member of role, which PostgreSQL 15 asks
// of a non-superuser before it may terminate the role's backends or run
// DROP OWNED BY it. CREATEROLE is enough to grant it.
func (m *Manager) ensureMember(ctx context.Context, q querier, role string) error {
	if m.super {
		return nil
	}
	var member bool
	if err := q.QueryRow(ctx, `SELECT pg_has_role(current_user, $1, 'USAGE')`, role).Scan(&member); err != nil {
		return fmt.Errorf("pgroles: check membership in %s: %w", role, err)
	}
	if member {
		return nil
	}
	if _, err := q.Exec(ctx, "GRANT "+pgx.Identifier{role}.Sanitize()+" TO CURRENT_USER"); err != nil {
		return fmt.Errorf("pgroles: admin cannot become a member of %s (needs CREATEROLE): %w", role, err)
	}
	return nil
}
