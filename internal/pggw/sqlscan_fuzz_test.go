package pggw

import (
	"strings"
	"testing"
)

// FuzzSplitStatements: the tokenizer never panics, its statements are
// ordered, disjoint, non-empty parts of the text, each one splits again
// into exactly itself, and the auth check terminates on anything.
func FuzzSplitStatements(f *testing.F) {
	for _, s := range []string{
		"select 1; delete from t",
		"select 'a;b'; select E'\\';'; select $$;$$; select $t$ $$ $t$",
		`select "x;y", U&"a;" from t; select U&'\0041;'`,
		"select 1 -- ;\n; /* ; /* ; */ */ select 2",
		"create function f() returns int language sql begin atomic select 1; select case when x then 1 end; end; select 2",
		"ALTER ROLE CURRENT_USER PASSWORD 'x'",
		"DO $$BEGIN EXECUTE 'ALTER ROLE ' || current_user || ' PASSWORD ''x'''; END$$",
		`select 'a\'; alter role current_user password 'x'; --'`,
		"select $1, a$b$, $x$unterminated",
		"'", "\"", "$$", "/*", "--", "e'", "u&", ";;;",
		"SELECT abalance FROM pgbench_accounts WHERE aid = 1;", "select 1; \n\t", " ;", "select ';'", "select 1 -- x;",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, sql string, backslash bool) {
		sts := splitStatements(sql, backslash)
		prev := 0
		for _, st := range sts {
			if st.start < prev || st.end <= st.start || st.end > len(sql) {
				t.Fatalf("statement [%d,%d) out of order or empty (previous end %d, len %d)", st.start, st.end, prev, len(sql))
			}
			prev = st.end
			text := sql[st.start:st.end]
			again := splitStatements(text, backslash)
			if len(again) != 1 || text[again[0].start:again[0].end] != text {
				t.Fatalf("statement %q splits again into %d statements", text, len(again))
			}
		}
		if !strings.Contains(sql, ";") && len(sts) > 1 {
			t.Fatalf("%d statements without a ';'", len(sts))
		}
		if !mayHoldSeveral(sql) && len(sts) > 1 {
			t.Fatalf("%d statements in %q, which recordQuery does not split", len(sts), sql)
		}
		_ = changesAuth(sql)
		_ = actionOf(sql)
	})
}

// FuzzCallsOnlyPure: callsOnlyPure and readStatement never panic on any
// text, and the call of a function outside the list, appended as a
// statement of its own, always makes the text impure.
func FuzzCallsOnlyPure(f *testing.F) {
	for _, s := range []string{
		"select count(*) from t", "select lower(x), pg_catalog.upper(y)", `select "lower"(x)`, "select (1)",
		"select pg_notify('c','x')", "select public.f()", "values (lo_create(0))", "select 'a(' || b", "select $$(",
		"select x::numeric(10,2)", "select /* ( */ 1", "select 1 -- (", "(", "x(", ".(", "pg_catalog.(",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		callsOnlyPure(sql)
		readStatement(actionOf(sql), sql)
		// Only when the text leaves nothing open (a literal, quote or
		// comment) does the appended call stand as a call.
		if closed(sql) {
			if s := sql + "\n;select pg_notify('c', '')"; callsOnlyPure(s) {
				t.Fatalf("%q counts as pure", s)
			}
		}
	})
}

// closed reports whether sql, under either reading of backslashes, ends
// outside every literal, quoted identifier and comment: scanning it and
// then a marker word finds the marker as a word.
func closed(sql string) bool {
	for _, bq := range []bool{false, true} {
		s := sql + "\n;zzmarker"
		sc := scanner{s: s, backslashQuotes: bq}
		var last token
		found := false
		for {
			t, ok := sc.next()
			if !ok {
				break
			}
			last, found = t, true
		}
		if !found || !isWord(s, last, "zzmarker") {
			return false
		}
	}
	return true
}
