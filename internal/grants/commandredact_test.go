package grants

import (
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

func TestRedactCommand(t *testing.T) {
	const own = "S3cr3tOfTheGrantItselfAAAAAAAAAAAAAAAAA"
	for _, c := range []struct{ in, want []string }{
		// Kept as the holder wrote them.
		{[]string{"aws", "s3", "ls", "s3://bucket/p/"}, nil},
		{[]string{"aws", "secretsmanager", "get-secret-value", "--secret-id", "prod/db"}, nil},
		{[]string{"aws", "logs", "filter-log-events", "--next-token=abc"}, []string{"aws", "logs", "filter-log-events", "--next-token=[REDACTED]"}},
		{[]string{"psql", "-c", "select 1", "host=h dbname=d"}, nil},
		{[]string{"sh", "-c", "cd $PWD && ls"}, nil},
		{[]string{"env", "TOKEN_NAME=ci", "SECRET_ARN=arn:aws:x"}, nil},
		// The grant's own secret, anywhere.
		{[]string{"psql", "password=" + own}, []string{"psql", "password=[REDACTED]"}},
		{[]string{"curl", "-H", "X-Key: " + own}, []string{"curl", "-H", "X-Key: [REDACTED]"}},
		// Other secrets.
		{[]string{"psql", "postgresql://admin:hunter2@db:5432/app"}, []string{"psql", "postgresql://admin:[REDACTED]@db:5432/app"}},
		{[]string{"psql", "host=db user=admin password='hun ter2' dbname=app"}, []string{"psql", "host=db user=admin password=[REDACTED] dbname=app"}},
		{[]string{"sh", "-c", "PGPASSWORD=hunter2 psql -h db"}, []string{"sh", "-c", "PGPASSWORD=[REDACTED] psql -h db"}},
		{[]string{"env", "MYSQL_PWD=hunter2", "GITHUB_TOKEN=ghp_x", "AWS_SECRET_ACCESS_KEY=abc"}, []string{"env", "MYSQL_PWD=[REDACTED]", "GITHUB_TOKEN=[REDACTED]", "AWS_SECRET_ACCESS_KEY=[REDACTED]"}},
		{[]string{"tool", "--password", "hunter2", "--db-password=hunter3", "-token", "t0k"}, []string{"tool", "--password", "[REDACTED]", "--db-password=[REDACTED]", "-token", "[REDACTED]"}},
		{[]string{"aws", "secretsmanager", "put-secret-value", "--secret-id", "x", "--secret-string", "hunter2"}, []string{"aws", "secretsmanager", "put-secret-value", "--secret-id", "x", "--secret-string", "[REDACTED]"}},
		// Header lines, a positional value after a secret's name, and a
		// MySQL client's glued -p (missed before: they reached the log).
		{[]string{"curl", "-H", "Authorization: Bearer hunter2", "https://api.example.com/x"}, []string{"curl", "-H", "Authorization: Bearer [REDACTED]", "https://api.example.com/x"}},
		{[]string{"sh", "-c", "curl -H 'authorization: Basic aHVudGVyMg==' -H 'X-Api-Key: hunter3' -H 'Cookie: sid=hunter4' https://h/"},
			[]string{"sh", "-c", "curl -H 'authorization: Basic [REDACTED]' -H 'X-Api-Key: [REDACTED]' -H 'Cookie: [REDACTED]' https://h/"}},
		{[]string{"curl", "--header=Proxy-Authorization: hunter2", "-H", "Accept: application/json", "http://h:8080/"}, []string{"curl", "--header=Proxy-Authorization: [REDACTED]", "-H", "Accept: application/json", "http://h:8080/"}},
		// A header argument whose name stands behind quotes it holds
		// (a shell passed "'X-Api-Key: a' b c" on): curl sends a header
		// named 'X-Api-Key whose value is a' b c, hidden to the line's
		// end as any header argument's. The quotes were read as the
		// shell's, and b c was kept.
		{[]string{"curl", "-H", "'X-Api-Key: a' hun ter2", "-H", `"Authorization: Bearer a" hun ter3`, "-H", "$'Cookie: a' ter2\nAccept: x", "https://h/"},
			[]string{"curl", "-H", "'X-Api-Key: [REDACTED]", "-H", `"Authorization: Bearer [REDACTED]`, "-H", "$'Cookie: [REDACTED]\nAccept: x", "https://h/"}},
		{[]string{"aws", "configure", "set", "aws_secret_access_key", "hunter2"}, []string{"aws", "configure", "set", "aws_secret_access_key", "[REDACTED]"}},
		{[]string{"aws", "configure", "set", "region", "us-east-1"}, nil},
		{[]string{"git", "config", "credential.password", "hunter2"}, []string{"git", "config", "credential.password", "[REDACTED]"}},
		{[]string{"tool", "--api-key", "hunter2", "API_KEY=hunter3", "--api-key-id", "k1"}, []string{"tool", "--api-key", "[REDACTED]", "API_KEY=[REDACTED]", "--api-key-id", "k1"}},
		{[]string{"mysql", "-uroot", "-phunter2", "-h", "db"}, []string{"mysql", "-uroot", "-p[REDACTED]", "-h", "db"}},
		{[]string{"/usr/bin/mysqldump", "-phunter2"}, []string{"/usr/bin/mysqldump", "-p[REDACTED]"}},
		{[]string{"sh", "-c", "mysql -u root -phunter2 app < dump.sql"}, []string{"sh", "-c", "mysql -u root -p[REDACTED] app < dump.sql"}},
		{[]string{"ssh", "-p2222", "host"}, nil},
		// -p's password quoted or after other letters in a shell line,
		// or a client run by sudo (programOptions): only -pPW bare, or
		// argv[0]'s, was seen. Alone, -p asks for it: the database after
		// it stays.
		{[]string{"sh", "-c", `mysql -u root -p'hun ter2' app; mariadb -p"hunter3" app; mysqldump -vphunter4 app`},
			[]string{"sh", "-c", `mysql -u root -p'[REDACTED] app; mariadb -p"[REDACTED] app; mysqldump -vp[REDACTED] app`}},
		{[]string{"sudo", "mysql", "-uroot", "-Bphunter2", "-e", "select 1"}, []string{"sudo", "mysql", "-uroot", "-Bp[REDACTED]", "-e", "select 1"}},
		{[]string{"sh", "-c", "mysql -h db -P 3306 -p app && mysqladmin -u root -vp status"}, nil},
		{[]string{"mysql", "-p", "app"}, nil},
		// A secret's assignment inside the quoted value of another name
		// (a libpq conninfo in a flag), and values the shell joins from
		// quoted, unquoted and escaped pieces: each piece used to be kept
		// past the first.
		// Every cookie of a Cookie line, not only the first.
		{[]string{"curl", "-H", "Cookie: _ga=GA1.2.3; session=hunter2;theme=dark", "https://h/"}, []string{"curl", "-H", "Cookie: [REDACTED]", "https://h/"}},
		{[]string{"sh", "-c", "curl -H 'Cookie: a=1; sid=hunter2' -H 'Accept: text/plain; q=1' https://h/"},
			[]string{"sh", "-c", "curl -H 'Cookie: [REDACTED]' -H 'Accept: text/plain; q=1' https://h/"}},
		{[]string{"curl", "-H", `Cookie: theme=dark; sid="hunter2"`, "https://h/"}, []string{"curl", "-H", "Cookie: [REDACTED]", "https://h/"}},
		{[]string{"curl", "-H", `Authorization: Bearer "hunter2"`, "https://h/"}, []string{"curl", "-H", "Authorization: Bearer [REDACTED]", "https://h/"}},
		// curl's -H with the header line glued to it, after other
		// short options or none: the name read was -HAuthorization.
		{[]string{"curl", "-HAuthorization: Bearer hunter2", "-sSHCookie: sid=hunter3", "https://h/"}, []string{"curl", "-HAuthorization: Bearer [REDACTED]", "-sSHCookie: [REDACTED]", "https://h/"}},
		{[]string{"sh", "-c", `curl "-HAuthorization: Bearer hunter2" -sH'Proxy-Authorization: Basic hunter3' -H"Cookie: a=hunter4" https://h/; echo visible`},
			[]string{"sh", "-c", `curl "-HAuthorization: Bearer [REDACTED]" -sH'Proxy-Authorization: Basic [REDACTED]' -H"Cookie: [REDACTED]" https://h/; echo visible`}},
		{[]string{"sh", "-c", `curl -H "Cookie: sid=hunter2" https://h/`}, []string{"sh", "-c", `curl -H "Cookie: [REDACTED]" https://h/`}},
		{[]string{"sh", "-c", "curl -H 'Accept: a; Authorization: Bearer hunter2;x' https://h/"}, []string{"sh", "-c", "curl -H 'Accept: a; Authorization: Bearer [REDACTED]' https://h/"}},
		// A secret header inside another header's value, and quoted
		// credentials with spaces: the rest used to be kept.
		{[]string{"sh", "-c", "curl -H 'X-Foo: Authorization: Bearer hunter2' https://h/"}, []string{"sh", "-c", "curl -H 'X-Foo: Authorization: Bearer [REDACTED]' https://h/"}},
		{[]string{"curl", "-H", `Authorization: Bearer "hun ter2"`, "https://h/"}, []string{"curl", "-H", "Authorization: Bearer [REDACTED]", "https://h/"}},
		{[]string{"sh", "-c", `curl -H "Cookie: a=1; sid=\"hun ter2\"" https://h/`}, []string{"sh", "-c", `curl -H "Cookie: [REDACTED]" https://h/`}},
		{[]string{"sh", "-c", `curl -H 'Authorization: Digest username="u", response="hun ter2"' https://h/`}, []string{"sh", "-c", `curl -H 'Authorization: Digest [REDACTED]' https://h/`}},
		{[]string{"sh", "-c", `curl -H Authorization:\ Bearer\ hunter2 https://h/`}, []string{"sh", "-c", `curl -H Authorization:\ Bearer\ [REDACTED] https://h/`}},
		{[]string{"sh", "-c", `curl -H "Authorization: Basic aGk=" -H "X-Api-Key: hunter2" https://h/`}, []string{"sh", "-c", `curl -H "Authorization: Basic [REDACTED]" https://h/`}},
		{[]string{"sh", "-c", `curl -H "Cookie: a=" -H "X-Api-Key: Bearer hunter2" https://h/`}, []string{"sh", "-c", `curl -H "Cookie: [REDACTED]" https://h/`}},
		{[]string{"sh", "-c", `curl -H 'Cookie: sid="1' -H 'X-Api-Key: "hun ter2"' https://h/`}, []string{"sh", "-c", `curl -H 'Cookie: [REDACTED]`}},
		{[]string{"sh", "-c", "curl -H 'Authorization: Bearer x,X-Api-Key: Token hunter2' https://h/"}, []string{"sh", "-c", "curl -H 'Authorization: Bearer [REDACTED]' https://h/"}},
		// An Authorization line's unknown first word is taken as a
		// credential too, with the word after it: more than needed
		// (OAuth-like schemes) rather than less (a bare key and a URL).
		{[]string{"sh", "-c", "curl -H 'Authorization: Custom hunter2' https://h/"}, []string{"sh", "-c", "curl -H 'Authorization: [REDACTED]' https://h/"}},
		{[]string{"sh", "-c", "curl -H Authorization:hunter https://h/"}, []string{"sh", "-c", "curl -H Authorization:[REDACTED]"}},
		// A single-quoted credential, with a space in it or not: the
		// quote opens it unless a blank follows (the shell's closing
		// quote, as after Basic aGk= above).
		{[]string{"curl", "-H", "Authorization: Bearer 'hun ter2'", "https://h/"}, []string{"curl", "-H", "Authorization: Bearer [REDACTED]", "https://h/"}},
		{[]string{"curl", "-H", "X-Api-Key: 'hunter2'", "https://h/"}, []string{"curl", "-H", "X-Api-Key: [REDACTED]", "https://h/"}},
		{[]string{"sh", "-c", `curl -H "Authorization: Bearer 'hun ter2'" https://h/`}, []string{"sh", "-c", `curl -H "Authorization: Bearer [REDACTED]" https://h/`}},
		{[]string{"curl", "-H", "Cookie: theme=dark; sid='hun ter2'", "https://h/"}, []string{"curl", "-H", "Cookie: [REDACTED]", "https://h/"}},
		{[]string{"sh", "-c", `curl -H "Authorization: Digest username='u', response='hun ter2'" https://h/`}, []string{"sh", "-c", `curl -H "Authorization: Digest [REDACTED]" https://h/`}},
		// The shell's quote closed before a credential glued to it: the
		// shell word, to its end (the rest of the line was hidden). A
		// quoted piece that may hide another header's line: the rest of
		// the line.
		{[]string{"sh", "-c", "curl -H 'Authorization: Bearer 'hunter2 https://h/"}, []string{"sh", "-c", "curl -H 'Authorization: Bearer '[REDACTED] https://h/"}},
		{[]string{"sh", "-c", `curl -H "Cookie: sid='1" -H "X-Api-Key: 'hun ter2'" https://h/`}, []string{"sh", "-c", `curl -H "Cookie: [REDACTED]`}},
		{[]string{"sh", "-c", "curl -H 'Cookie: sid=' -H 'Accept: a' https://h/"}, []string{"sh", "-c", "curl -H 'Cookie: [REDACTED]' -H 'Accept: a' https://h/"}},
		// A credential with a blank in it, unquoted inside the quotes
		// that hold the header line (the shell's '…', "…" or $'…'), or
		// in a curl argument of its own: curl sends all of it, and the
		// value ended at the blank, keeping the rest.
		{[]string{"sh", "-c", "curl -H 'X-Api-Key: K1 ter2' https://h/"}, []string{"sh", "-c", "curl -H 'X-Api-Key: [REDACTED]' https://h/"}},
		{[]string{"sh", "-c", "curl -H 'Authorization: Bearer K1 ter2' https://h/"}, []string{"sh", "-c", "curl -H 'Authorization: Bearer [REDACTED]' https://h/"}},
		{[]string{"sh", "-c", "curl -H 'Cookie: sid=K1 ter2' -H 'Accept: a b' https://h/"}, []string{"sh", "-c", "curl -H 'Cookie: [REDACTED]' -H 'Accept: a b' https://h/"}},
		{[]string{"sh", "-c", `curl -H "X-Api-Key: K1 ter2" https://h/`}, []string{"sh", "-c", `curl -H "X-Api-Key: [REDACTED]" https://h/`}},
		{[]string{"sh", "-c", `curl -H "X-Api-Key: K1 \"ter2" https://h/`}, []string{"sh", "-c", `curl -H "X-Api-Key: [REDACTED]" https://h/`}},
		{[]string{"sh", "-c", `curl -H $'X-Api-Key: K1\' ter2' https://h/`}, []string{"sh", "-c", `curl -H $'X-Api-Key: [REDACTED]' https://h/`}},
		{[]string{"sh", "-c", `curl -H X-Api-Key:\ $'K1 ter2' https://h/`}, []string{"sh", "-c", `curl -H X-Api-Key:\ [REDACTED] https://h/`}},
		{[]string{"sh", "-c", `curl -H X-Api-Key:\ K1\ ter2 https://h/`}, []string{"sh", "-c", `curl -H X-Api-Key:\ [REDACTED] https://h/`}},
		{[]string{"curl", "-H", "X-Api-Key: K1 ter2", "https://h/"}, []string{"curl", "-H", "X-Api-Key: [REDACTED]", "https://h/"}},
		{[]string{"curl", "-H", "X-Api-Key: $'K1 ter2'", "https://h/"}, []string{"curl", "-H", "X-Api-Key: [REDACTED]", "https://h/"}},
		{[]string{"pg_dump", `--dbname="host=db password=hunter2"`}, []string{"pg_dump", `--dbname="host=db password=[REDACTED]"`}},
		// A value in quotes that opened before its name, read as though
		// outside them too (a stray quote's, they may be): where the
		// shell reads the text past their closing quote as a command's
		// (an option's word, an operator), that reading is not taken.
		// It hid -c "select 1", and the rest of the line.
		{[]string{"sh", "-c", `pg_dump --dbname="host=db password=hunter2" -v "x y"; psql 'user=a password=hunter3' -c 'select 1'; echo visible`},
			[]string{"sh", "-c", `pg_dump --dbname="host=db password=[REDACTED]" -v "x y"; psql 'user=a password=[REDACTED]' -c 'select 1'; echo visible`}},
		{[]string{"sh", "-c", `psql "host=db password=hunter2" -c select; echo "visible"`}, []string{"sh", "-c", `psql "host=db password=[REDACTED]" -c select; echo "visible"`}},
		{[]string{"sh", "-c", `env "A=1 PGPASSWORD=hunter2" psql -c "select 1"; psql 'user=a password=hunter3'x -c 'select 1'; echo "visible"`},
			[]string{"sh", "-c", `env "A=1 PGPASSWORD=[REDACTED]" psql -c "select 1"; psql 'user=a password=[REDACTED]'[REDACTED] -c 'select 1'; echo "visible"`}},
		// A header line whose name a secret's value hides, and which
		// that value ended inside of: its credential is taken with the
		// value, as the header's rule, which reads the record, no
		// longer can (found by a throwaway random test over
		// FuzzRedactHeaderSecret's inputs).
		{[]string{"sh", "-c", `SECRET='\ -H "" -H "Authorization: OAuth 'hun ter2 '"A=\;' "; echo visible`},
			[]string{"sh", "-c", `SECRET=[REDACTED] "; echo visible`}},
		// The same where a nested value (SECRET= in PGPASSWORD's)
		// hides the name: the rest of the line, as for a nested value
		// that ends in other quotes.
		{[]string{"sh", "-c", `PGPASSWORD=SECRET=)$' -H'' -H'authorization:Basic "hun ter2"' ; echo visible`},
			[]string{"sh", "-c", `PGPASSWORD=[REDACTED]`}},
		// A credential that reads as a secret's --flag past a known
		// scheme: its value is taken too, as without the scheme.
		{[]string{"sh", "-c", `curl -H Authorization:Bearer --MYSQL_PWD hunter2 h; curl -H 'Authorization: Bearer --MYSQL_PWD hunter2' h`},
			[]string{"sh", "-c", `curl -H Authorization:Bearer [REDACTED] h; curl -H 'Authorization: Bearer [REDACTED]' h`}},
		// A header line whose name another header's $'…' credential
		// hides, and which the shell word of that credential ends
		// inside of: its credential is taken too (found by a throwaway
		// random test over FuzzRedactHeaderSecret's inputs).
		{[]string{"sh", "-c", `curl -H Authorization: $'x -H "X-Api-Key: 'hun ter2 '" h; echo visible`},
			[]string{"sh", "-c", `curl -H Authorization: [REDACTED]" h; echo visible`}},
		{[]string{"sh", "-c", `curl -H Authorization:$' -H "" -H "Cookie: sid='hun ter2 '; theme=dark" https://h/; echo visible`},
			[]string{"sh", "-c", `curl -H Authorization:[REDACTED]" https://h/; echo visible`}},
		// A secret's --flag past blanks after a nested value's = (the
		// second SECRET=): its own value is taken too, as a value's
		// is, read as the shell reads the word ($'\' a' is one).
		{[]string{"sh", "-c", `SECRET=SECRET= --GITHUB_TOKEN " hun"" ter2" x; SECRET=A=SECRET= --AWS_SECRET_ACCESS_KEY 'hun'' ter3' x; echo visible`},
			[]string{"sh", "-c", `SECRET=[REDACTED] x; SECRET=[REDACTED] x; echo visible`}},
		{[]string{"sh", "-c", `SECRET= SECRET= --PGPASSWORD $'\' hun'ter2 x; echo visible`}, []string{"sh", "-c", `SECRET= [REDACTED] x; echo visible`}},
		// The same for a value nested in a secret's value.
		{[]string{"sh", "-c", `echo 'SECRET=A PGPASSWORD=hunter2' -v 'a b'; env "A_TOKEN=a PGPASSWORD=hunter3" psql -c "select 1"; echo visible`},
			[]string{"sh", "-c", `echo 'SECRET=[REDACTED]' -v 'a b'; env "A_TOKEN=[REDACTED]" psql -c "select 1"; echo visible`}},
		// Where the text past the quotes holds no operator nor option,
		// both readings still: the seed's shape (FuzzRedactAssignedSecret,
		// pg_dump --dbname="host=db password=2'0'" 2"\ 61…).
		{[]string{"sh", "-c", `pg_dump --dbname="host=db password=hun'ter'" 2"\ ab'c'" d"\ e "; echo visible`},
			[]string{"sh", "-c", `pg_dump --dbname="host=db password=[REDACTED]"[REDACTED]; echo visible`}},
		{[]string{"sh", "-c", `psql "host=db password='hunter2'" -c 'select 1'`}, []string{"sh", "-c", `psql "host=db password=[REDACTED]" -c 'select 1'`}},
		// A statement or command glued after the quotes that hold a
		// secret stays: the value ran to the next blank and hid ;echo
		// hello, &&ls, |cat with it. A substitution glued to the quotes
		// is the value's. A PowerShell script's ; and | end an unquoted
		// value too; in an argument of its own they are the value's.
		{[]string{"sh", "-c", `psql "host=db password=hun ter2";echo hello; psql 'password=hun ter2'&&ls; (psql "password=hun ter2")|cat; psql "password=hun ter2"$(echo ";x");echo bye`},
			[]string{"sh", "-c", `psql "host=db password=[REDACTED]";echo hello; psql 'password=[REDACTED]'&&ls; (psql "password=[REDACTED]")|cat; psql "password=[REDACTED]"[REDACTED];echo bye`}},
		{[]string{"pwsh", "-c", `psql "host=db password=hun ter2";Write-Host hello; psql password=hunter2;Write-Host bye|Out-Null; psql password=hunter3|Out-Null`},
			[]string{"pwsh", "-c", `psql "host=db password=[REDACTED]";Write-Host hello; psql password=[REDACTED];Write-Host bye|Out-Null; psql password=[REDACTED]|Out-Null`}},
		{[]string{"pwsh", "-File", "s.ps1", "-Conn", "password=hun;ter2|x"}, []string{"pwsh", "-File", "s.ps1", "-Conn", "password=[REDACTED]"}},
		// The same after a secret's --flag in a POSIX shell's line: the
		// value ran to the next blank. PowerShell's (…) after one stays
		// hidden whole.
		{[]string{"sh", "-c", `tool --password 'hun ter2';echo hello; tool --token hunter3|cat; (tool --api-key hunter4); tool --secret --token "$(echo "hun ter5")"&&ls`},
			[]string{"sh", "-c", `tool --password [REDACTED];echo hello; tool --token [REDACTED]|cat; (tool --api-key [REDACTED]); tool --secret [REDACTED]&&ls`}},
		{[]string{"pwsh", "-c", "tool --password (Get-Secret hun ter2); Write-Host hi"}, []string{"pwsh", "-c", "tool --password [REDACTED]; Write-Host hi"}},
		{[]string{"sh", "-c", `PGPASSWORD=hun"ter2" psql`}, []string{"sh", "-c", "PGPASSWORD=[REDACTED] psql"}},
		{[]string{"sh", "-c", `PGPASSWORD='hun'ter2 psql`}, []string{"sh", "-c", "PGPASSWORD=[REDACTED] psql"}},
		{[]string{"sh", "-c", `PGPASSWORD=hun\ ter2 psql`}, []string{"sh", "-c", "PGPASSWORD=[REDACTED] psql"}},
		{[]string{"sh", "-c", `X= PGPASSWORD=hunter2 psql`}, []string{"sh", "-c", "X= PGPASSWORD=[REDACTED] psql"}},
		// An assignment whose value has blanks in the shell's quotes
		// that hold the whole of it, in $'…', or in an argument of its
		// own: the value ended at the first blank, and the rest was kept.
		{[]string{"sh", "-c", `'PGPASSWORD=hun ter2' psql -h db`}, []string{"sh", "-c", `'PGPASSWORD=[REDACTED]' psql -h db`}},
		{[]string{"sh", "-c", `"PGPASSWORD=hun ter2" psql`}, []string{"sh", "-c", `"PGPASSWORD=[REDACTED]" psql`}},
		{[]string{"sh", "-c", `env 'AWS_SECRET_ACCESS_KEY=hun ter2' aws s3 ls`}, []string{"sh", "-c", `env 'AWS_SECRET_ACCESS_KEY=[REDACTED]' aws s3 ls`}},
		{[]string{"sh", "-c", `export $'PGPASSWORD=hun\' ter2'x && psql`}, []string{"sh", "-c", `export $'PGPASSWORD=[REDACTED]'[REDACTED] && psql`}},
		{[]string{"sh", "-c", `export PGPASSWORD=$'hun\' ter2'`}, []string{"sh", "-c", `export PGPASSWORD=[REDACTED]`}},
		{[]string{"sh", "-c", `bash -c "PGPASSWORD=\"hun ter2\" psql"`}, []string{"sh", "-c", `bash -c "PGPASSWORD=[REDACTED]"`}},
		{[]string{"env", "AWS_SECRET_ACCESS_KEY=hun ter2", "aws", "s3", "ls"}, []string{"env", "AWS_SECRET_ACCESS_KEY=[REDACTED]", "aws", "s3", "ls"}},
		{[]string{"docker", "run", "-e", "PGPASSWORD=hun ter2", "--env=MYSQL_PWD=hun ter2", "db"}, []string{"docker", "run", "-e", "PGPASSWORD=[REDACTED]", "--env=MYSQL_PWD=[REDACTED]", "db"}},
		{[]string{"bash", "-lc", "PGPASSWORD=hunter2 psql -h db"}, []string{"bash", "-lc", "PGPASSWORD=[REDACTED] psql -h db"}},
		{[]string{"docker", "exec", "db", "/bin/sh", "-c", "PGPASSWORD=hunter2 psql"}, []string{"docker", "exec", "db", "/bin/sh", "-c", "PGPASSWORD=[REDACTED] psql"}},
		// A secret in a JSON body, and a quoted name before '=': kept
		// whole before.
		{[]string{"curl", "-d", `{"user":"u","password":"hun\"ter2","x":1}`, "https://h/"}, []string{"curl", "-d", `{"user":"u","password":"[REDACTED]","x":1}`, "https://h/"}},
		{[]string{"sh", "-c", `curl -d '{"api_key": "hun ter2", "pin": 1}' https://h/`}, []string{"sh", "-c", `curl -d '{"api_key": "[REDACTED]", "pin": 1}' https://h/`}},
		{[]string{"sh", "-c", `curl -d "{\"client_secret\": \"hun \\\" ter2\", \"x\": 1}" https://h/`}, []string{"sh", "-c", `curl -d "{\"client_secret\": [REDACTED]" https://h/`}},
		{[]string{"sh", "-c", `curl -d '{"token":1234567,"x":2}' https://h/`}, []string{"sh", "-c", `curl -d '{"token":[REDACTED],"x":2}' https://h/`}},
		{[]string{"sh", "-c", `env "PGPASSWORD"="hun ter2" psql`}, []string{"sh", "-c", `env "PGPASSWORD"=[REDACTED] psql`}},
		// A value after a secret's --flag or set NAME in a shell line,
		// as in argv: kept whole before.
		{[]string{"sh", "-c", `aws secretsmanager put-secret-value --secret-id x --secret-string 'hun ter2' && echo ok`}, []string{"sh", "-c", `aws secretsmanager put-secret-value --secret-id x --secret-string [REDACTED] && echo ok`}},
		{[]string{"ssh", "db", "mysql --password hunter2 -e 'select 1'"}, []string{"ssh", "db", "mysql --password [REDACTED] -e 'select 1'"}},
		{[]string{"sh", "-c", "aws configure set aws_secret_access_key hun\\ ter2 && aws configure set region eu-west-1"}, []string{"sh", "-c", "aws configure set aws_secret_access_key [REDACTED] && aws configure set region eu-west-1"}},
		// A value set under a secret's name after options (git config
		// --global, --file F; aws configure set --profile p), by csh's
		// setenv, fish's set -x, PowerShell's Set-Item and
		// SetEnvironmentVariable, and in a shell line after a backtick
		// or $(: only set NAME and config NAME right before it were seen.
		{[]string{"git", "config", "--global", "credential.password", "hunter2"}, []string{"git", "config", "--global", "credential.password", "[REDACTED]"}},
		{[]string{"git", "config", "--file", "f.cfg", "--add", "credential.password", "hunter2"}, []string{"git", "config", "--file", "f.cfg", "--add", "credential.password", "[REDACTED]"}},
		{[]string{"git", "config", "--system", "--replace-all", "credential.password", "hunter2"}, []string{"git", "config", "--system", "--replace-all", "credential.password", "[REDACTED]"}},
		{[]string{"git", "config", "--global", "user.name", "ann"}, nil},
		// The argument of an option known to take one is no name: the
		// word after secret.cfg was hidden as its value.
		{[]string{"git", "config", "--file", "secret.cfg", "user.name", "ann"}, nil},
		{[]string{"sh", "-c", "git config -f token.cfg --type bool core.bare true && aws configure set --profile secret region eu-west-1"}, nil},
		{[]string{"git", "config", "--file", "secret.cfg", "credential.password", "hunter2"}, []string{"git", "config", "--file", "secret.cfg", "credential.password", "[REDACTED]"}},
		{[]string{"fish", "-c", "set -f PGPASSWORD hunter2"}, []string{"fish", "-c", "set -f PGPASSWORD [REDACTED]"}},
		{[]string{"sh", "-c", "git config --local credential.password 'hun ter2'&&git config -f f credential.password hunter3;git config user.name ann"},
			[]string{"sh", "-c", "git config --local credential.password [REDACTED]&&git config -f f credential.password [REDACTED];git config user.name ann"}},
		{[]string{"aws", "configure", "set", "--profile", "p", "aws_secret_access_key", "hunter2"}, []string{"aws", "configure", "set", "--profile", "p", "aws_secret_access_key", "[REDACTED]"}},
		{[]string{"aws", "configure", "set", "default.aws_secret_access_key", "hunter2"}, []string{"aws", "configure", "set", "default.aws_secret_access_key", "[REDACTED]"}},
		{[]string{"sh", "-c", "aws configure set --profile p aws_secret_access_key hunter2 && aws configure set --profile p region eu-west-1"},
			[]string{"sh", "-c", "aws configure set --profile p aws_secret_access_key [REDACTED] && aws configure set --profile p region eu-west-1"}},
		{[]string{"sh", "-c", "echo `aws configure set aws_secret_access_key hunter2` $(git config credential.password hunter3)"},
			[]string{"sh", "-c", "echo `aws configure set aws_secret_access_key [REDACTED]` $(git config credential.password [REDACTED])"}},
		{[]string{"tcsh", "-c", "setenv PGPASSWORD hunter2; psql"}, []string{"tcsh", "-c", "setenv PGPASSWORD [REDACTED]; psql"}},
		// A command substitution as the value set, or a --flag's, or
		// glued to curl -u's user: a command that may hold the secret,
		// hidden whole. The commands ended at its $(, backtick or (,
		// and the value set was not seen. A list's parentheses stay,
		// as an array's do.
		{[]string{"fish", "-c", "set -x PGPASSWORD (echo hunter2); set -x A_TOKEN (echo a)hunter3 x; set -x C_TOKEN ()"},
			[]string{"fish", "-c", "set -x PGPASSWORD ([REDACTED]); set -x A_TOKEN ([REDACTED] x; set -x C_TOKEN ()"}},
		{[]string{"tcsh", "-c", "setenv PGPASSWORD `echo hunter2`; psql"}, []string{"tcsh", "-c", "setenv PGPASSWORD [REDACTED]; psql"}},
		{[]string{"bash", "-c", "aws configure set aws_secret_access_key $(echo hunter2) && echo `git config credential.password` x; curl -u ann:$(echo hunter3) h; tool --password $(echo hun ter4) -v"},
			[]string{"bash", "-c", "aws configure set aws_secret_access_key [REDACTED] && echo `git config credential.password` x; curl -u ann:[REDACTED] h; tool --password [REDACTED] -v"}},
		{[]string{"pwsh", "-c", "Set-Item -Path Env:PGPASSWORD -Value (Get-Content hunter2); psql"}, []string{"pwsh", "-c", "Set-Item -Path Env:PGPASSWORD -Value ([REDACTED]); psql"}},
		// A secret's --flag and blanks at the end: no value (found by
		// FuzzRedactJSONSecret: the empty word was read as one).
		{[]string{"tool", "-TOKEN "}, nil},
		{[]string{"csh", "-c", "set PGPASSWORD = 'hun ter2'"}, []string{"csh", "-c", "set PGPASSWORD = [REDACTED]"}},
		{[]string{"fish", "-c", "set -x PGPASSWORD hunter2; set -gx GITHUB_TOKEN 'hun ter2'; set -x PATH /bin"}, []string{"fish", "-c", "set -x PGPASSWORD [REDACTED]; set -gx GITHUB_TOKEN [REDACTED]; set -x PATH /bin"}},
		{[]string{"fish", "-c", "set --export --global PGPASSWORD hunter2"}, []string{"fish", "-c", "set --export --global PGPASSWORD [REDACTED]"}},
		// bash's arrays and csh's lists: every word to the closing ),
		// past quoted and nested ones; the value ended at the first
		// blank. An empty one stays.
		{[]string{"bash", "-c", "TOKENS=(abc 'd)e' $(x) \\) def) ls; declare -a A_SECRET=(x y); B=(1 2); C_TOKEN=()"},
			[]string{"bash", "-c", "TOKENS=([REDACTED]) ls; declare -a A_SECRET=([REDACTED]); B=(1 2); C_TOKEN=()"}},
		{[]string{"tcsh", "-c", "set PGPASSWORD = (hun ter2); psql"}, []string{"tcsh", "-c", "set PGPASSWORD = ([REDACTED]); psql"}},
		{[]string{"ssh", "db", "export TOKENS=(a b) && ls"}, []string{"ssh", "db", "export TOKENS=([REDACTED]) && ls"}},
		// fish's set NAME a b sets a list, exported joined by blanks:
		// each word is the secret's, and only the first was hidden.
		// aws configure set's options after the value stay.
		{[]string{"fish", "-c", "set -x PGPASSWORD hun ter2; psql; set -gx GITHUB_TOKEN a 'b c' d | cat; set -x PATH /bin /usr/bin"},
			[]string{"fish", "-c", "set -x PGPASSWORD [REDACTED] [REDACTED]; psql; set -gx GITHUB_TOKEN [REDACTED] [REDACTED] [REDACTED] | cat; set -x PATH /bin /usr/bin"}},
		{[]string{"aws", "configure", "set", "aws_secret_access_key", "hunter2", "--profile", "p"}, []string{"aws", "configure", "set", "aws_secret_access_key", "[REDACTED]", "--profile", "p"}},
		// fish reads no option after the name: a word of its list that
		// starts with - is the secret's too, and --profile was read as
		// aws configure set's, its argument kept. A tool's options after
		// the value stay (npm config set, git config set).
		{[]string{"fish", "-c", "set -x PGPASSWORD a -hunter2 --profile hunter3; set -gx GITHUB_TOKEN -- -x; true; and set -x A_SECRET b -c hunter4"},
			[]string{"fish", "-c", "set -x PGPASSWORD [REDACTED] [REDACTED] [REDACTED] [REDACTED]; set -gx GITHUB_TOKEN [REDACTED] [REDACTED]; true; and set -x A_SECRET [REDACTED] [REDACTED] [REDACTED]"}},
		{[]string{"sh", "-c", "npm config set //r/:_authToken hunter2 --global && git config set credential.password hunter3 --comment c"},
			[]string{"sh", "-c", "npm config set //r/:_authToken [REDACTED] --global && git config set credential.password [REDACTED] --comment c"}},
		{[]string{"pwsh", "-c", "Set-Item -Path Env:PGPASSWORD -Value hunter2; psql"}, []string{"pwsh", "-c", "Set-Item -Path Env:PGPASSWORD -Value [REDACTED]; psql"}},
		{[]string{"pwsh", "-c", "[Environment]::SetEnvironmentVariable('PGPASSWORD', 'hun ter2')"}, []string{"pwsh", "-c", "[Environment]::SetEnvironmentVariable('PGPASSWORD', [REDACTED])"}},
		// PowerShell's parameters in any order (-Value before the name),
		// -Value shortened (-Val, -Va), and Set-Content or Add-Content
		// of an Env: name: the value was looked for after the name
		// only, as the word after -Value, and Set-Content set none. A
		// file's content stays, as does a variable that names no
		// secret.
		{[]string{"pwsh", "-c", `Set-Item -Value "hun ter2" -Path Env:PGPASSWORD -Force; Set-Variable -Va hunter3 -Name GITHUB_TOKEN; Set-Item Env:A_SECRET -Val hunter4`},
			[]string{"pwsh", "-c", `Set-Item -Value [REDACTED] -Path Env:PGPASSWORD -Force; Set-Variable -Va [REDACTED] -Name GITHUB_TOKEN; Set-Item Env:A_SECRET -Val [REDACTED]`}},
		{[]string{"pwsh", "-c", `Set-Content Env:PGPASSWORD hunter2; Add-Content -Path env:GITHUB_TOKEN -Value 'hun ter3'; Set-Content -Path Env:USER -Value ann%hunter4`},
			[]string{"pwsh", "-c", `Set-Content Env:PGPASSWORD [REDACTED]; Add-Content -Path env:GITHUB_TOKEN -Value [REDACTED]; Set-Content -Path Env:USER -Value ann%[REDACTED]`}},
		// -Value followed by another parameter takes none (found by
		// FuzzRedactSetSecret): -Path was hidden as the value, and the
		// value after the name kept.
		{[]string{"pwsh", "-c", `Set-Content -Value -Path Env:PGPASSWORD hunter2; Set-Item -Val -Force Env:GITHUB_TOKEN 'hun ter2'; Set-Item -Value -2024 Env:A_SECRET`},
			[]string{"pwsh", "-c", `Set-Content -Value -Path Env:PGPASSWORD [REDACTED]; Set-Item -Val -Force Env:GITHUB_TOKEN [REDACTED]; Set-Item -Value [REDACTED] Env:A_SECRET`}},
		{[]string{"pwsh", "-c", `Set-Content token.txt hello; Set-Item -Value /bin -Path Env:PATH`}, nil},
		{[]string{"pwsh", "-Command", `$env:PGPASSWORD="hunter2"; $env:AWS_SECRET_ACCESS_KEY = 'hunter3'`}, []string{"pwsh", "-Command", `$env:PGPASSWORD=[REDACTED]; $env:AWS_SECRET_ACCESS_KEY = [REDACTED]`}},
		{[]string{"kubectl", "set", "image", "deployment/token-service", "app=img:1"}, nil},
		// A default or assigned value in a parameter expansion
		// (${PGPASSWORD:-x}), and PowerShell's ${env:NAME} = x: neither
		// was seen as an assignment.
		{[]string{"sh", "-c", "psql -h ${DBHOST:-db} -W ${PGPASSWORD-hunter2} ${A_SECRET+${X}hunter3} ${GITHUB_TOKEN:-'hun ter2'} x"}, []string{"sh", "-c", "psql -h ${DBHOST:-db} -W ${PGPASSWORD-[REDACTED]} ${A_SECRET+[REDACTED]} ${GITHUB_TOKEN:-[REDACTED]} x"}},
		// ${NAME:…} is no header line, nor ${NAME=…} an assignment: read
		// as such, the rest of the shell word went with the value (the },
		// what is glued to it, a ;), and ${TOKEN:0:4} lost its offsets.
		{[]string{"sh", "-c", "echo ${PGPASSWORD:-hunter2}/y; echo ${TOKEN:0:4}; B=${B_SECRET=hunter3}x ${C_TOKEN:=hun\\ ter2} ${D_TOKEN:-};z ${AUTHORIZATION:-Bearer hunter4}"},
			[]string{"sh", "-c", "echo ${PGPASSWORD:-[REDACTED]}/y; echo ${TOKEN:0:4}; B=${B_SECRET=[REDACTED]}x ${C_TOKEN:=[REDACTED]} ${D_TOKEN:-};z ${AUTHORIZATION:-[REDACTED]}"}},
		{[]string{"env", "X=${PGPASSWORD:-hunter2}"}, []string{"env", "X=${PGPASSWORD:-[REDACTED]}"}},
		{[]string{"sh", "-c", ": ${PGPASSWORD?hunter2} ${SECRET_ID-x}"}, []string{"sh", "-c", ": ${PGPASSWORD?[REDACTED]} ${SECRET_ID-x}"}},
		// USER's default, assigned or alternate value (${USER:=ann%PW}
		// sets USER, which Samba's clients read as -U; ${USER:-ann%PW}
		// and ${USER:+ann%PW} write the password in the line too), the
		// user kept, and an array element's (${PGPASSWORD[0]:-x},
		// ${TOKENS[@]:-x}, ${creds[password]-x}): the expansion was
		// matched only with a bare name that says it holds a secret.
		{[]string{"bash", "-c", "echo ${USER:=ann%hunter2} ${USER-'ann%hun ter3'} ${USER:+ann%hunter4} ${USER?ann%hunter5} ${USER:-ann}/x; smbclient //h/s"},
			[]string{"bash", "-c", "echo ${USER:=ann%[REDACTED]} ${USER-'ann%[REDACTED]} ${USER:+ann%[REDACTED]} ${USER?ann%[REDACTED]} ${USER:-ann}/x; smbclient //h/s"}},
		{[]string{"bash", "-c", "echo ${PGPASSWORD[0]:-hunter2}/x ${TOKENS[@]:=hunter3} ${creds[password]-hunter4} ${USER[0]:=ann%hunter5} ${a[i+1]:-x} ${a[0]:0:4} ${TOKENS[1]=hunter6}x"},
			[]string{"bash", "-c", "echo ${PGPASSWORD[0]:-[REDACTED]}/x ${TOKENS[@]:=[REDACTED]} ${creds[password]-[REDACTED]} ${USER[0]:=ann%[REDACTED]} ${a[i+1]:-x} ${a[0]:0:4} ${TOKENS[1]=[REDACTED]}x"}},
		// A quoted } in the word does not close the expansion: the value
		// ended there and kept the rest.
		{[]string{"sh", "-c", `echo ${PGPASSWORD-'hun}ter2'} ${A_TOKEN+"hun}ter2"} ${B_SECRET?$'hun\'}ter2'} x`}, []string{"sh", "-c", "echo ${PGPASSWORD-[REDACTED]} ${A_TOKEN+[REDACTED]} ${B_SECRET?[REDACTED]} x"}},
		{[]string{"pwsh", "-c", "${env:PGPASSWORD} = 'hunter2'; psql"}, []string{"pwsh", "-c", "${env:PGPASSWORD} = [REDACTED]; psql"}},
		// PowerShell escapes a quote in "…" with a backtick: read as the
		// shell's, the string ended there and the rest was kept.
		{[]string{"pwsh", "-c", "Write-Host hi; $env:PGPASSWORD = \"hun`\"ter 2\"; psql"}, []string{"pwsh", "-c", "Write-Host hi; $env:PGPASSWORD = [REDACTED]; psql"}},
		{[]string{"powershell.exe", "-Command", "Set-Item Env:GITHUB_TOKEN -Value \"a`\" ter2\"; gh auth status"}, []string{"powershell.exe", "-Command", "Set-Item Env:GITHUB_TOKEN -Value [REDACTED]; gh auth status"}},
		{[]string{"sh", "-c", "PGPASSWORD=\"`cat f`\" psql -h db"}, []string{"sh", "-c", "PGPASSWORD=[REDACTED] psql -h db"}},
		// A command substitution in the value, whole: its text is a
		// command that may hold the secret ($(echo PW), `printf %s PW`),
		// and the value ended at the $( or the backtick, keeping the rest
		// ([REDACTED](echo PW)). Nested ones, quoted )s and escaped
		// backticks inside, a word glued after it; one left open runs to
		// the end.
		{[]string{"bash", "-c", "PGPASSWORD=$(echo hunter2) psql -h db; export A_TOKEN=`printf %s hunter3`; B_SECRET=a$(echo hun ter2)b x; PGPASSWORD=$(cat f) psql"},
			[]string{"bash", "-c", "PGPASSWORD=[REDACTED] psql -h db; export A_TOKEN=[REDACTED]; B_SECRET=[REDACTED] x; PGPASSWORD=[REDACTED] psql"}},
		{[]string{"bash", "-c", "PGPASSWORD=$(echo $(echo 'a)b' hunter2) \")\") psql; A_TOKEN=`echo \\` hunter3`x y;PGPASSWORD=$(echo hunter4"},
			[]string{"bash", "-c", "PGPASSWORD=[REDACTED] psql; A_TOKEN=[REDACTED] y;PGPASSWORD=[REDACTED]"}},
		{[]string{"bash", "-c", "PGPASSWORD="}, nil},
		// A substitution inside the value's double quotes, with quotes of
		// its own: the shell reads "$(printf "%s" "a b")" as one string,
		// and the value ended at the inner quote, keeping b")". In a value
		// after a --flag, set by git config, in backticks, with a ; inside
		// and after a piece; the command after it stays.
		{[]string{"bash", "-c", `PGPASSWORD="$(printf "%s" "hun ter2")" psql; tool --password "$(echo "x hunter3")" -v; git config credential.password "$(printf "%s" "a hunter4")"; A_TOKEN=x"$(echo "a;hunter5" | tr a b)" ls`},
			[]string{"bash", "-c", `PGPASSWORD=[REDACTED] psql; tool --password [REDACTED] -v; git config credential.password [REDACTED]; A_TOKEN=[REDACTED] ls`}},
		{[]string{"bash", "-c", "PGPASSWORD=\"`printf \"%s\" \"hun ter2\"`\" psql; B_SECRET=\"$( (echo \"x $(echo ')' \"hunter3\")\") )\" ls"},
			[]string{"bash", "-c", "PGPASSWORD=[REDACTED] psql; B_SECRET=[REDACTED] ls"}},
		// Quotes nested in a substitution inside "…", where a header
		// line or a secret's name= stands (the inner quotes were read as
		// closing the outer ones, and the line's end or the blank as the
		// value's), and "…" nested in ${…} inside "…".
		{[]string{"bash", "-c", `curl -H "Authorization: Bearer $(printf "%s" "hun ter2")" https://h/; echo "x $(echo "PGPASSWORD=hun ter3") y"; pg_dump --dbname="$(echo "host=db password=hun ter4")" -v`},
			[]string{"bash", "-c", `curl -H "Authorization: Bearer [REDACTED]" https://h/; echo "x $(echo "PGPASSWORD=[REDACTED]") y"; pg_dump --dbname="$(echo "host=db password=[REDACTED]")" -v`}},
		{[]string{"bash", "-c", `PGPASSWORD="${X:-"hun ter2"}" psql; curl -H "X-Api-Key: ${K:-"hun ter3"}" https://h/`},
			[]string{"bash", "-c", `PGPASSWORD=[REDACTED] psql; curl -H "X-Api-Key: [REDACTED]" https://h/`}},
		// A case statement inside $(…): the ) that ends a pattern does
		// not close the substitution, as the shell parses it, and the
		// value ended there, keeping the rest of the secret. Patterns
		// with a leading (, several |, a nested case, esac as an argument
		// and as a pattern after |, in an assignment's value, a header
		// line's credential and a --flag's value (=, and the next word).
		{[]string{"bash", "-c", `PGPASSWORD="$(case $x in a) echo "hun ter2";; esac)" psql; echo visible; PGPASSWORD=$(case $x in a|b) echo hun ter3;; (c) esac) psql; echo visible`},
			[]string{"bash", "-c", `PGPASSWORD=[REDACTED] psql; echo visible; PGPASSWORD=[REDACTED] psql; echo visible`}},
		{[]string{"bash", "-c", `curl -H "Authorization: Bearer $(case $x in a) echo "hun ter2";; esac)" https://h/; echo visible`},
			[]string{"bash", "-c", `curl -H "Authorization: Bearer [REDACTED]" https://h/; echo visible`}},
		{[]string{"bash", "-c", `tool --password="$(case $x in a|b) case $y in (c) echo "hun ter2";; esac;; esac)" -v; echo visible`},
			[]string{"bash", "-c", `tool --password=[REDACTED] -v; echo visible`}},
		{[]string{"bash", "-c", `tool --password "$(case $x in a) echo esac;; x|esac) echo "hun ter2";;& *) esac)" -v; echo visible`},
			[]string{"bash", "-c", `tool --password [REDACTED] -v; echo visible`}},
		// A case word that is a simple command's argument, which the
		// shell reads as no keyword: read as a case, the rest of the line
		// was hidden. After a word that may start a compound command
		// (function f, time -p, zsh's repeat N and if [[ … ]]), an
		// assignment or a redirection it is read as one still.
		{[]string{"bash", "-c", `PGPASSWORD="$(echo case in x)" psql; echo visible; PGPASSWORD=$(printf "%s" case in "hun ter2") psql; echo visible`},
			[]string{"bash", "-c", `PGPASSWORD=[REDACTED] psql; echo visible; PGPASSWORD=[REDACTED] psql; echo visible`}},
		{[]string{"bash", "-c", `PGPASSWORD="$(case x in a) echo case in y;; b) echo "hun ter2";; esac)" psql; echo visible`},
			[]string{"bash", "-c", `PGPASSWORD=[REDACTED] psql; echo visible`}},
		{[]string{"bash", "-c", `PGPASSWORD="$(function f case $x in a) echo "hun ter2";; esac)"; PGPASSWORD="$(time -p case $x in a) echo "hun ter3";; esac)"; PGPASSWORD="$(repeat 3 case $x in a) echo "hun ter4";; esac)"; PGPASSWORD="$(if [[ x ]] case $x in a) echo "hun ter5";; esac)"; PGPASSWORD="$(x=1 >f case $x in a) echo "hun ter6";; esac)"; echo visible`},
			[]string{"bash", "-c", `PGPASSWORD=[REDACTED]; PGPASSWORD=[REDACTED]; PGPASSWORD=[REDACTED]; PGPASSWORD=[REDACTED]; PGPASSWORD=[REDACTED]; echo visible`}},
		// esac after a group's }, a subshell's ) or a backslash-newline
		// after blanks ends the case, as the shell reads it: read as an
		// argument, the rest of the line was hidden. A } that closes no
		// group (after a word, or an escaped ;) is none.
		{[]string{"bash", "-c", "PGPASSWORD=\"$(case $x in a) { echo \"hun ter2\"; } esac)\" psql; echo visible; PGPASSWORD=$(case $x in a) (echo hun ter3) esac) psql; echo visible; PGPASSWORD=$(case $x in a) echo hun ter4;; \\\n esac) psql; echo visible"},
			[]string{"bash", "-c", "PGPASSWORD=[REDACTED] psql; echo visible; PGPASSWORD=[REDACTED] psql; echo visible; PGPASSWORD=[REDACTED] psql; echo visible"}},
		{[]string{"bash", "-c", `PGPASSWORD="$(case $x in a) { echo } esac;; b) echo "hun ter2";; esac)" psql; echo visible`}, []string{"bash", "-c", `PGPASSWORD=[REDACTED]`}},
		{[]string{"bash", "-c", `PGPASSWORD="$(case $x in a) { echo \; } esac;; b) echo "hun ter2";; esac)" psql; echo visible`}, []string{"bash", "-c", `PGPASSWORD=[REDACTED]`}},
		// ;; or ;& after a case has ended, a syntax error: the rest of
		// the line is hidden. Read on, the next pattern's ) closed the
		// substitution, and ter2 was kept.
		{[]string{"bash", "-c", `PGPASSWORD="$(case $x in a) echo;; esac;; b) echo "hun ter2";; esac)" psql; echo visible`}, []string{"bash", "-c", `PGPASSWORD=[REDACTED]`}},
		{[]string{"bash", "-c", `PGPASSWORD="$(case $x in a) (echo ) esac;& b) echo "hun ter2";; esac)" psql; echo visible`}, []string{"bash", "-c", `PGPASSWORD=[REDACTED]`}},
		// A parameter expansion inside $(…), whose word's ) closes
		// nothing: the shell reads ${y:-)} as a word of the command.
		{[]string{"bash", "-c", `PGPASSWORD="$(echo ${y:-)} "hun ter2")"; echo visible; PGPASSWORD=$(echo ${y:-)} 'hun ter3'); echo visible`},
			[]string{"bash", "-c", `PGPASSWORD=[REDACTED]; echo visible; PGPASSWORD=[REDACTED]; echo visible`}},
		// A comment inside $(…), to its line's end: its ) closes
		// nothing, as the shell reads it. $# and a#b are no comments.
		{[]string{"bash", "-c", "PGPASSWORD=\"$(echo a # )\necho \"hun ter2\")\"; echo visible; PGPASSWORD=$(echo a #)\necho 'hun ter3'); echo visible"},
			[]string{"bash", "-c", "PGPASSWORD=[REDACTED]; echo visible; PGPASSWORD=[REDACTED]; echo visible"}},
		{[]string{"bash", "-c", "curl -H \"Authorization: Bearer $(echo a # )\necho \"hun ter2\")\" https://h/; echo visible; PGPASSWORD=$(echo $# a#b) psql; echo visible"},
			[]string{"bash", "-c", "curl -H \"Authorization: Bearer [REDACTED]\" https://h/; echo visible; PGPASSWORD=[REDACTED] psql; echo visible"}},
		// A here-document inside $(…), whose body the shell reads as
		// text to its delimiter's line: its ) closes nothing. Not
		// followed, the rest of its command is hidden, and the
		// commands after it are read anew (shellPieces). A
		// here-string and an arithmetic shift are none.
		{[]string{"bash", "-c", "PGPASSWORD=$(cat <<EOF\nhun ) ter2\nEOF\n); echo visible"}, []string{"bash", "-c", "PGPASSWORD=[REDACTED]; echo visible"}},
		{[]string{"bash", "-c", "tool --password \"$(cat <<-'EOF'\nhun ) \"ter2\nEOF\n)\"; echo visible"}, []string{"bash", "-c", "tool --password [REDACTED]"}},
		{[]string{"bash", "-c", "PGPASSWORD=\"$(echo $((1<<2)) <<<x)\" psql; echo visible"}, []string{"bash", "-c", "PGPASSWORD=[REDACTED] psql; echo visible"}},
		// A backslash-newline that joins two bytes, which the shell
		// removes before reading the line: a secret's name, a header's,
		// $( and a case word split by one were not seen, and the
		// secret was kept. The rest of the argument is hidden from the
		// join; a line continued after a blank stays.
		{[]string{"bash", "-c", "PGPASS\\\nWORD=hunter2 psql; echo visible"}, []string{"bash", "-c", "PGPASS[REDACTED]"}},
		{[]string{"bash", "-c", "PGPASSWORD=\"$\\\n(echo \"hun ter2\")\" psql; echo visible"}, []string{"bash", "-c", "PGPASSWORD=[REDACTED]"}},
		{[]string{"bash", "-c", "PGPASSWORD=\"$(ca\\\nse $x in a) echo \"hun ter2\";; esac)\" psql; echo visible"}, []string{"bash", "-c", "PGPASSWORD=[REDACTED]"}},
		{[]string{"sh", "-c", "curl -H \"Author\\\nization: Bearer hunter2\" https://h/"}, []string{"sh", "-c", "curl -H \"Author[REDACTED]"}},
		{[]string{"sh", "-c", "curl -s \\\n  -H \"Authorization: Bearer hunter2\" \\\n  https://h/; echo visible"},
			[]string{"sh", "-c", "curl -s \\\n  -H \"Authorization: Bearer [REDACTED]\" \\\n  https://h/; echo visible"}},
		// $'…' in a word joined to an Authorization line's credential
		// that reads as a --flag, after a bare piece: its quote was
		// read as the shell's closing one.
		{[]string{"sh", "-c", "curl -H Authorization:\\ --MYSQL_PWD a$' hun ter2' https://h/; echo visible"},
			[]string{"sh", "-c", "curl -H Authorization:\\ [REDACTED] https://h/; echo visible"}},
		// A credential that starts at the closing quote of the header
		// line's quotes: what the shell word joins after them, to its
		// end. headerValue read the quote as opening a quoted
		// credential, and the rest of the line was hidden; an empty one
		// hides nothing.
		{[]string{"sh", "-c", "curl -H \"Authorization: Bearer \"`echo hunter2` https://h/; echo visible; curl -H 'X-Api-Key: '\"$(echo hun ter3)\" https://h/; echo \"visible\""},
			[]string{"sh", "-c", "curl -H \"Authorization: Bearer \"[REDACTED] https://h/; echo visible; curl -H 'X-Api-Key: '[REDACTED] https://h/; echo \"visible\""}},
		{[]string{"sh", "-c", `curl -H "Authorization: Bearer ""hun ter2" https://h/; curl -H "Cookie: " https://h/; echo "visible"`},
			[]string{"sh", "-c", `curl -H "Authorization: Bearer "[REDACTED] https://h/; curl -H "Cookie: " https://h/; echo "visible"`}},
		// A here-document's body, or a comment, whose text leaves a
		// quote open, read as the line's words: it moved the quotes of
		// every word after it, and the values after it were kept. Now a
		// piece of its own, the rules read the line after it anew; in a
		// substitution, the rest of the line is hidden. A body that
		// leaves nothing open is read as before, and the text of a
		// body or comment is redacted too.
		{[]string{"bash", "-c", "cat <<'EOF'\nx\"\nEOF\ngit config credential.password \"hun ter2\"; curl -u ann:\"hun ter3\" -H \"Authorization: Bearer hun ter4\" https://h/; echo visible"},
			[]string{"bash", "-c", "cat <<'EOF'\nx\"\nEOF\ngit config credential.password [REDACTED]; curl -u ann:[REDACTED] -H \"Authorization: Bearer [REDACTED]\" https://h/; echo visible"}},
		{[]string{"bash", "-c", "cat <<A <<-\"B\"\na\nA\n\tb\"\n\tB\necho \"PGPASSWORD=hun ter2\"; echo visible"},
			[]string{"bash", "-c", "cat <<A <<-\"B\"\na\nA\nb\"\n\tB\necho \"PGPASSWORD=[REDACTED]\"; echo visible"}},
		{[]string{"bash", "-c", "ls # it's\necho 'PGPASSWORD=hun ter2'; echo visible"}, []string{"bash", "-c", "ls # it's\necho 'PGPASSWORD=[REDACTED]'; echo visible"}},
		{[]string{"bash", "-c", "x=$(cat <<'EOF'\nx\"\nEOF\n); curl -u ann:\"hun ter2\" https://h/; echo visible"}, []string{"bash", "-c", "x=$(cat <<'EOF'\n[REDACTED]"}},
		{[]string{"bash", "-c", "cat > f.py <<'EOF'\nprint(\"hi\")\nEOF\nPGPASSWORD=hunter2 python f.py # run it\necho visible"},
			[]string{"bash", "-c", "cat > f.py <<'EOF'\nprint(\"hi\")\nEOF\nPGPASSWORD=[REDACTED] python f.py # run it\necho visible"}},
		{[]string{"bash", "-c", "cat <<EOF\nPGPASSWORD=hunter2 it's\nEOF\n# MYSQL_PWD=hunter3 don't\necho visible"},
			[]string{"bash", "-c", "cat <<EOF\nPGPASSWORD=[REDACTED] it's\nEOF\n# MYSQL_PWD=[REDACTED] don't\necho visible"}},
		// A here-document in a substitution: its command is read
		// apart from the commands after it, which the scans, giving up
		// at its <<, read as words of "$(…)" to the end of the line
		// (curl's password was kept). A here-string before a
		// here-document is none (its last two < were read as one).
		{[]string{"bash", "-c", "git commit -m \"$(cat <<'EOF'\nfix ) it\nEOF\n)\" && curl -u ann:\"hun ter2\" https://h/; echo visible"},
			[]string{"bash", "-c", "git commit -m \"$(cat <<'EOF'\nfix ) it\nEOF\n)\" && curl -u ann:[REDACTED] https://h/; echo visible"}},
		{[]string{"bash", "-c", "tr a b <<<x\ncat <<E\nit's\nE\ncurl -u ann:\"hun ter2\" https://h/; echo visible"},
			[]string{"bash", "-c", "tr a b <<<x\ncat <<E\nit's\nE\ncurl -u ann:[REDACTED] https://h/; echo visible"}},
		// A here-document in a substitution is passed over to its
		// delimiter's line: read as left open, it hid the rest of its
		// command. Where bash and dash read it apart (a line that
		// starts with the delimiter and goes on: bash ends the body
		// and the substitution there), it is not followed, as before.
		{[]string{"bash", "-c", "PGPASSWORD=\"$(cat <<-'E' | tr a b\n\thun ter2\n\tE\n)\" psql -h db visible; curl -u ann:\"$(cat <<E\nhunter3\nE\n)\" https://h/ visible"},
			[]string{"bash", "-c", "PGPASSWORD=[REDACTED] psql -h db visible; curl -u ann:[REDACTED] https://h/ visible"}},
		{[]string{"bash", "-c", "PGPASSWORD=\"$(cat <<E\nhunter2\nE)x\nE\n)\" psql -h db; echo visible"}, []string{"bash", "-c", "PGPASSWORD=[REDACTED]; echo visible"}},
		// fi and done end a compound command, after which esac ends a
		// case: read as an argument, the substitution was left open,
		// and the commands after it were read as its words (curl's
		// password was kept).
		{[]string{"bash", "-c", `x="$(case $y in a) if true; then echo a; fi esac)"; curl -u ann:hunter2 h; y=$(case $y in a) while :; do b; done esac) && curl -u ann:hunter3 h; echo visible`},
			[]string{"bash", "-c", `x="$(case $y in a) if true; then echo a; fi esac)"; curl -u ann:[REDACTED] h; y=$(case $y in a) while :; do b; done esac) && curl -u ann:[REDACTED] h; echo visible`}},
		// The word after an Authorization credential that reads as a
		// --flag, of several quoted pieces: the second was kept.
		{[]string{"sh", "-c", "curl -H Authorization:\\ --MYSQL_PWD 'hun''ter2' https://h/; echo visible"},
			[]string{"sh", "-c", "curl -H Authorization:\\ [REDACTED] https://h/; echo visible"}},
		// A header credential's quote that closes quotes opened before
		// other text (a stray "): read by headerValue, as before, the
		// quoted credential whole (as the shell's closing quote, its
		// second piece was kept).
		{[]string{"sh", "-c", `" -H $'X-Api-Key: "hun ter2"' https://h/`}, []string{"sh", "-c", `" -H $'X-Api-Key: [REDACTED]' https://h/`}},
		// A header line's credential glued to a command substitution,
		// after its closing quote or escaped blanks: the shell word, and
		// the header's value, run past it, and the substitution's text
		// (the secret's command) was kept.
		{[]string{"bash", "-c", "curl -H \"Authorization: Bearer x\"`echo hun ter2`; echo visible; curl -H Authorization:\\ Bearer\\ $(echo hun ter3); echo visible"},
			[]string{"bash", "-c", "curl -H \"Authorization: Bearer [REDACTED]\"[REDACTED]; echo visible; curl -H Authorization:\\ Bearer\\ [REDACTED]; echo visible"}},
		{[]string{"sh", "-c", `curl -H 'X-Api-Key: a'$(echo "hun ter4") https://h/`}, []string{"sh", "-c", `curl -H 'X-Api-Key: [REDACTED]'[REDACTED] https://h/`}},
		// The same in a shell line that starts as a header line does
		// (A:), which was read as a curl argument of its own: the
		// value ended at the closing quote (found by
		// FuzzRedactSetSecret).
		{[]string{"sh", "-c", `A:||curl -H "X-Api-Key: a"$(echo "\" hun ter5") https://h/; echo visible`}, []string{"sh", "-c", `A:||curl -H "X-Api-Key: [REDACTED]"[REDACTED] https://h/; echo visible`}},
		// And its unquoted credential, read to the line's first
		// newline, one in a substitution too.
		{[]string{"bash", "-c", "A:||curl -H X-Api-Key:\\ $(echo x\necho hun ter6) https://h/; echo visible"}, []string{"bash", "-c", "A:||curl -H X-Api-Key:\\ [REDACTED] https://h/; echo visible"}},
		// A header line in `…`, its credential hidden to the closing
		// backtick with its quote: the commands after it were read
		// as that quote's, to the line's end, and PW kept (found by
		// FuzzRedactShellGrammar).
		{[]string{"bash", "-c", "grep x $(echo `curl -H 'Proxy-Authorization: Basic hun ter7' https://h/` | git config credential.password hunter8)"},
			[]string{"bash", "-c", "grep x $(echo `curl -H 'Proxy-Authorization: Basic [REDACTED]` | git config credential.password [REDACTED])"}},
		// A value in a `…` outside quotes, read on past its closing
		// backtick as though it opened a substitution, to the next
		// `…`'s opening one: curl there was hidden, and its -u's
		// password kept (found by FuzzRedactShellGrammar).
		{[]string{"bash", "-c", "echo `tool --password=hunter2` | echo `curl -u ann:hunter3 h`; echo `PGPASSWORD=hunter4` | echo `curl -u ann:hunter5 h`"},
			[]string{"bash", "-c", "echo `tool --password=[REDACTED]` | echo `curl -u ann:[REDACTED] h`; echo `PGPASSWORD=[REDACTED]` | echo `curl -u ann:[REDACTED] h`"}},
		{[]string{"bash", "-c", "echo `echo \"PGPASSWORD=hunter2\"` | echo `curl -u ann:hunter3 h`; echo `curl -H 'X-Api-Key: hunter4'` | echo `curl -u ann:hunter5 h`"},
			[]string{"bash", "-c", "echo `echo \"PGPASSWORD=[REDACTED]\"` | echo `curl -u ann:[REDACTED] h`; echo `curl -H 'X-Api-Key: [REDACTED]'` | echo `curl -u ann:[REDACTED] h`"}},
		{[]string{"bash", "-c", "echo `tool --password hunter2` | echo `curl -u ann:hunter3 h`"},
			[]string{"bash", "-c", "echo `tool --password [REDACTED]` | echo `curl -u ann:[REDACTED] h`"}},
		// A command substitution that a `…` opens with escaped
		// backticks (\`…\`): its text is hidden whole. Read as the
		// line's, a --flag's value ended at the blank in it (ter2\`
		// kept), and an escaped blank in its own value was read as \\
		// and a blank (hun ter3 kept; found by FuzzRedactShellGrammar
		// once it wrote such substitutions).
		{[]string{"bash", "-c", "echo `tool --password=x\\`cat ter2\\``; echo `echo \\`tool --password=\\\\ hun ter3\\``; echo `echo \\`curl -u ann:hunter4 h\\`` visible; echo visible"},
			[]string{"bash", "-c", "echo `tool --password=[REDACTED]`; echo `echo \\`[REDACTED]\\``; echo `echo \\`[REDACTED]\\`` visible; echo visible"}},
		// A credential that reads as a --flag takes the word after it,
		// quoted and starting with a blank too (found by
		// FuzzRedactAssignedSecret): its ' was read as the shell's
		// closing quote, and the value kept.
		{[]string{"sh", "-c", "curl -H Authorization: --MYSQL_PWD ' hunter2' https://h/"}, []string{"sh", "-c", "curl -H Authorization: [REDACTED] https://h/"}},
		{[]string{"sh", "-c", "curl -H Authorization: --MYSQL_PWD $' hun\\' ter2' https://h/"}, []string{"sh", "-c", "curl -H Authorization: [REDACTED] https://h/"}},
		// So does a word joined past an unknown scheme that reads as a
		// --flag (found by FuzzRedactAssignedSecret): it was hidden
		// with the scheme, and its value kept.
		{[]string{"sh", "-c", "curl -H Authorization:A --MYSQL_PWD hunter2 https://h/"}, []string{"sh", "-c", "curl -H Authorization:[REDACTED] https://h/"}},
		{[]string{"sh", "-c", "curl -H Authorization:- --AWS_SECRET_ACCESS_KEY hunter2 https://h/"}, []string{"sh", "-c", "curl -H Authorization:[REDACTED] https://h/"}},
		// In the quotes that hold the header line, that word ends at
		// their closing quote: read as the shell's word from the
		// middle of the line, the closing quote opened one, and the
		// rest of the line was hidden.
		{[]string{"sh", "-c", "curl -H 'Authorization: A --MYSQL_PWD hunter2' https://h/; echo visible"}, []string{"sh", "-c", "curl -H 'Authorization: [REDACTED]' https://h/; echo visible"}},
		{[]string{"sh", "-c", "curl -H \"Authorization: - --AWS_SECRET_ACCESS_KEY 'hun ter2'\" https://h/; echo visible"}, []string{"sh", "-c", "curl -H \"Authorization: [REDACTED]\" https://h/; echo visible"}},
		{[]string{"sh", "-c", "curl -H $'Authorization: --MYSQL_PWD hunter3' -H 'Accept: x' https://h/"}, []string{"sh", "-c", "curl -H $'Authorization: [REDACTED]' -H 'Accept: x' https://h/"}},
		// A header line inside that word (here a stray " joins it to
		// the quoted credential) is read as a header line: passed
		// over with the word, its credential ended there, and the
		// second piece was kept.
		{[]string{"sh", "-c", `!TOKEN:- " -H '' -H 'Authorization: Bearer "hun ter2 "' https://h/; echo visible`},
			[]string{"sh", "-c", `!TOKEN:[REDACTED]' https://h/; echo visible`}},
		// Nested past maxShellNesting (20 "$( are 40 frames): the rest
		// of the line is hidden, as in quotes left open. It ran to the
		// end of a word read from where the nesting was lost instead.
		// The commands in "$(…)" are read (shellCommands): the first
		// level, which the scan finds left open, is hidden whole.
		{[]string{"sh", "-c", "echo " + strings.Repeat(`"$(`, 20) + "PGPASSWORD=hunter2 psql" + strings.Repeat(`)"`, 20) + "; echo done"},
			[]string{"sh", "-c", "echo \"$([REDACTED]"}},
		// A command inside "$(…)", "`…`" or a "${…}" is read as the
		// commands of the line are (shellCommands): read as one word of
		// the command around it, its curl -u, git config or sshpass -p
		// value was kept. Nested past maxQuotedSubstitutions, or left
		// open inside another, a substitution's text is hidden whole.
		{[]string{"sh", "-c", `echo "$(curl -u ann:"hun ter2" https://h/)"; x="$(git config credential.password "hun ter3")" && "$(git config credential.password hunter4)"; echo visible`},
			[]string{"sh", "-c", `echo "$(curl -u ann:[REDACTED] https://h/)"; x="$(git config credential.password [REDACTED])" && "$(git config credential.password [REDACTED])"; echo visible`}},
		{[]string{"sh", "-c", "echo \"`sshpass -p hunter2 ssh h`\" \"${X:-$(docker login -u ann -p hunter3 reg)}\" \"a\\\"$(echo \"$(mysql -u r -p'hun ter4' db)\")\" visible"},
			[]string{"sh", "-c", "echo \"`sshpass -p [REDACTED] ssh h`\" \"${X:-$(docker login -u ann -p [REDACTED] reg)}\" \"a\\\"$(echo \"$(mysql -u r -p'[REDACTED] db)\")\" visible"}},
		{[]string{"sh", "-c", `echo "$(date) x" && git config credential.password "$(echo x) hunter2"; echo "$(echo "$(echo "$(echo "$(curl -u ann:hunter3 h)")")")" && echo visible`},
			[]string{"sh", "-c", `echo "$(date) x" && git config credential.password [REDACTED]; echo "$(echo "$(echo "$(echo "$([REDACTED])")")")" && echo visible`}},
		// A value in "…" followed on the line by a later word's quotes:
		// the value read as though outside its quotes took its closing
		// quote as opening, and ended in the later word's quotes, which
		// hid a header's name or a --flag and kept its credential
		// (hun ter3 whole, ter5; FuzzRedactShellGrammar). Both readings
		// were hidden then, and the later word to its end; the value now
		// ends where the shell's reading of its quotes ends it.
		{[]string{"sh", "-c", `echo "PGPASSWORD=hunter2"; curl -H "X-Api-Key: hun ter3" https://h/`}, []string{"sh", "-c", `echo "PGPASSWORD=[REDACTED]"; curl -H "X-Api-Key: [REDACTED]" https://h/`}},
		{[]string{"sh", "-c", `env "SSHPASS=hunter4" psql; tool --password "hun ter5" -v`}, []string{"sh", "-c", `env "SSHPASS=[REDACTED]" psql; tool --password [REDACTED] -v`}},
		// The same for a value nested in the first one's span (it
		// hid the rest of the line).
		{[]string{"sh", "-c", `env "PGPASSWORD=x" psql | env "PGPASSWORD= y" psql && curl -d "{\"token\": \"hun ter2\"}" https://h/`}, []string{"sh", "-c", `env "PGPASSWORD=[REDACTED]" psql | env "PGPASSWORD= [REDACTED]" psql && curl -d "{\"token\": [REDACTED]" https://h/`}},
		// A nested value that ends in other quotes than the value it
		// stands in (it hid the rest of the line).
		{[]string{"sh", "-c", "env \"PGPASSWORD=x\" psql &&\nPGPASSWORD=\" y\" | git config credential.password hunter2"}, []string{"sh", "-c", "env \"PGPASSWORD=[REDACTED]\" psql &&\nPGPASSWORD=[REDACTED] | git config credential.password [REDACTED]"}},
		// The value's quotes close in the record where they close in
		// the line: taken with the closing quote, the rules read the
		// rest of the line as quoted, and sshpass -p kept its password.
		{[]string{"sh", "-c", `echo "PGPASSWORD=hunter2" x "y" ; sshpass -p hunter3 ssh h`}, []string{"sh", "-c", `echo "PGPASSWORD=[REDACTED]" x "y" ; sshpass -p [REDACTED] ssh h`}},
		// A value whose shell word goes on past its quotes
		// ("PGPASSWORD=a"b, -H 'X-Api-Key: a'b): to the word's end, and
		// the record keeps their closing quote. Hidden with the value,
		// the record's quotes stood open, the rules read the commands
		// after it as quoted, and curl -u's password was kept; where a
		// word of that shape followed, the rest of the line was hidden.
		{[]string{"bash", "-c", `echo "PGPASSWORD=hunter2"b; curl -u ann:hunter3 h; echo 'PGPASSWORD=hunter4'b; curl -u ann:hunter5 h; echo $'PGPASSWORD=hunter6'$(b); curl -u ann:hunter7 h; echo visible`},
			[]string{"bash", "-c", `echo "PGPASSWORD=[REDACTED]"[REDACTED]; curl -u ann:[REDACTED] h; echo 'PGPASSWORD=[REDACTED]'[REDACTED]; curl -u ann:[REDACTED] h; echo $'PGPASSWORD=[REDACTED]'[REDACTED]; curl -u ann:[REDACTED] h; echo visible`}},
		{[]string{"bash", "-c", `curl -H "X-Api-Key: hunter2"b h; curl -u ann:hunter3 h; curl -H 'Authorization: Bearer hunter4'"b c" h; curl -u ann:hunter5 h; echo visible`},
			[]string{"bash", "-c", `curl -H "X-Api-Key: [REDACTED]"[REDACTED] h; curl -u ann:[REDACTED] h; curl -H 'Authorization: Bearer [REDACTED]'[REDACTED] h; curl -u ann:[REDACTED] h; echo visible`}},
		{[]string{"bash", "-c", `echo "PGPASSWORD=hunter2"b psql; echo "PGPASSWORD=hunter3"b psql; echo "PGPASSWORD="hunter4; echo visible`},
			[]string{"bash", "-c", `echo "PGPASSWORD=[REDACTED]"[REDACTED] psql; echo "PGPASSWORD=[REDACTED]"[REDACTED] psql; echo "PGPASSWORD="[REDACTED]; echo visible`}},
		// A here-document's body read apart (a quote left open in it)
		// whose own comment leaves a quote open: the body is cut at its
		// comment as the line is (redactPiece); read whole, the
		// comment's quote hid the commands after it from the rules.
		{[]string{"sh", "-c", "sh <<EOF\necho # it's\ncurl -u ann:hunter2 https://h/\nEOF\necho visible"},
			[]string{"sh", "-c", "sh <<EOF\necho # it's\ncurl -u ann:[REDACTED] https://h/\nEOF\necho visible"}},
		// The same comment in a substitution in a body that leaves
		// nothing open: the body is read apart, and cut at it.
		{[]string{"sh", "-c", "sh <<EOF\nx $(if true # it's\nthen git config credential.password hunter2; fi) y\nEOF\necho visible"},
			[]string{"sh", "-c", "sh <<EOF\nx $(if true [REDACTED]EOF\necho visible"}},
		// A quote past a "…" that the shell's reading found open (its
		// substitution's quotes nest) was taken as open unread, and the
		// value ended at it: hun"ter 2" kept ter 2 (PGPASSWORD's value
		// is read to the line's end first).
		{[]string{"sh", "-c", `env "PGPASSWORD=x" psql | grep x $(tool --password=hun"ter 2" y)`}, []string{"sh", "-c", `env "PGPASSWORD=[REDACTED]" psql | grep x $(tool --password=[REDACTED] y)`}},
		// A here-document's body in a substitution, whose quotes the
		// scans pass over to its delimiter's line: a value's or a
		// header's credential in quotes there ended at its blank. The
		// body is read apart and put back (redactMasked), in a body
		// too.
		{[]string{"sh", "-c", "x=\"$(sh <<EOF\nenv \"PGPASSWORD=hun ter2\" psql; curl -H 'X-Api-Key: hun ter3' https://h/\nEOF\n)\" && echo visible"},
			[]string{"sh", "-c", "x=\"$(sh <<EOF\nenv \"PGPASSWORD=[REDACTED]\" psql; curl -H 'X-Api-Key: [REDACTED]' https://h/\nEOF\n)\" && echo visible"}},
		{[]string{"sh", "-c", "cat <<A\nx $(sh <<B\nenv \"PGPASSWORD=hun ter4\" psql\nB\n) y\nA\necho visible"},
			[]string{"sh", "-c", "cat <<A\nx $(sh <<B\nenv \"PGPASSWORD=[REDACTED]\" psql\nB\n) y\nA\necho visible"}},
		// A <<- body read apart is read without its lines' leading
		// tabs, as its command reads it: a script's here-document in
		// it ends at its tabbed delimiter line.
		{[]string{"sh", "-c", "sh <<-A\n\tcat <<'B'\n\tit's\n\tB\n\tgit config credential.password hunter2\n\tA\necho visible"},
			[]string{"sh", "-c", "sh <<-A\ncat <<'B'\nit's\nB\ngit config credential.password [REDACTED]\n\tA\necho visible"}},
		// A backslash-newline between an option and its value, beside
		// blanks (it joins no bytes): the shell removes it, and the
		// value is the next word. It was read as the value, and the
		// secret kept (FuzzRedactShellGrammar).
		{[]string{"sh", "-c", "tool --password \\\n  hunter2 x; sshpass -p \\\n  hunter3 ssh h; curl -u \\\n ann:hunter4 https://h/; git config credential.password \\\n\thunter5"},
			[]string{"sh", "-c", "tool --password \\\n  [REDACTED] x; sshpass -p \\\n  [REDACTED] ssh h; curl -u \\\n ann:[REDACTED] https://h/; git config credential.password \\\n\t[REDACTED]"}},
		{[]string{"sh", "-c", "echo \"$(date # now\n) $(curl -u ann:hunter2 h)\" visible; echo \"$(curl -u ann:hunter3 h"},
			[]string{"sh", "-c", "echo \"$(date # now\n) $(curl -u ann:[REDACTED] h)\" visible; echo \"$([REDACTED]"}},
		// A substitution the scan finds left open, where the shell
		// closes it (an echo fi esac the scan reads as no case's end),
		// is hidden whole: read as commands, the line's commands after
		// it stood in one word behind its closing ", and curl's
		// password was kept.
		{[]string{"sh", "-c", `x="$(case $y in a) echo fi esac)"; curl -u ann:hunter2 h`}, []string{"sh", "-c", `x="$([REDACTED]`}},
		// A PowerShell variable's assignment takes an expression, to the
		// statement's end: 'a' + 'b', (…) and here-strings ended at the
		// first blank and kept the rest. -Command's script is a line:
		// read as an argument of its own, an assignment at its start
		// took every statement after it with the value.
		{[]string{"pwsh", "-Command", "$env:PGPASSWORD = 'hun' + 'ter2'; psql -h db; if ($x) { $env:A_TOKEN = (Get-Secret hunter3) } else { $password = \"hunter4\" + $y }\n$env:GITHUB_TOKEN = @'\nhun'ter5\n'@\ngh auth status"},
			[]string{"pwsh", "-Command", "$env:PGPASSWORD = [REDACTED]; psql -h db; if ($x) { $env:A_TOKEN = [REDACTED] } else { $password = [REDACTED] }\n$env:GITHUB_TOKEN = [REDACTED]\ngh auth status"}},
		{[]string{"pwsh", "-NoProfile", "-c", "$env:PGPASSWORD = $(Get-Content f | Select-Object -First 1); psql"}, []string{"pwsh", "-NoProfile", "-c", "$env:PGPASSWORD = [REDACTED]; psql"}},
		// A backtick escaping a PowerShell command's first letter (found
		// by FuzzRedactSetSecret): `Set-Item is Set-Item.
		{[]string{"pwsh", "-c", "`Set-Item -Path Env:GITHUB_TOKEN -Value 'hunter2'"}, []string{"pwsh", "-c", "`Set-Item -Path Env:GITHUB_TOKEN -Value [REDACTED]"}},
		// A -c that is not a shell's takes one value: git's name=value.
		{[]string{"git", "-c", "credential.password=hun ter2", "push"}, []string{"git", "-c", "credential.password=[REDACTED]", "push"}},
		// Assignments glued to a shell's operators (;, &&, ||, |, &, (,
		// backticks, $(): the name is found wherever it starts.
		{[]string{"sh", "-c", "true;PGPASSWORD=hunter2 psql"}, []string{"sh", "-c", "true;PGPASSWORD=[REDACTED] psql"}},
		{[]string{"sh", "-c", "a&&PGPASSWORD=hunter2||b|PGPASSWORD=hunter3&PGPASSWORD=hunter4"}, []string{"sh", "-c", "a&&PGPASSWORD=[REDACTED]||b|PGPASSWORD=[REDACTED]&PGPASSWORD=[REDACTED]"}},
		{[]string{"sh", "-c", "(PGPASSWORD=hunter2 psql)"}, []string{"sh", "-c", "(PGPASSWORD=[REDACTED] psql)"}},
		{[]string{"sh", "-c", "echo `PGPASSWORD=hunter2 psql` $(PGPASSWORD='hun ter2' psql)"}, []string{"sh", "-c", "echo `PGPASSWORD=[REDACTED] psql` $(PGPASSWORD=[REDACTED] psql)"}},
		// Builtins that assign, and bash's append and array elements: +=
		// and [i]= were not seen as assignments.
		{[]string{"sh", "-c", "export PGPASSWORD=hunter2; declare -x MYSQL_PWD=hunter3"}, []string{"sh", "-c", "export PGPASSWORD=[REDACTED]; declare -x MYSQL_PWD=[REDACTED]"}},
		// In a shell line the value ends at an operator as the shell's
		// word does: the command after it was hidden with the secret.
		{[]string{"sh", "-c", "PGPASSWORD=hunter2;psql -h db"}, []string{"sh", "-c", "PGPASSWORD=[REDACTED];psql -h db"}},
		{[]string{"sh", "-c", "(PGPASSWORD=hun\\;ter2)|cat>out"}, []string{"sh", "-c", "(PGPASSWORD=[REDACTED])|cat>out"}},
		{[]string{"sh", "-c", "PGPASSWORD='hun;ter2'&&psql"}, []string{"sh", "-c", "PGPASSWORD=[REDACTED]&&psql"}},
		{[]string{"bash", "-c", "readonly A_TOKEN=hunter2 && local B_SECRET=hunter3 && typeset PGPASSWORD=hunter4"}, []string{"bash", "-c", "readonly A_TOKEN=[REDACTED] && local B_SECRET=[REDACTED] && typeset PGPASSWORD=[REDACTED]"}},
		{[]string{"bash", "-c", "PGPASSWORD+=hunter2 psql"}, []string{"bash", "-c", "PGPASSWORD+=[REDACTED] psql"}},
		{[]string{"bash", "-c", `PGPASSWORD+="hun ter2" psql`}, []string{"bash", "-c", "PGPASSWORD+=[REDACTED] psql"}},
		{[]string{"env", "GITHUB_TOKEN+=hunter2"}, []string{"env", "GITHUB_TOKEN+=[REDACTED]"}},
		{[]string{"bash", "-c", "TOKENS[0]=hunter2 creds[password]='hun ter2' x[1]=y"}, []string{"bash", "-c", "TOKENS[0]=[REDACTED] creds[password]=[REDACTED] x[1]=y"}},
		// An element of an array named so that the subscript hides its
		// end (found by FuzzRedactSetSecret).
		{[]string{"bash", "-c", "MYSQL_PWD[i]=hunter2 SECRET_ID[0]=x"}, []string{"bash", "-c", "MYSQL_PWD[i]=[REDACTED] SECRET_ID[0]=x"}},
		// A [ before an operator is no subscript (found by
		// FuzzRedactSetSecret: A[;MYSQL_PWD[i]=x took A[;MYSQL_PWD[i] as
		// one name), and a --flag right after another in a shell line
		// (found by FuzzRedactAssignedSecret: the blank between them was
		// taken with the first).
		{[]string{"bash", "-c", "A[;MYSQL_PWD[i]=hunter2"}, []string{"bash", "-c", "A[;MYSQL_PWD[i]=[REDACTED]"}},
		{[]string{"sh", "-c", "tool -A --password hunter2 -v --token hunter3"}, []string{"sh", "-c", "tool -A --password [REDACTED] -v --token [REDACTED]"}},
		// A secret's --flag as the value of another (found by
		// FuzzRedactAssignedSecret): its own value was passed over, inside
		// the first one's. An empty password of curl -u glued to a header
		// line (found by FuzzRedactHeaderSecret): the [REDACTED] put there
		// was taken for the header's credential, and the credential kept.
		{[]string{"sh", "-c", "tool --secret --token hunter2 -v"}, []string{"sh", "-c", "tool --secret [REDACTED] -v"}},
		// The same as an assignment's value past blanks (found by
		// FuzzRedactAssignedSecret): the flag was hidden as SECRET's
		// value, and its own value, no longer seen, kept.
		{[]string{"sh", "-c", "SECRET= --PGPASSWORD hunter2 -v"}, []string{"sh", "-c", "SECRET= [REDACTED] -v"}},
		{[]string{"sh", "-c", "curl '-u -H '' -H 'X-Api-Key: \"hunter2\"' https://h/"}, []string{"sh", "-c", "curl '-u -H '' -H 'X-Api-Key: [REDACTED]' https://h/"}},
		{[]string{"curl", "-u", "ann:", "https://h/"}, nil},
		// A header line glued to curl -u's argument, whose password
		// started at the header's colon (found by
		// FuzzRedactHeaderSecret): the [REDACTED] put for the scheme was
		// read as the credential, and the credential kept. Header lines
		// are read first.
		{[]string{"sh", "-c", "curl '-u -H '' -H 'authorization:Basic \"hunter2\"' https://h/"}, []string{"sh", "-c", "curl '-u -H '' -H 'authorization:[REDACTED] [REDACTED]' https://h/"}},
		// A secret's name= inside the value of another, whose own value
		// runs past it (found by FuzzRedactAssignedSecret): the quotes
		// closed SECRET's value before PGPASSWORD's, or a quote left open
		// ended A_TOKEN's where PGPASSWORD's starts; the match inside the
		// value taken was passed over, and its value kept.
		{[]string{"sh", "-c", "'SECRET=A PGPASSWORD=' hunter2'"}, []string{"sh", "-c", "'SECRET=[REDACTED]"}},
		{[]string{"sh", "-c", "A_TOKEN=x=PGPASSWORD='hunter2"}, []string{"sh", "-c", "A_TOKEN=[REDACTED]"}},
		// A program's own option whose argument is a secret, though its
		// name says nothing (programOptions): curl's user:password, the
		// user kept, in argv and in a shell line, glued (-uann:…), after
		// other letters (-sSu) or with = (--proxy-user=). Kept before.
		{[]string{"curl", "-u", "ann:hunter2", "https://h/"}, []string{"curl", "-u", "ann:[REDACTED]", "https://h/"}},
		{[]string{"/usr/bin/curl", "--user", "ann:hun:ter2", "-sSuann:hunter3", "--proxy-user=p:hunter4", "https://h/"},
			[]string{"/usr/bin/curl", "--user", "ann:[REDACTED]", "-sSuann:[REDACTED]", "--proxy-user=p:[REDACTED]", "https://h/"}},
		{[]string{"sh", "-c", "curl -su 'ann:hun ter2' https://h/ && sudo curl -U p:hunter3 -x proxy https://h/"},
			[]string{"sh", "-c", "curl -su 'ann:[REDACTED]' https://h/ && sudo curl -U p:[REDACTED] -x proxy https://h/"}},
		// No password (curl asks for it), another program's -u, a letter
		// that takes its own argument before the u: kept.
		{[]string{"curl", "-u", "ann", "https://h/"}, nil},
		{[]string{"sh", "-c", "curl -sSuann https://h/"}, nil},
		{[]string{"docker", "run", "-u", "1000:1000", "img"}, nil},
		{[]string{"curl", "-HUser-Agent: a:b", "https://h/"}, nil},
		// A password given as a program's option: sshpass -p (whose
		// options end at the command it runs: ssh's -p is a port),
		// redis-cli -a and --pass, docker and podman login -p, az login
		// -p. Kept before.
		{[]string{"sshpass", "-p", "hunter2", "ssh", "-p", "2222", "h"}, []string{"sshpass", "-p", "[REDACTED]", "ssh", "-p", "2222", "h"}},
		{[]string{"sh", "-c", "sshpass -v -f /dev/null -phunter2 scp -p f h: && sshpass -e ssh -p 22 h"}, []string{"sh", "-c", "sshpass -v -f /dev/null -p[REDACTED] scp -p f h: && sshpass -e ssh -p 22 h"}},
		{[]string{"redis-cli", "-h", "db", "-p", "6379", "-a", "hunter2", "ping"}, []string{"redis-cli", "-h", "db", "-p", "6379", "-a", "[REDACTED]", "ping"}},
		{[]string{"sh", "-c", "redis-cli --user ann --pass 'hun ter2' get k"}, []string{"sh", "-c", "redis-cli --user ann --pass [REDACTED] get k"}},
		{[]string{"docker", "login", "-u", "ann", "-p", "hunter2", "reg.example.com"}, []string{"docker", "login", "-u", "ann", "-p", "[REDACTED]", "reg.example.com"}},
		{[]string{"sh", "-c", "podman login -u ann -phunter2 quay.io && docker run -p 80:80 -u 1000:1000 img"}, []string{"sh", "-c", "podman login -u ann -p[REDACTED] quay.io && docker run -p 80:80 -u 1000:1000 img"}},
		{[]string{"az", "login", "--service-principal", "-u", "app", "-p", "hunter2", "--tenant", "t"}, []string{"az", "login", "--service-principal", "-u", "app", "-p", "[REDACTED]", "--tenant", "t"}},
		// A program's variable whose name says nothing (programEnv), in
		// every shell's form: kept before.
		{[]string{"sh", "-c", "SSHPASS=hunter2 sshpass -e ssh h; export SSHPASS='hun ter2'; REDISCLI_AUTH=hunter3 redis-cli ping"},
			[]string{"sh", "-c", "SSHPASS=[REDACTED] sshpass -e ssh h; export SSHPASS=[REDACTED]; REDISCLI_AUTH=[REDACTED] redis-cli ping"}},
		{[]string{"env", "SSHPASS=hunter2", "RCLONE_CONFIG_PASS=hunter3", "BORG_PASSPHRASE=hun ter2", "sshpass", "-e", "ssh", "h"},
			[]string{"env", "SSHPASS=[REDACTED]", "RCLONE_CONFIG_PASS=[REDACTED]", "BORG_PASSPHRASE=[REDACTED]", "sshpass", "-e", "ssh", "h"}},
		{[]string{"tcsh", "-c", "setenv SSHPASS hunter2; setenv REDISCLI_AUTH hunter3"}, []string{"tcsh", "-c", "setenv SSHPASS [REDACTED]; setenv REDISCLI_AUTH [REDACTED]"}},
		{[]string{"fish", "-c", "set -x SSHPASS hunter2; set -gx REDISCLI_AUTH hunter3"}, []string{"fish", "-c", "set -x SSHPASS [REDACTED]; set -gx REDISCLI_AUTH [REDACTED]"}},
		{[]string{"pwsh", "-c", "Set-Item -Path Env:SSHPASS -Value hunter2; $env:REDISCLI_AUTH = 'hunter3'"}, []string{"pwsh", "-c", "Set-Item -Path Env:SSHPASS -Value [REDACTED]; $env:REDISCLI_AUTH = [REDACTED]"}},
		{[]string{"sh", "-c", "redis-cli -a \"${REDISCLI_AUTH:-hunter2}\" ping; echo ${SSHPASS-hunter3}/x"}, []string{"sh", "-c", "redis-cli -a [REDACTED] ping; echo ${SSHPASS-[REDACTED]}/x"}},
		// A passphrase, as gpg takes it (--passphrase X, =X) and as a
		// variable names it: kept before. Its -fd and -file say where it
		// is read from.
		{[]string{"gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "hunter2", "-c", "f"}, []string{"gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "[REDACTED]", "-c", "f"}},
		{[]string{"sh", "-c", "gpg --passphrase='hun ter2' -d f && GPG_PASSPHRASE=hunter3 ./sign && gpg --passphrase-fd 0 -d f < p && gpg --passphrase-file pw -d f"},
			[]string{"sh", "-c", "gpg --passphrase=[REDACTED] -d f && GPG_PASSPHRASE=[REDACTED] ./sign && gpg --passphrase-fd 0 -d f < p && gpg --passphrase-file pw -d f"}},
		// Other names and cases: no such variable.
		{[]string{"env", "sshpass=1", "SSHPASS_FILE=f", "apt-get", "install", "sshpass=1.09-1"}, nil},
		// Other programs' password options (programOptions), glued to
		// their letter or not, after flags: kept before.
		{[]string{"curl", "--oauth2-bearer", "hunter2", "-E", "c.pem:hunter3", "--cert=c.p12:hunter4", "--pass", "hun ter2", "https://h/"},
			[]string{"curl", "--oauth2-bearer", "[REDACTED]", "-E", "c.pem:[REDACTED]", "--cert=c.p12:[REDACTED]", "--pass", "[REDACTED]", "https://h/"}},
		{[]string{"sh", "-c", "curl -s --oauth2-bearer 'hun ter2' https://h/ && curl --proxy-pass hunter3 --proxy-cert p.pem:hunter4 https://h/"},
			[]string{"sh", "-c", "curl -s --oauth2-bearer [REDACTED] https://h/ && curl --proxy-pass [REDACTED] --proxy-cert p.pem:[REDACTED] https://h/"}},
		{[]string{"sqlcmd", "-S", "db", "-U", "sa", "-P", "hunter2", "-Q", "select 1"}, []string{"sqlcmd", "-S", "db", "-U", "sa", "-P", "[REDACTED]", "-Q", "select 1"}},
		{[]string{"sh", "-c", "sqlcmd -U sa -Phunter2 -d app; mongosh -u ann -p 'hun ter2' db; mongodump -u ann -p=hunter3 --db app"},
			[]string{"sh", "-c", "sqlcmd -U sa -P[REDACTED] -d app; mongosh -u ann -p [REDACTED] db; mongodump -u ann -p[REDACTED] --db app"}},
		{[]string{"ldapsearch", "-x", "-H", "ldap://h", "-D", "cn=admin", "-w", "hunter2", "(uid=ann)"}, []string{"ldapsearch", "-x", "-H", "ldap://h", "-D", "cn=admin", "-w", "[REDACTED]", "(uid=ann)"}},
		{[]string{"sh", "-c", "ldapmodify -xw hunter2 -f m.ldif && ldappasswd -x -D cn=a -w hunter3 -a hunter4 -s 'hun ter2' uid=ann"},
			[]string{"sh", "-c", "ldapmodify -xw [REDACTED] -f m.ldif && ldappasswd -x -D cn=a -w [REDACTED] -a [REDACTED] -s [REDACTED] uid=ann"}},
		{[]string{"smbclient", "//h/share", "-U", "ann%hunter2", "-c", "ls"}, []string{"smbclient", "//h/share", "-U", "ann%[REDACTED]", "-c", "ls"}},
		{[]string{"sh", "-c", "smbclient -L h -NUann%hunter2; rpcclient --user='ann%hun ter2' h; smbcacls -U 'DOM/ann%hunter3' //h/s f"},
			[]string{"sh", "-c", "smbclient -L h -NUann%[REDACTED]; rpcclient --user='ann%[REDACTED] h; smbcacls -U 'DOM/ann%[REDACTED]' //h/s f"}},
		// openssl's pass phrases given as pass:X, and enc's -k and -K.
		{[]string{"openssl", "rsa", "-in", "k.pem", "-passin", "pass:hunter2", "-passout", "pass:hun ter2", "-out", "o.pem"},
			[]string{"openssl", "rsa", "-in", "k.pem", "-passin", "pass:[REDACTED]", "-passout", "pass:[REDACTED]", "-out", "o.pem"}},
		{[]string{"sh", "-c", "openssl enc -aes-256-cbc -k hunter2 -in f && openssl pkcs12 -export -passout 'pass:hun ter2' -in c && openssl enc -K hunter3 -iv 00 -pass pass:hunter4"},
			[]string{"sh", "-c", "openssl enc -aes-256-cbc -k [REDACTED] -in f && openssl pkcs12 -export -passout 'pass:[REDACTED]' -in c && openssl enc -K [REDACTED] -iv 00 -pass pass:[REDACTED]"}},
		{[]string{"openssl", "rsa", "-in", "k.pem", "-passin", "env:KEYPW", "-passout", "file:pw.txt", "-kfile", "f", "-out", "o"}, nil},
		// ssh-keygen's new and old passphrases, archives' passwords
		// (7-Zip's glued -p, zip's and unzip's -P) and the other MySQL
		// and MariaDB tools' -p: kept before. An empty passphrase in a
		// shell line stays, as in argv: none is set.
		{[]string{"ssh-keygen", "-t", "ed25519", "-N", "hunter2", "-f", "k"}, []string{"ssh-keygen", "-t", "ed25519", "-N", "[REDACTED]", "-f", "k"}},
		{[]string{"sh", "-c", "ssh-keygen -p -P 'hun ter2' -N hunter3 -f k && ssh-keygen -qN '' -f k2 && ssh-keygen -N \"\" -f k3 -C ann"},
			[]string{"sh", "-c", "ssh-keygen -p -P [REDACTED] -N [REDACTED] -f k && ssh-keygen -qN '' -f k2 && ssh-keygen -N \"\" -f k3 -C ann"}},
		{[]string{"ssh-keygen", "-N", "", "-f", "k"}, nil},
		{[]string{"7z", "a", "-phunter2", "-mhe=on", "f.7z", "d"}, []string{"7z", "a", "-p[REDACTED]", "-mhe=on", "f.7z", "d"}},
		{[]string{"sh", "-c", "7za x -p'hun ter2' f.7z && zip -r -P hunter3 f.zip d && zip -erPhunter4 f.zip d && unzip -o -P 'hun ter2' f.zip"},
			[]string{"sh", "-c", "7za x -p'[REDACTED] f.7z && zip -r -P [REDACTED] f.zip d && zip -erP[REDACTED] f.zip d && unzip -o -P [REDACTED] f.zip"}},
		{[]string{"sh", "-c", "7z x -p f.7z && zip -e f.zip d && unzip -p f.zip x && mysqlsh -p -h db"}, nil},
		{[]string{"sh", "-c", "mysqlimport -u r -phunter2 db f && mariadb-admin -phunter3 status && mysqlbinlog -phunter4 --read-from-remote-server b"},
			[]string{"sh", "-c", "mysqlimport -u r -p[REDACTED] db f && mariadb-admin -p[REDACTED] status && mysqlbinlog -p[REDACTED] --read-from-remote-server b"}},
		{[]string{"curl", "-d", `{"cmd":"mysqlcheck -u r -phunter2 db"}`, "https://h/"}, []string{"curl", "-d", `{"cmd":"mysqlcheck -u r -p[REDACTED] db"}`, "https://h/"}},
		// vault login's token operand (not -, nor the operands after
		// it): kept before.
		{[]string{"vault", "login", "hvs.hunter2"}, []string{"vault", "login", "[REDACTED]"}},
		{[]string{"sh", "-c", "vault login -no-store hunter2 > /dev/null && vault login -method userpass username=ann password=hunter3 && vault login - < tok && bao login -address=http://h hunter4"},
			[]string{"sh", "-c", "vault login -no-store [REDACTED] > /dev/null && vault login -method userpass username=ann password=[REDACTED] && vault login - < tok && bao login -address=http://h [REDACTED]"}},
		{[]string{"sh", "-c", "vault kv get -field=password secret/db && vault login -method=oidc role=dev"}, nil},
		// smbclient's USER=ann%PW (the user kept; LOGNAME holds no
		// password), GitLab Runner's DOCKER_AUTH_CONFIG, a Docker
		// config's "auth" and npm's _auth: kept before. SKIP_AUTH and
		// mongod --auth name no secret.
		{[]string{"sh", "-c", "USER=ann%hunter2 smbclient //h/s -c ls; export USER='DOM\\ann%hunter3'; USER=ann smbclient -L h"},
			[]string{"sh", "-c", "USER=ann%[REDACTED] smbclient //h/s -c ls; export USER='DOM\\ann%[REDACTED]; USER=ann smbclient -L h"}},
		{[]string{"env", "USER=ann%hun ter2", "LOGNAME=x%y", "smbclient", "//h/s"}, []string{"env", "USER=ann%[REDACTED]", "LOGNAME=x%y", "smbclient", "//h/s"}},
		// env -S (--split-string) splits its string at blanks into the
		// assignments and the command: read as an argument of its own,
		// the command was hidden with the secret. Its ; is no operator,
		// and a quoted value is whole.
		{[]string{"env", "-S", "PGPASSWORD=hunter2 psql -h db"}, []string{"env", "-S", "PGPASSWORD=[REDACTED] psql -h db"}},
		{[]string{"/usr/bin/env", "-iS", `FOO=1 PGPASSWORD="hun ter2" A_TOKEN=hun;ter3 psql`}, []string{"/usr/bin/env", "-iS", "FOO=1 PGPASSWORD=[REDACTED] A_TOKEN=[REDACTED] psql"}},
		{[]string{"env", "--split-string=PGPASSWORD='hun ter2' psql", "-SA_SECRET=x y"}, []string{"env", "--split-string=PGPASSWORD=[REDACTED] psql", "-SA_SECRET=[REDACTED] y"}},
		{[]string{"tool", "-S", "PGPASSWORD=hun ter2"}, []string{"tool", "-S", "PGPASSWORD=[REDACTED]"}},
		// USER=user%password set by csh's setenv, fish's set -x,
		// PowerShell's Set-Item Env:USER and SetEnvironmentVariable, and
		// launchctl setenv: read as NAME=value only, and kept whole. A
		// USER with no % holds no password and stays.
		{[]string{"tcsh", "-c", "setenv USER ann%hunter2; smbclient //h/s; setenv USER 'DOM\\ann%hun ter3'; setenv USER ann"},
			[]string{"tcsh", "-c", "setenv USER ann%[REDACTED]; smbclient //h/s; setenv USER 'DOM\\ann%[REDACTED]'; setenv USER ann"}},
		{[]string{"fish", "-c", "set -x USER ann%hunter2; set -gx USER ann%'hun ter3'; set -Ux USER ann%hunter4; set --export USER ann%hunter5; set -x USER ann"},
			[]string{"fish", "-c", "set -x USER ann%[REDACTED]; set -gx USER ann%[REDACTED]; set -Ux USER ann%[REDACTED]; set --export USER ann%[REDACTED]; set -x USER ann"}},
		{[]string{"pwsh", "-c", "Set-Item -Path Env:USER -Value 'ann%hunter2'; [Environment]::SetEnvironmentVariable('USER', 'ann%hunter3')"},
			[]string{"pwsh", "-c", "Set-Item -Path Env:USER -Value 'ann%[REDACTED]'; [Environment]::SetEnvironmentVariable('USER', 'ann%[REDACTED]')"}},
		{[]string{"launchctl", "setenv", "USER", "ann%hunter2"}, []string{"launchctl", "setenv", "USER", "ann%[REDACTED]"}},
		{[]string{"launchctl", "setenv", "USER", "ann"}, nil},
		// An element of a program's variable, USER's or SSHPASS's or a
		// name that says so, by bash's NAME[i]= and fish's set -x
		// NAME[i]: bash's USER[0] is USER, and fish exports a list
		// joined. The subscript was read as part of the name, which no
		// program reads: USER[0]=ann%PW, set -x USER[1] ann%PW and set
		// -x MYSQL_PWD[1] PW were kept. A subscript that says USER names
		// no variable (a[USER]) and stays.
		{[]string{"bash", "-c", "USER[0]=ann%hunter2 smbclient //h/s; USER[0]+='ann%hun ter3'; a[USER]=ann%x"},
			[]string{"bash", "-c", "USER[0]=ann%[REDACTED] smbclient //h/s; USER[0]+='ann%[REDACTED]; a[USER]=ann%x"}},
		{[]string{"fish", "-c", "set -x USER[1] ann%hunter2; set -gx MYSQL_PWD[1] hunter3; set -x SSHPASS[1] hunter4; set -x PATH[1] /bin"},
			[]string{"fish", "-c", "set -x USER[1] ann%[REDACTED]; set -gx MYSQL_PWD[1] [REDACTED]; set -x SSHPASS[1] [REDACTED]; set -x PATH[1] /bin"}},
		{[]string{"sh", "-c", `DOCKER_AUTH_CONFIG='{"auths":{"r":{"auth":"aHVudGVyMg=="}}}' gitlab-runner exec docker j`}, []string{"sh", "-c", "DOCKER_AUTH_CONFIG=[REDACTED] gitlab-runner exec docker j"}},
		{[]string{"sh", "-c", `echo '{"auths":{"r":{"auth":"aHVudGVyMg=="}}}' > ~/.docker/config.json && npm config set //r/:_auth hunter3 && npm_config__auth=hunter4 npm i && SKIP_AUTH=1 mongod --auth`},
			[]string{"sh", "-c", `echo '{"auths":{"r":{"auth":"[REDACTED]"}}}' > ~/.docker/config.json && npm config set //r/:_auth [REDACTED] && npm_config__auth=[REDACTED] npm i && SKIP_AUTH=1 mongod --auth`}},
		// npm's _authToken and pip's index URL, hidden already (by its
		// name, and as a URI's password).
		{[]string{"sh", "-c", "npm config set //registry.npmjs.org/:_authToken hunter2 && NPM_CONFIG__AUTHTOKEN=hunter3 npm i && pip install --index-url https://ann:hunter4@pypi.example/simple x"},
			[]string{"sh", "-c", "npm config set //registry.npmjs.org/:_authToken [REDACTED] && NPM_CONFIG__AUTHTOKEN=[REDACTED] npm i && pip install --index-url https://ann:[REDACTED]@pypi.example/simple x"}},
		// htpasswd -b's password, its last operand: after FILE USER, or
		// USER alone with -n.
		{[]string{"htpasswd", "-b", "-C", "12", "/etc/nginx/htpasswd", "ann", "hunter2"}, []string{"htpasswd", "-b", "-C", "12", "/etc/nginx/htpasswd", "ann", "[REDACTED]"}},
		{[]string{"sh", "-c", "htpasswd -cbB f ann 'hun ter2' && htpasswd -nb ann hunter3 > f2 && htpasswd -Bnb -r 5 ann hunter4"},
			[]string{"sh", "-c", "htpasswd -cbB f ann [REDACTED] && htpasswd -nb ann [REDACTED] > f2 && htpasswd -Bnb -r 5 ann [REDACTED]"}},
		// Without -b htpasswd asks for it: the operands are kept.
		{[]string{"sh", "-c", "htpasswd -c f ann && htpasswd -n ann > f2 && htpasswd -D f ann"}, nil},
		// The same letters without a password, or another program's.
		{[]string{"smbclient", "//h/share", "-U", "ann", "-W", "DOM"}, nil},
		{[]string{"curl", "-E", "client.pem", "--pass-through", "x", "https://h/"}, nil},
		{[]string{"sh", "-c", "ldapsearch -x -W -s sub -b dc=x; mongosh --port 27017; sqlcmd -S db -d app; psql -P pager=off; ssh -w 1 h"}, nil},
		// The same letters elsewhere, and no password: kept.
		{[]string{"docker", "login", "-u", "ann", "reg.example.com"}, nil},
		{[]string{"docker", "run", "-p", "8080:80", "img"}, nil},
		{[]string{"redis-cli", "-p", "6379", "ping"}, nil},
		{[]string{"az", "vm", "create", "-n", "vm", "-p", "x"}, nil},
		// A subcommand's word as another subcommand's operand, and a
		// program's name as a container's or a host's: docker run's
		// port was hidden as docker login's password, and as mongo's
		// (mongo -p), redis-cli's port as mongo's too.
		{[]string{"docker", "run", "--name", "login", "-p", "80:80", "img"}, nil},
		{[]string{"sh", "-c", "docker run --name mongo -p 27017:27017 -d mongo && redis-cli -h mongo -p 6379 ping && kubectl create configmap secret --from-literal=K=V"}, nil},
		// The subcommand after global options, their arguments too, and
		// a program's name among another's words, which may be a command
		// run later (echo … | sh, ssh h mongo …): hidden.
		{[]string{"sh", "-c", "docker -H tcp://h:2375 login -u ann -p hunter2 reg && docker --debug login -phunter3 && echo mongo -p hunter4 | sh"},
			[]string{"sh", "-c", "docker -H tcp://h:2375 login -u ann -p [REDACTED] reg && docker --debug login -p[REDACTED] && echo mongo -p [REDACTED] | sh"}},
		{[]string{"mongodump", "-h", "mongo", "-u", "ann", "-p", "hunter2"}, []string{"mongodump", "-h", "mongo", "-u", "ann", "-p", "[REDACTED]"}},
		// gh secret set's value, whatever the secret's name says: only a
		// name such as MY_TOKEN was seen.
		{[]string{"gh", "secret", "set", "STRIPE_KEY", "--body", "hunter2", "-R", "o/r"}, []string{"gh", "secret", "set", "STRIPE_KEY", "--body", "[REDACTED]", "-R", "o/r"}},
		{[]string{"sh", "-c", "gh secret set DEPLOY -b 'hun ter2' && gh secret set NPM --body=hunter3 --env prod && gh secret set X -bhunter4"},
			[]string{"sh", "-c", "gh secret set DEPLOY -b [REDACTED] && gh secret set NPM --body=[REDACTED] --env prod && gh secret set X -b[REDACTED]"}},
		{[]string{"gh", "pr", "create", "-b", "body", "-t", "title"}, nil},
		{[]string{"gh", "variable", "set", "REGION", "--body", "eu-west-1"}, nil},
		// Every value fly secrets set and heroku config:set take,
		// whatever its name says: only a name such as A_TOKEN was seen.
		{[]string{"fly", "secrets", "set", "STRIPE_KEY=hunter2", "-a", "app"}, []string{"fly", "secrets", "set", "STRIPE_KEY=[REDACTED]", "-a", "app"}},
		{[]string{"sh", "-c", "flyctl secrets set A='hun ter2' B=hunter3 --stage; heroku config:set DB_URL=hunter4 -a app"},
			[]string{"sh", "-c", "flyctl secrets set A=[REDACTED] B=[REDACTED] --stage; heroku config:set DB_URL=[REDACTED] -a app"}},
		{[]string{"heroku", "config:set", "K=hunter2", `L="hun ter2"`}, []string{"heroku", "config:set", "K=[REDACTED]", "L=[REDACTED]"}},
		{[]string{"fly", "deploy", "--env", "REGION=eu"}, nil},
		// Every literal of kubectl create secret, its key kept, glued
		// to = or not: kept before (a key such as password= was hidden).
		{[]string{"kubectl", "-n", "prod", "create", "secret", "generic", "db", "--from-literal=user=ann", "--from-literal", "pw=hun=ter2", "--from-literal=K='hun ter2'", "--from-file=f"},
			[]string{"kubectl", "-n", "prod", "create", "secret", "generic", "db", "--from-literal=user=[REDACTED]", "--from-literal", "pw=[REDACTED]", "--from-literal=K=[REDACTED]", "--from-file=f"}},
		{[]string{"sh", "-c", "oc create secret generic db --from-literal=K=hunter2 --from-literal 'L=hun ter2' && kubectl create configmap c --from-literal=K=V"},
			[]string{"sh", "-c", "oc create secret generic db --from-literal=K=[REDACTED] --from-literal 'L=[REDACTED]' && kubectl create configmap c --from-literal=K=V"}},
		{[]string{"kubectl", "create", "configmap", "c", "--from-literal=K=V", "--from-literal", "region=eu"}, nil},
		{[]string{"kubectl", "create", "secret", "generic", "db", "--from-env-file=.env"}, nil},
		{[]string{"heroku", "config:get", "K=x"}, nil},
		// A URI's user part runs to the authority's last @: an @ in the
		// password or the user ended it early, and the rest was kept.
		{[]string{"git", "clone", "https://ann:hun@ter2@github.com/o/r"}, []string{"git", "clone", "https://ann:[REDACTED]@github.com/o/r"}},
		{[]string{"sh", "-c", "psql postgresql://ann@corp.example:p@ter2@db/app -c 'select 1'"}, []string{"sh", "-c", "psql postgresql://ann@corp.example:[REDACTED]@db/app -c 'select 1'"}},
		{[]string{"curl", "-d", `{"url":"https://u:hunter2@h","email":"a@b"}`, "https://ann@h:8080/a@b"}, []string{"curl", "-d", `{"url":"https://u:[REDACTED]@h","email":"a@b"}`, "https://ann@h:8080/a@b"}},
		{[]string{"sh", "-c", "git clone https://ann:hun@'ter2'@h/r && git clone 'https://ann@c':hun@'ter2'@h/r"}, []string{"sh", "-c", "git clone https://ann:[REDACTED]@h/r && git clone 'https://ann@c':[REDACTED]@h/r"}},
		{[]string{"git", "clone", "ssh://git@h:22/o/r", "https://h:8080/?next=a@b"}, nil},
		// --password-stdin takes no value: the registry after it was
		// hidden.
		{[]string{"docker", "login", "-u", "ann", "--password-stdin", "reg.example.com"}, nil},
		{[]string{"sh", "-c", "cat pw | docker login --username ann --password-stdin reg.example.com"}, nil},
	} {
		want := c.want
		if want == nil {
			want = c.in
		}
		got := redactCommand(c.in, own, "AIRLOCKsessiontoken")
		if !slices.Equal(got, want) {
			t.Errorf("redactCommand(%q)\n got %q\nwant %q", c.in, got, want)
		}
		for _, g := range got {
			if strings.Contains(g, "hunter") || strings.Contains(g, "ter2") || strings.Contains(g, own) {
				t.Errorf("a secret is left in %q", got)
			}
		}
	}
}

// The fuzz targets write a secret of digits between text without any, so
// that a digit in the record is a piece of the secret that was kept.
func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// digitsOnly is s's digits: a fuzzed secret.
func digitsOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if isDigit(r) {
			return r
		}
		return -1
	}, s)
}

// withoutDigits is s without its digits nor the characters of drop: the
// text around a fuzzed secret.
func withoutDigits(s, drop string) string {
	return strings.Map(func(r rune) rune {
		if isDigit(r) || strings.ContainsRune(drop, r) {
			return -1
		}
		return r
	}, s)
}

// assignedSecretForms are FuzzRedactAssignedSecret's forms, by the key
// its seeds name them by.
var assignedSecretForms = []string{"sh", "sh-single", "sh-double", "sh-dollar", "env", "docker-e", "docker-env", "git-c", "flag"}

// pickKey returns key where keys hold it, or else keys[i%len(keys)]: a
// kept seed names its case by key, which the lists growing or changing
// order does not move; i picks one where the fuzzer mutated the key into
// none.
func pickKey(keys []string, key string, i int) string {
	if slices.Contains(keys, key) {
		return key
	}
	return keys[i%len(keys)]
}

var assignedSecretNames = []string{"PGPASSWORD", "password", "--db-password", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "MYSQL_PWD", "api_key"}

// FuzzRedactAssignedSecret writes a secret as the value of a name that
// says it holds one, in a shell line between arbitrary text: the value is
// a shell word of unquoted, single-quoted, double-quoted, $'…' and
// backslash-escaped pieces, as the shell joins them, with blanks inside
// the quotes (styles%8). The secret is made of digits and the text around
// it has none, so any digit in the record is a piece of the secret that
// was kept.
//
// name is one of assignedSecretNames, and form (assignedSecretForms)
// where the assignment stands: sh, bare in the shell line; sh-single,
// sh-double and sh-dollar, the whole assignment in the shell's '…', "…"
// or $'…' ('PGPASSWORD=1 2', env "AWS_SECRET_ACCESS_KEY=1 2"), its blanks
// bare in them (and \" or \' escaped in "…" or $'…'), where the text
// around has no quote, backslash or $, which would make a blank the
// shell's; env, docker-e, docker-env and git-c, an argument of its own,
// as a shell passes env 'NAME=1 2', docker run -e 'NAME=1 2',
// --env=NAME=… or git -c 'NAME=1 2' on: its value is the rest of the
// argument, blanks and all. Each of these forms kept the part of the
// value after its first blank. flag: the name is a --flag and the value
// the shell word after it (tool --password 'a b'), kept whole before.
// The seeds name their form and name by key, as FuzzRedactSetSecret's
// do: which picks them only where the fuzzer has mutated a key into none.
func FuzzRedactAssignedSecret(f *testing.F) {
	f.Add("sh", "PGPASSWORD", uint8(0), "20261205", []byte{0}, "psql -h db", "-c 'select 1'")
	f.Add("sh", "password", uint8(0), "20261205", []byte{0, 1, 2, 3}, `pg_dump --dbname="host=db`, `"`)
	f.Add("sh", "--db-password", uint8(0), "123456", []byte{2, 2, 0}, "X=", "")
	f.Add("sh", "AWS_SECRET_ACCESS_KEY", uint8(0), "987654321", []byte{3, 1}, "Authorization:", "#")
	// Blanks in '…' and $'…' pieces, an escaped quote in $'…' and "…".
	f.Add("sh", "PGPASSWORD", uint8(0), "1234", []byte{4, 0}, "export", "")
	f.Add("sh", "AWS_SECRET_ACCESS_KEY", uint8(0), "1234", []byte{5, 6, 0}, "env", "aws s3 ls")
	f.Add("sh", "PGPASSWORD", uint8(0), "1234", []byte{7, 0}, "", "psql")
	// The whole assignment in '…', "…", $'…'.
	f.Add("sh-single", "PGPASSWORD", uint8(0), "1234", []byte{0, 1}, "", "psql -h db")
	f.Add("sh-double", "AWS_SECRET_ACCESS_KEY", uint8(0), "1234", []byte{1, 2}, "env", "aws s3 ls")
	f.Add("sh-dollar", "PGPASSWORD", uint8(0), "1234", []byte{0, 1, 2}, "export", "")
	// An argument of its own: env's, docker's -e and --env=.
	f.Add("env", "AWS_SECRET_ACCESS_KEY", uint8(0), "1234", []byte{0, 1}, "aws", "s3")
	f.Add("docker-e", "PGPASSWORD", uint8(0), "1234", []byte{1}, "pg", "")
	f.Add("docker-env", "--db-password", uint8(0), "1234", []byte{0, 1}, "", "")
	f.Add("git-c", "AWS_SECRET_ACCESS_KEY", uint8(0), "1234", []byte{0, 1}, "push", "")
	f.Add("flag", "PGPASSWORD", uint8(0), "1234", []byte{3, 4, 5}, "tool", "&& ls")
	f.Add("flag", "AWS_SECRET_ACCESS_KEY", uint8(0), "1234", []byte{0, 2, 6}, "aws secretsmanager put-secret-value", "")
	// Among parameter expansions with a colon (no header lines) and a
	// program's options (programOptions).
	f.Add("sh", "PGPASSWORD", uint8(0), "1234", []byte{0, 1}, "echo ${TOKEN:-x} ${A_SECRET=y}x ${B:=z};", "curl -su ann:x https://u:p@h/")
	f.Add("flag", "PGPASSWORD", uint8(0), "1234", []byte{2, 3}, "sshpass -p x ssh h", "${TOKEN:-a}")
	f.Fuzz(func(t *testing.T, form, name string, which uint8, secret string, styles []byte, before, after string) {
		argv := assignedSecretArgv(form, name, which, secret, styles, before, after)
		if argv == nil {
			return
		}
		got := redactCommand(argv)
		for _, g := range got {
			if i := strings.IndexFunc(g, isDigit); i >= 0 {
				t.Fatalf("a piece of the secret is left at %d: %q\nfrom %q", i, got, argv)
			}
		}
	})
}

// assignedSecretArgv is the command FuzzRedactAssignedSecret redacts for its input, or nil
// where the input holds no secret; TestRedactFuzzSeedsKeepTheirCase
// builds it for the kept seeds.
func assignedSecretArgv(formKey, nameKey string, which uint8, secret string, styles []byte, before, after string) []string {
	form := pickKey(assignedSecretForms, formKey, int(which))
	name := pickKey(assignedSecretNames, nameKey, int(which)/len(assignedSecretForms))
	wrap := slices.Index([]string{"sh", "sh-single", "sh-double", "sh-dollar"}, form) // -1: none of these
	place := slices.Index([]string{"", "env", "docker-e", "docker-env", "git-c"}, form)
	flag := form == "flag"
	wrap, place = max(wrap, 0), max(place, 0)
	drop := ""
	if wrap != 0 && place == 0 || flag {
		drop = `'"\$`
	}
	secret, before, after = digitsOnly(secret), withoutDigits(before, drop), withoutDigits(after, drop)
	if secret == "" || len(styles) == 0 {
		return nil
	}
	// Each digit's piece, by the quotes it stands in.
	pieces := []string{"{d}", "'{d}'", `" {d}"`, `\ {d}`, "' {d}'", "$' {d}'", `$'\' {d}'`, `"\" {d}"`}
	open := ""
	switch {
	case place != 0:
		pieces = []string{"{d}", " {d}"}
	case wrap == 1:
		open, pieces = "'", []string{"{d}", " {d}"}
	case wrap == 2:
		open, pieces = `"`, []string{"{d}", " {d}", `\" {d}`}
	case wrap == 3:
		open, pieces = "$'", []string{"{d}", " {d}", `\' {d}`}
	}
	var word strings.Builder
	for i := 0; i < len(secret); i++ {
		word.WriteString(strings.ReplaceAll(pieces[int(styles[i%len(styles)])%len(pieces)], "{d}", secret[i:i+1]))
	}
	assign := name + "=" + word.String()
	if flag {
		assign = "--" + strings.TrimLeft(name, "-") + " " + word.String()
	}
	var argv []string
	switch place {
	case 0:
		closing := open
		if wrap == 3 {
			closing = "'"
		}
		argv = []string{"sh", "-c", before + " " + open + assign + closing + " " + after}
	case 1:
		argv = []string{"env", assign, before, after}
	case 2:
		argv = []string{"docker", "run", "-e", assign, before, after}
	case 3:
		argv = []string{"docker", "run", "--env=" + assign, before, after}
	case 4:
		argv = []string{"git", "-c", assign, before, after}
	}
	return argv
}

// jsonSecretForms are FuzzRedactJSONSecret's forms, by key.
var jsonSecretForms = []string{"argv", "sh-single", "sh-double", "sh-number"}

var jsonSecretNames = []string{"password", "api_key", "client_secret", "token", "AWS_SECRET_ACCESS_KEY", "db-password"}

// FuzzRedactJSONSecret writes a secret as the string value of a JSON
// member whose name says it holds one, in a body given as an argument of
// its own, in a shell line's '…', or in its "…" (where JSON's quotes are
// \" and its escaped quote \\\"), with blanks and escaped quotes in it
// (styles), or as a number. As in FuzzRedactAssignedSecret, the secret is
// made of digits and the text around it has none (nor quotes, backslashes
// or $ in a shell line, which would move the shell's quotes). form
// (jsonSecretForms) is where the body stands: argv, sh-single, sh-double,
// or sh-number (a number in '…'); name one of jsonSecretNames. The seeds
// name both by key, as FuzzRedactSetSecret's do.
func FuzzRedactJSONSecret(f *testing.F) {
	f.Add("argv", "password", uint8(0), "1234", []byte{0}, "curl -d", "https://h/")
	f.Add("sh-single", "api_key", uint8(0), "1234", []byte{1, 2}, "curl -d", "https://h/")
	f.Add("sh-double", "client_secret", uint8(0), "1234", []byte{0, 1, 2}, "curl -d", "https://h/")
	f.Add("sh-number", "token", uint8(0), "1234", []byte{0}, "", "")
	// After a program's option and a URI with a user part.
	f.Add("argv", "password", uint8(0), "1234", []byte{1}, "curl -u ann:x -d", "https://ann:p@h/")
	f.Add("sh-single", "password", uint8(0), "1234", []byte{0, 1}, "gh secret set X --body", "${TOKEN:-a}")
	f.Fuzz(func(t *testing.T, form, name string, which uint8, secret string, styles []byte, before, after string) {
		argv := jsonSecretArgv(form, name, which, secret, styles, before, after)
		if argv == nil {
			return
		}
		got := redactCommand(argv)
		for _, g := range got {
			if i := strings.IndexFunc(g, isDigit); i >= 0 {
				t.Fatalf("a piece of the secret is left at %d: %q\nfrom %q", i, got, argv)
			}
		}
	})
}

// jsonSecretArgv is the command FuzzRedactJSONSecret redacts for its input, or nil
// where the input holds no secret; TestRedactFuzzSeedsKeepTheirCase
// builds it for the kept seeds.
func jsonSecretArgv(formKey, nameKey string, which uint8, secret string, styles []byte, before, after string) []string {
	form := pickKey(jsonSecretForms, formKey, int(which))
	name := pickKey(jsonSecretNames, nameKey, int(which)/len(jsonSecretForms))
	drop := `'"\$`
	if form == "argv" {
		drop = ""
	}
	secret, before, after = digitsOnly(secret), withoutDigits(before, drop), withoutDigits(after, drop)
	if secret == "" || len(styles) == 0 {
		return nil
	}
	var v strings.Builder
	for i := 0; i < len(secret); i++ {
		switch styles[i%len(styles)] % 3 {
		case 1:
			v.WriteString(" ")
		case 2:
			v.WriteString(`\"`)
		}
		v.WriteByte(secret[i])
	}
	body := `{"user": "u", "` + name + `": "` + v.String() + `", "x": "y"}`
	if form == "sh-number" {
		body = `{"user":"u","` + name + `":` + secret + `}`
	}
	var argv []string
	switch form {
	case "argv":
		argv = []string{"curl", before, "-d", body, after}
	case "sh-single", "sh-number":
		argv = []string{"sh", "-c", before + " '" + body + "' " + after}
	case "sh-double":
		argv = []string{"sh", "-c", before + ` "` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(body) + `" ` + after}
	}
	return argv
}

// headerSecretHeaders are FuzzRedactHeaderSecret's header lines, by the
// key its seeds name them by.
var headerSecretHeaders = []struct{ key, line string }{
	{"bearer", "Authorization: Bearer {s}"}, {"basic", "authorization:Basic {s}"}, {"proxy-authorization", "Proxy-Authorization: {s}"},
	{"oauth", "Authorization: OAuth {s}"}, {"custom-scheme", "Authorization: Custom {s}"}, {"x-api-key", "X-Api-Key: {s}"},
	{"x-amz-security-token", "X-Amz-Security-Token: {s}"}, {"cookie-last", "Cookie: theme=dark; sid={s}"}, {"cookie-first", "Cookie: sid={s}; theme=dark"},
	{"nested", "X-Foo: Authorization: Bearer {s}"}, {"after-accept", "Accept: a; Authorization: Token {s}"},
	{"digest", `Authorization: Digest username={q}u{q}, response={s}`},
}

// headerSecretPlaces are where FuzzRedactHeaderSecret's header lines
// stand, by key: curl's argv, a shell line's '…', its "…".
var headerSecretPlaces = []string{"argv", "sh-single", "sh-double"}

// FuzzRedactHeaderSecret's flags: each choice has a bit of its own,
// whose 0 is the form before the choice was added, so that a kept seed
// keeps its case when one is added (a new choice takes a new bit).
const (
	headerFirst  = 1 << iota // another header before it, its base64 credential ending in '='
	headerSingle             // the credential in '…' (not in a shell line's own '…')
	headerBare               // the credential's blanks unquoted
	headerDollar             // a shell line's '…' are $'…'
	headerGlued              // the header line glued to its option: -H'…', --header="…", argv's -HAuthorization: …
	headerLong               // the option is --header, not -H
	headerJoined             // no blank after the header line's closing quote: after is joined to its word
)

// FuzzRedactHeaderSecret writes a secret as the credentials of a header
// line, in a shell line between arbitrary text or as a curl argument of
// its own, as FuzzRedactAssignedSecret writes it as a value: the secret
// is made of digits and the text around it has none, so any digit in the
// record is a piece of the secret that was kept. The header is one that
// names a secret, alone or inside another header's value; the credential
// is written as it is, or in quotes with spaces in it ("1 2" or '1 2';
// \"1 2\" or '1 2' inside a shell line's double quotes), after another
// header whose base64 credential ends in '=' just before the shell's
// quote (headerFirst), or alone. With headerBare the credential's blanks
// stand unquoted (curl -H 'X-Api-Key: 1 2' sends "1 2"; the text around
// has no quote, backslash or $ then, which would make the blank the
// shell's), and with headerDollar a shell line's single quotes are $'…'.
// headerLong writes --header for -H, headerGlued the header line glued
// to its option (-H'…', --header="…"; in argv one argument,
// -HAuthorization: …, --header=…), and headerJoined after glued to the
// header line's closing quote ('X-Api-Key: 1 2'x; in argv, to the line).
// The seeds name their header (headerSecretHeaders) and place
// (headerSecretPlaces) by key, and their choices by flag bits, so that
// neither a header added nor a choice added moves them; which picks the
// header and place only where the fuzzer has mutated a key into none.
func FuzzRedactHeaderSecret(f *testing.F) {
	f.Add("bearer", "argv", uint8(0), uint8(0), "20261205", []byte{}, "curl", "https://h/")
	f.Add("nested", "sh-single", uint8(0), uint8(0), "123", []byte{}, "curl -s", "https://h/")
	f.Add("custom-scheme", "sh-single", uint8(0), uint8(0), "123", []byte{}, "curl", "https://h/")
	f.Add("bearer", "sh-single", uint8(0), uint8(0), "12", []byte{1, 1}, "curl", "https://h/ | jq .")
	f.Add("x-amz-security-token", "sh-double", uint8(0), uint8(0), "1234", []byte{0, 1}, "curl", "https://h/")
	f.Add("after-accept", "sh-double", uint8(0), uint8(0), "987", []byte{1}, "", "")
	f.Add("cookie-last", "argv", uint8(headerFirst), uint8(0), "1234", []byte{0, 1}, "curl", "https://h/")
	f.Add("custom-scheme", "sh-single", uint8(headerFirst), uint8(0), "1234", []byte{}, "curl", "https://h/")
	f.Add("bearer", "argv", uint8(headerSingle), uint8(0), "12", []byte{1, 0}, "curl", "https://h/")
	f.Add("cookie-first", "sh-double", uint8(headerSingle), uint8(0), "123", []byte{0, 1}, "curl", "https://h/")
	f.Add("digest", "argv", uint8(headerSingle), uint8(0), "12", []byte{1}, "curl", "https://h/")
	f.Add("proxy-authorization", "argv", uint8(headerSingle), uint8(0), "5", []byte{}, "curl", "https://h/")
	// Bare blanks in '…', "…", $'…' and a curl argument.
	f.Add("x-api-key", "sh-single", uint8(headerBare), uint8(0), "1234", []byte{1}, "curl", "https://h/")
	f.Add("bearer", "sh-double", uint8(headerBare), uint8(0), "1234", []byte{0, 1}, "curl", "https://h/")
	f.Add("cookie-last", "sh-single", uint8(headerBare|headerDollar), uint8(0), "123", []byte{1}, "curl", "https://h/")
	f.Add("nested", "argv", uint8(headerBare), uint8(0), "12", []byte{1}, "curl", "https://h/")
	f.Add("digest", "sh-single", uint8(headerFirst|headerBare), uint8(0), "123", []byte{1}, "curl", "https://h/")
	// Among a program's options, parameter expansions with a colon and
	// a URI's user part.
	f.Add("bearer", "argv", uint8(0), uint8(0), "1234", []byte{}, "curl -sSu ann:x", "https://ann:p@h/")
	f.Add("x-api-key", "sh-single", uint8(0), uint8(0), "1234", []byte{1}, "curl ${TOKEN:-x} -u ann", "${A:=b}")
	f.Fuzz(func(t *testing.T, header, place string, flags, which uint8, secret string, spaces []byte, before, after string) {
		argv := headerSecretArgv(header, place, flags, which, secret, spaces, before, after)
		if argv == nil {
			return
		}
		got := redactCommand(argv)
		for _, g := range got {
			if i := strings.IndexFunc(g, isDigit); i >= 0 {
				t.Fatalf("a piece of the secret is left at %d: %q\nfrom %q", i, got, argv)
			}
		}
	})
}

// headerSecretArgv is the command FuzzRedactHeaderSecret redacts for its input, or nil
// where the input holds no secret; TestRedactFuzzSeedsKeepTheirCase
// builds it for the kept seeds.
func headerSecretArgv(headerKey, placeKey string, flags, which uint8, secret string, spaces []byte, before, after string) []string {
	keys := make([]string, len(headerSecretHeaders))
	for i, h := range headerSecretHeaders {
		keys[i] = h.key
	}
	line := headerSecretHeaders[slices.Index(keys, pickKey(keys, headerKey, int(which)))].line
	place := pickKey(headerSecretPlaces, placeKey, int(which)/len(keys))
	bare := flags&headerBare != 0
	drop := ""
	if bare {
		drop = `'"\$`
	}
	secret, before, after = digitsOnly(secret), withoutDigits(before, drop), withoutDigits(after, drop)
	if secret == "" {
		return nil
	}
	// The credential: as it is, or quoted with a space after each
	// digit spaces picks.
	quote := `"`
	switch {
	case flags&headerSingle != 0 && place != "sh-single":
		// Single quotes, but inside a shell line's own, where none
		// can stand.
		quote = `'`
	case place == "sh-double":
		quote = `\"` // inside a shell line's double quotes
	}
	if bare {
		quote = ""
	}
	cred := secret
	if len(spaces) > 0 {
		var b strings.Builder
		b.WriteString(quote)
		for i := 0; i < len(secret); i++ {
			b.WriteByte(secret[i])
			if spaces[i%len(spaces)]%2 == 1 {
				b.WriteString(" ")
			}
		}
		b.WriteString(quote)
		cred = b.String()
	}
	h := strings.NewReplacer("{s}", cred, "{q}", quote).Replace(line)
	first := "" // a header before it, or none
	if flags&headerFirst != 0 {
		first = "Authorization: Basic aGk="
	}
	// The option and what stands between it and the header line, and
	// between the line's closing quote and after.
	opt, sep, tail := "-H", " ", " "
	if flags&headerLong != 0 {
		opt = "--header"
	}
	if flags&headerGlued != 0 {
		sep = ""
		if opt != "-H" {
			sep = "="
		}
	}
	if flags&headerJoined != 0 {
		tail = ""
	}
	var argv []string
	switch place {
	case "argv":
		if flags&headerJoined != 0 {
			h, after = h+after, ""
		}
		argv = []string{"curl", before}
		for _, line := range []string{first, h} {
			if sep == " " {
				argv = append(argv, opt, line)
			} else {
				argv = append(argv, opt+sep+line)
			}
		}
		argv = append(argv, after)
	case "sh-single":
		open := "'"
		if flags&headerDollar != 0 {
			open = "$'"
		}
		argv = []string{"sh", "-c", before + " " + opt + sep + open + first + "' " + opt + sep + open + h + "'" + tail + after}
	case "sh-double":
		argv = []string{"sh", "-c", before + " " + opt + sep + `"` + first + `" ` + opt + sep + `"` + h + `"` + tail + after}
	}
	return argv
}

// TestRedactHeadersLinear runs redactHeaders on 16 KiB and 64 KiB lines
// built against each of its look-aheads (a quote left open, a quote
// inside a token, a single-quoted credential, a blank before a word that is not a cookie, headers
// inside headers) and bounds how the time grows with the line: linear
// work takes about 4 times as long for 4 times the bytes, quadratic work
// 16 times. Linear time is held by the structure (headerValue: each
// value's scan reads its own bytes and at most the next word, or up to
// the next blank or quote, which no other scan reads again); scanning
// every header inside a value again to the line's end was such a
// regression (about 1.4 s for all the 64 KiB lines, against 0.25 s).
// A ratio rather than a time limit, because an absolute bound failed
// under the race detector on a loaded machine (2–3 s for a 0.27 s run),
// and the better of two runs of each size, because one run can be
// descheduled; times under 50 ms are too short to compare.
func TestRedactHeadersLinear(t *testing.T) {
	if raceOn {
		// Under -race the scans run ten times slower and this test took
		// two minutes of CI; the Makefile runs it without (Linear$).
		t.Skip("growth check: runs without the race detector (make test)")
	}
	runtime.LockOSThread() // the thread's CPU time is the run's
	defer runtime.UnlockOSThread()
	for _, unit := range []string{
		`Cookie: a"`, `Cookie:a"b `, `Cookie: a ` + "b ", `X:Authorization:`, `Authorization: \"`, `Cookie: a=1 b=" `, `Authorization: x `, "Cookie:\\ ", `Cookie:a: `, `Cookie: a="x Cookie: `, `Cookie: a:b"c `, `Cookie: a='b X: `, `Authorization: 'a `, `Cookie:'`,
		`'Cookie: a `, `"X-Api-Key: a `, `x X-Api-Key:\ $'a `,
		// Header lines in the word joined to a credential that reads
		// as a --flag (headerValue reads them one level deep).
		`TOKEN:- "`, `TOKEN:- 'TOKEN:- "`, `TOKEN:- "$(`,
		// The same in the quotes that hold the line (holdsTo).
		`'Authorization: A --MYSQL_PWD a `, `"Authorization: - --x "$(`,
		// Assignments in quotes (redactAssignments reads each byte once),
		// and nested in one word, each of whose values, read on its own,
		// runs to the line's end (wordScanner.nestedEnd).
		`"PGPASSWORD=a b" `, `'PGPASSWORD=a b'x `, `"x PGPASSWORD=a b"`, `$'PGPASSWORD=\' `, `PGPASSWORD=$'a `,
		`'A_TOKEN=x'`, `A_TOKEN=x=`, `A_TOKEN=\'x`,
		// Arrays' and csh's lists (listEnd), and fish's lists (setValues).
		`A_TOKEN=(a `, `A_TOKEN=(a'`, `A_TOKEN=( $(a `, `password = (a) `, `set -x password a b `, `set -x USER a%b `,
		// JSON members (redactJSON).
		`"password": "a`, `"token":1 `, `"x \"token\": \"a`, `{\"api_key\":\"`,
		// Values after a --flag or set NAME (redactLineArgs).
		`--password 'a `, `--token a `, `set password a `,
		// Values set under a name after options (setValues), and words
		// split at the shell's operators (shellCommands).
		`git config --global password a `, `set -x -g a password `, "`set password a`", `$(set password 'a `, `f(set password a;`,
		// PowerShell's quoting (a pwsh line: redactPowerShell).
		"pwsh:$env:PGPASSWORD = \"a`\" ", "pwsh:$env:PGPASSWORD=`\"a", "pwsh:Set-Item Env:PGPASSWORD -Value \"a`\" ",
		// Parameter expansions' words (paramEnd).
		`${PGPASSWORD-{`, `${token-a} `, `${x-${token+a`, `${token-'a}`, `${token+"a} `, `${token=$'a}`, `${token:-a}b `, `${token=a}`,
		// A program's options (programValues).
		`curl -su a:b `, `curl -u `,
		// Bodies read apart and cut again, and bodies with comments
		// read again to tell (redactPiece, shellPiecesAt).
		"cat <<E\nx $(y # z\n) w\nE\n", "cat <<A\ncat <<B\ncat <<C\n# x\nC\nB\nA\n", "sh <<A\n# '\nsh <<B\n# '\nB\nA\n",
		// Bodies in substitutions read apart and put back, in bodies too
		// (redactMasked).
		"x $(cat <<E\ny \"a b\"\nE\n)\n", "cat <<A\nx $(cat <<B\ny $(cat <<C\n'a b'\nC\n)\nB\n)\nA\n",
	} {
		shell := "sh"
		if u, ok := strings.CutPrefix(unit, "pwsh:"); ok {
			shell, unit = "pwsh", u
		}
		// The two sizes take turns, seven rounds each, and each keeps its
		// fastest, timed by the thread's CPU where the system tells it:
		// on a loaded machine the clock also counts the time a run waits
		// descheduled, which a longer run does more often (at load 15 a
		// linear 64 KiB run took 56 ms by the clock against 2 ms at 16
		// KiB); taking turns gives both sizes the same chances of a quiet
		// moment where only the clock is known.
		lines := [2]string{strings.Repeat(unit, (16<<10)/len(unit)), strings.Repeat(unit, (64<<10)/len(unit))}
		var fastest [2]time.Duration
		for range 7 {
			for i, line := range lines {
				start, cpu := time.Now(), testenv.ThreadCPU()
				got := redactCommand([]string{shell, "-c", line})
				d := time.Since(start)
				if cpu >= 0 {
					d = testenv.ThreadCPU() - cpu
				}
				if fastest[i] == 0 || d < fastest[i] {
					fastest[i] = d
				}
				if len(got[2]) > len(line)*len(RedactedArg) {
					t.Errorf("a %d-byte line of %q became %d bytes", len(line), unit, len(got[2]))
				}
			}
		}
		small, large := fastest[0], fastest[1]
		if large > 50*time.Millisecond && large > 8*small {
			t.Errorf("a line of %q took %v at 64 KiB against %v at 16 KiB: more than linear", unit, large, small)
		}
	}
}

var setSecretNames = []string{"PGPASSWORD", "credential.password", "aws_secret_access_key", "GITHUB_TOKEN", "MYSQL_PWD", "api_key", "SSHPASS", "REDISCLI_AUTH"}

// A URI's password: no blank, which a URI cannot hold; an @ in it.
var setSecretURIPieces = []string{"{d}", "{d}@", ":{d}", "'{d}'", "'{d}@'", "%4{d}"}

// setSecretForm is one way FuzzRedactSetSecret sets its secret.
type setSecretForm struct {
	key         string // what the seeds name it by (setSecretPick)
	shell, form string
	opts        []string // what {o} may be
	argv        bool     // may be written as argv
	pieces      []string // the value's pieces, if its own
}

var setSecretForms = []setSecretForm{
	{key: "git-config", shell: "sh", form: "git config {o} {n} {v}", argv: true, opts: []string{"--global", "--system", "--local", "--file f", "-f f", "--add", "--replace-all", "--type string"}},
	{key: "aws-configure-set", shell: "sh", form: "aws configure set {o} {n} {v}", argv: true, opts: []string{"--profile p", "--region r", "--profile=p"}},
	{key: "setenv", shell: "tcsh", form: "setenv {n} {v}"},
	{key: "csh-set", shell: "tcsh", form: "set {n} = {v}"},
	{key: "fish-set", shell: "fish", form: "set {o} {n} {v}", opts: []string{"-x", "-gx", "-Ux", "--export", "--global", "-l"}},
	{key: "fish-set-list", shell: "fish", form: "set {o} {n} a {v}", opts: []string{"-x", "-gx", "-Ux", "--export", "--global", "-l"}},
	{key: "builtin", shell: "bash", form: "{o} {n}={v}", opts: []string{"export", "declare -x", "readonly", "local", "typeset", "declare -gx", "export -n"}},
	{key: "append", shell: "bash", form: "{n}+={v}"},
	{key: "array-element", shell: "bash", form: "{n}[i]={v}"},
	{key: "array", shell: "bash", form: "{n}=(a {v} b)"},
	{key: "csh-list", shell: "tcsh", form: "set {n} = (a {v})"},
	{key: "pwsh-set-item", shell: "pwsh", form: "Set-Item {o} Env:{n} -Value {v}", opts: []string{"-Path", "-Force"}},
	{key: "pwsh-setenvironmentvariable", shell: "pwsh", form: "[Environment]::SetEnvironmentVariable('{n}', {v})"},
	{key: "pwsh-env", shell: "pwsh", form: "$env:{n} = {v}"},
	{key: "param-default", shell: "bash", form: "echo ${{n}:-{v}}/x ${{n}:={v}}x"},
	{key: "param-assign", shell: "bash", form: "echo ${{n}={v}}x"},
	{key: "curl-u", shell: "sh", form: "curl {o} -u ann:{v} https://h/", argv: true, opts: []string{"-s", "-k", "-X POST", "-H Accept:x", "--user-agent a:b"}},
	{key: "curl-su", shell: "sh", form: "curl {o} -sSuann:{v} https://h/", argv: true, opts: []string{"-L", "-d a:b"}},
	{key: "sshpass-p", shell: "sh", form: "sshpass {o} -p {v} ssh -p port h", argv: true, opts: []string{"-v", "-e", "-f f", "-P assword"}},
	{key: "redis-cli-a", shell: "sh", form: "redis-cli {o} -a {v} ping", argv: true, opts: []string{"-h db", "--user ann", "-p port"}},
	{key: "redis-cli-pass", shell: "sh", form: "redis-cli {o} --pass {v} ping", argv: true, opts: []string{"-h db", "--user ann"}},
	{key: "docker-login-p", shell: "sh", form: "docker login {o} -p {v} reg", argv: true, opts: []string{"-u ann", "--username ann"}},
	{key: "az-login-p", shell: "sh", form: "az login {o} -p {v}", argv: true, opts: []string{"-u ann", "--service-principal", "--tenant t"}},
	{key: "gh-secret-body", shell: "sh", form: "gh secret set DEPLOY {o} --body {v}", argv: true, opts: []string{"-R o/r", "--env prod"}},
	{key: "gh-secret-b", shell: "sh", form: "gh secret set DEPLOY {o} -b{v}", argv: true, opts: []string{"-R o/r", "--env prod"}},
	{key: "fly-secrets-set", shell: "sh", form: "fly secrets set {o} STRIPE_KEY={v} B=x", argv: true, opts: []string{"-a app", "--stage"}},
	{key: "heroku-config-set", shell: "sh", form: "heroku config:set K={v} {o}", argv: true, opts: []string{"-a app"}},
	{key: "kubectl-from-literal", shell: "sh", form: "kubectl {o} create secret generic n --from-literal=K={v}", argv: true, opts: []string{"-n ns", "--context c"}},
	{key: "oc-from-literal", shell: "sh", form: "oc create secret generic n {o} --from-literal K={v}", argv: true, opts: []string{"--from-file=f", "--from-literal=a=b"}},
	{key: "curl-pass", shell: "sh", form: "curl {o} --pass {v} https://h/", argv: true, opts: []string{"-s", "-E c.pem", "-k"}},
	{key: "openssl-passin", shell: "sh", form: "openssl rsa {o} -passin pass:{v} -out o", argv: true, opts: []string{"-in k", "-passout env:X", "-kfile f"}},
	{key: "openssl-k", shell: "sh", form: "openssl enc {o} -k {v} -in f", argv: true, opts: []string{"-aes-cbc", "-pass env:X", "-kfile f", "-in f"}},
	{key: "htpasswd-b", shell: "sh", form: "htpasswd {o} -b f ann {v}", argv: true, opts: []string{"-c", "-B", "-C cost", "-m"}},
	{key: "htpasswd-nb", shell: "sh", form: "htpasswd -nb {o} ann {v}", argv: true, opts: []string{"-B", "-C cost", "-i"}},
	{key: "mysql-p", shell: "sh", form: "mysql {o} -p{v} app", argv: true, opts: []string{"-u root", "-B", "-h db", "-e select"}},
	{key: "mariadb-dump-vp", shell: "sh", form: "mariadb-dump {o} -vp{v} app", argv: true, opts: []string{"-u root", "-p", "--port port"}},
	{key: "sqlcmd-P", shell: "sh", form: "sqlcmd {o} -P {v}", argv: true, opts: []string{"-S db", "-U sa", "-d app"}},
	{key: "mongosh-p", shell: "sh", form: "mongosh {o} -p {v} db", argv: true, opts: []string{"-u ann", "--port port", "--authenticationDatabase admin"}},
	{key: "ldapsearch-w", shell: "sh", form: "ldapsearch {o} -w {v} uid=ann", argv: true, opts: []string{"-x", "-D cn=a", "-H ldap://h", "-W"}},
	{key: "smbclient-U", shell: "sh", form: "smbclient //h/s {o} -U ann%{v}", argv: true, opts: []string{"-N", "-W DOM", "-c ls", "-L h"}},
	{key: "ssh-keygen-N", shell: "sh", form: "ssh-keygen {o} -N {v} -f k", argv: true, opts: []string{"-t type", "-q", "-p", "-P old", "-C comment"}},
	{key: "zip-P", shell: "sh", form: "zip {o} -P {v} f d", argv: true, opts: []string{"-r", "-e", "-q"}},
	{key: "unzip-P", shell: "sh", form: "unzip {o} -P {v} f", argv: true, opts: []string{"-o", "-q", "-d dir"}},
	{key: "mysqlimport-p", shell: "sh", form: "mysqlimport {o} -p{v} db f", argv: true, opts: []string{"-u root", "-h db"}},
	{key: "vault-login", shell: "sh", form: "vault login {o} {v}", argv: true, opts: []string{"-no-store", "-method token", "-address=a"}},
	{key: "gpg-passphrase", shell: "sh", form: "gpg {o} --passphrase {v} -c f", argv: true, opts: []string{"--batch", "--pinentry-mode loopback"}},
	{key: "USER-percent", shell: "sh", form: "USER=ann%{v} smbclient //h/s {o}", argv: true, opts: []string{"-c ls", "-N"}},
	{key: "setenv-USER", shell: "tcsh", form: "setenv USER ann%{v}"},
	{key: "fish-set-USER", shell: "fish", form: "set {o} USER ann%{v}", opts: []string{"-x", "-gx", "-Ux", "--export"}},
	{key: "pwsh-set-item-value-first", shell: "pwsh", form: "Set-Item -Value {v} {o} Env:{n}", opts: []string{"-Path", "-Force"}},
	{key: "pwsh-set-content", shell: "pwsh", form: "Set-Content {o} Env:{n} {v}", opts: []string{"-Path", "-Value", "-Force"}},
	{key: "pwsh-set-item-USER", shell: "pwsh", form: "Set-Item {o} Env:USER -Value ann%{v}", opts: []string{"-Path", "-Force"}},
	{key: "git-clone-uri", shell: "sh", form: "git clone https://ann:{v}@h/r", argv: true, pieces: setSecretURIPieces},
	{key: "psql-uri", shell: "sh", form: "psql postgresql://ann@corp:{v}@db/app", argv: true, pieces: setSecretURIPieces},
	// An element of a variable: bash's USER[0] is USER, fish exports a
	// list joined.
	{key: "USER-element", shell: "bash", form: "USER[i]=ann%{v} smbclient //h/s"},
	{key: "fish-set-element", shell: "fish", form: "set {o} {n}[$i] {v}", opts: []string{"-x", "-gx", "-Ux", "--export"}},
	{key: "fish-set-USER-element", shell: "fish", form: "set {o} USER[$i] ann%{v}", opts: []string{"-x", "-gx"}},
	// A word of fish's list that starts with -, after the first.
	{key: "fish-set-list-dash", shell: "fish", form: "set {o} {n} a -{v} --profile {v}", opts: []string{"-x", "-gx", "--export"}},
	// A command substitution as the value a command sets or an
	// option takes.
	{key: "fish-set-subst", shell: "fish", form: "set {o} {n} (echo {v})", opts: []string{"-x", "-gx"}},
	{key: "setenv-backtick", shell: "tcsh", form: "setenv {n} `echo {v}`"},
	{key: "git-config-subst", shell: "sh", form: "git config {o} {n} $(printf %s {v})", opts: []string{"--global", "--file f"}},
	{key: "curl-u-subst", shell: "sh", form: "curl {o} -u ann:$(echo {v}) https://h/", opts: []string{"-s", "-k"}},
	{key: "flag-subst", shell: "sh", form: "tool --password $(echo {v}) -v"},
	// A PowerShell assignment's expression, to the statement's end.
	{key: "pwsh-env-expr", shell: "pwsh", form: "$env:{n} = {v} + {v}; psql"},
	{key: "pwsh-env-paren", shell: "pwsh", form: "if (x) { $env:{n} = (Write-Output {v} {v}) }"},
	// A command substitution in an assignment's value.
	{key: "subst-assign", shell: "bash", form: "{o} {n}=x$(printf %s {v})y psql", opts: []string{"export", "local", "declare -x"}},
	{key: "backtick-assign", shell: "bash", form: "{n}=`echo {v}` psql"},
	// A substitution inside double quotes, with quotes of its own
	// (closingShell, shellQuotes): in an assignment's value, a --flag's,
	// a value set, a parameter expansion's word, a header line's
	// credential and a conninfo's password, and the command after it.
	{key: "subst-in-quotes", shell: "bash", form: "{o} {n}=\"$(printf \"%s\" {v})\" psql", opts: []string{"export", "local", "declare -x"}},
	{key: "flag-subst-in-quotes", shell: "sh", form: "tool --password \"x$(echo \"a\" {v})\" -v"},
	{key: "git-config-subst-in-quotes", shell: "sh", form: "git config {o} {n} \"$(printf \"%s\" {v})\"", opts: []string{"--global", "--file f"}},
	{key: "param-in-quotes", shell: "bash", form: "{n}=\"${X:-\"$(echo {v})\"}\" psql"},
	{key: "header-subst-in-quotes", shell: "sh", form: "curl -H \"X-Api-Key: $(printf \"%s\" {v})\" https://h/"},
	{key: "conninfo-subst-in-quotes", shell: "sh", form: "psql \"host=db password=$(printf \"%s\" {v})\";echo ok"},
	// A case statement in the substitution, whose patterns' ) close
	// nothing (shellStep): in quotes or not, a leading (, several |,
	// nested, esac as an argument.
	{key: "case-in-quotes", shell: "bash", form: "{n}=\"$(case $x in a) echo esac;; b|c) echo \"a\" {v};; esac)\" psql"},
	{key: "case-subst", shell: "bash", form: "{o} {n}=$(case $x in (a) echo {v};; esac) psql", opts: []string{"export", "local"}},
	{key: "flag-case-in-quotes", shell: "sh", form: "tool --password \"$(case $x in a) case $y in (b) echo \"a\" {v};; esac;; esac)\" -v"},
	// A comment in the substitution, whose ) closes nothing.
	{key: "comment-in-quotes", shell: "bash", form: "{n}=\"$(true # )\necho \"a\" {v})\" psql"},
	{key: "header-comment-in-quotes", shell: "sh", form: "curl -H \"X-Api-Key: $(true # )\necho \"a\" {v})\" https://h/"},
	// A here-document in the substitution: the rest of the line.
	{key: "heredoc-subst", shell: "bash", form: "{n}=$(cat <<E\n) {v}\nE\n) psql"},
	// A header's credential glued to a substitution after its quotes
	// or escaped blanks.
	{key: "header-glued-subst", shell: "sh", form: "curl -H \"X-Api-Key: a\"$(echo {v}) https://h/"},
	{key: "header-glued-backtick", shell: "bash", form: "curl -H Authorization:\\ Bearer\\ `echo {v}` https://h/"},
	{key: "header-case-in-quotes", shell: "sh", form: "curl -H \"X-Api-Key: $(case $x in a|b) echo \"a\" {v};; esac)\" https://h/"},
	// A parameter expansion's word: USER's, an array element's.
	{key: "param-USER", shell: "bash", form: "echo ${USER:=ann%{v}}/x ${USER:+ann%{v}}x; smbclient //h/s"},
	{key: "param-element", shell: "bash", form: "echo ${TOKENS[@]:-{v}}/x ${creds[password]={v}}x ${PGPASSWORD[i]:+{v}}"},
}

var setSecretSeps = []string{";", "&&", "||", "|", "&", "(", "`", "$(", " ", "\n", "; "}

// FuzzRedactSetSecret writes a secret as the value a command sets under a
// name that says it holds one, in each way a shell or tool sets one
// (forms: git config and aws configure set after options, csh's setenv
// and set NAME =, fish's set -x and a later word of its list (one that starts with -
// too), the assigning builtins, bash's += and
// array elements and arrays, an element of USER (USER[0]=user%…, fish's
// set -x USER[1] user%…) or of a secret's name (set -x NAME[1]), csh's lists, PowerShell's Set-Item (-Value
// first too), Set-Content, SetEnvironmentVariable and
// $env: (an expression: 'a' + 'b', (…)), a parameter expansion's default or assigned word, USER's
// user%… and an array element's too, a command substitution in an
// assignment's value, or as the value set or an option's argument, one
// inside double quotes with quotes of its own, as the shell nests them:
// a value's, a --flag's, a header line's, a conninfo's), or as a
// value that a program's option or subcommand takes whatever its name
// (programOptions: curl -u user:…, sshpass -p, redis-cli -a, docker and
// az login -p, gh secret set --body, fly secrets set and heroku
// config:set NAME=…, kubectl create secret --from-literal K=…, curl
// --pass, openssl -passin pass:… and -k, htpasswd -b's operand, mysql
// -p…, sqlcmd -P, mongosh -p, ldapsearch -w, smbclient -U user%…,
// ssh-keygen -N, zip and unzip -P, vault login's token, gpg
// --passphrase, USER=user%…, setenv USER user%…, fish's set -x USER
// user%…, Set-Item Env:USER) or as a URI's password, with @ in
// it (pieces of its own), after one of the shell's operators glued or
// not to the text before it, with arbitrary text around. As in
// FuzzRedactAssignedSecret the secret is made of digits, the text around
// has none (nor quotes, backslashes, $, backticks or #, which would move
// the shell's quotes or make the secret a comment; a form's own text
// neither: curl --oauth2-bearer is left to TestRedactCommand), and any
// digit in the record is a piece of the secret that was kept. In a PowerShell line the backtick, its escape,
// is no operator and stands only at a word's start (`Set-Item is
// Set-Item). The value is a shell word of unquoted,
// quoted and escaped pieces (styles), or in argv (which >= 1<<15 for
// the forms marked argv) an argument of its own.
//
// The seeds name their form and name by key (setSecretForms' key, a
// name in setSecretNames), so that a seed keeps the case it was kept for
// however the lists grow: an index into them (which%len(setSecretForms),
// as the first seeds had) moved every seed to another form each time a
// form was added, and its regression check to a case that was not
// failing. which picks them only where the fuzzer has mutated a key into
// none; TestRedactFuzzSeedsKeepTheirCase fails on a kept seed that names
// no form or no name, and prints the keys its which stands for.
func FuzzRedactSetSecret(f *testing.F) {
	f.Add("git-config", "PGPASSWORD", uint16(0), uint8(0), "1234", []byte{0}, []byte{0, 3}, "true", "echo ok")
	f.Add("aws-configure-set", "PGPASSWORD", uint16(0), uint8(6), "1234", []byte{1, 2}, []byte{0}, "x", ")")
	f.Add("fish-set", "PGPASSWORD", uint16(0), uint8(1), "1234", []byte{3}, []byte{1}, "", "")
	f.Add("pwsh-set-item", "PGPASSWORD", uint16(0), uint8(0), "1234", []byte{0, 1}, []byte{0}, "Write-Host", "")
	f.Add("pwsh-set-item-value-first", "GITHUB_TOKEN", uint16(0), uint8(0), "1234", []byte{0, 1}, []byte{0, 1}, "", "")
	f.Add("pwsh-set-content", "PGPASSWORD", uint16(0), uint8(0), "1234", []byte{2}, []byte{0}, "", "")
	f.Add("builtin", "credential.password", uint16(0), uint8(0), "1234", []byte{1}, []byte{2}, "", "")
	// A program's variable whose name says nothing (SSHPASS by setenv and
	// a builtin, REDISCLI_AUTH by fish's set -x).
	f.Add("setenv", "SSHPASS", uint16(0), uint8(0), "1234", []byte{0, 1}, []byte{0}, "", "")
	f.Add("fish-set", "REDISCLI_AUTH", uint16(0), uint8(1), "1234", []byte{2}, []byte{0}, "", "")
	// A later word of fish's list, of bash's array and of csh's list.
	f.Add("fish-set-list", "GITHUB_TOKEN", uint16(0), uint8(0), "1234", []byte{0, 1}, []byte{1}, "", "psql")
	f.Add("array", "GITHUB_TOKEN", uint16(0), uint8(0), "1234", []byte{0, 1, 2}, []byte{0}, "", "psql")
	f.Add("csh-list", "PGPASSWORD", uint16(0), uint8(0), "1234", []byte{0, 3}, []byte{0}, "", "psql")
	f.Add("builtin", "SSHPASS", uint16(0), uint8(0), "1234", []byte{4}, []byte{0}, "", "")
	// Parameter expansions, a program's options and subcommands, and
	// URIs: each in a shell line, and in argv where it may be.
	first := slices.IndexFunc(setSecretForms, func(f setSecretForm) bool { return f.key == "param-default" })
	for i, form := range setSecretForms {
		if i < first {
			continue
		}
		name := setSecretNames[i%len(setSecretNames)]
		f.Add(form.key, name, uint16(0), uint8(i), "1234", []byte{0, 1, 2, 3, 4, 5, 6}, []byte{uint8(i)}, "true", "echo ok")
		if form.argv {
			f.Add(form.key, name, uint16(1<<15), uint8(0), "1234", []byte{0, 1, 2}, []byte{0, 1}, "sudo", "")
		}
	}
	f.Fuzz(func(t *testing.T, form, name string, which uint16, sep uint8, secret string, styles, opts []byte, before, after string) {
		argv := setSecretArgv(form, name, which, sep, secret, styles, opts, before, after)
		if argv == nil {
			return
		}
		got := redactCommand(argv)
		for _, g := range got {
			if i := strings.IndexFunc(g, isDigit); i >= 0 {
				t.Fatalf("a piece of the secret is left at %d: %q\nfrom %q", i, got, argv)
			}
		}
	})
}

// setSecretPick is the form and name FuzzRedactSetSecret writes: the
// ones its keys name, or where a key names none, the ones which stands
// for.
func setSecretPick(form, name string, which uint16) (setSecretForm, string) {
	fi := slices.IndexFunc(setSecretForms, func(f setSecretForm) bool { return f.key == form })
	if fi < 0 {
		fi = int(which) % len(setSecretForms)
	}
	if !slices.Contains(setSecretNames, name) {
		name = setSecretNames[int(which)/len(setSecretForms)%len(setSecretNames)]
	}
	return setSecretForms[fi], name
}

// setSecretArgv is the command FuzzRedactSetSecret redacts for its input, or nil
// where the input holds no secret; TestRedactFuzzSeedsKeepTheirCase
// builds it for the kept seeds.
func setSecretArgv(formKey, nameKey string, which uint16, sep uint8, secret string, styles, opts []byte, before, after string) []string {
	secret = digitsOnly(secret)
	before, after = withoutDigits(before, "'\"\\$`#"), withoutDigits(after, "'\"\\$`#")
	if secret == "" || len(styles) == 0 {
		return nil
	}
	if f := strings.Fields(before); len(f) > 0 && namesArg(f[len(f)-1]) {
		// --name docker login -p X: docker names a container, and
		// runs no login (namesArg).
		before += " x"
	}
	form, name := setSecretPick(formKey, nameKey, which)
	argvForm := which>>15 == 1 && form.argv
	var o []string
	if opt := form.opts; opt != nil {
		for _, b := range opts {
			o = append(o, opt[int(b)%len(opt)])
		}
		if form.key == "builtin" && len(o) == 0 {
			o = []string{"export"}
		}
		if form.key == "builtin" {
			o = o[:1] // one builtin
		}
	}
	// Each digit's piece, by the quotes it stands in (PowerShell's
	// quotes are the shell's '…' and "…" without escapes).
	pieces := []string{"{d}", "'{d}'", `" {d}"`, `\ {d}`, "' {d}'", "$' {d}'", `"\" {d}"`}
	if form.shell == "pwsh" {
		pieces = []string{"'{d}'", "' {d}'", `" {d}"`, "'{d}'''"}
	}
	if argvForm {
		pieces = []string{"{d}", " {d}"}
	}
	if form.pieces != nil {
		pieces = form.pieces
	}
	var v strings.Builder
	for i := 0; i < len(secret); i++ {
		v.WriteString(strings.ReplaceAll(pieces[int(styles[i%len(styles)])%len(pieces)], "{d}", secret[i:i+1]))
	}
	var argv []string
	if argvForm {
		words := strings.Fields(strings.NewReplacer("{o}", strings.Join(o, " "), "{n}", name).Replace(form.form))
		for i, w := range words {
			words[i] = strings.ReplaceAll(w, "{v}", v.String())
		}
		argv = append(append([]string{before}, words...), after)
	} else {
		line := strings.NewReplacer("{o}", strings.Join(o, " "), "{n}", name, "{v}", v.String()).Replace(form.form)
		s := setSecretSeps[int(sep)%len(setSecretSeps)]
		if form.shell == "pwsh" && s == "`" {
			s = " `" // PowerShell's escape, which would glue the words
		}
		if form.shell != "pwsh" && s == "`" && strings.Contains(form.form, "`") {
			// The form's own backtick would close the separator's,
			// and its value be no value of the command: `setenv N `x``
			// runs setenv N alone.
			s = "$("
		}
		closing := map[string]string{"(": ")", "`": "`", "$(": ")"}[s]
		argv = []string{form.shell, "-c", before + s + line + closing + " " + after}
	}
	return argv
}

// TestRedactSubstitutionsLinear bounds the bytes closingShell reads
// while a line is redacted by a small multiple of the line's length, for
// 64 KiB lines built against it: substitutions left open inside quotes
// and quotes left open inside substitutions (each value found open read to
// the line's end once, not once per value), nesting past
// maxShellNesting, closed ones that each value, flag and set command
// reads to its end, and quotes that other rules (a header's, a JSON
// member's, a nested value's) read from inside, nested in a substitution
// or an expansion too (shellQuotes), and case statements in a
// substitution, open, nested or not one. It counts bytes rather
// than timing them: the count does not depend on the machine's load. A
// scan of "…" that read substitutions by calling itself for each one
// took 2.3 s for a 64 KiB line of `PGPASSWORD=$( "` against 0.12 s at
// 16 KiB; without openShell each value of A_TOKEN=x"$(" reads to the
// line's end. The bound is 3 bytes per byte: the worst unit reads 2.45
// (A_TOKEN=x"$( \\ #)" ), 3.86 while a double-quoted substitution left
// open was read as commands at the first level (shellCommands).
func TestRedactSubstitutionsLinear(t *testing.T) {
	if raceOn {
		// As TestRedactHeadersLinear: the Makefile runs it without (Linear$).
		t.Skip("growth check: runs without the race detector (make test)")
	}
	for _, unit := range []string{
		`PGPASSWORD=$( "`, `PGPASSWORD="$( `, `PGPASSWORD="$(" `, `A_TOKEN=x"$(" `, `A_TOKEN=x"$(')"' `, `"$(`, `"$("$(`, "\"`", `"$( '`,
		`PGPASSWORD="$(echo "a")" `, `A_TOKEN="$(echo "a" ")")"x `, `--password "$( "`, `--password "$(echo "a")" `,
		`git config password "$("`, `git config password "$(echo "a")" `, `set -x PGPASSWORD "$(`, "`set password \"$(`",
		`"x PGPASSWORD=$(" `, `'A_TOKEN=x PGPASSWORD="$(' `, `Authorization: Bearer "$( `, `"password": "$(`, `${token-"$(}`,
		// Header lines and values in quotes nested in a substitution
		// or an expansion inside "…" (shellQuotes).
		`"$(echo "Authorization: Bearer a `, `"$(echo "X-Api-Key: a b") `, `"${x:-"Cookie: a=`, `"${x:-"X: Authorization: a"}" `,
		`"$(echo "PGPASSWORD=a b") `, `"$(echo "PGPASSWORD=a b")" `, `"$( '$(' "PGPASSWORD=a `, `$(echo "Cookie: a=1 `,
		// Case statements in a substitution (shellStep's 'h' 'p' 'q'
		// 'c' 'd'): left open, nested to the bound, words that read as
		// case or esac and are none, ;; and ;;& outside a case.
		`PGPASSWORD="$(case $x in a) echo "b c";; esac)" `, `PGPASSWORD=$(case x in a) `, `"$(case x in a) case y in (b|c) `,
		`"$(case `, `"$(case x `, `$(case in in in) `, `"$(case x in esac `, `"$(esac case x in a) esac;; `, `$( case ;; esac) `,
		`--password "$(case x in a) echo esac;; `, `Authorization: Bearer "$(case x in a) `, `"$(case x in a) x;;& `, `case x in a) esac `,
		// Case words after other words (shellArgument reads back).
		"Authorization: Bearer \"`x` ", `"X-Api-Key: "'a b' `, `"Cookie: "`, `"$("Authorization: Bearer "$(x) `, `"Authorization: Bearer 'x `,
		// Here-documents and comments outside substitutions.
		"cat <<E\nx\"\nE\n", "cat <<E\nx\n", "# it's\n", "x <<A <<B\n'\nA\n", "# a\n", "<<A `\n", "${x\n<<A ",
		`PGPASSWORD="$(echo case in x)" `, `"$(a case case `, `"$(a b case in `, `"$(function f case x in a) `, `$(x "a b" case `,
		// Groups and subshells in a case item, backslash-newlines.
		`"$(case x in a) { `, `"$(case x in a) { x; } `, `"$(case x in a) ( `, "\"$(case x in a) \\\n ", `$(case x in a) {{ }} `, `"$(x;; `,
		// Here-documents and comments in a substitution, comments to
		// their line's end or the line's.
		// Header credentials glued to substitutions.
		`X-Api-Key: "a"$( `, "X-Api-Key: 'a'`x ", `Authorization:\ Bearer\ $(x `, `Cookie: a=b"c"$(d) `,
		// Values in `…`, read to its closing backtick (tickLimit).
		"`PGPASSWORD=x` ", "`tool --password x` ", "`curl -H 'X-Api-Key: a'b` ", "`PGPASSWORD=\"$( ",
		// Substitutions that a `…` opens with escaped backticks
		// (hideInnerTicks), left open, nested deeper, in "…".
		"`echo \\`a\\` ", "`echo \\`a ", "`a \\`b \\\\\\`c\\` ", "\"`a \\`b\\`` \" ",
		// Values nested in one that takes the rest of the line, whose
		// words the shell's reading of "…" joins (redactAssignments'
		// taken).
		`echo "PGPASSWORD=a"b `, "`echo \"PGPASSWORD=a\"b` ", `echo "PGPASSWORD=a"b$(x) `,
		`echo "x PGPASSWORD=a"b `, `echo 'x PGPASSWORD=a'"b `,
		`"Authorization: A --MYSQL_PWD a" `, `"Authorization: - --p $("Authorization: - --p $( `, `"$(echo "Authorization: A --p a")" `,
		`PGPASSWORD="$(cat <<E ) `, `$(x <<<y) "$(z <<- 'E' `,
		"\"$(cat <<E\nx\nE\n", "PGPASSWORD=\"$(cat <<E\nE\n)\" ", "\"$(cat <<E\nE)\n", "\"$(x <<E\n\"$(y <<E\n", "A_TOKEN=x\"$(<<E\nE\n",
		`"$(case x in a) fi `, `"$(case x in a) done esac) `,
		`PGPASSWORD="$(echo # ) `, "$(x #\")\n", "\"$(x # )\n\"", `A_TOKEN=x"$( \\ #)" `,
		// Commands in double-quoted substitutions (shellCommands): left
		// open inside one another, nested to maxQuotedSubstitutions and
		// past it, in backticks and ${…}.
		`"$( # `, `A_TOKEN=x"$( # "$( # `, `x"$( #)" "$( #)" `, `"$(a "$(b "$(c "$(d #`, `"$(a "$(b "$(c "$(d "$(e`,
		"\"`a \"$(b \"`c #", `"${a:-"$(b #`, `echo "$(echo "$(echo "$(echo "$(x)")")")" `, `"$(curl -u a:"$(b `,
		`git config password "$(x "$( `, `"$(x)"`, `"$(x "$(y)") "`, "\"`curl -u a:b`\" ",
	} {
		line := strings.Repeat(unit, (64<<10)/len(unit))
		before := shellScanned.Load()
		got := redactCommand([]string{"bash", "-c", line})
		read := shellScanned.Load() - before
		if read > 3*int64(len(line)) {
			t.Errorf("a %d-byte line of %q had %d bytes read by closingShell: more than linear", len(line), unit, read)
		}
		if len(got[2]) > len(line)*len(RedactedArg) {
			t.Errorf("a %d-byte line of %q became %d bytes", len(line), unit, len(got[2]))
		}
	}
	// Text nested in levels that are each read again: shellCommands
	// reads the text of a double-quoted substitution once per level
	// it stands in, to maxQuotedSubstitutions (4) levels (the
	// four-level unit below reads 3.54 bytes a byte, 3.98 with 2,000
	// words in its innermost level), and shellPieces a here-document's
	// body nested in bodies once per level of bodies, to maxPieceDepth
	// (the kept seed nested-bodies-read-again reads 3.01, and
	// nested-bodies-in-substitutions 1.83: 4.40 before 996a410 read such
	// a body apart, the figure grammarScanBound's note gave). The
	// line's other scans add less than one read a byte, and deeper
	// nesting is hidden unread: the bound is maxQuotedSubstitutions+1
	// a byte, grammarScanBound's 5 (FuzzRedactShellGrammar's worst of
	// 200,000 random programs, the last unit, reads 3.64). Linear:
	// a 64 KiB line reads no more a byte than a 16 KiB one, within 5 %.
	for _, unit := range []string{
		keptSeedCases["FuzzRedactShellGrammar/nested-bodies-read-again"][2],
		keptSeedCases["FuzzRedactShellGrammar/nested-bodies-in-substitutions"][2],
		`echo "$(a "$(b "$(c "$(d ` + strings.Repeat("x ", 64) + `)")")")" `,
		"! curl -s \\\n  \"${x:-\"$(psql \\\" \"${x:-\"$(echo x=\"$(curl -s -H  \"authorization:Bearer 12\" https://h/)\" |& grep x |\necho \"${x:-\"$(tool --api-key \\\n  $'\\' 1'2 -v)\"}\"||\n! curl -s -H \"Authorization: Bearer 12\" https://h/ |& { ! printf %s | ( cat ); })\"}\" $(echo))\"}\" $(echo) # x\n",
	} {
		perByte := func(size int) float64 {
			line := strings.Repeat(unit, size/len(unit))
			before := shellScanned.Load()
			redactCommand([]string{"bash", "-c", line})
			return float64(shellScanned.Load()-before) / float64(len(line))
		}
		small, large := perByte(16<<10), perByte(64<<10)
		if large > maxQuotedSubstitutions+1 || large > small*1.05 {
			t.Errorf("lines of %q had %.2f bytes a byte read by closingShell at 64 KiB, %.2f at 16 KiB: more than %d a byte, or growing", unit, large, small, maxQuotedSubstitutions+1)
		}
	}
}
