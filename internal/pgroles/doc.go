// Package pgroles gives every active grant on a postgres target its own
// PostgreSQL login role, so that least privilege is enforced by PostgreSQL
// itself rather than by the gateway's reading of SQL.
//
// For a grant g_x the role is airlock_g_x. It is created through the
// target's admin DSN with LOGIN NOINHERIT NOCREATEDB NOCREATEROLE
// NOREPLICATION NOBYPASSRLS, VALID UNTIL the grant's expiry, a password
// that only Airlock knows (random, or derived from a key the replicas share:
// WithPasswordKey; set as a SCRAM-SHA-256 verifier computed here, so no
// plaintext password ever appears in SQL text that the server may log), and
// exactly the privileges the scope names:
//
//   - CONNECT on the target database;
//   - USAGE on each schema a statement names;
//   - SELECT, INSERT, UPDATE or DELETE on each table (also views,
//     materialized views, foreign and partitioned tables) whose name the
//     statement's pattern matches: an exact name, a prefix ("ev*"), or every
//     table of the schema ("*"); never one a grant role owns;
//   - for pg:insert, USAGE on the sequences owned by the table's serial
//     columns, without which an INSERT relying on the column default fails
//     (identity columns need nothing extra).
//
// Names in a scope are exact catalog names (case-sensitive, as stored in
// pg_class), never folded, and the prefix match is done in Go with
// scope.Match, so "_" and "%" are literals, not LIKE wildcards. Every
// identifier is quoted with pgx.Identifier.Sanitize.
//
// What this cannot do, by PostgreSQL's design:
//
//   - A role cannot be denied what PUBLIC holds. By default PUBLIC has
//     CONNECT and TEMPORARY on every database, USAGE on the public schema,
//     and EXECUTE on functions; so the grant role can connect to any
//     database that keeps PUBLIC's CONNECT, create temporary tables, call
//     functions, and read any table somebody granted to PUBLIC. Revoking
//     those from PUBLIC is a database-wide decision for the DBA, so this
//     package does not do it; it only reports a privilege that it leaves to
//     PUBLIC because the admin cannot grant it itself (Privilege.ViaPublic).
//     The system catalogs (pg_catalog, information_schema) are readable by
//     PUBLIC and a scope naming them grants nothing more.
//   - A prefix or "*" pattern is expanded when the role is created: a table
//     created after activation is not covered. Default privileges (ALTER
//     DEFAULT PRIVILEGES) are keyed on the creating role and the schema, not
//     on a name prefix, so they cannot express the scope and are not used;
//     but default privileges that somebody else set to PUBLIC do apply.
//   - pg:update and pg:delete grant only those privileges: PostgreSQL also
//     requires SELECT on the columns an UPDATE or DELETE reads in WHERE or
//     RETURNING, and this package does not widen a scope to make a statement
//     work.
//   - VALID UNTIL only limits password logins, and only when pg_hba asks for
//     a password (trust ignores it); it never ends a session already open.
//     It is a second line: the cut-off is Drop, which sets NOLOGIN,
//     terminates the role's backends and drops the role.
//
// The admin role needs (PostgreSQL 15):
//
//   - CREATEROLE, to create, alter and drop the grant roles, to comment on
//     them, and to grant itself membership in them (Ensure does that, so that
//     it may terminate their backends and run DROP OWNED; in PostgreSQL 16+
//     the creator already holds ADMIN OPTION on the roles it creates);
//   - for each table a scope can name, ownership of the table (directly or
//     through an inherited role) or the privilege WITH GRANT OPTION; the same
//     for the sequences behind serial columns of tables granted pg:insert;
//   - CONNECT on the database and USAGE on the schemas, WITH GRANT OPTION,
//     unless PUBLIC already holds them (the database owner has both).
//
// The admin's connections run with search_path pg_catalog, pg_temp: where
// PUBLIC may still CREATE in a schema (public, in a database pg_upgrade'd
// from PostgreSQL 14 or older), a grant role can define functions and
// operators there, and none of them must ever run as the admin.
// Role.MayDefine reports such a schema (one where the grant role may
// CREATE, itself or through PUBLIC), so that the gateway treats what the
// role's sessions read as code that may have been defined there; and
// Role.RowFunctions reports a function outside pg_catalog that the role
// may call with a row as its only argument, which PostgreSQL also calls by
// attribute notation ("c.f" for "f(c)", read as a column), so that the
// gateway does not take a statement naming no function for a pure read;
// and Role.ShadowsBuiltins reports a function outside pg_catalog named
// like a built-in (WithBuiltinNames), which an unqualified call of the
// built-in may resolve to.
//
// When the admin cannot grant a privilege, Ensure and Plan fail with an
// error naming the object and what is missing, and nothing is created.
//
// # Several Airlock replicas
//
// Replicas sharing one store each run a Manager per target, and each
// prepares the role of every active grant it learns of. The role is made
// once: Ensure works under a transaction-scoped advisory lock on the role's
// name, so the first replica creates it and the others find it and bring it
// to the same state (same derived password, same privileges, in one
// transaction, so a session of another replica never sees less). Every
// replica that had the grant calls Drop when it ends; the first drops the
// role and terminates its sessions (those opened through any replica: they
// are the role's backends), the others find nothing left. A replica that
// dies leaves its roles behind; ReconcileLive, run by every replica at
// start, drops the roles whose grants are no longer active in the shared
// store.
//
// Any session may take an advisory lock, and these keys derive from public
// names; a grant role's session holding one (to keep its role from being
// dropped, or other grants from being prepared) is terminated by the
// Manager that waits for it.
//
// The grants and revokes of Managers on one database take a second lock,
// on its privileges: PostgreSQL fails a GRANT, REVOKE or DROP OWNED whose
// catalog row another transaction changed meanwhile ("tuple concurrently
// updated") instead of waiting. A writer that takes no lock of Airlock's
// (a DBA's GRANT, another tool's) can still win that race; Ensure and Drop
// then run their transaction again, a bounded number of times.
//
// Roles are shared by the whole cluster but a Manager serves one target
// database, so every role carries a comment naming its database and a
// Manager only ever touches roles whose name starts with airlock_g_ and
// whose comment names its own database: it cannot alter or drop a real
// role, nor the grant roles of another target on the same cluster.
package pgroles
