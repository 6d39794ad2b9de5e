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
	// secretAssign is a name=value (an environment assignment, a libpq
	// conninfo keyword, a --flag=value) whose name says it holds a secret
	// (secretName): PGPASSWORD=…, password='…', --db-password=…,
	// AWS_SECRET_ACCESS_KEY=…, GITHUB_TOKEN=…, --secret-string=…. The value
	// is a quoted string or runs to the next space or quote.
	secretAssign = regexp.MustCompile(`([A-Za-z0-9_-]+)(\s*=\s*)('[^']*'?|"[^"]*"?|[^\s'"]+)`)
	// secretWord is what a secret's name contains.
	secretWord = regexp.MustCompile(`(?i)password|passwd|secret|token|_pwd$|api[-_]?key|private[-_]?key`)
	// header is an HTTP header line as curl -H or a script writes it,
	// with the credentials after an optional scheme: "Authorization:
	// Bearer X", "X-Api-Key: X", "Cookie: session=X". Its value is a
	// secret when the name says so (headerSecret).
	header = regexp.MustCompile(`(?i)([A-Za-z0-9-]+)(\s*:\s*)((?:bearer|basic|token|digest|negotiate|aws4-hmac-sha256)\s+)?([^\s'"]+)`)
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
// names hold secrets.
func redactAssignments(a string) string { return redactMatches(a, secretAssign, 1, 3, secretName) }

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
