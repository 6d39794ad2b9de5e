package pgroles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/gateway"
)

// Role is the upstream login the gateway uses for one grant.
type Role struct {
	Name     string // RoleName(grantID)
	Password string // random (or derived: WithPasswordKey), held only in memory; never logged
	// ValidUntil is the role's VALID UNTIL: the grant's expiry.
	ValidUntil time.Time
	// Privileges is what the role was granted (or holds through PUBLIC).
	Privileges []Privilege
	// Notes name the scope statements that granted nothing, such as one
	// naming another database than the target's. They are not errors: the
	// rest of the scope is usable, and the database refuses the rest.
	Notes []string
	// MayDefine: the role may CREATE in a schema other than its
	// temporary one (itself or through PUBLIC: public, in a database
	// upgraded from PostgreSQL 14 or older), so objects a grant role
	// defined there (views, functions, operators) outlive the session
	// that made them and run when read. Checked when the role is made.
	MayDefine bool
	// RowFunctions: the role may call a function outside pg_catalog whose
	// only argument without a default is of a row type (a table's,
	// another composite type, record). PostgreSQL also calls such a
	// function by attribute notation, "c.f" for "f(c)", which reads as a
	// column, so a statement's text does not show the call. Checked when
	// the role is made.
	RowFunctions bool
	// ShadowsBuiltins: the role may call a function outside pg_catalog
	// named like a built-in (one of WithBuiltinNames, or of pg_catalog's).
	// Where it matches a call's argument types better than the built-in
	// (public.lower(varchar) for lower(name) over a varchar column), or
	// comes first on a search_path that names pg_catalog later, an
	// unqualified call of the built-in runs it instead. Checked when the
	// role is made.
	ShadowsBuiltins bool
	// ServerVersion is the server's server_version_num (150004 for
	// 15.4), as the admin connection read it: what the role's logins
	// may ask of the server.
	ServerVersion int
}

// String leaves the password out, so that a Role printed by mistake leaks nothing.
func (r Role) String() string {
	return fmt.Sprintf("pgroles.Role{%s, %d privileges}", r.Name, len(r.Privileges))
}

// GoString is String for %#v.
func (r Role) GoString() string { return r.String() }

// LogValue leaves the password out of structured logs.
func (r Role) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", r.Name), slog.Time("valid_until", r.ValidUntil), slog.Int("privileges", len(r.Privileges)))
}

// Ensure creates the role for g if absent (idempotent and safe to call concurrently for the
// same grant: one wins, both return the same Role), or resets its password if it exists
// (after an Airlock restart the in-memory password is gone), with LOGIN NOINHERIT NOCREATEDB
// NOCREATEROLE NOREPLICATION NOBYPASSRLS, VALID UNTIL g.ExpiresAt, and grants exactly the
// privileges the scope names on the target database.
//
// A Role already made by this Manager is returned as it is, without a round
// trip. A role left by an earlier process is brought back to exactly the
// scope: everything it held in this database is revoked and the plan
// granted again, in one transaction, so no session ever sees it with more
// or with a half-built set. Statements for another database than
// m.Database() grant nothing and are reported in Role.Notes. If the admin
// cannot grant a privilege the error is a *GrantError and no role is left
// behind. A grant that is no longer live gets no role.
func (m *Manager) Ensure(ctx context.Context, g *gateway.Grant) (Role, error) {
	name, err := roleFor(g.ID)
	if err != nil {
		return Role{}, err
	}
	if g.TargetKind != "" && g.TargetKind != "postgres" {
		return Role{}, fmt.Errorf("pgroles: grant %s is for a %s target, not postgres", g.ID, g.TargetKind)
	}
	e := m.entryFor(g.ID)
	defer e.mu.Unlock()
	// Checked under the entry lock: Drop runs after the grant ends, so a
	// grant seen live here cannot have been dropped already. Checked before
	// the cache too: an ended grant's role is not handed out even in the
	// moment before its Drop.
	if !g.Live(time.Now()) {
		return Role{}, fmt.Errorf("pgroles: grant %s is not live; no role for it", g.ID)
	}
	if e.role != nil {
		return *e.role, nil
	}
	password, err := m.password(g.ID)
	if err != nil {
		return Role{}, err
	}
	verifier, err := newVerifier(password)
	if err != nil {
		return Role{}, err
	}
	conn, err := m.pool.acquire(ctx)
	if err != nil {
		return Role{}, err
	}
	role, err := m.ensureTx(ctx, conn, g, name, verifier)
	for round := 0; (lockTimedOut(err) || concurrentlyUpdated(err)) && round < terminateRounds; round++ {
		if concurrentlyUpdated(err) {
			// A writer outside Airlock's locks changed a catalog row
			// the grants rewrite: start over from a fresh snapshot.
			if err = pauseRetry(ctx, round); err != nil {
				break
			}
		} else {
			// The role's own session held its row (see ensureTx): end
			// it and retry.
			var n int
			if n, err = m.terminateOurs(ctx, conn, name); err != nil {
				break
			}
			m.logger.Warn("pgroles: terminated grant role sessions holding the role's row", "grant", g.ID, "role", name, "sessions", n)
		}
		role, err = m.ensureTx(ctx, conn, g, name, verifier)
	}
	var ge *GrantError
	m.pool.release(conn, err != nil && !errors.As(err, &ge))
	if err != nil {
		return Role{}, err
	}
	role.Password = password
	e.role = &role
	m.logger.Info("pgroles: grant role ready", "grant", g.ID, "role", role)
	for _, n := range role.Notes {
		m.logger.Warn("pgroles: scope statement grants nothing", "grant", g.ID, "role", name, "note", n)
	}
	return role, nil
}

func (m *Manager) ensureTx(ctx context.Context, conn *pgx.Conn, g *gateway.Grant, name, verifier string) (Role, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return Role{}, fmt.Errorf("pgroles: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if err := m.lockRole(ctx, tx, name); err != nil {
		return Role{}, err
	}
	if err := m.lockACL(ctx, tx); err != nil {
		return Role{}, err
	}
	exists, ours, err := m.lookupRole(ctx, tx, name)
	if err != nil {
		return Role{}, err
	}
	if exists && !ours {
		return Role{}, fmt.Errorf("pgroles: role %s %w", name, errNotOurs)
	}
	until := g.ExpiresAt.UTC()
	untilLit, err := quoteLiteral(until.Format("2006-01-02 15:04:05.999999Z07:00"))
	if err != nil {
		return Role{}, err
	}
	pwLit, err := quoteLiteral(verifier)
	if err != nil {
		return Role{}, err
	}
	ident := pgx.Identifier{name}.Sanitize()
	attrs := " LOGIN NOINHERIT NOCREATEDB NOCREATEROLE PASSWORD " + pwLit + " VALID UNTIL " + untilLit
	// PostgreSQL 15 lets only a superuser mention SUPERUSER, REPLICATION or
	// BYPASSRLS in ALTER ROLE, even to turn them off; a CREATEROLE admin
	// cannot alter a role that has them at all. So they are always set on
	// CREATE, on ALTER only by a superuser admin, and checked afterwards.
	const dangerous = " NOSUPERUSER NOREPLICATION NOBYPASSRLS"
	// Never wrap these errors with the statement: it holds the verifier.
	if !exists {
		if _, err := tx.Exec(ctx, "CREATE ROLE "+ident+" WITH"+dangerous+attrs); err != nil {
			return Role{}, fmt.Errorf("pgroles: create role %s: %w", name, err)
		}
	} else {
		if m.super {
			attrs = dangerous + attrs
		}
		// A grant role may change its own password: left uncommitted in
		// an open transaction, that change holds the role's row, and this
		// ALTER would wait for it as long as the session pleases, with the
		// database's ACL lock held and every other grant waiting behind
		// it. So it waits briefly; on lock_timeout Ensure terminates the
		// role's sessions and starts over.
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = "+roleRowWait); err != nil {
			return Role{}, fmt.Errorf("pgroles: set lock_timeout: %w", err)
		}
		if _, err := tx.Exec(ctx, "ALTER ROLE "+ident+" WITH"+attrs); err != nil {
			return Role{}, fmt.Errorf("pgroles: reset role %s: %w", name, err)
		}
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout TO DEFAULT"); err != nil {
			return Role{}, fmt.Errorf("pgroles: reset lock_timeout: %w", err)
		}
		if err := revokeAll(ctx, tx, m.db, name); err != nil {
			return Role{}, err
		}
	}
	// Marked on every Ensure: a role made before installations were named
	// carries the marker without one, and becomes this installation's.
	mark, err := quoteLiteral(marker(m.db, m.inst))
	if err != nil {
		return Role{}, err
	}
	if _, err := tx.Exec(ctx, "COMMENT ON ROLE "+ident+" IS "+mark); err != nil {
		return Role{}, fmt.Errorf("pgroles: comment on role %s: %w", name, err)
	}
	var bad bool
	if err := tx.QueryRow(ctx, `SELECT rolsuper OR rolreplication OR rolbypassrls OR rolinherit OR rolcreatedb OR rolcreaterole OR NOT rolcanlogin
		FROM pg_catalog.pg_roles WHERE rolname = $1`, name).Scan(&bad); err != nil {
		return Role{}, fmt.Errorf("pgroles: check attributes of %s: %w", name, err)
	}
	if bad {
		return Role{}, fmt.Errorf("pgroles: role %s has attributes beyond LOGIN after CREATE/ALTER ROLE; refusing it", name)
	}
	if err := m.ensureMember(ctx, tx, name); err != nil {
		return Role{}, err
	}
	privs, notes, err := plan(ctx, tx, m.db, g.Scope)
	if err != nil {
		return Role{}, err
	}
	if err := applyGrants(ctx, tx, name, privs); err != nil {
		return Role{}, err
	}
	if err := verifyGrants(ctx, tx, name, privs); err != nil {
		return Role{}, err
	}
	var mayDefine bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n
		WHERE n.nspname !~ '^pg_(toast_)?temp_' AND has_schema_privilege($1, n.oid, 'CREATE'))`, name).Scan(&mayDefine); err != nil {
		return Role{}, fmt.Errorf("pgroles: check where %s may create: %w", name, err)
	}
	var rowFunctions, shadows bool
	if err := tx.QueryRow(ctx, rowFunctionsQuery, name).Scan(&rowFunctions); err != nil {
		return Role{}, fmt.Errorf("pgroles: check the functions %s may call by attribute notation: %w", name, err)
	}
	if err := tx.QueryRow(ctx, shadowsQuery, name, m.builtins).Scan(&shadows); err != nil {
		return Role{}, fmt.Errorf("pgroles: check the functions %s may call named like built-ins: %w", name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Role{}, fmt.Errorf("pgroles: commit role %s: %w", name, err)
	}
	return Role{Name: name, ServerVersion: m.version, ValidUntil: until, Privileges: privs, Notes: notes, MayDefine: mayDefine, RowFunctions: rowFunctions,
		ShadowsBuiltins: shadows}, nil
}

// rowFunctionsQuery reports whether role $1 may call a function outside
// pg_catalog by attribute notation (Role.RowFunctions): one whose first
// argument is of a composite type, record or a domain over a composite
// type, the others having defaults, in a schema the role may use.
// pg_catalog's are built-ins (row_to_json…), none of which changes state.
const rowFunctionsQuery = `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
	JOIN pg_catalog.pg_type t ON t.oid = p.proargtypes[0]
	LEFT JOIN pg_catalog.pg_type b ON b.oid = t.typbasetype
	WHERE p.pronamespace <> 'pg_catalog'::pg_catalog.regnamespace
		AND p.prokind IN ('f', 'a') AND p.pronargs >= 1 AND p.pronargs - p.pronargdefaults <= 1
		AND (t.typtype = 'c' OR t.oid = 'record'::pg_catalog.regtype OR b.typtype = 'c')
		AND pg_catalog.has_schema_privilege($1, p.pronamespace, 'USAGE')
		AND pg_catalog.has_function_privilege($1, p.oid, 'EXECUTE'))`

// shadowsQuery reports whether role $1 may call a function outside
// pg_catalog named like one of $2 (NULL: like one of pg_catalog's), in a
// schema it may use (Role.ShadowsBuiltins). Temporary schemas are left
// out: PostgreSQL never looks for an unqualified function there.
const shadowsQuery = `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
	JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
	WHERE n.nspname <> 'pg_catalog' AND n.nspname !~ '^pg_(toast_)?temp_'
		AND CASE WHEN $2::text[] IS NULL
			THEN EXISTS (SELECT 1 FROM pg_catalog.pg_proc q
				WHERE q.pronamespace = 'pg_catalog'::pg_catalog.regnamespace AND q.proname = p.proname)
			ELSE p.proname::text = ANY ($2::text[]) END
		AND pg_catalog.has_schema_privilege($1, p.pronamespace, 'USAGE')
		AND pg_catalog.has_function_privilege($1, p.oid, 'EXECUTE'))`

// applyGrants runs the plan's GRANTs in one round trip.
func applyGrants(ctx context.Context, tx pgx.Tx, role string, privs []Privilege) error {
	b := &pgx.Batch{}
	for _, p := range privs {
		if !p.ViaPublic {
			b.Queue(p.grantSQL(role))
		}
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("pgroles: grant to %s: %w", role, err)
	}
	return nil
}

// verifyGrants checks, before commit, that the role now holds every
// privilege of the plan: a GRANT that PostgreSQL turned into a warning, or
// an object swapped under us, fails the transaction instead of leaving a
// role that silently has less than it reports.
func verifyGrants(ctx context.Context, tx pgx.Tx, role string, privs []Privilege) error {
	b := &pgx.Batch{}
	for _, p := range privs {
		switch p.Kind {
		case "database":
			b.Queue(`SELECT has_database_privilege($1, $2, $3)`, role, p.Database, p.Privilege)
		case "schema":
			b.Queue(`SELECT has_schema_privilege($1, $2, $3)`, role, p.Schema, p.Privilege)
		case "sequence":
			b.Queue(`SELECT has_sequence_privilege($1, $2::oid, $3)`, role, p.oid, p.Privilege)
		default:
			b.Queue(`SELECT has_table_privilege($1, $2::oid, $3)`, role, p.oid, p.Privilege)
		}
	}
	res := tx.SendBatch(ctx, b)
	defer res.Close()
	var missing []string
	for _, p := range privs {
		var ok *bool
		if err := res.QueryRow().Scan(&ok); err != nil {
			return fmt.Errorf("pgroles: verify %s for %s: %w", p, role, err)
		}
		if ok == nil || !*ok {
			missing = append(missing, p.String())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("pgroles: role %s lacks %s after GRANT", role, strings.Join(missing, ", "))
	}
	return nil
}

// revokeAll takes from role every privilege it holds in this database:
// on relations, schemas and the database itself. Used before re-granting
// the plan to a role left by an earlier process, so that it ends up with
// exactly the plan even if tables were created or dropped in between.
func revokeAll(ctx context.Context, tx pgx.Tx, db, role string) error {
	ident := pgx.Identifier{role}.Sanitize()
	rows, err := tx.Query(ctx, `SELECT n.nspname, c.relname, c.relkind = 'S'
		FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE EXISTS (SELECT 1 FROM aclexplode(c.relacl) a WHERE a.grantee = $1::regrole)`, role)
	if err != nil {
		return fmt.Errorf("pgroles: list privileges of %s: %w", role, err)
	}
	var stmts []string
	for rows.Next() {
		var schema, name string
		var seq bool
		if err := rows.Scan(&schema, &name, &seq); err != nil {
			rows.Close()
			return fmt.Errorf("pgroles: list privileges of %s: %w", role, err)
		}
		kind := "TABLE "
		if seq {
			kind = "SEQUENCE "
		}
		stmts = append(stmts, "REVOKE ALL ON "+kind+pgx.Identifier{schema, name}.Sanitize()+" FROM "+ident)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("pgroles: list privileges of %s: %w", role, err)
	}
	rows, err = tx.Query(ctx, `SELECT nspname FROM pg_catalog.pg_namespace n
		WHERE EXISTS (SELECT 1 FROM aclexplode(n.nspacl) a WHERE a.grantee = $1::regrole)`, role)
	if err != nil {
		return fmt.Errorf("pgroles: list schema privileges of %s: %w", role, err)
	}
	schemas, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("pgroles: list schema privileges of %s: %w", role, err)
	}
	for _, s := range schemas {
		stmts = append(stmts, "REVOKE ALL ON SCHEMA "+pgx.Identifier{s}.Sanitize()+" FROM "+ident)
	}
	stmts = append(stmts, "REVOKE ALL ON DATABASE "+pgx.Identifier{db}.Sanitize()+" FROM "+ident)
	b := &pgx.Batch{}
	for _, s := range stmts {
		b.Queue(s)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("pgroles: revoke from %s: %w", role, err)
	}
	return nil
}
