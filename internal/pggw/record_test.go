package pggw

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestActionOf(t *testing.T) {
	tests := []struct{ sql, want string }{
		{"select 1", "pg:select"},
		{"  SELECT\n1", "pg:select"},
		{"-- comment\n/* block */ (select 1)", "pg:select"},
		{"InSeRt into t values (1)", "pg:insert"},
		{"with x as (select 1) delete from t", "pg:with"},
		{"copy t from stdin", "pg:copy"},
		{"selectx 1", "pg:statement"},
		{"select_1", "pg:statement"},
		{"", "pg:statement"},
		{"-- only a comment", "pg:statement"},
		{"/* unterminated", "pg:statement"},
		{"ünicode", "pg:statement"},
		{"BEGIN;", "pg:begin"},
		// Comments as PostgreSQL reads them: nested, and "--" ended by a
		// carriage return.
		{"/* /* */ select */ delete from t", "pg:delete"},
		{"--\rdelete from t where id in (--\nselect 1)", "pg:delete"},
	}
	for _, tc := range tests {
		if got := actionOf(tc.sql); got != tc.want {
			t.Errorf("actionOf(%q) = %q, want %q", tc.sql, got, tc.want)
		}
	}
}

func TestRedactPasswords(t *testing.T) {
	tests := []struct{ sql, want string }{
		{"alter role x password 'hunter2'", "alter role x password '<redacted>'"},
		{"ALTER ROLE x WITH ENCRYPTED PASSWORD 'it''s' VALID UNTIL 'x'", "ALTER ROLE x WITH ENCRYPTED PASSWORD '<redacted>' VALID UNTIL 'x'"},
		{"create user u password E'a\\'b' login", "create user u password '<redacted>' login"},
		{"create role u password $pw$s3cret$pw$", "create role u password '<redacted>'"},
		{"alter role u password 'unterminated", "alter role u password '<redacted>'"},
		{"alter role u password null", "alter role u password null"},
		{"select password from users", "select password from users"},
		{"select * from t where passwords = 'x'", "select * from t where passwords = 'x'"},
		{"select 'no secrets here'", "select 'no secrets here'"},
		{"PASSWORD 'a' PASSWORD 'b'", "PASSWORD '<redacted>' PASSWORD '<redacted>'"},
		{"DO $$BEGIN EXECUTE 'ALTER ROLE ' || current_user || ' PASSWORD ''s3cret'''; END$$",
			"DO $$BEGIN EXECUTE 'ALTER ROLE ' || current_user || ' PASSWORD ''<redacted>'''; END$$"},
		{"alter role x password ''", "alter role x password '<redacted>'"},
	}
	for _, tc := range tests {
		got := redactPasswords(tc.sql)
		if got != tc.want {
			t.Errorf("redactPasswords(%q) = %q, want %q", tc.sql, got, tc.want)
		}
		for _, secret := range []string{"hunter2", "it''s", "s3cret"} {
			if strings.Contains(tc.sql, secret) && strings.Contains(got, secret) {
				t.Errorf("secret %q survived in %q", secret, got)
			}
		}
	}
}

func TestFormatParams(t *testing.T) {
	long := strings.Repeat("a", 2000)
	tests := []struct {
		name    string
		params  [][]byte
		formats []int16
		redact  bool
		want    string
	}{
		{"none", nil, nil, false, ""},
		{"text and null", [][]byte{[]byte("o'k"), nil}, nil, false, "$1='o''k', $2=NULL"},
		{"binary for all", [][]byte{{0, 0, 0, 7}}, []int16{1}, false, `$1='\x00000007'`},
		{"mixed", [][]byte{[]byte("a"), {1}}, []int16{0, 1}, false, `$1='a', $2='\x01'`},
		{"redacted", [][]byte{[]byte("secret"), nil}, nil, true, "$1=<redacted 6 bytes>, $2=NULL"},
		{"truncated", [][]byte{[]byte(long)}, nil, false, "$1='" + long[:1024] + "'…(2000 bytes)"},
	}
	for _, tc := range tests {
		if got := formatParams(tc.params, tc.formats, tc.redact); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestTagRows(t *testing.T) {
	tests := []struct {
		tag  string
		n    int64
		isOK bool
	}{
		{"SELECT 3", 3, true}, {"INSERT 0 5", 5, true}, {"COPY 10", 10, true},
		{"UPDATE 0", 0, true}, {"BEGIN", 0, false}, {"SET", 0, false}, {"SELECT x", 0, false},
		// The digits summed by hand agree with strconv.ParseInt at the
		// edges: a trailing NUL, no digits, a sign, a letter among them,
		// 18 and 19 digits, the largest int64 and one past it.
		{"SELECT 7\x00", 7, true}, {"SELECT ", 0, false}, {"SELECT +4", 4, true}, {"SELECT -4", -4, true},
		{"SELECT 1a", 0, false}, {"SELECT 007", 7, true},
		{"COPY 999999999999999999", 999999999999999999, true}, {"COPY 1000000000000000000", 1000000000000000000, true},
		{"COPY 9223372036854775807", 9223372036854775807, true}, {"COPY 9223372036854775808", 0, false},
	}
	for _, tc := range tests {
		n, ok := tagRows([]byte(tc.tag))
		if n != tc.n || ok != tc.isOK {
			t.Errorf("tagRows(%q) = %d, %v", tc.tag, n, ok)
		}
	}
}

// The RFC 7677 section 3 example exchange, with the server's random nonce
// replaced by the RFC's, against a verifier with the RFC's salt.
func TestSCRAMRFC7677Vector(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	verifier := func(secret string) *scramVerifier {
		v, err := deriveSCRAMVerifier(secret, salt, 4096) // RFC 7677's example
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	s := &scramServer{v: verifier("pencil"), known: true}
	first, err := s.first([]byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(first, ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096") {
		t.Fatalf("server first %q does not carry the verifier's salt", first)
	}
	s.nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	s.serverFirst = "r=" + s.nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	final, ok, err := s.final([]byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	if err != nil || !ok {
		t.Fatalf("final: ok %v, err %v", ok, err)
	}
	if string(final) != "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Fatalf("server final %q", final)
	}
	// The same proof against another secret's verifier, or an unknown
	// user's (even were its verifier the right one), fails.
	for _, s2 := range []scramServer{
		{v: verifier("pencil2"), known: true},
		{v: mockSCRAMVerifier([]byte("key"), "user")},
		{v: s.v, known: false},
	} {
		s2.clientFirstBare, s2.serverFirst, s2.gs2Header, s2.nonce = s.clientFirstBare, s.serverFirst, s.gs2Header, s.nonce
		if _, ok, _ := s2.final([]byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")); ok {
			t.Fatalf("verifier %+v (known %v) accepted", s2.v.salt, s2.known)
		}
	}
}

func TestSCRAMRejects(t *testing.T) {
	tests := []struct{ name, first string }{
		{"channel binding required", "p=tls-server-end-point,,n=,r=abc"},
		{"authzid", "n,a=admin,n=,r=abc"},
		{"no nonce", "n,,n="},
		{"empty nonce", "n,,n=,r="},
		{"garbage", "hello"},
		{"extension", "n,,m=ext,n=,r=abc"},
	}
	for _, tc := range tests {
		s := &scramServer{v: mockSCRAMVerifier([]byte("k"), "u"), known: true}
		if _, err := s.first([]byte(tc.first)); err == nil {
			t.Errorf("%s: accepted %q", tc.name, tc.first)
		}
	}
	s := &scramServer{v: mockSCRAMVerifier([]byte("k"), "u"), known: true}
	if _, err := s.first([]byte("n,,n=,r=abc")); err != nil {
		t.Fatal(err)
	}
	for _, final := range []string{
		"c=biws,r=wrongnonce,p=" + base64.StdEncoding.EncodeToString(make([]byte, 32)),
		"c=eSws,r=" + s.nonce + ",p=" + base64.StdEncoding.EncodeToString(make([]byte, 32)), // y flag but n was sent
		"c=biws,r=" + s.nonce + ",p=short",
		"c=biws,r=" + s.nonce,
	} {
		if _, ok, err := s.final([]byte(final)); ok || err == nil {
			t.Errorf("accepted or no error for %q (ok %v)", final, ok)
		}
	}
}

func TestReadStatement(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want bool
	}{
		{"select 1", true},
		{"select * from customers where name = 'into'", true},
		{`select "into" from t`, true},
		{"select 1 -- into\n", true},
		{"show search_path", true},
		{"select 1 as x into temp t", false},
		{"SELECT * INTO public.copy FROM customers", false},
		{"select 1 /* */ InTo t", false},
		{`select 'a\' into t from x --'`, false}, // with standard_conforming_strings off
		{"delete from t", false},
		// Calls: only built-ins that only compute keep a read early.
		{"select count(*), max(amount), lower(name) from orders group by lower(name)", true},
		{"select coalesce(a, 0)::numeric(10,2), cast(b as varchar(20)) from t where exists (select 1 from u) and c in (1, 2)", true},
		{"select pg_catalog.lower(name), date_trunc('day', now()) from t", true},
		{"select row_number() over (partition by a order by b) from t", true},
		{`select "lower"(name) from t`, true},
		{"select lo_from_bytea(0, 'x')", false},
		{"select pg_notify('c', 'x')", false},
		{"SELECT PG_ADVISORY_LOCK(1)", false},
		{"select public.bump()", false},
		{"select public.lower(name) from t", false},
		{`select "LOWER"(name) from t`, false},
		{`select "pg_notify"('c', 'x')`, false},
		{"select lower(name), nextval('s') from t", false},
		{"select * from t where id = (select my_func(1))", false},
		{"select 'pg_notify(' from t", true},
		{"values (lo_create(0))", false},
		{`select 'a\' , pg_notify('c', '') --'`, false}, // with standard_conforming_strings off
		{"select ran\u212a() over () from t", false},    // the Kelvin sign is not folded: a function of its own
		{"SELECT COUNT(*), Lower(x) FROM t", true},
		{"fetch 10 from c", false}, // runs the cursor's query, whatever it calls
		// Keywords that "(" follows as grammar in some clauses but that
		// also name functions: grammar where the clause puts them, a call
		// anywhere else.
		{"select count(*) over (partition by name order by id), sum(id) filter (where id > 1) over w from t window w as (order by id)", true},
		{"select percentile_cont(0.5) within group (order by id) from t group by cube (a, b), grouping sets ((a), (b))", true},
		{"select * from t inner join (select 1) s on true cross join (u left join v on true) order by (id)", true},
		{"select x::character varying(10), now() at time zone ('UTC') from t tablesample bernoulli (1) repeatable (7)", false},
		{"select x::character varying(10), now() at time zone ('UTC'), 'a' like ('b') escape ('!') from t", true},
		{"select over(1)", false},
		{"select json(1)", false},
		{"select 1 from t where rows(id) > 0", false},
		{"select is(1), like(2)", false},
		{"select 1 from t order by cube(x)", false},
		{"select a, rollup(b) from t", false},
		{"select json_query(1), json_table(2), is_json(3)", false},
		{"select not materialized(1)", false},
		{"select * from t where id = 1 and join(2) is null", false},
		{"select by(1)", false},
		{"select partition(1), range(2), groups(3), nulls(4), ordinality(5), recursive(6), double(7), zone(8), at(9), of(10), similar(11), within(12)", false},
		{"select tablesample(1), repeatable(2), filter(3), sets(4), varying(5), escape(6)", false},
	} {
		if got := readStatement(actionOf(tc.sql), tc.sql); got != tc.want {
			t.Errorf("readStatement(%q) = %v, want %v", tc.sql, got, tc.want)
		}
	}
}

func TestReadQuery(t *testing.T) {
	for _, tc := range []struct {
		sql  string
		want bool
	}{
		{"select 1", true},
		{"select 1; select 2", true},
		{"select 1; set application_name = 'x'", false},
		// One SELECT with standard_conforming_strings on, a SELECT and a
		// SET with it off.
		{`select '\'' ; set application_name = 'x' --'`, false},
		// Two SELECTs with it on, a SELECT and a NOTIFY with it off.
		{`select 'a\'; select '; notify c --'`, false},
		{`select 'a\', 'b'; select 2`, true},
	} {
		if got := readQuery(tc.sql); got != tc.want {
			t.Errorf("readQuery(%q) = %v, want %v", tc.sql, got, tc.want)
		}
	}
}

// TestActionOfMatchesStringKeys holds actionOf's lookup by letter key
// (letterKey, verbOf) to the lookup by the folded word it replaced
// (verbsBefore), for each verb, the verb less its first or last letter,
// extended, doubled, in upper case, and long words; and actionOf itself on
// texts that begin with them, followed by what may end a word or not.
func TestActionOfMatchesStringKeys(t *testing.T) {
	words := []string{"x", "abcdefghijklmnopqrstuvwxyz", "checkpointcheckpoint", "selectselect", "deallocatex"}
	for _, a := range verbsBefore {
		v := strings.TrimPrefix(a, "pg:")
		words = append(words, v, strings.ToUpper(v), v[:len(v)-1], v[1:], v+"s", v+v)
	}
	for _, w := range words {
		want, wantOK := verbsBefore[strings.ToLower(w)]
		if len(w) > maxVerbLetters {
			want, wantOK = "", false
		}
		k := uint64(0)
		for i := range min(len(w), maxVerbLetters) {
			k = letterKey(k, w[i])
		}
		if got, ok := verbOf(k); got != want || ok != wantOK {
			t.Errorf("verbOf(key of %q) = %q, %v; want %q, %v", w, got, ok, want, wantOK)
		}
		for _, tail := range []string{"", " 1", "(", ";", "\t", "`", "@", "_x", "1", "\xc3\xa9", "$1"} {
			want := "pg:statement"
			if a, ok := verbsBefore[strings.ToLower(w)]; ok && (tail == "" || !isIdent(tail[0])) {
				want = a
			}
			if got := actionOf(" (" + w + tail); got != want {
				t.Errorf("actionOf(%q) = %q, want %q", " ("+w+tail, got, want)
			}
		}
	}
	if got, ok := verbOf(0); ok {
		t.Errorf("verbOf(0) = %q, true; want no verb for a word of no letters", got)
	}
}

// verbsBefore is actionOf's table as it was, by the folded word.
var verbsBefore = func() map[string]string {
	m := map[string]string{}
	for _, a := range verbs {
		m[strings.TrimPrefix(a, "pg:")] = a
	}
	return m
}()
