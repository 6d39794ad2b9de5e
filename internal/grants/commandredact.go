package grants

import (
	"path"
	"regexp"
	"slices"
	"strings"
)

// RedactedArg replaces a secret in a recorded command line.
const RedactedArg = "[REDACTED]"

// What a recorded command line (grant.command) leaves out. The log is
// read by reviewers and copied into evidence bundles, and an agent that
// puts a secret on a command line (a connection string with its password,
// PGPASSWORD=… in a shell snippet, its grant's own secret pasted into a
// flag) would otherwise have it kept for ever. The rest of the command
// stays in the holder's words.
var (
	// uriPassword is the password in a URI's user part:
	// postgresql://user:PW@host keeps postgresql://user:[REDACTED]@host.
	uriPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^/:@\s]*):([^@/\s]*)@`)
	// secretAssign is the name= of a name=value (an environment
	// assignment, a libpq conninfo keyword, a --flag=value) whose name says
	// it holds a secret (secretName): PGPASSWORD=…, password='…',
	// --db-password=…, AWS_SECRET_ACCESS_KEY=…, GITHUB_TOKEN=…,
	// --secret-string=…. Its value is the shell word after it (wordEnd).
	secretAssign = regexp.MustCompile(`([A-Za-z0-9_-]+)\s*=\s*`)
	// secretWord is what a secret's name contains.
	secretWord = regexp.MustCompile(`(?i)password|passwd|secret|token|_pwd$|api[-_]?key|private[-_]?key`)
	// header is an HTTP header line as curl -H or a script writes it,
	// with the credentials after an optional scheme: "Authorization:
	// Bearer X", "X-Api-Key: X", "Cookie: session=X". Its value is a
	// secret when the name says so (headerSecret). The value takes in the
	// name=value pairs that follow it after spaces, so that every cookie
	// of a Cookie line goes ("Cookie: a=1; session=X" kept session=X), and
	// double-quoted pieces without spaces, as a cookie's value may be
	// (sid="X" kept "X", as did Bearer "X").
	header = regexp.MustCompile(`(?i)([A-Za-z0-9-]+)(\s*:\s*)((?:bearer|basic|token|digest|negotiate|aws4-hmac-sha256)\s+)?((?:[^\s'"]|"[^"\s]*")+(?:[ \t]+[^\s'";=:]+=(?:[^\s'"]|"[^"\s]*")*)*)`)
	// mysqlPassword is a MySQL client's -pPASSWORD inside a shell line.
	mysqlPassword = regexp.MustCompile(`\b(mysql|mariadb|mysqldump|mysqladmin|mariadb-dump)\b([^;&|\n]*?\s)-p([^\s'"]+)`)
)

// headerSecret says whether a header named name carries credentials.
func headerSecret(name string) bool {
	switch strings.ToLower(name) {
	case "authorization", "proxy-authorization", "cookie", "x-amz-security-token":
		return true
	}
	return secretName(name)
}

// mysqlClients take their password glued to -p (-pPASSWORD).
var mysqlClients = []string{"mysql", "mariadb", "mysqldump", "mysqladmin", "mariadb-dump"}

// secretName says whether a variable, keyword or flag named name holds a
// secret: its name contains password, passwd, secret or token, or ends in
// _pwd (MYSQL_PWD), and it does not name one (--secret-id, SECRET_ARN,
// token_name).
func secretName(name string) bool {
	if !secretWord.MatchString(name) {
		return false
	}
	n := strings.ToLower(strings.TrimLeft(name, "-"))
	for _, suffix := range []string{"id", "ids", "arn", "arns", "name", "names", "file", "path", "env", "stage"} {
		if strings.HasSuffix(n, "-"+suffix) || strings.HasSuffix(n, "_"+suffix) {
			return false
		}
	}
	return true
}

// redactCommand returns argv as a grant's record keeps it: each of the
// given secrets (the grant's own credential), wherever it appears, and
// what is recognisably another secret — a URI's password, the value of a
// name=value or of a --flag whose name says it holds a password, secret or
// token — replaced by RedactedArg.
func redactCommand(argv []string, secrets ...string) []string {
	out := make([]string, len(argv))
	for i, a := range argv {
		for _, s := range secrets {
			if len(s) >= 8 {
				a = strings.ReplaceAll(a, s, RedactedArg)
			}
		}
		a = uriPassword.ReplaceAllString(a, "${1}:"+RedactedArg+"@")
		a = redactAssignments(a)
		a = redactHeaders(a)
		a = mysqlPassword.ReplaceAllString(a, "${1}${2}-p"+RedactedArg)
		switch {
		case i > 0 && strings.HasPrefix(argv[i-1], "-") && !strings.Contains(argv[i-1], "=") && secretName(argv[i-1]):
			a = RedactedArg
		case i > 1 && (strings.EqualFold(argv[i-2], "set") || strings.EqualFold(argv[i-2], "config")) && !strings.HasPrefix(argv[i-1], "-") && secretName(argv[i-1]):
			// aws configure set aws_secret_access_key X, git config
			// credential.password X, npm config set //r/:_authToken X.
			a = RedactedArg
		case i > 0 && slices.Contains(mysqlClients, path.Base(argv[0])) && len(a) > 2 && strings.HasPrefix(a, "-p") && !strings.HasPrefix(a, "--"):
			a = "-p" + RedactedArg
		}
		out[i] = a
	}
	return out
}

// redactHeaders replaces the credentials in a's header lines whose names
// say they carry them (Authorization: Bearer [REDACTED]).
func redactHeaders(a string) string { return redactMatches(a, header, 1, 4, headerSecret) }

// redactAssignments replaces the values of a's name=value pairs whose
// names hold secrets. Every name= is looked at, those inside the value of
// a name that holds none too: a secret may stand there
// (--dbname="host=db password=X", X= PGPASSWORD=Y), and a search that
// went on after the whole name=value skipped it.
func redactAssignments(a string) string {
	var b strings.Builder
	var w wordScanner
	at := 0
	for _, m := range secretAssign.FindAllStringSubmatchIndex(a, -1) {
		if m[0] < at || !secretName(a[m[2]:m[3]]) {
			continue // inside a value already replaced, or no secret
		}
		end := w.end(a, m[1])
		if end == m[1] {
			continue
		}
		b.WriteString(a[at:m[1]])
		b.WriteString(RedactedArg)
		at = end
	}
	if at == 0 {
		return a
	}
	b.WriteString(a[at:])
	return b.String()
}

// wordScanner finds where a shell word ends: unquoted, quoted and
// backslash-escaped pieces with nothing between them, which the shell
// joins into one value (PGPASSWORD=a"b c"\ d is "ab c d"). The value used
// to end at the first quote or space, and keep the pieces after it. It
// remembers a quote found unclosed, so that the words of one line cost
// time linear in its length.
type wordScanner struct {
	noSingle, noDouble bool // no closing ' (") after one found unclosed
}

// end returns where the word starting at i in a ends. A quote left open
// as the word's first piece runs to the end of a; left open after other
// pieces (password=X" closing a conninfo's quotes) it ends the word, which
// would otherwise take the rest of the line with it.
func (w *wordScanner) end(a string, i int) int {
	start := i
	for i < len(a) {
		var closing int // the closing quote's index, or -1
		switch c := a[i]; c {
		case ' ', '\t', '\n', '\v', '\f', '\r':
			return i
		case '\\':
			i = min(i+2, len(a))
			continue
		case '\'':
			closing = -1
			if !w.noSingle {
				if j := strings.IndexByte(a[i+1:], '\''); j >= 0 {
					closing = i + 1 + j
				}
				w.noSingle = closing < 0
			}
		case '"':
			closing = -1
			if !w.noDouble {
				closing = closingDouble(a, i+1)
				w.noDouble = closing < 0
			}
		default:
			i++
			continue
		}
		if closing < 0 {
			if i == start {
				return len(a)
			}
			return i
		}
		i = closing + 1
	}
	return i
}

// closingDouble returns the index of the '"' that closes a double-quoted
// string whose text starts at i (a backslash escapes the byte after it),
// or -1.
func closingDouble(a string, i int) int {
	for ; i < len(a); i++ {
		switch a[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// redactMatches replaces, in each match of re in a whose submatch name
// secret accepts, submatch value by RedactedArg.
func redactMatches(a string, re *regexp.Regexp, name, value int, secret func(string) bool) string {
	var b strings.Builder
	at := 0
	for _, m := range re.FindAllStringSubmatchIndex(a, -1) {
		if !secret(a[m[2*name]:m[2*name+1]]) {
			continue
		}
		b.WriteString(a[at:m[2*value]])
		b.WriteString(RedactedArg)
		at = m[2*value+1]
	}
	if at == 0 {
		return a
	}
	b.WriteString(a[at:])
	return b.String()
}
