package pggw

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestRedactSecrets(t *testing.T) {
	tests := []struct{ sql, want string }{
		{"select dblink_connect('c', 'host=127.0.0.1 dbname=orders user=u password=hunter2')",
			"select dblink_connect('c', 'host=127.0.0.1 dbname=orders user=u password=<redacted>')"},
		{"select * from dblink('password = ''hun ter2'' host=h', 'select 1') as t(x int)",
			"select * from dblink('password = ''<redacted>'' host=h', 'select 1') as t(x int)"},
		{"select dblink_connect(E'host=h password=\\'hunter2\\'')", "select dblink_connect(E'host=h password=\\'<redacted>\\'')"},
		{"select dblink_exec('postgresql://u:hunter2@h:5432/db?sslpassword=hunter2&x=1', 'delete from t')",
			"select dblink_exec('postgresql://u:<redacted>@h:5432/db?sslpassword=<redacted>', 'delete from t')"},
		{"CREATE SUBSCRIPTION s CONNECTION 'dbname=x password=hunter2' PUBLICATION p",
			"CREATE SUBSCRIPTION s CONNECTION 'dbname=x password=<redacted>' PUBLICATION p"},
		{`CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', "password" 'hunter2')`,
			`CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', "password" '<redacted>')`},
		{"ALTER USER MAPPING FOR u SERVER s OPTIONS (ADD sslpassword 'hunter2')",
			"ALTER USER MAPPING FOR u SERVER s OPTIONS (ADD sslpassword '<redacted>')"},
		{"select pgp_sym_decrypt(ssn, 'hunter2') from people where name = 'bob'",
			"select pgp_sym_decrypt(ssn, '<redacted>') from people where name = 'bob'"},
		{"select public.pgp_sym_encrypt('data', 'hunter2', 'cipher-algo=aes256')",
			"select public.pgp_sym_encrypt('data', '<redacted>', 'cipher-algo=aes256')"},
		{"select hmac(body, convert_to('hunter2', 'utf8'), 'sha256'), crypt('hunter2', gen_salt('bf'))",
			"select hmac(body, convert_to('<redacted>', '<redacted>'), 'sha256'), crypt('<redacted>', gen_salt('bf'))"},
		{"select pgp_pub_decrypt(m, dearmor($k$hunter2$k$), $$hunter2$$)",
			"select pgp_pub_decrypt(m, dearmor($k$<redacted>$k$), $$<redacted>$$)"},
		{"select encrypt_iv(f(1, 2), E'hunter2', 'iv', 'aes')", "select encrypt_iv(f(1, 2), E'<redacted>', 'iv', 'aes')"},
		{"DO $$BEGIN PERFORM dblink_connect('host=h password=hunter2'); PERFORM hmac('x', 'hunter2', 'md5'); END$$",
			"DO $$BEGIN PERFORM dblink_connect('host=h password=<redacted>'); PERFORM hmac('x', '<redacted>', 'md5'); END$$"},
		// PASSWORD literals that redactPasswords alone missed: after a
		// comment, or with a U&, N or X prefix.
		{"create role r password /* x */ 'hunter2'", "create role r password /* x */ '<redacted>'"},
		{"create role r password U&'hunter2' login", "create role r password U&'<redacted>' login"},
		{"create role r password\n--c\nN'hunter2'", "create role r password\n--c\nN'<redacted>'"},
		// Kept: what is not a secret.
		{"select password_required, mypassword = 'x' from t", "select password_required, mypassword = 'x' from t"},
		{"select 'https://example.com/a@b'", "select 'https://example.com/a@b'"},
		{"select encrypt_count, decrypt from t where crypt = 'x'", "select encrypt_count, decrypt from t where crypt = 'x'"},
		// A plain literal read differently with standard_conforming_strings
		// off is not redacted: what the server may run as code stays.
		{`select pgp_sym_decrypt(c, 'a\'), (select secret from s), ('x')`, `select pgp_sym_decrypt(c, 'a\'), (select secret from s), ('x')`},
	}
	for _, tc := range tests {
		got := redactSecrets(tc.sql)
		if got != tc.want {
			t.Errorf("redactSecrets(%q)\n = %q\nwant %q", tc.sql, got, tc.want)
		}
	}
}

// TestSecretsNotRecorded: statements that carry a password in a
// connection string, a user mapping's options or a pgcrypto key, sent
// through the gateway to a real PostgreSQL, are recorded with the secret
// replaced and the statement's shape kept.
func TestSecretsNotRecorded(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Minute, "pg:select %s.public.*")
	c := e.connect(g, "")
	ctx := ctxT(t, 30*time.Second)
	for _, sql := range []string{
		"select dblink_connect('c', 'host=127.0.0.1 dbname=postgres password=hunter2-conninfo')",
		"select pgp_sym_encrypt('data', 'hunter2-pgcrypto')",
		`create user mapping for current_user server s options (user 'u', "password" 'hunter2-mapping')`,
	} {
		// Whether PostgreSQL runs them (dblink and pgcrypto need not be
		// installed; the grant's role may not create a mapping) does not
		// matter: each statement is recorded before it is forwarded.
		_, _ = c.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	}
	// The extended protocol: the text recorded at Parse.
	_, _ = c.Exec(ctx, "select pgp_sym_decrypt($1::bytea, 'hunter2-extended')", pgx.QueryExecModeExec, []byte("x"))
	e.settle(g)
	var n int
	var protocols []string
	for _, r := range e.requests(g) {
		protocols = append(protocols, r.Params["protocol"])
		st := r.Params["statement"]
		if strings.Contains(st, "hunter2") {
			t.Errorf("recorded %q", st)
		}
		if strings.Contains(st, "<redacted>") {
			n++
		}
	}
	if n != 4 || protocols[3] != "extended" {
		t.Errorf("%d statements recorded with <redacted>, want 4, the last by the extended protocol: %+v", n, e.requests(g))
	}
}
