package pggw

import (
	"strings"
	"testing"
)

func statementTexts(sql string, backslash bool) []string {
	var out []string
	for _, st := range splitStatements(sql, backslash) {
		out = append(out, sql[st.start:st.end])
	}
	return out
}

func TestSplitStatements(t *testing.T) {
	tests := []struct {
		sql  string
		want []string
	}{
		{"select 1", []string{"select 1"}},
		{"select 1; delete from t", []string{"select 1", "delete from t"}},
		{"  ;; select 1 ;\n;", []string{"select 1"}},
		{"select ';'; select 2", []string{"select ';'", "select 2"}},
		{"select 'it''s;'; select 2", []string{"select 'it''s;'", "select 2"}},
		{`select E'\';'; select 2`, []string{`select E'\';'`, "select 2"}},
		{`select 'a\'; delete from t; --'`, []string{`select 'a\'`, "delete from t"}},
		{`select "a;b" from t; select 2`, []string{`select "a;b" from t`, "select 2"}},
		{"select $$;$$; select $x$ $$; $x$; select 2", []string{"select $$;$$", "select $x$ $$; $x$", "select 2"}},
		{"select $1; select a$b$c from t", []string{"select $1", "select a$b$c from t"}},
		{"select 1 -- ; not a split\n; select 2 -- trailing", []string{"select 1 -- ; not a split", "select 2 -- trailing"}},
		{"/* a */ select 1; -- only a comment\n; select 2", []string{"/* a */ select 1", "select 2"}},
		{"select /* ; /* nested ; */ still ; */ 1; select 2", []string{"select /* ; /* nested ; */ still ; */ 1", "select 2"}},
		{"select U&'d;' ; select U&\"a;\" from t", []string{"select U&'d;'", "select U&\"a;\" from t"}},
		{"select 'unterminated; delete from t", []string{"select 'unterminated; delete from t"}},
		{"create function f() returns int language sql begin atomic select 1; select case when true then 2 end; end; select 3",
			[]string{"create function f() returns int language sql begin atomic select 1; select case when true then 2 end; end", "select 3"}},
		{"create or replace procedure p() begin atomic insert into t values (1); end; delete from t",
			[]string{"create or replace procedure p() begin atomic insert into t values (1); end", "delete from t"}},
		{"begin; select 1; commit", []string{"begin", "select 1", "commit"}},
		// A "--" comment ends at a carriage return too.
		{"select 1 --\r; delete from t", []string{"select 1 --", "delete from t"}},
	}
	for _, tc := range tests {
		got := statementTexts(tc.sql, false)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
			t.Errorf("split(%q) = %q, want %q", tc.sql, got, tc.want)
		}
	}
	// With standard_conforming_strings off, a backslash escapes a quote.
	if got := statementTexts(`select 'a\'; delete from t; --'`, true); len(got) != 1 {
		t.Errorf("backslash quotes: %q, want one statement", got)
	}
}

func TestChangesAuth(t *testing.T) {
	refused := []string{
		"ALTER ROLE CURRENT_USER PASSWORD 'x'",
		"alter role current_user with password 'x'",
		"ALTER USER SESSION_USER ENCRYPTED PASSWORD 'x'",
		"alter role current_role password null",
		`ALTER USER "airlock_g_abc" PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a:b'`,
		"alter user airlock_g_abc password 'x'",
		`ALTER ROLE U&"airlock_g_abc" PASSWORD 'x'`,
		"ALTER ROLE airlock_g_abc VALID UNTIL 'infinity'",
		"ALTER ROLE airlock_g_abc RENAME TO someone",
		"/* hi */ ALTER -- x\n ROLE CURRENT_USER PASSWORD 'x'",
		"select 1; ALTER ROLE CURRENT_USER PASSWORD 'x'",
		"select 1; alter role current_user password 'x'; select 2",
		`select 'a\'; alter role current_user password 'x'; --'`,
		"create function f() returns int language sql begin atomic select 1; alter role current_user password 'x'; end",
		"DO $$BEGIN EXECUTE 'ALTER ROLE ' || current_user || ' PASSWORD ''x'''; END$$",
		"do $body$ begin execute format('alter user %I password %L', current_user, 'x'); end $body$",
		"CREATE OR REPLACE FUNCTION f() RETURNS void LANGUAGE plpgsql AS 'BEGIN EXECUTE ''ALTER ROLE CURRENT_USER VALID UNTIL ''''infinity''''''; END'",
		"--\rALTER ROLE CURRENT_USER PASSWORD 'x'",
		"select 1 --\r; alter role current_user valid until 'infinity'",
	}
	for _, sql := range refused {
		if !changesAuth(sql) {
			t.Errorf("not refused: %s", sql)
		}
	}
	allowed := []string{
		"select 'ALTER ROLE CURRENT_USER PASSWORD x'",
		"select 1 -- ALTER ROLE CURRENT_USER PASSWORD 'x'",
		"/* alter role current_user password 'x' */ select 1",
		"select $$ALTER ROLE current_user PASSWORD 'x'$$",
		`select "alter", "role", "password" from t`,
		"ALTER ROLE CURRENT_USER SET search_path = public",
		"ALTER ROLE CURRENT_USER RESET ALL",
		"ALTER USER MAPPING FOR CURRENT_USER SERVER s OPTIONS (SET password 'x')",
		"insert into notes values ('alter role x password y')",
		"select password from users",
		"alter table t rename to u",
	}
	for _, sql := range allowed {
		if changesAuth(sql) {
			t.Errorf("refused: %s", sql)
		}
	}
}

func TestMayHoldSeveral(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want bool
	}{
		{"select 1", false},
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 7;", false},
		{"select 1;  \n\t", false},
		{";", false},
		{"select 1; select 2", true},
		{"select ';'", true}, // a ";" in a literal: the tokenizer decides
		{"select 1;;", true},
		{"select 1; -- c", true},
	} {
		if got := mayHoldSeveral(tc.sql); got != tc.want {
			t.Errorf("mayHoldSeveral(%q) = %v, want %v", tc.sql, got, tc.want)
		}
	}
}

// TestHighBeforePunctMatchesBytes holds highBeforePunct, which skips the
// text's first bytes below 0x80 eight at a time, to the byte-by-byte test
// it was, with the high byte and the punctuation at every offset around
// the eight-byte steps.
func TestHighBeforePunctMatchesBytes(t *testing.T) {
	before := func(s string) bool {
		for i := 1; i < len(s); i++ {
			if s[i-1] >= 0x80 && trailPunct(s[i]) {
				return true
			}
		}
		return false
	}
	for n := range 20 {
		for i := range n {
			for _, pair := range []string{"\xc3;", "\xc3a", "\x80", ";\xc3", "\xff\\"} {
				s := strings.Repeat("x", i) + pair + strings.Repeat("y", n-i)
				if got, want := highBeforePunct(s), before(s); got != want {
					t.Fatalf("highBeforePunct(%q) = %v, want %v", s, got, want)
				}
			}
		}
	}
}
