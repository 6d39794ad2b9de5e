package pgstore

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// storeTables are the tables the migrations (and migrate) create, which
// the store's statements name without a schema.
var storeTables = []string{
	migrationsTable, "identities", "grants", "sessions", "log_entries", "log_checkpoints",
	"meta", "replica_listeners", "integration_actions", "session_slots",
}

// expectedCatalog is catalogLines of a schema the migrations just created,
// sorted (TestCatalogIsTheMigrations keeps it so; go test -run
// TestCatalogIsTheMigrations -update-catalog rewrites it after a new
// migration).
//
//go:embed catalog.txt
var expectedCatalog string

// catalogQuery describes the store's tables in schema $1, one line per
// property that decides what a statement naming them reads: the kind of
// relation, its persistence and row security, every column, index,
// constraint, trigger, rule, policy and inheritance link. The schema's own
// name is cut from index definitions, so that two schemas the migrations
// created describe the same. It runs with pg_catalog alone on the
// search_path (catalogDiffs), so that no other schema answers for a
// built-in function or operator here.
const catalogQuery = `
WITH t AS (
	SELECT c.oid, c.relname, c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE n.nspname = $1 AND c.relname = ANY($2::text[])
)
SELECT format('table %s: kind %s, persistence %s, row security %s, forced %s',
	t.relname, t.relkind, t.relpersistence, t.relrowsecurity, t.relforcerowsecurity)
FROM t
UNION ALL
SELECT format('column %s.%s: %s%s%s%s%s', t.relname, a.attname, format_type(a.atttypid, a.atttypmod),
	' collate ' || co.collname, CASE WHEN a.attnotnull THEN ' not null' END,
	' identity ' || NULLIF(a.attidentity::text, ''), ' default ' || pg_get_expr(d.adbin, d.adrelid))
FROM t JOIN pg_attribute a ON a.attrelid = t.oid
	LEFT JOIN pg_collation co ON co.oid = a.attcollation
	LEFT JOIN pg_attrdef d ON d.adrelid = t.oid AND d.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT format('index %s: %s%s', t.relname, replace(pg_get_indexdef(i.indexrelid), ' ON ' || quote_ident($1) || '.', ' ON '),
	CASE WHEN NOT (i.indisvalid AND i.indisready AND i.indislive) THEN ' (not valid, ready or live)' END)
FROM t JOIN pg_index i ON i.indrelid = t.oid
UNION ALL
SELECT format('constraint %s.%s: %s', t.relname, k.conname, pg_get_constraintdef(k.oid))
FROM t JOIN pg_constraint k ON k.conrelid = t.oid
WHERE k.contype <> 'n'
UNION ALL
SELECT format('trigger %s: %s', t.relname, pg_get_triggerdef(g.oid))
FROM t JOIN pg_trigger g ON g.tgrelid = t.oid
WHERE NOT g.tgisinternal
UNION ALL
SELECT format('rule %s: %s', t.relname, pg_get_ruledef(r.oid))
FROM t JOIN pg_rewrite r ON r.ev_class = t.oid
UNION ALL
SELECT format('policy %s.%s: using %s', t.relname, p.polname, COALESCE(pg_get_expr(p.polqual, p.polrelid), 'true'))
FROM t JOIN pg_policy p ON p.polrelid = t.oid
UNION ALL
SELECT format('inheritance %s: %s inherits %s', t.relname, h.inhrelid::regclass, h.inhparent::regclass)
FROM t JOIN pg_inherits h ON h.inhrelid = t.oid OR h.inhparent = t.oid`

// catalogLines describes the store's tables in schema, sorted. The
// caller's search_path must be pg_catalog alone.
func catalogLines(ctx context.Context, q querier, schema string) ([]string, error) {
	rows, err := q.Query(ctx, catalogQuery, schema, storeTables)
	if err != nil {
		return nil, err
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	slices.Sort(lines)
	return lines, nil
}

// catalogDiffs checks, before the other checks read anything, that the
// names the store's statements use are the tables the migrations created,
// as they created them. Those checks, verification and every review read
// the tables through the same names, so a database owner who cannot forge
// the log could still change what the names answer without changing a
// row: a view put in a table's place, or in a schema earlier on the
// search_path (ALTER DATABASE … SET search_path); a row security policy
// that hides a grant from the review's statement but not from a whole
// scan (current_query() tells them apart); a rule, a trigger, a table
// inheriting rows; an index, column or collation redefined; a function,
// operator or type that shadows pg_catalog's (a schema put before
// pg_catalog on the search_path). Each is reported. The transaction's
// search_path is pg_catalog's while this runs, and then back as it was.
func (s *Store) catalogDiffs(ctx context.Context, tx pgx.Tx) ([]string, error) {
	// Under the search_path the store's statements run with, so every
	// name is qualified: pg_catalog may not come first.
	var path string
	var schemas []string
	var oids []uint32
	if err := tx.QueryRow(ctx, `SELECT pg_catalog.current_setting('search_path'),
		pg_catalog.current_schemas(true)::pg_catalog.text[],
		ARRAY(SELECT COALESCE(pg_catalog.to_regclass(pg_catalog.quote_ident(n))::pg_catalog.oid, 0::pg_catalog.oid)
			FROM pg_catalog.unnest($1::pg_catalog.text[]) n)`, storeTables).Scan(&path, &schemas, &oids); err != nil {
		return nil, fmt.Errorf("pgstore: check the catalog: %w", err)
	}
	if len(oids) != len(storeTables) {
		return nil, errors.New("pgstore: check the catalog: the tables' names did not resolve one by one")
	}
	if _, err := tx.Exec(ctx, "SET LOCAL search_path TO pg_catalog"); err != nil {
		return nil, fmt.Errorf("pgstore: check the catalog: %w", err)
	}
	out, err := s.catalogChecks(ctx, tx, oids, schemas)
	if err != nil {
		return nil, fmt.Errorf("pgstore: check the catalog: %w", err)
	}
	if _, err := tx.Exec(ctx, "SELECT pg_catalog.set_config('search_path', $1, true)", path); err != nil {
		return nil, fmt.Errorf("pgstore: check the catalog: %w", err)
	}
	return out, nil
}

// catalogChecks is catalogDiffs' work, with pg_catalog alone on the
// search_path: oids are what storeTables' names resolved to, schemas the
// search_path's schemas in order (current_schemas(true)).
func (s *Store) catalogChecks(ctx context.Context, tx pgx.Tx, oids []uint32, schemas []string) ([]string, error) {
	var out []string
	for i, oid := range oids {
		name := storeTables[i]
		var nsp, rel, kind string
		err := tx.QueryRow(ctx, `SELECT n.nspname, c.relname, c.relkind::text FROM pg_class c
			JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1`, oid).Scan(&nsp, &rel, &kind)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			out = append(out, fmt.Sprintf("catalog: %s names no relation on the search_path; the store's table is %s.%s", name, s.schema, name))
		case err != nil:
			return nil, err
		case nsp != s.schema || rel != name || kind != "r":
			out = append(out, fmt.Sprintf("catalog: %s names %s.%s (relation kind %s), not the store's table %s.%s: the store's statements read something else (the search_path, or the table, was changed)", name, nsp, rel, kind, s.schema, name))
		}
	}
	// The schemas searched before pg_catalog (other than the session's own
	// temporary one) answer for pg_catalog's functions, operators and
	// types of the same name in every statement.
	var before []string
	for _, sc := range schemas {
		if sc == "pg_catalog" {
			break
		}
		if !strings.HasPrefix(sc, "pg_temp_") {
			before = append(before, sc)
		}
	}
	if len(before) > 0 {
		// The store's own schema (search_path=airlock,pg_catalog) holds
		// its function and its tables' row types, whose names pg_catalog
		// does not use: only a name pg_catalog uses counts.
		rows, err := tx.Query(ctx, `SELECT format('function %I.%I', n.nspname, p.proname) FROM pg_proc p
			JOIN pg_namespace n ON n.oid = p.pronamespace
			WHERE n.nspname = ANY($1::text[]) AND EXISTS (SELECT FROM pg_proc b
				WHERE b.pronamespace = 'pg_catalog'::regnamespace AND b.proname = p.proname)
			UNION ALL
			SELECT format('operator %I.%s', n.nspname, o.oprname) FROM pg_operator o
			JOIN pg_namespace n ON n.oid = o.oprnamespace
			WHERE n.nspname = ANY($1::text[])
			UNION ALL
			SELECT format('type %I.%I', n.nspname, y.typname) FROM pg_type y
			JOIN pg_namespace n ON n.oid = y.typnamespace
			WHERE n.nspname = ANY($1::text[]) AND EXISTS (SELECT FROM pg_type b
				WHERE b.typnamespace = 'pg_catalog'::regnamespace AND b.typname = y.typname)
			ORDER BY 1 LIMIT 100`, before)
		if err != nil {
			return nil, err
		}
		shadows, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
		for _, sh := range shadows {
			out = append(out, fmt.Sprintf("catalog: %s answers for pg_catalog's in the store's statements: the search_path puts %s before pg_catalog", sh, strings.Join(before, ", ")))
		}
	}
	got, err := catalogLines(ctx, tx, s.schema)
	if err != nil {
		return nil, err
	}
	want := strings.Split(strings.TrimSpace(expectedCatalog), "\n")
	slices.Sort(want)
	n := 0
	for _, l := range got {
		if _, found := slices.BinarySearch(want, l); !found && n < maxIndexDiffs {
			n++
			out = append(out, fmt.Sprintf("catalog: %s: the migrations do not create this, and it can change what the store's statements read", l))
		}
	}
	for _, l := range want {
		if _, found := slices.BinarySearch(got, l); !found && n < maxIndexDiffs {
			n++
			out = append(out, fmt.Sprintf("catalog: %s: the migrations create this; the database does not have it", l))
		}
	}
	return out, nil
}
