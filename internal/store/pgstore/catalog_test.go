package pgstore

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var updateCatalog = flag.Bool("update-catalog", false, "rewrite catalog.txt from a schema the migrations create")

// TestCatalogIsTheMigrations: catalog.txt, what audit verify expects the
// store's tables to be, is what the migrations create.
func TestCatalogIsTheMigrations(t *testing.T) {
	s, _ := openFresh(t)
	defer s.Close()
	ctx := t.Context()
	tx, err := s.readTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET LOCAL search_path TO pg_catalog"); err != nil {
		t.Fatal(err)
	}
	lines, err := catalogLines(ctx, tx, s.schema)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(lines, "\n") + "\n"
	if *updateCatalog {
		if err := os.WriteFile("catalog.txt", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got != expectedCatalog {
		t.Fatalf("catalog.txt is not what the migrations create (go test -run TestCatalogIsTheMigrations -update-catalog):\n%s", got)
	}
	diffs, err := s.IndexDiffs(ctx)
	if err != nil || len(diffs) != 0 {
		t.Fatalf("IndexDiffs of a fresh store: %q, %v", diffs, err)
	}
}

// TestCatalogChangesReported: each change of the store's tables that the
// migrations do not make is a catalog problem of IndexDiffs, whether or
// not it hides anything from the reads of today's statements.
func TestCatalogChangesReported(t *testing.T) {
	for _, c := range []struct {
		name, sql, want string
	}{
		{"index redefined", `DROP INDEX grants_account_time; CREATE INDEX grants_account_time ON grants (account, requested_at, span_end) WHERE account <> 'x'`,
			"catalog: index grants: CREATE INDEX grants_account_time ON grants USING btree (account, requested_at, span_end) WHERE (account <> 'x'::text): the migrations do not create this"},
		{"index dropped", `DROP INDEX log_entries_grant`,
			"catalog: index log_entries: CREATE INDEX log_entries_grant ON log_entries USING btree (grant_id, seq): the migrations create this; the database does not have it"},
		{"collation", `ALTER TABLE grants ALTER COLUMN account TYPE text COLLATE "POSIX"`,
			"catalog: column grants.account: text collate POSIX not null"},
		{"trigger", `CREATE FUNCTION keep() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
			CREATE TRIGGER keep BEFORE INSERT ON log_entries FOR EACH ROW EXECUTE FUNCTION keep()`,
			"catalog: trigger log_entries: CREATE TRIGGER keep BEFORE INSERT ON "},
		{"unlogged", `ALTER TABLE log_entries SET UNLOGGED`,
			"catalog: table log_entries: kind r, persistence u"},
		{"inheritance", `CREATE TABLE more_grants () INHERITS (grants)`,
			"catalog: inheritance grants: "},
		{"rule", `CREATE RULE drop_calls AS ON INSERT TO sessions DO INSTEAD NOTHING`,
			"catalog: rule sessions: CREATE RULE drop_calls AS"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, _ := openFresh(t)
			defer s.Close()
			ctx := t.Context()
			if _, err := s.pool.Exec(ctx, c.sql); err != nil {
				t.Fatalf("%s: %v", c.sql, err)
			}
			diffs, err := s.IndexDiffs(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(diffs, "\n"), c.want) {
				t.Fatalf("IndexDiffs: no %q in\n%s", c.want, strings.Join(diffs, "\n"))
			}
		})
	}
}
