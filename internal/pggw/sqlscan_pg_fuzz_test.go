package pggw

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"
)

// FuzzSplitAgreesWithPostgres checks the statement splitter against the
// peer whose reading counts: PostgreSQL's own lexer and grammar. The
// gateway records (and checks) a simple Query statement by statement as
// splitStatements cuts it, while the server runs the statements its
// parser finds; where the two differ, a client could run a statement the
// record does not show as one. Nothing is run: each text is only parsed
// (an unnamed prepared statement: Parse and Describe, never Bind or
// Execute), which PostgreSQL refuses with "cannot insert multiple
// commands into a prepared statement" exactly when its grammar finds
// more than one statement. So: a text the server finds several
// statements in must split into several; one it prepares must not split;
// and no piece the splitter cuts may hold several statements for the
// server. Both settings of standard_conforming_strings are checked.
func FuzzSplitAgreesWithPostgres(f *testing.F) {
	dsn := adminDSN(f)
	ctx := context.Background()
	conns := map[bool]*pgconn.PgConn{}
	for _, bs := range []bool{false, true} {
		cfg, err := pgconn.ParseConfig(dsn)
		if err != nil {
			f.Fatal(err)
		}
		cfg.RuntimeParams["standard_conforming_strings"] = "on"
		if bs {
			cfg.RuntimeParams["standard_conforming_strings"] = "off"
		}
		cfg.RuntimeParams["client_min_messages"] = "error"
		c, err := pgconn.ConnectConfig(ctx, cfg)
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { c.Close(context.Background()) })
		conns[bs] = c
	}
	for _, s := range []string{
		"select 1; select 2",
		"select 'a;b'; select E'\\';'; select $$;$$; select $t$ $$ $t$",
		`select "x;y", U&"a;" from pg_class; select U&'\0041;'`,
		"select 1 -- ;\n; /* ; /* ; */ */ select 2",
		"select 1 -- x\r; select 2",
		"select 1 /* a */ + /* b */ 2",
		"create function f() returns int language sql begin atomic select 1; select case when true then 1 end; end; select 2",
		"create or replace procedure p() language sql begin atomic select 1; end",
		`select 'a\'; select 2; --'`,
		"select $1, a$b$, $x$unterminated",
		"select 1 +-- x;\n 2; select 3",
		"select 1 */* x; */ 2",
		"select U&'d\\0061t\\+000061' UESCAPE '\\'; select 2",
		"select x'1f'; select b'01'; select n'x'",
		"select 1.e;select 2",
		"select $a$b$a$; select 1",
		"select 'a' 'b';select 'a'\n'b'",
		"select e'\\\\'; select 1",
		"select 1;;; ;select 2;",
		"select '\u00a0;'; select 1",
		"select relname from pg_class where relname = 'x;y'",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, sql string, bs bool) {
		if len(sql) > 2048 || !utf8.ValidString(sql) || strings.IndexByte(sql, 0) >= 0 {
			return // refused before parsing (NUL, encoding): nothing to compare
		}
		c := conns[bs]
		parse := func(text string) (several, ok bool) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := c.Prepare(ctx, "", text, nil)
			var pe *pgconn.PgError
			switch {
			case err == nil:
				return false, true
			case errors.As(err, &pe):
				return pe.Code == "42601" && strings.HasPrefix(pe.Message, "cannot insert multiple commands"), false
			}
			t.Fatalf("parsing %q: %v", text, err)
			return false, false
		}
		sts := splitStatements(sql, bs)
		several, ok := parse(sql)
		if several && len(sts) < 2 {
			t.Fatalf("PostgreSQL finds several statements in %q; the splitter finds %d", sql, len(sts))
		}
		if ok && len(sts) > 1 {
			t.Fatalf("PostgreSQL prepares %q as one statement; the splitter finds %d", sql, len(sts))
		}
		if len(sts) < 2 {
			return
		}
		for _, st := range sts {
			if piece := sql[st.start:st.end]; func() bool { s, _ := parse(piece); return s }() {
				t.Fatalf("the splitter's statement %q of %q holds several for PostgreSQL", piece, sql)
			}
		}
	})
}
