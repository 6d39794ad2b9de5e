package pgroles

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/airlock-dev/airlock/internal/scope"
)

// Privilege is one privilege a grant role receives.
type Privilege struct {
	// Privilege is CONNECT, USAGE, SELECT, INSERT, UPDATE or DELETE.
	Privilege string `json:"privilege"`
	// Kind is "database", "schema", "table" (any relation GRANT … ON TABLE
	// accepts) or "sequence".
	Kind     string `json:"kind"`
	Database string `json:"database"`
	Schema   string `json:"schema,omitempty"`
	Name     string `json:"name,omitempty"`
	// ViaPublic means PUBLIC already holds the privilege and the admin
	// cannot grant it, so the role has it without a GRANT (and would keep
	// it whatever Airlock did).
	ViaPublic bool `json:"via_public,omitempty"`

	oid uint32
}

// String renders the privilege for people: "SELECT ON orders.public.customers",
// "USAGE ON SCHEMA orders.public", "CONNECT ON DATABASE orders".
func (p Privilege) String() string {
	var s string
	switch p.Kind {
	case "database":
		s = p.Privilege + " ON DATABASE " + p.Database
	case "schema":
		s = p.Privilege + " ON SCHEMA " + p.Database + "." + p.Schema
	case "sequence":
		s = p.Privilege + " ON SEQUENCE " + p.Database + "." + p.Schema + "." + p.Name
	default:
		s = p.Privilege + " ON " + p.Database + "." + p.Schema + "." + p.Name
	}
	if p.ViaPublic {
		s += " (via PUBLIC)"
	}
	return s
}

// object is the privilege's object as SQL: quoted identifiers only.
func (p Privilege) object() string {
	switch p.Kind {
	case "database":
		return "DATABASE " + pgx.Identifier{p.Database}.Sanitize()
	case "schema":
		return "SCHEMA " + pgx.Identifier{p.Schema}.Sanitize()
	case "sequence":
		return "SEQUENCE " + pgx.Identifier{p.Schema, p.Name}.Sanitize()
	default:
		return "TABLE " + pgx.Identifier{p.Schema, p.Name}.Sanitize()
	}
}

// grantSQL is the GRANT statement giving p to role.
func (p Privilege) grantSQL(role string) string {
	return "GRANT " + p.Privilege + " ON " + p.object() + " TO " + pgx.Identifier{role}.Sanitize()
}

// pgPrivileges maps scope actions to table privileges.
var pgPrivileges = map[string]string{
	"pg:select": "SELECT",
	"pg:insert": "INSERT",
	"pg:update": "UPDATE",
	"pg:delete": "DELETE",
}

var privOrder = []string{"CONNECT", "USAGE", "SELECT", "INSERT", "UPDATE", "DELETE"}
var kindOrder = []string{"database", "schema", "table", "sequence"}

// GrantError says which privileges the admin role cannot grant.
type GrantError struct {
	Admin   string
	Missing []Privilege
}

func (e *GrantError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pgroles: admin role %q cannot grant", e.Admin)
	for i, p := range e.Missing {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(e.Missing)-i)
			break
		}
		if i > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " %s: %s", p, missingWhy(p))
	}
	return b.String()
}

func missingWhy(p Privilege) string {
	switch p.Kind {
	case "database":
		return "it does not own the database nor hold CONNECT WITH GRANT OPTION, and PUBLIC has no CONNECT"
	case "schema":
		return "it does not own the schema nor hold USAGE WITH GRANT OPTION, and PUBLIC has no USAGE"
	default:
		return fmt.Sprintf("it neither owns the %s nor holds %s on it WITH GRANT OPTION", p.Kind, p.Privilege)
	}
}

// querier is what planning needs of a connection or transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

type relation struct {
	oid  uint32
	name string
}

// plan expands sc against the catalog of database db: the privileges to
// grant, in a stable order, and notes on statements that grant nothing.
// It fails with a *GrantError when the admin cannot grant a privilege that
// PUBLIC does not already hold.
func plan(ctx context.Context, q querier, db string, sc scope.Scope) ([]Privilege, []string, error) {
	var notes []string
	note := func(format string, a ...any) {
		if n := fmt.Sprintf(format, a...); !slices.Contains(notes, n) {
			notes = append(notes, n)
		}
	}
	type tkey struct{ schema, name, priv string }
	tables := map[tkey]uint32{}
	schemas := map[string]bool{}
	rels := map[string][]relation{} // per schema; nil slice with ok=false: no such schema
	for _, st := range sc {
		for _, a := range st.Actions {
			priv, ok := pgPrivileges[a]
			if !ok {
				note("%q: %s is not a postgres action; nothing granted for it", st.String(), a)
				continue
			}
			dbName, schema, pattern, ok := splitResource(st.Resource)
			if !ok {
				note("%q: resource is not database.schema.table; nothing granted for it", st.String())
				continue
			}
			if dbName != db {
				note("%q: names database %q, but this target's database is %q; nothing granted for it", st.String(), dbName, db)
				continue
			}
			if systemSchema(schema) {
				note("%q: %s is a system schema; its catalogs are PUBLIC's to read and nothing is granted for it", st.String(), schema)
				continue
			}
			list, seen := rels[schema]
			if !seen {
				var exists bool
				var err error
				list, exists, err = listRelations(ctx, q, schema)
				if err != nil {
					return nil, nil, err
				}
				if !exists {
					list = nil
				}
				rels[schema] = list
			}
			matched := false
			for _, r := range list {
				if scope.Match(pattern, r.name) {
					tables[tkey{schema, r.name, priv}] = r.oid
					matched = true
				}
			}
			if !matched {
				note("%q: no table in %s.%s matches %q; nothing granted for it", st.String(), db, schema, pattern)
				continue
			}
			schemas[schema] = true
		}
	}

	privs := []Privilege{{Privilege: "CONNECT", Kind: "database", Database: db}}
	for s := range schemas {
		privs = append(privs, Privilege{Privilege: "USAGE", Kind: "schema", Database: db, Schema: s})
	}
	var inserted []uint32
	for k, oid := range tables {
		privs = append(privs, Privilege{Privilege: k.priv, Kind: "table", Database: db, Schema: k.schema, Name: k.name, oid: oid})
		if k.priv == "INSERT" {
			inserted = append(inserted, oid)
		}
	}
	seqs, err := ownedSequences(ctx, q, db, inserted)
	if err != nil {
		return nil, nil, err
	}
	privs = append(privs, seqs...)
	slices.SortFunc(privs, func(a, b Privilege) int {
		return cmp.Or(
			cmp.Compare(slices.Index(kindOrder, a.Kind), slices.Index(kindOrder, b.Kind)),
			cmp.Compare(a.Schema, b.Schema),
			cmp.Compare(a.Name, b.Name),
			cmp.Compare(slices.Index(privOrder, a.Privilege), slices.Index(privOrder, b.Privilege)),
		)
	})
	privs = slices.CompactFunc(privs, func(a, b Privilege) bool {
		return a.Kind == b.Kind && a.Schema == b.Schema && a.Name == b.Name && a.Privilege == b.Privilege
	})
	if err := checkGrantable(ctx, q, privs); err != nil {
		return nil, nil, err
	}
	return privs, notes, nil
}

// splitResource splits database.schema.table. The scope grammar allows no
// dot inside a part, so the split is unambiguous.
func splitResource(r string) (db, schema, table string, ok bool) {
	parts := strings.Split(r, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" || strings.ContainsRune(r, 0) {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

func systemSchema(s string) bool {
	return s == "information_schema" || strings.HasPrefix(s, "pg_")
}

// listRelations returns the relations GRANT … ON TABLE accepts in schema:
// tables, partitioned tables, views, materialized views, foreign tables;
// none owned by a grant role.
func listRelations(ctx context.Context, q querier, schema string) ([]relation, bool, error) {
	var nsp uint32
	err := q.QueryRow(ctx, `SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1`, schema).Scan(&nsp)
	if err == pgx.ErrNoRows {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("pgroles: look up schema %q: %w", schema, err)
	}
	// Relations owned by grant roles are left out: where PUBLIC may
	// CREATE, an agent can make one whose name another grant's pattern
	// matches (a view reading what its own grant reads, say), and the
	// admin, a member of every grant role, could grant it on.
	rows, err := q.Query(ctx, `SELECT oid, relname FROM pg_catalog.pg_class
		WHERE relnamespace = $1 AND relkind IN ('r', 'p', 'v', 'm', 'f')
		  AND left(pg_get_userbyid(relowner), length($2)) <> $2 ORDER BY relname`, nsp, rolePrefix)
	if err != nil {
		return nil, false, fmt.Errorf("pgroles: list tables of schema %q: %w", schema, err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (relation, error) {
		var rel relation
		err := r.Scan(&rel.oid, &rel.name)
		return rel, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("pgroles: list tables of schema %q: %w", schema, err)
	}
	return list, true, nil
}

// ownedSequences are the sequences behind serial columns of the tables
// (dependency type 'a', which is what serial creates; identity columns use
// 'i' and need no privilege of their own). INSERT evaluates the column
// default with the inserting role's privileges, so without USAGE on them
// pg:insert would be useless for most tables.
func ownedSequences(ctx context.Context, q querier, db string, tables []uint32) ([]Privilege, error) {
	if len(tables) == 0 {
		return nil, nil
	}
	rows, err := q.Query(ctx, `SELECT s.oid, n.nspname, s.relname
		FROM pg_catalog.pg_depend d
		JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
		JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace
		WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
		  AND d.deptype = 'a' AND d.refobjid = ANY($1::oid[])`, tables)
	if err != nil {
		return nil, fmt.Errorf("pgroles: find sequences of serial columns: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Privilege, error) {
		p := Privilege{Privilege: "USAGE", Kind: "sequence", Database: db}
		err := r.Scan(&p.oid, &p.Schema, &p.Name)
		return p, err
	})
}

// checkGrantable asks PostgreSQL, per privilege, whether the current
// (admin) role can grant it and whether PUBLIC already has it, in one round
// trip. A GRANT the admin may not make is only a WARNING in PostgreSQL ("no
// privileges were granted"), so this check, not the GRANT, is what catches
// it.
func checkGrantable(ctx context.Context, q querier, privs []Privilege) error {
	b := &pgx.Batch{}
	for _, p := range privs {
		switch p.Kind {
		case "database":
			b.Queue(`SELECT has_database_privilege(current_user, $1, 'CONNECT WITH GRANT OPTION'),
				has_database_privilege('public', $1, 'CONNECT')`, p.Database)
		case "schema":
			b.Queue(`SELECT has_schema_privilege(current_user, $1, 'USAGE WITH GRANT OPTION'),
				has_schema_privilege('public', $1, 'USAGE')`, p.Schema)
		case "sequence":
			b.Queue(`SELECT has_sequence_privilege(current_user, $1::oid, 'USAGE WITH GRANT OPTION'),
				has_sequence_privilege('public', $1::oid, 'USAGE')`, p.oid)
		default:
			b.Queue(`SELECT has_table_privilege(current_user, $1::oid, $2 || ' WITH GRANT OPTION'),
				has_table_privilege('public', $1::oid, $2)`, p.oid, p.Privilege)
		}
	}
	b.Queue(`SELECT current_user`)
	res := q.SendBatch(ctx, b)
	var missing []Privilege
	for i := range privs {
		p := &privs[i]
		var can, public *bool
		if err := res.QueryRow().Scan(&can, &public); err != nil {
			res.Close()
			return fmt.Errorf("pgroles: check %s: %w", p, err)
		}
		switch {
		case can == nil || public == nil:
			// NULL: the object was dropped since it was listed.
			res.Close()
			return fmt.Errorf("pgroles: %s: object disappeared while planning; retry", p)
		case *can:
		case *public:
			p.ViaPublic = true
		default:
			missing = append(missing, *p)
		}
	}
	var admin string
	if err := res.QueryRow().Scan(&admin); err != nil {
		res.Close()
		return fmt.Errorf("pgroles: current_user: %w", err)
	}
	if err := res.Close(); err != nil {
		return fmt.Errorf("pgroles: check privileges: %w", err)
	}
	if len(missing) > 0 {
		return &GrantError{Admin: admin, Missing: missing}
	}
	return nil
}
