package grants

import (
	"path"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
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
	// The user part runs to the authority's last @, as URL parsers take
	// it (Go's net/url, curl): a password or user with an @ in it
	// (https://u:p@ss@h, https://ann@corp:PW@h) ended at the first @ and
	// kept the rest. Past an @ a piece holds no ? # or ", which a
	// password cannot hold there, so that "https://u:PW@h","a@b" in a
	// JSON body is not read as one user part. It may hold a ' (a
	// shell's quotes: https://u:p@'s'@h).
	uriPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^/:@\s]*(?:@[^/:@?#\s"]*)*):([^@/\s]*(?:@[^@/?#\s"]*)*)@`)
	// secretAssign is the name= of a name=value (an environment
	// assignment, a libpq conninfo keyword, a --flag=value) whose name says
	// it holds a secret (secretName): PGPASSWORD=…, password='…',
	// --db-password=…, AWS_SECRET_ACCESS_KEY=…, GITHUB_TOKEN=…,
	// --secret-string=…, and "PGPASSWORD"=… (the shell joins the quoted
	// name to the rest), bash's append PGPASSWORD+=… and array elements
	// TOKENS[0]=…, creds[password]=… (the name with its subscript: either
	// may say it holds a secret), which were not seen as assignments. Its
	// value is the shell word after it (wordEnd).
	// PowerShell's ${env:NAME} = … too.
	// A subscript holds no [, quote nor shell operator: A[;MYSQL_PWD[i]=
	// was taken as one name, which said no secret.
	secretAssign = regexp.MustCompile(`([A-Za-z0-9_-]+(?:\[[^\[\]\s=;&|()<>'"]*\])?)["'}]?\+?\s*=\s*`)
	// paramDefault is the ${NAME- (or :-, :=, =, :?, ?, :+, +) of a shell
	// parameter expansion whose word is a default, assigned or alternate
	// value: ${PGPASSWORD-x} kept x. Its value runs to the matching }
	// (paramEnd). A name is a secret's as a header's is (headerSecret):
	// ${AUTHORIZATION:-Bearer x} and ${COOKIE:-…} hold credentials too;
	// an array element's name or subscript (${TOKENS[@]:-x},
	// ${creds[password]-x}) as an assignment's; USER's word holds a
	// password after its user. See redactParams.
	paramDefault = regexp.MustCompile(`\$\{([A-Za-z0-9_]+(?:\[[^\[\]{}]*\])?):?[-=?+]`)
	// jsonSecret is the "name": of a JSON member whose name says it holds
	// a secret (curl -d '{"password":"X"}', --secret-string
	// '{"api_key":"X"}'), or \"name\": inside a shell's double quotes.
	// Its value is as redactJSON takes it.
	jsonSecret = regexp.MustCompile(`"([A-Za-z0-9_-]+)\\?"[ \t]*:[ \t]*`)
	// secretWord is what a secret's name contains.
	// npm's _auth (a registry's base64 user:password: _auth=…,
	// //r/:_auth, npm_config__auth) is one, and SKIP_AUTH no secret.
	secretWord = regexp.MustCompile(`(?i)password|passwd|passphrase|secret|token|_pwd$|api[-_]?key|private[-_]?key|(?:^|[_:])_auth$`)
	// headerName is the name: of an HTTP header line as curl -H or a
	// script writes it ("Authorization: Bearer X", "X-Api-Key: X",
	// "Cookie: session=X"). Every one is looked at, those inside another
	// header's value too: "X-Foo: Authorization: Bearer X" hid the
	// Authorization line in X-Foo's value and kept X. Its value is a secret
	// when the name says so (headerSecret) and runs as far as
	// headerValue takes it.
	headerName = regexp.MustCompile(`([A-Za-z0-9_-]+)[ \t]*:`)
	// mysqlPassword is a MySQL client's -pPASSWORD inside text that is
	// not read as the shell's words (a JSON body's "mysql -u r -pX"):
	// programOptions' row sees it in argv and shell lines.
	mysqlPassword = regexp.MustCompile(`\b(` + strings.Join(mysqlClients, "|") + `)\b([^;&|\n]*?\s)-p([^\s'"]+)`)
	// lineFlag is a --flag word in a shell line: where blanks follow it,
	// the next shell word is the value, as the next argument is in argv
	// (redactCommand). The blanks are not part of the match: taken with
	// it, the blank before the next flag was, and that flag (tool -A
	// --password X) was not matched.
	lineFlag = regexp.MustCompile(`(?:^|[\s;&|(])(--?[A-Za-z0-9_-]+)`)
)

// headerSecret says whether a header named name carries credentials.
// A name that is curl's -H with its header line glued to it, behind other
// short options or none (-HAuthorization: …, -sHCookie: …), is read as
// the name after the H: headerName takes the option's letters and dash
// with it, and -HAuthorization named no header, so curl's Bearer token
// was kept (X-Api-Key's name says secret with any prefix).
func headerSecret(name string) bool {
	switch strings.ToLower(name) {
	case "authorization", "proxy-authorization", "cookie", "x-amz-security-token":
		return true
	}
	if n, ok := gluedHeaderOption(name); ok && headerSecret(n) {
		return true
	}
	return secretName(name)
}

// gluedHeaderOption returns the header name in name where name is a
// cluster of curl's short options that ends in -H with the name glued to
// it (-HCookie, -sSHCookie gives Cookie). An option before the H that
// takes the rest as its own argument (-AHCookie: curl's user agent) makes
// it no header: hidden all the same, more, not less.
func gluedHeaderOption(name string) (string, bool) {
	if len(name) < 3 || name[0] != '-' {
		return "", false
	}
	for k := 1; k < len(name)-1; k++ {
		switch c := name[k]; {
		case c == 'H':
			return name[k+1:], true
		case (c < 'a' || c > 'z') && (c < 'A' || c > 'Z'):
			return "", false
		}
	}
	return "", false
}

// mysqlClients take their password glued to -p (-pPASSWORD): MySQL's
// and MariaDB's clients and tools.
var mysqlClients = []string{
	"mysql", "mysqldump", "mysqladmin", "mysqlimport", "mysqlshow", "mysqlcheck", "mysqlpump", "mysqlslap", "mysqlbinlog", "mysqlsh",
	"mariadb", "mariadb-dump", "mariadb-admin", "mariadb-import", "mariadb-show", "mariadb-check", "mariadb-slap", "mariadb-binlog",
}

// secretName says whether a variable, keyword or flag named name holds a
// secret: its name contains password, passwd, passphrase (gpg
// --passphrase, BORG_PASSPHRASE), secret or token, or ends in _pwd
// (MYSQL_PWD), and it does not name one (--secret-id, SECRET_ARN,
// token_name) nor say where it is read from (--password-stdin, which
// takes no value: the argument after it, docker login's registry, was
// hidden; gpg --passphrase-fd 0, --passphrase-file F). A program's
// variable that says nothing (programEnv: SSHPASS, REDISCLI_AUTH) holds
// one too.
func secretName(name string) bool {
	if programEnv(name) {
		return true
	}
	if !secretWord.MatchString(name) {
		return false
	}
	n := strings.ToLower(strings.TrimLeft(name, "-"))
	for _, suffix := range []string{"id", "ids", "arn", "arns", "name", "names", "file", "path", "env", "stage", "stdin", "fd"} {
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
	set := make([]bool, len(argv))
	word := func(k int) string { return argv[k] }
	// Where a program's option takes a secret (curl -u ann:PW), or a
	// user%password is set (setenv USER ann%PW), cut says where it
	// starts in the argument: found from argv, applied to the argument
	// as the rules before have left it.
	cuts := make([]*secretCut, len(argv))
	setValues(len(argv), word, func(k int, c secretCut) {
		if c.from == 0 && c.after == nil {
			set[k] = true
		} else {
			cuts[k] = &c
		}
	})
	programValues(len(argv), word, func(k int, c secretCut) { cuts[k] = &c })
	ps := slices.ContainsFunc(argv, powerShell)
	for i, a := range argv {
		form := argFormOf(argv, i)
		for _, s := range secrets {
			if len(s) >= 8 {
				a = strings.ReplaceAll(a, s, RedactedArg)
			}
		}
		joined := -1
		if !ps {
			joined = lineJoin(a)
		}
		if joined >= 0 {
			// The rules read what comes before the join as the shell
			// does; what comes after it is hidden.
			a = a[:joined]
		}
		if form == shellLine && !ps {
			a = hideInnerTicks(a)
		}
		var pieces, apart, inner []int
		if form == shellLine && !ps {
			// Here-documents and comments (shellPieces).
			var hide int
			if pieces, apart, inner, hide = shellPieces(a); hide >= 0 {
				a, joined = a[:hide], hide
			}
		}
		switch {
		case len(pieces) > 0 || len(inner) > 0:
			a = redactPieces(a, pieces, apart, inner, form, 1)
		default:
			a = redactText(a, form, ps)
		}
		if joined >= 0 && !strings.HasSuffix(a, RedactedArg) {
			a += RedactedArg
		}
		switch {
		case i > 0 && strings.HasPrefix(argv[i-1], "-") && !strings.Contains(argv[i-1], "=") && secretName(argv[i-1]):
			a = RedactedArg
		case set[i]:
			// aws configure set aws_secret_access_key X, git config
			// --global credential.password X, npm config set
			// //r/:_authToken X (setValues).
			a = RedactedArg
		case cuts[i] != nil:
			a = cuts[i].apply(a)
		}
		out[i] = a
	}
	return out
}

// maxPieceDepth bounds how deep redactPiece reads a here-document's body
// or a comment apart as pieces of their own: each level reads its piece's
// bytes once more.
const maxPieceDepth = 3

// redactPiece is redactText for a piece of a shell line (shellPieces)
// read apart, itself cut into the pieces its own here-documents and
// comments make, depth levels deep. A body read apart as text was read
// as one piece: a comment in it whose quote is left open (cat <<EOF …
// if x # it's … then git config credential.password PW … EOF, a script
// for sh <<EOF) moved the quotes of every word after it, and PW was
// kept. Past maxPieceDepth a piece that would be cut again is read whole,
// as before; where its own reading stops (a body left open inside a
// substitution), the rest of it is hidden.
func redactPiece(p string, form argForm, depth int) string {
	if depth > maxPieceDepth {
		return redactText(p, form, false)
	}
	cuts, apart, inner, hide := shellPieces(p)
	tail := ""
	if hide >= 0 {
		p, tail = p[:hide], RedactedArg
	}
	if len(cuts) == 0 && len(inner) == 0 {
		return redactText(p, form, false) + tail
	}
	return redactPieces(p, cuts, apart, inner, form, depth+1) + tail
}

// redactPieces redacts a cut at cuts (shellPieces), the pieces that
// start at apart (bodies and comments read apart, in order; -start-1
// for a <<- body, read without its lines' leading tabs) with
// redactPiece at depth, the others, whose bodies and comments leave
// nothing open, with redactText: read again, they would be cut nowhere,
// and each level would read their substitutions' bodies once more.
func redactPieces(a string, cuts, apart, inner []int, form argForm, depth int) string {
	var b strings.Builder
	at := 0
	for _, c := range append(cuts, len(a)) {
		if len(apart) > 0 && apart[0] == at {
			b.WriteString(redactPiece(a[at:c], form, depth))
			apart = apart[1:]
		} else if len(apart) > 0 && apart[0] == -at-1 {
			// A <<- body, read as its command reads it, without
			// the tabs that start its lines (the record keeps
			// none): read with them, a script's <<EOF … \tEOF in it
			// ran to the body's end, and a lone quote in that
			// hid the commands after it (git config
			// credential.password PW was kept).
			p := a[at:c]
			var t strings.Builder
			for len(p) > 0 {
				p = strings.TrimLeft(p, "\t")
				k := strings.IndexByte(p, '\n') + 1
				if k == 0 {
					k = len(p)
				}
				t.WriteString(p[:k])
				p = p[k:]
			}
			b.WriteString(redactPiece(t.String(), form, depth))
			apart = apart[1:]
		} else {
			b.WriteString(redactMasked(a[at:c], at, inner, form, depth))
		}
		at = c
	}
	return b.String()
}

// redactMasked is redactText for the piece p of a shell line that starts
// at base in it, where the bodies at inner (pairs of offsets in the
// line: here-documents in substitutions, which leave nothing open) are
// read apart (redactPiece) and put back where they stood. The rules'
// quote scans pass over such a body (shellStep, to its delimiter's
// line), and so did not see the quotes in it: in $(cat <<EOF … x $(env
// "PGPASSWORD=a b" psql) … EOF) a value's end is the closing quote's,
// and b was kept. In the line the body stands as a mark of its own
// (NUL, letters A to P for its index, NUL, newline), which no rule reads
// as a name or a quote; a mark a value's span took is hidden with it.
func redactMasked(p string, base int, inner []int, form argForm, depth int) string {
	if len(inner) == 0 || strings.IndexByte(p, 0) >= 0 || depth > maxPieceDepth {
		return redactText(p, form, false)
	}
	var b strings.Builder
	var bodies []string
	at := 0
	for k := 0; k+1 < len(inner); k += 2 {
		s, e := inner[k]-base, inner[k+1]-base
		if s < at || e > len(p) || s >= e {
			continue
		}
		b.WriteString(p[at:s])
		b.WriteByte(0)
		for n := len(bodies); ; n /= 16 {
			b.WriteByte(byte('A' + n%16))
			if n < 16 {
				break
			}
		}
		b.WriteString("\x00\n")
		bodies = append(bodies, p[s:e])
		at = e
	}
	if len(bodies) == 0 {
		return redactText(p, form, false)
	}
	b.WriteString(p[at:])
	out := redactText(b.String(), form, false)
	b.Reset()
	for {
		i := strings.IndexByte(out, 0)
		if i < 0 {
			b.WriteString(out)
			break
		}
		b.WriteString(out[:i])
		j := strings.IndexByte(out[i+1:], 0)
		n, ok := 0, j > 0
		for k, m := 1, 1; ok && k <= j; k, m = k+1, m*16 {
			c := out[i+k]
			ok = c >= 'A' && c <= 'P'
			n += int(c-'A') * m
		}
		if !ok || n >= len(bodies) || i+j+2 >= len(out) || out[i+j+2] != '\n' {
			// Not a mark whole: a rule's span cut it. What is left
			// of it is dropped, the body hidden with the span.
			out = out[i+1:]
			continue
		}
		b.WriteString(redactPiece(bodies[n], form, depth+1))
		out = out[i+j+3:]
	}
	return b.String()
}

// lineJoin returns where the first backslash-newline in a that joins
// the bytes before and after it stands (neither a blank nor a newline),
// or -1. The shell removes a backslash-newline before it reads a line,
// outside single quotes: PGPASS\<newline>WORD=PW is PGPASSWORD=PW, and
// $\<newline>( a command substitution, ca\<newline>se a case. The rules
// read the bytes as they stand, and kept PW (and what such a
// substitution or case held). From a join on, what a byte means cannot
// be told without reading the line as the shell has joined it, so
// redactCommand hides the rest of the argument: more hidden, not less,
// and only where a line breaks inside a word (a line continued after a
// blank, as commands split over lines are, joins nothing). A
// backslash-newline that joins nothing reads as nothing: shellStep
// passes over it where a blank would be.
func lineJoin(a string) int {
	for i := 0; ; {
		k := strings.Index(a[i:], "\\\n")
		if k < 0 {
			return -1
		}
		j := i + k
		if j > 0 && j+2 < len(a) && !lineBlank(a[j-1]) && !lineBlank(a[j+2]) {
			return j
		}
		i = j + 2
	}
}

// shellPieces returns where the shell line a is cut into pieces that
// the rules read apart (cuts), for its here-documents and comments, and
// where they stop reading it (hide; -1 for none). The shell reads a
// here-document's body as text to its delimiter's line, and a comment
// as nothing; the rules read both as the line's words, and a body's
// lone quote (cat <<'EOF' … x" … EOF), or a comment's (# it's), moved
// the quotes of every word after it: a value after it (git config
// credential.password "a b", curl -u ann:"a b", "PGPASSWORD=a b") was
// kept, whole or in part. A body or comment whose text, read from
// outside quotes, leaves quotes or a substitution open is a piece of
// its own where it stands outside quotes and substitutions (the line
// before it has ended there, and the line after it starts anew), and
// inside a substitution, whose end the rules could not find past it,
// the rest of the line is hidden. One that leaves nothing open is read
// with the line, as before.
//
// It follows the line's quotes, substitutions, ${…} and backticks as
// shellStep reads them, a here-document's << where a command's words
// are read (not in quotes), and each line's bodies, in order, from the
// newline outside quotes that ends the line: each byte is read at most
// three times. Nested past maxShellNesting, the rest is hidden.
func shellPieces(a string) (cuts, apart, inner []int, hide int) { return shellPiecesAt(a, 0) }

// shellPiecesAt is shellPieces for a line that is a here-document's body
// level bodies deep (0: the shell line itself).
func shellPiecesAt(a string, level int) (cuts, apart, inner []int, hide int) {
	if !strings.Contains(a, "<<") && strings.IndexByte(a, '#') < 0 {
		return nil, nil, nil, -1
	}
	var open [maxShellNesting]byte
	depth := 0
	var delims []hereDelimiter // the line's here-documents, bodies to read
	confine := false           // a body read in a substitution: cut at its command's end
	for i := 0; i < len(a); {
		top := byte(0)
		if depth > 0 {
			top = open[depth-1]
		}
		words := strings.IndexByte("'$\"{`U", top) < 0 // not in quotes
		if confine && depth == 0 && strings.IndexByte(";&|\n", a[i]) >= 0 {
			// The command that holds a here-document in a
			// substitution ends here: the scans, which give up at
			// its << (shellStep), read the words of "$(…)" to the end
			// of the line, and the commands after it were not seen
			// (… "$(cat <<E … E …)" && curl -u ann:PW kept PW). They
			// read the rest anew.
			cuts, confine = append(cuts, i), false
		}
		switch {
		case depth == 0 && (a[i] == '`' || a[i] == '$' && i+1 < len(a) && a[i+1] == '{'):
			// shellStep reads neither outside quotes: here the
			// newlines in them end no line.
			open[0], depth = 'U', 1
			if a[i] == '`' {
				open[0] = '`'
				i--
			}
			i += 2
			continue
		case words && a[i] == '\n' && len(delims) > 0:
			j := i + 1
			for _, d := range delims {
				body, end, closed := hereBody(a, j, d)
				var bodyInner []int
				if closed && level < maxPieceDepth && (strings.IndexByte(a[j:body], '#') >= 0 || strings.Contains(a[j:body], "<<")) {
					// A comment in a substitution in the body
					// (x $(y # it's … git config
					// credential.password PW)) leaves nothing open
					// as shellStep reads it, but the rules' word
					// scans (shellCommands) read its quote as
					// opening, and PW was kept. Where the body,
					// read as a line of its own, would be cut or
					// hidden there, it is read apart, and so cut
					// (redactPiece). Bounded by maxPieceDepth: each
					// level reads its body again.
					// Its own here-documents in substitutions are
					// read apart too (redactMasked).
					c, _, in, h := shellPiecesAt(a[j:body], level+1)
					if len(c) > 0 || h >= 0 {
						closed = false
					}
					for _, k := range in {
						bodyInner = append(bodyInner, j+k)
					}
				}
				switch {
				case !closed && depth > 0:
					return cuts, apart, inner, j
				case !closed && d.dash:
					// A <<- body: its lines reach the command
					// with their leading tabs stripped, so that a
					// script's own here-documents end at \tEOF
					// (redactPieces reads it so).
					cuts, apart = append(cuts, j, body), append(apart, -j-1)
				case !closed:
					cuts, apart = append(cuts, j, body), append(apart, j)
				case depth > 0 && body > j && !hereLineStarts(a[j:body], d):
					// redactMasked; not where a line starts with
					// the delimiter and goes on (EOF)), which bash
					// 5.2 ends the body at and dash does not: the
					// scans do not follow such a body, and hide the
					// rest of its command (hereDocumentEnd).
					inner = append(inner, j, body)
				default:
					inner = append(inner, bodyInner...)
				}
				confine = confine || depth > 0
				j = end
			}
			delims = delims[:0]
			i = j
			continue
		case words && strings.HasPrefix(a[i:], "<<<"):
			i += 3 // a here-string, whose last two < are no here-document
			continue
		case words && a[i] == '<' && hereDocument(a, i):
			d, end := readHereDelimiter(a, i)
			delims = append(delims, d)
			i = end
			continue
		case words && a[i] == '#' && (i == 0 || commentStart(a, i)):
			e := strings.IndexByte(a[i:], '\n')
			if e < 0 {
				return cuts, apart, inner, -1 // nothing after it
			}
			if c := a[i+1 : i+e]; strings.HasSuffix(c, "\\") || !shellClosed(c) {
				if depth > 0 {
					return cuts, apart, inner, i
				}
				cuts, apart = append(cuts, i, i+e), append(apart, i)
			}
			i += e
			continue
		}
		next, push, pop := shellStep(a, i, top)
		if pop {
			depth--
		}
		switch {
		case push == '!' || push != 0 && depth == len(open):
			return cuts, apart, inner, i
		case push != 0:
			open[depth] = push
			depth++
		}
		i = next
	}
	return cuts, apart, inner, -1
}

// hereDelimiter is a here-document's delimiter: the word after its <<
// without its quotes (<<'EOF', <<"EOF", <<\EOF), and whether it is
// <<- (tabs before the delimiter are stripped).
type hereDelimiter struct {
	word string
	dash bool
}

// readHereDelimiter reads the here-document whose << is at i in a, and
// returns its delimiter and where its word ends.
func readHereDelimiter(a string, i int) (hereDelimiter, int) {
	j := i + 2
	var d hereDelimiter
	if j < len(a) && a[j] == '-' {
		d.dash = true
		j++
	}
	for j < len(a) && (a[j] == ' ' || a[j] == '\t') {
		j++
	}
	e := lineWordEnd(a, j, false)
	d.word = bareWord(a[j:e])
	return d, e
}

// hereBody reads the body of the here-document d that starts at i in a,
// to its delimiter's line (a line that is its word, with its leading
// tabs stripped for <<-), or to the end of a. It returns where the body
// ends (its delimiter's line starts), where the text after that line
// starts, and whether the body, read from outside quotes as shellStep
// reads a line, leaves nothing open.
func hereBody(a string, i int, d hereDelimiter) (body, end int, closed bool) {
	body = len(a)
	end = len(a)
	for j := i; j < len(a); {
		line, e := hereLine(a, j, d)
		if line == d.word {
			body, end = j, min(e+1, len(a))
			break
		}
		j = e + 1
	}
	return body, end, shellClosed(a[i:body])
}

// hereLineStarts says whether a line of body (a here-document d's)
// starts with d's word: a line that goes on past it, as bash 5.2 ends a
// body in a substitution at EOF).
func hereLineStarts(body string, d hereDelimiter) bool {
	for j := 0; j < len(body); {
		line, e := hereLine(body, j, d)
		if strings.HasPrefix(line, d.word) {
			return true
		}
		j = e + 1
	}
	return false
}

// hereLine returns the line of a here-document d's body that starts at
// j in a, as it is compared with its delimiter (its leading tabs
// stripped for <<-), and where it ends (its newline, or the end of a).
func hereLine(a string, j int, d hereDelimiter) (line string, end int) {
	end = len(a)
	if e := strings.IndexByte(a[j:], '\n'); e >= 0 {
		end = j + e
	}
	line = a[j:end]
	if d.dash {
		line = strings.TrimLeft(line, "\t")
	}
	return line, end
}

// shellClosed says whether the text s, read from outside quotes as
// shellStep reads a line, leaves no quotes nor substitution open at its
// end.
func shellClosed(s string) bool {
	var open [maxShellNesting]byte
	depth := 0
	for i := 0; i < len(s); {
		top := byte(0)
		if depth > 0 {
			top = open[depth-1]
		}
		next, push, pop := shellStep(s, i, top)
		if pop {
			depth--
		}
		switch {
		case push == '!' || push != 0 && depth == len(open):
			return false
		case push != 0:
			open[depth] = push
			depth++
		}
		i = next
	}
	return depth == 0
}

// lineBlank says whether c is a blank or a newline, which a
// backslash-newline beside it joins nothing to.
func lineBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

// redactText applies the rules for secrets that a text names to a, an
// argument of form's (a piece of it: shellPieces) in a command that runs
// PowerShell where ps.
func redactText(a string, form argForm, ps bool) string {
	a = uriPassword.ReplaceAllString(a, "${1}:"+RedactedArg+"@")
	if ps {
		a = redactPowerShell(a, form == shellLine)
	}
	a = redactParams(a)
	a = redactAssignments(a, form)
	a = redactJSON(a)
	// Header lines before a program's options: curl '-u -H '' -H
	// 'Authorization: Basic "X"' took the -u argument's password to
	// start at the header's colon, and the [REDACTED] put for the
	// scheme was read as the credential, whose "X" was then kept.
	a = redactHeaders(a, form == shellLine)
	a = redactLineArgs(a, ps, form == shellLine)
	return mysqlPassword.ReplaceAllString(a, "${1}${2}-p"+RedactedArg)
}

// argForm is how an argument's blanks and operators end a value in it
// (redactAssignments).
type argForm int

const (
	ownArg    argForm = iota // an argument of its own: a value runs to its end
	shellLine                // a shell's script: blanks and operators end a word
	splitArg                 // env -S's string: blanks end a word, ; && | are text
)

// argFormOf returns the form of argv[i]: a shell's script (shellScript),
// env's -S (--split-string) string, which env splits at its blanks into
// the assignments and the command it runs (env -S 'PGPASSWORD=x psql':
// read as one argument, psql was hidden with the secret), or else an
// argument of its own.
func argFormOf(argv []string, i int) argForm {
	if shellScript(argv, i) || powerShellScript(argv, i) {
		return shellLine
	}
	if i < 1 || !slices.ContainsFunc(argv[:i], func(a string) bool { return path.Base(a) == "env" }) {
		return ownArg
	}
	a, f := argv[i], argv[i-1]
	switch {
	case f == "--split-string" || len(f) > 1 && f[0] == '-' && f[1] != '-' && f[len(f)-1] == 'S':
		return splitArg
	case strings.HasPrefix(a, "--split-string=") || len(a) > 2 && a[0] == '-' && a[1] == 'S':
		return splitArg
	}
	return ownArg
}

// shellScript says whether argv[i] is a shell's script (sh -c, bash
// -lc, su --command): a shell line whose words the shell splits at its
// blanks, where any other argument is one word as it stands. The -c must
// follow a shell's name (docker exec c sh -c, sudo bash -lc): git -c
// user.password=a\ b, python -c and psql -c take one value or text of
// their own.
func shellScript(argv []string, i int) bool {
	if i < 2 {
		return false
	}
	f := argv[i-1]
	if f != "--command" && (len(f) < 2 || f[0] != '-' || f[1] == '-' || !strings.Contains(f, "c") || strings.Trim(f[1:], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") != "") {
		return false
	}
	return slices.ContainsFunc(argv[:i-1], func(a string) bool { return slices.Contains(shells, path.Base(a)) })
}

// powerShellScript says whether argv[i] is PowerShell's script: the
// argument of its -Command (-c, -Com, in any case) after pwsh or
// powershell. Read as an argument of its own, a secret's $env:NAME = x
// at its start took the rest of the script with it (every statement
// after it was hidden).
func powerShellScript(argv []string, i int) bool {
	if i < 2 {
		return false
	}
	f := strings.ToLower(argv[i-1])
	return len(f) >= 2 && strings.HasPrefix("-command", f) && slices.ContainsFunc(argv[:i-1], powerShell)
}

// shells are the programs whose -c takes a shell line.
var shells = []string{"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "busybox", "csh", "tcsh", "su"}

// redactHeaders replaces the credentials in a's header lines whose names
// say they carry them (Authorization: Bearer [REDACTED]). A value runs at
// least as far as headerValue takes it and, where the header line stands
// in a shell's quotes, to their end: curl -H 'X-Api-Key: K L' sends
// "K L", and headerValue, which cannot tell a shell's blank from a
// curl argument's, ended the value at the blank and kept L. See
// shellQuotes.valueEnd for the rest.
//
// In a shell's line (shell) a credential that starts at the closing
// quote of the quotes its header line stands in (-H "Authorization:
// Bearer "`cmd`) is what the shell word joins after them, to its end
// (valueEnd): headerValue read that quote as opening a quoted
// credential, which ran to the next " of the line, or to its end. And
// where those quotes opened at the header line's name, headerValue is
// told where they close (holdsTo), which a word it joins does not run
// past (see there).
func redactHeaders(a string, shell bool) string {
	q := shellQuotes{line: headerLine.MatchString(a), shell: shell}
	return redactValuesKeeping(a, headerName, headerSecret, func(a string, name, i int) (int, int, int) {
		if paramName(a, name) {
			// ${TOKEN:-x}, ${TOKEN:0:4}: a parameter expansion, whose
			// word paramDefault hides. Read as a header line it hid the
			// rest of the shell word (the }, what was glued to it, a ;).
			return i, i, -1
		}
		// Where the header line stands in a shell line's quotes and
		// the shell word goes on past them (-H "X-Api-Key: a"b), the
		// value runs to the word's end (valueEnd), and the record keeps
		// their closing quote (redactValuesKeeping): hidden with the
		// value, the record's quotes stood open, and the rules after
		// read the commands after it as quoted text (curl -H
		// "X-Api-Key: a"b h; curl -u ann:PW h kept PW).
		wordEnd, closing := -1, -1
		if shell {
			if e := q.valueEnd(a, i); !q.deep && strings.IndexByte("'\"$", q.state) >= 0 && q.state != 0 {
				if c := q.lastClose[stateIndex(q.state)]; c >= i && c < e {
					wordEnd, closing = e, c
				}
			}
		}
		limit := len(a)
		if shell {
			limit = q.holdsTo(a, name, i)
		}
		start, end := headerValue(a, i, limit)
		if shell && start < len(a) && (a[start] == '"' || a[start] == '\'') && q.closesAt(a, name, i, start) {
			start++     // the quote stays
			end = start // valueEnd's, below
		}
		// The header lines that stand in the value taken are passed over
		// by redactValues: each runs to the end of its own quotes too,
		// and as far as headerValue takes its own value. That includes
		// the ones headerValue's scan of this value read past as text,
		// not as a header (a $'…' piece that holds a name, -H
		// Authorization: $'x -H "X-Api-Key: '1 2 '"): the value ended
		// at the shell word's end, inside that line's credential, and
		// the rest of the credential was kept (bench/HISTORY.md, "A
		// header line inside another header's $'…' credential"). Each
		// headerValue reads from past the last one's end.
		covered := i + 1
		for j := i; j >= 0; {
			if j >= covered {
				_, covered = headerValue(a, j, len(a))
				end = max(end, covered)
			}
			if e := q.valueEnd(a, j); e > end && e > start {
				end = e
			}
			j = nextSecretHeader(a[:end], j)
		}
		switch {
		case end != wordEnd || start > closing:
			return start, end, -1
		case start == closing:
			return start + 1, end, -1 // the quote stays
		}
		return start, end, closing
	}, nil)
}

// nextSecretHeader returns where the colon of the next header line
// (headerName) at or after i in a whose name says it carries credentials
// ends, or -1. It reads the bytes to that colon once: a regexp search
// from each i clears state the size of the rest of a, which made a line
// of many headers quadratic.
func nextSecretHeader(a string, i int) int {
	for {
		k := strings.IndexByte(a[i:], ':')
		if k < 0 {
			return -1
		}
		c := i + k
		e := c
		for e > i && (a[e-1] == ' ' || a[e-1] == '\t') {
			e--
		}
		n := e
		for n > i && (a[n-1] >= 'A' && a[n-1] <= 'Z' || a[n-1] >= 'a' && a[n-1] <= 'z' || a[n-1] >= '0' && a[n-1] <= '9' || a[n-1] == '_' || a[n-1] == '-') {
			n--
		}
		if n < e && headerSecret(a[n:e]) {
			return c + 1
		}
		i = c + 1
	}
}

// headerLine is a string that starts with a header line ("X-Api-Key:
// …", "--header=Cookie: …", "-HCookie: …"): a curl argument of its own,
// not a shell line, whose header values run to the line's end. Quotes
// before the name are taken as the name's: curl -H "'X-Api-Key: a' b c"
// (an argument that holds them, as a shell passes "'…' b c" on) sends a
// header named 'X-Api-Key, whose value is a' b c.
var headerLine = regexp.MustCompile(`^[ \t]*(?:-H|--header=?)?[ \t]*[$'"]*[A-Za-z0-9_-]+[ \t]*:`)

// shellQuotes follows a shell line's quotes ('…', "…", $'…') from its
// start, so that the value of a header line can be taken to the end of
// the quotes it stands in. It reads each byte of the line once across the
// values of one line: the calls come in order, each past the value the
// last one took.
type shellQuotes struct {
	line bool // the string starts as a header line does (headerLine)
	// The string is a shell's line (redactHeaders' shell), one that
	// starts as a header line too (A:||curl -H …): where a quotes' word
	// goes on past them, the value runs to its end in it (valueEnd),
	// as in any shell line. Read as a curl argument of its own, the
	// value ended at the closing quote, and in A:||curl -H "X-Api-Key:
	// a"$(echo "\" PW") PW was kept.
	shell bool
	pos   int // bytes read
	// 0, or the innermost quotes that pos stands in, as shellStep's
	// frame: '\'', '"', '$' (inside $'…'), '`' or '{' (inside "…").
	// Those nest inside a substitution within "…": in "$(echo "K L")"
	// the inner quotes were read as closing the outer ones.
	state byte
	open  int // where the quotes of state opened (the $ of $'…')
	// The frames open at pos (shellStep's), where each opened, and how
	// many; deep once they are nested past maxShellNesting: the rest of
	// the line is then taken as in "…" left open, to its end.
	frames [maxShellNesting]byte
	opens  [maxShellNesting]int
	depth  int
	deep   bool
	// The end valueEnd found last in each state (by stateIndex): the
	// same for every i before it in that state (the same quotes, or the
	// same word or line), so the bytes to it are not read again for
	// each header line in them. Quotes nested in the quotes of the same
	// state that a value was taken in end at the outer ones: more taken,
	// not less.
	lastEnd [7]int
	// Where the quotes closed that lastEnd was found in, by state: the
	// closing quote, before the word that goes on past them.
	lastClose [7]int
	// Whether pos stands in a `…` that opened outside quotes and
	// substitutions, where shellStep opens no frame for it, and where
	// that closes (tickLimit; 0 until found).
	tick    bool
	tickEnd int
}

// tickLimit returns where the `…` that opened outside quotes and
// substitutions and holds the byte at i in a closes, at its first
// unescaped backtick as the shell reads it, or len(a) where none holds
// it (or i is before what q has read). A value's word read from inside
// it ends there: read on, substWordEnd took that backtick as opening a
// substitution, to the next `…`'s opening one, and the span hid the
// program's name there (echo `tool --password=PW` | echo `curl -u
// ann:PW h` hid curl, and its -u's PW was kept). The bytes to it are
// read once for each `…`.
func (q *shellQuotes) tickLimit(a string, i int) int {
	if !q.advance(a, i) || q.deep || !q.tick {
		return len(a)
	}
	if q.tickEnd <= i {
		if q.tickEnd = closingEscaped(a, i, '`'); q.tickEnd < 0 {
			q.tickEnd = len(a)
		}
	}
	return q.tickEnd
}

// hideInnerTicks returns the shell line a with the text of each command
// substitution that a `…` opens with escaped backticks (\`…\`) replaced
// by RedactedArg. The shell ends a `…` at its first unescaped backtick
// and reads its text with the backslash before a backtick, a backslash or
// a $ taken off: a `…` that holds tool --password=x\`cat f\` gives the
// value x and the output of cat f, and one that holds echo \`tool
// --password=\\ 1\` the inner command's value " 1" (an escaped
// blank). The rules read such text as they read the line's, where \` is
// an escaped byte and \\ a backslash: the value ended at the blank in the
// inner substitution and f\` was kept, and the inner command's escaped
// blank ended its own value (the rest kept). Read as a word of the
// `…`'s, the substitution would not be read as commands either (\`curl
// -u ann:PW h\`). Unescaping each level to read it as the shell does is
// not attempted: the text is hidden whole (more hidden, not less; $(…)
// nests without escapes, and the rules read it). One left open runs to
// the `…`'s end.
//
// It follows the line's quotes and substitutions as shellStep reads them
// (a backtick in '…' is no `…`): each byte is read once, those of a
// `…`'s text twice (its end, then its substitutions).
func hideInnerTicks(a string) string {
	if !strings.Contains(a, "\\`") {
		return a
	}
	var b strings.Builder
	at := 0
	var open [maxShellNesting]byte
	depth := 0
	for i := 0; i < len(a); {
		top := byte(0)
		if depth > 0 {
			top = open[depth-1]
		}
		next, push, pop := shellStep(a, i, top)
		if top == 0 && a[i] == '`' || push == '`' {
			// A `…` whose text starts at i+1: outside quotes, where
			// shellStep opens no frame for it, or in "…" or $(…).
			lim := closingEscaped(a, i+1, '`')
			if lim < 0 {
				lim = len(a)
			}
			for p := i + 1; ; {
				o := innerTick(a, p, lim)
				if o < 0 {
					break
				}
				c := innerTick(a, o+1, lim)
				at0 := c - 1 // the backslash before it stays
				if c < 0 {
					c, at0 = lim, lim
				}
				b.WriteString(a[at : o+1])
				b.WriteString(RedactedArg)
				at, p = at0, c+1
			}
			if push == 0 {
				next = lim + 1 // past its closing backtick
			} else {
				next = lim // the frame's, which pops it
			}
		}
		if pop {
			depth--
		}
		switch {
		case push == '!' || push != 0 && depth == len(open):
			// Too deep to follow: the rules hide the rest as nested
			// quotes left open.
			i = len(a)
			continue
		case push != 0:
			open[depth] = push
			depth++
		}
		i = next
	}
	if at == 0 {
		return a
	}
	b.WriteString(a[at:])
	return b.String()
}

// innerTick returns where the first backtick from i to end in a stands
// that the text of the `…` it stands in reads as unescaped, or -1: one
// behind 1, 5, 9, … backslashes (\\ is a backslash in that text, \` a
// backtick); one behind 3 is that text's own escaped backtick, a
// substitution nested deeper, which stands in the one found. The bytes
// read are counted in shellScanned.
func innerTick(a string, i, end int) int {
	from := i
	defer func() { shellScanned.Add(int64(i - from)) }()
	run := 0 // the backslashes just before i
	for ; i < end; i++ {
		switch a[i] {
		case '\\':
			run++
			continue
		case '`':
			if run%4 == 1 {
				return i
			}
		}
		run = 0
	}
	return -1
}

// stateIndex numbers shellQuotes' states for lastEnd.
func stateIndex(state byte) int { return strings.IndexByte("\x00'\"$`{U", state) }

// valueEnd returns where the value of the header whose colon ends at i
// ends at the least: inside '…' at the closing ', inside "…" at the
// closing unescaped " (past the substitutions in it), inside $'…' at the
// closing unescaped ', and where the shell word goes on past those
// quotes, at its end; outside quotes, at the line's end in a header
// line, or else at the end of the shell word (curl -H X-Api-Key:\ K\ L,
// X-Api-Key:\ $'K L'), with the command substitutions in it (the
// substitution's text, a command that may hold the secret, was kept). A
// quote left open runs to the end of a.
func (q *shellQuotes) valueEnd(a string, i int) int {
	if !q.advance(a, i) {
		return i // i is an escaped byte's: no header's colon
	}
	last := &q.lastEnd[stateIndex(q.state)]
	if i >= *last {
		lim := len(a)
		if q.shell {
			lim = q.tickLimit(a, i)
		}
		*last = q.end(a[:lim], i)
		q.lastClose[stateIndex(q.state)] = *last
		if e := *last; (!q.line || q.shell) && !q.deep && e+1 < lim && strings.IndexByte("'\"$", q.state) >= 0 && strings.IndexByte(" \t\n\r;&|<>)", a[e+1]) < 0 {
			// The quotes' word goes on past them (-H "X-Api-Key:
			// a"`echo PW`): the value runs to its end, a command
			// substitution in it whole, as in an assignment's.
			*last = substWordEnd(a[:lim], e+1)
		}
	}
	return *last
}

// advance reads a up to i, and says whether i is where a byte starts
// rather than the byte a backslash escapes: q.state is then the quotes
// that i stands in, which opened at q.open.
func (q *shellQuotes) advance(a string, i int) bool {
	if q.deep {
		return true
	}
	for q.pos < i {
		top := byte(0)
		if q.depth > 0 {
			top = q.frames[q.depth-1]
		}
		if top == 0 && a[q.pos] == '`' {
			q.tick, q.tickEnd = !q.tick, 0
		}
		next, push, pop := shellStep(a, q.pos, top)
		open := q.pos
		if pop {
			q.depth--
			if push != 0 {
				open = q.opens[q.depth] // replaced: where it opened
			}
		}
		switch {
		case push == '!' || push != 0 && q.depth == len(q.frames):
			q.deep, q.state, q.open = true, '"', q.pos
			return true
		case push != 0:
			q.frames[q.depth], q.opens[q.depth] = push, open
			q.depth++
		}
		q.pos = next
	}
	q.state = 0
	if q.depth > 0 && strings.IndexByte("(hpqcdB", q.frames[q.depth-1]) < 0 {
		q.state, q.open = q.frames[q.depth-1], q.opens[q.depth-1]
	}
	return q.pos == i
}

// closesAt says whether the quotes ('…', "…" or $'…') that the byte at
// i in a stands in opened just before name (a header line's name: they
// hold that line) and close at the quote at c, as the shell reads them.
// Quotes that opened before other text may be a stray quote's: -H $'…'
// after a " that opened at the line's start is read as in "…", and its
// credential's own quote as closing those; they are left to headerValue,
// which takes more. The bytes from i to c are read once more, and no
// further: the first of their closing quote's bytes at or after i is at
// c (the bytes between are a header's blanks and scheme).
func (q *shellQuotes) closesAt(a string, name, i, c int) bool {
	if !q.advance(a, i) || q.deep {
		return false
	}
	switch {
	case q.state == '"' && a[c] == '"' && q.open+1 == name, q.state == '\'' && a[c] == '\'' && q.open+1 == name, q.state == '$' && a[c] == '\'' && q.open+2 == name:
		return closingShell(a, i, q.state) == c
	}
	return false
}

// holdsTo returns where the quotes ('…', "…" or $'…') that hold the
// header line whose name starts at name and whose colon ends at i in a
// close, where they opened just before name (-H 'Authorization: …'), or
// else len(a). It is valueEnd's closing quote (read once for the values
// in those quotes); where valueEnd's answer was found for other quotes
// of the same state, those hold these, and close at or after them: more
// is taken, not less.
func (q *shellQuotes) holdsTo(a string, name, i int) int {
	if !q.advance(a, i) || q.deep {
		return len(a)
	}
	switch {
	case q.state == '"' && q.open+1 == name, q.state == '\'' && q.open+1 == name, q.state == '$' && q.open+2 == name:
		q.valueEnd(a, i)
		if c := q.lastClose[stateIndex(q.state)]; c > i {
			return c
		}
	}
	return len(a)
}

// end is valueEnd's answer, found by reading a from i.
func (q *shellQuotes) end(a string, i int) int {
	switch {
	case q.deep:
		return len(a)
	case q.line && !q.shell && q.state != 0:
		// An argument of its own (not a shell's line) that starts as
		// a header line, behind quotes ('X-Api-Key: a' b c): curl
		// takes its bytes as they stand, quotes and all, and splits
		// the header at its first colon, so the value is a' b c, to
		// the line's end as any header argument's. The shell's
		// reading of those quotes ended it at the ', and b c was
		// kept. Where it cannot tell which reading holds (quotes that
		// the shell would close past the line's end), the longer is
		// taken: a credential's name that curl sends behind a quote
		// still says what the value is, and hiding a byte more only
		// costs the record's readability, keeping one is a leak.
		e := len(a)
		if j := strings.IndexAny(a[i:], "\n\r"); j >= 0 {
			e = i + j
		}
		if j := closingShell(a, i, q.state); j < 0 {
			return len(a)
		} else {
			return max(e, j)
		}
	case q.state != 0:
		if j := closingShell(a, i, q.state); j >= 0 {
			return j
		}
		return len(a)
	case q.line:
		e := len(a)
		if j := strings.IndexAny(a[i:], "\n\r"); j >= 0 {
			e = i + j
		}
		if q.shell {
			// In a shell line, the shell word's end too, its
			// substitutions whole: A:||curl -H X-Api-Key:\ $(echo
			// a<newline>echo PW) ended at the newline in the
			// substitution, and PW was kept.
			e = max(e, substWordEnd(a, i))
		}
		return e
	}
	if e := shellWordEnd(a, i); !strings.Contains(a[i:e], "$(") && !strings.Contains(a[i:e], "`") {
		return e
	}
	// A command substitution in the word (X-Api-Key:\ $(echo PW)):
	// whole, and the word past it.
	return substWordEnd(a, i)
}

// shellWordEnd returns where the shell word going on at i in a ends: at a
// blank outside quotes; '…', "…" and $'…' pieces and backslash-escaped
// bytes are part of it, and a quote left open runs to the end of a.
func shellWordEnd(a string, i int) int { return wordEnd(a, i, i, " \t\n\r", false) }

// lineWordEnd returns where the shell word that starts at i in a ends: as
// shellWordEnd, and also at a byte that ends a command or a word outside
// quotes (shellCommands: a ( or $( among them), which is not part of the
// word. It takes at least one byte. In a PowerShell line (ps) a backtick
// escapes the byte after it, as a backslash does.
func lineWordEnd(a string, i int, ps bool) int {
	if ps {
		return wordEnd(a, i, i+1, " \t\r\v\f\n;&|()<>", true)
	}
	return wordEnd(a, i, i+1, " \t\r\v\f\n;&|`()<>", false)
}

// wordEnd returns where the shell word going on at i in a ends: at a byte
// of stop outside quotes, at or after from (and at a $ before a ( where
// stop holds '('), as shellWordEnd describes. With ps a backtick escapes
// the byte after it outside quotes and in "…", as in PowerShell: read as
// the shell's, "a`"b c" ended at the escaped quote.
func wordEnd(a string, i, from int, stop string, ps bool) int {
	return wordEndSubs(a, i, from, stop, ps, nil)
}

// wordEndSubs is wordEnd, and, where subs is given (not ps), adds to it
// the text of each substitution or expansion that opens in the word's
// double quotes themselves (closingShellSubs).
func wordEndSubs(a string, i, from int, stop string, ps bool, subs *[][2]int) int {
	for i < len(a) {
		var closing int
		switch c := a[i]; {
		case i >= from && (strings.IndexByte(stop, c) >= 0 || c == '$' && i+1 < len(a) && a[i+1] == '(' && strings.IndexByte(stop, '(') >= 0):
			return i
		case c == '\\' || ps && c == '`':
			i += 2
			continue
		case c == '\'':
			closing = strings.IndexByte(a[i+1:], '\'')
			if closing >= 0 {
				closing += i + 1
			}
		case c == '"' && ps:
			closing = closingPowerShell(a, i+1)
		case c == '"' && subs != nil:
			closing = closingShellSubs(a, i+1, subs)
		case c == '"':
			closing = closingShellDouble(a, i+1)
		case c == '$' && i+1 < len(a) && a[i+1] == '\'':
			closing = closingEscaped(a, i+2, '\'')
		default:
			i++
			continue
		}
		if closing < 0 {
			return len(a)
		}
		i = closing + 1
	}
	return min(i, len(a))
}

// closingPowerShell returns the index of the '"' that closes a PowerShell
// "…" string whose text starts at i, or -1: a backtick escapes the byte
// after it, and so does a backslash (which PowerShell keeps as it is: the
// string is read as longer, not shorter).
func closingPowerShell(a string, i int) int {
	for ; i < len(a); i++ {
		switch a[i] {
		case '\\', '`':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// powerShell says whether the argument w runs PowerShell (pwsh,
// powershell.exe), whose quoting the other arguments follow.
func powerShell(w string) bool {
	switch strings.ToLower(strings.TrimSuffix(path.Base(strings.ReplaceAll(w, `\`, "/")), ".exe")) {
	case "pwsh", "powershell":
		return true
	}
	return false
}

// redactPowerShell replaces the values of a's name=value pairs whose
// names hold secrets ($env:PGPASSWORD = "…") to the end of their
// PowerShell word, in which a backtick escapes a quote ("a`"b c"): the
// other rules, which read the shell's quotes, ended such a value at the
// escaped quote and kept the rest. It runs before them.
//
// A PowerShell variable's assignment ($env:PGPASSWORD = …, $password =
// …, psAssignment) takes an expression, which runs to the statement's
// end (psStatementEnd): 'a' + 'b', (Get-Content f), $(echo x) ended at
// the first blank, and the rest, a piece of the secret or the command
// that holds it, was kept.
//
// In a script (line: -Command's) a ; or | ends another value's word too,
// as it ends the statement or the pipeline's command: psql password=x;
// Write-Host hi hid Write-Host with the secret. In an argument of its
// own they are the value's.
func redactPowerShell(a string, line bool) string {
	stop := " \t\r\v\f\n"
	if line {
		stop += ";|"
	}
	return redactValues(a, secretAssign, assignedSecret, func(a string, name, i int) (int, int) {
		if psAssignment(a, name) {
			// The blanks before a } that ends the statement stay
			// with it: hidden, the } was read as part of the value
			// by the rules after this one, and hidden too.
			return i, i + len(strings.TrimRight(a[i:psStatementEnd(a, i)], " \t"))
		}
		return i, wordEnd(a, i, i, stop, true)
	}, nil)
}

// psAssignment says whether the name at i in a is a PowerShell
// variable's or its property's: after a $ and, between them, only a {,
// a drive or scope (env:, script:) and a variable's name and dot:
// $env:NAME, ${env:NAME}, $NAME, $creds.NAME.
func psAssignment(a string, i int) bool {
	k := strings.LastIndexByte(a[:i], '$')
	return k >= 0 && strings.Trim(a[k+1:i], "{:._0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == ""
}

// psStatementEnd returns where the PowerShell statement going on at i in
// a ends: at a ; or a line's end outside quotes and brackets, or at a )
// or } that closes brackets opened before i (the statement stands in a
// block). '…' and "…" (a backtick escapes in it, and outside quotes)
// are passed over whole, (…), {…}, […], $(…) and @(…) to the bracket
// that closes them, and a here-string @'…'@ or @"…"@ to its closing
// line. Anything left open runs to the end of a.
func psStatementEnd(a string, i int) int {
	depth := 0
	for ; i < len(a); i++ {
		switch c := a[i]; c {
		case ';', '\n', '\r':
			if depth == 0 {
				return i
			}
		case '`':
			i++
		case '(', '{', '[':
			depth++
		case ')', '}', ']':
			if depth == 0 {
				return i
			}
			depth--
		case '@':
			if i+2 < len(a) && (a[i+1] == '\'' || a[i+1] == '"') && (a[i+2] == '\n' || a[i+2] == '\r') {
				j := strings.Index(a[i+2:], "\n"+a[i+1:i+2]+"@")
				if j < 0 {
					return len(a)
				}
				i += 2 + j + 2
			}
		case '\'':
			j := strings.IndexByte(a[i+1:], '\'')
			if j < 0 {
				return len(a)
			}
			i += 1 + j
		case '"':
			j := closingPowerShell(a, i+1)
			if j < 0 {
				return len(a)
			}
			i = j
		}
	}
	return len(a)
}

// assignedSecret says whether the name of a name= (secretAssign) holds a
// secret: the variable's name, or an array element's subscript
// (creds[password]). Each is checked on its own: MYSQL_PWD[i], checked
// whole, did not end in _pwd, and its value was kept.
func assignedSecret(name string) bool {
	if v, sub, ok := strings.Cut(name, "["); ok {
		return secretName(v) || secretName(strings.TrimSuffix(sub, "]"))
	}
	return secretName(name)
}

// redactAssignments replaces the values of a's name=value pairs whose
// names hold secrets. Every name= is looked at, those inside the value of
// a name that holds none too: a secret may stand there
// (--dbname="host=db password=X", X= PGPASSWORD=Y), and a search that
// went on after the whole name=value skipped it.
//
// A value runs at least to the end of its shell word (wordScanner; in a
// shell line, outside quotes, to an operator such as ; or &&), and
// further where its blanks are not the end of it: where the name stands
// in shell quotes ('PGPASSWORD=a b', env "AWS_SECRET_ACCESS_KEY=a b",
// $'…'), to their closing quote, or to the end of the shell word they
// are part of when more is joined to it; and in
// an argument of its own (ownArg: env's NAME=a b, docker's -e,
// --env=NAME=…) with no blank before the name, to the end of the
// argument. The value used to end at the first blank, and the rest of the
// secret was kept. Where a shell's quotes hold more than the assignment
// (bash -c "PGPASSWORD=x psql", a quoted conninfo) more than the value is
// taken: a record that hides a word after a secret is fine, one that
// keeps a piece of it is a leak.
//
// A secret's name= inside a value taken is the start of a value too,
// read as its own shell word, and the value taken runs at least to that
// value's end: in 'SECRET=A PGPASSWORD=' 0' the quotes closed SECRET's
// value before PGPASSWORD's ' 0', whose match, inside it, was passed
// over, and 0 was kept. Such a value is not cut at an operator, and
// where the quotes cannot be told apart more is hidden, not less.
func redactAssignments(a string, form argForm) string {
	arg := form == ownArg
	var w wordScanner
	var q shellQuotes
	blank := strings.IndexAny(a, " \t\n\v\f\r") // the first, read once
	// The end that the shell's quotes which opened at quotesAt give the
	// values inside them (inQuotes), found once for all those values,
	// and the end of the last shell word found from quotes that opened
	// in it (wordEnd; from wordAt): the same for all its quotes.
	quotesAt, quotesEnd, quotesClose := -1, 0, 0
	wordAt, wordEnd := -1, -1
	// In a shell line an operator ends the word the quotes stand in, as
	// a blank does: psql "password=x y";echo hi hid ;echo with the
	// secret. A substitution glued to them is part of the word.
	stops, quotedWordEnd := " \t\n\r", shellWordEnd
	if form == shellLine {
		stops, quotedWordEnd = " \t\n\r;&|<>)", substWordEnd
	}
	inQuotes := func(i int) int {
		if q.open != quotesAt {
			// To the closing quote, kept in the record, where the
			// word ends there; else to the word's end.
			quotesAt = q.open
			// In `…` the word ends at its closing backtick
			// (tickLimit): `echo "PGPASSWORD=x"` was read on
			// into the next `…`.
			lim := len(a)
			if form == shellLine {
				lim = q.tickLimit(a, i)
			}
			c := q.end(a, i)
			quotesClose = c
			switch {
			case c >= len(a):
				// Left open, or nested too deep to tell
				// (shellQuotes.deep): the rest of the line.
				quotesEnd = len(a)
			case c+1 >= lim || strings.IndexByte(stops, a[c+1]) >= 0:
				quotesEnd = c
			default:
				if q.open < wordAt || q.open >= wordEnd {
					wordAt, wordEnd = q.open, quotedWordEnd(a[:lim], q.open)
				}
				quotesEnd = wordEnd
			}
		}
		return quotesEnd
	}
	// noValue says whether the name= whose name starts at name and whose
	// match ends at i is ${PGPASSWORD=x} (${TOKENS[0]=x}): paramDefault
	// has hidden its word, which an assignment's value took on past the
	// closing }.
	noValue := func(name, i int) bool {
		if !paramName(a, name) || a[i-1] != '=' {
			return false
		}
		n := a[name : i-1]
		if k := strings.IndexByte(n, '['); k >= 0 && n[len(n)-1] == ']' {
			n = n[:k]
		}
		return strings.Trim(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") == ""
	}
	// A quoted value's end (span, pastQuotes): end, as the word read
	// from its start as though outside its quotes takes it, and c, its
	// quotes' end (inQuotes), where that reading runs past c.
	// The quotes open where the last value taken starts (span), and a
	// scan of its own that reads to the values' ends (sameQuotes).
	var spanFrames [maxShellNesting]byte
	spanDepth := 0
	var qe shellQuotes
	// The end of the value being taken (taking, nested): once it is the
	// line's end, a value nested in it can take no more, and is not
	// read. Read, each value of a line whose values nest in the first,
	// which takes the rest of the line (echo "x PGPASSWORD=a"b
	// repeated), had pastQuotes walk the words to the line's end again:
	// closingShell read 892 bytes a byte of a 64 KiB line.
	taken := 0
	// sameQuotes says whether the quotes open at end, as the shell reads
	// a, are those open where the last value taken starts: the record,
	// which has [REDACTED] for the bytes between, is read by the rules
	// after this one as the shell reads it, and where they differ it
	// reads the words after end in other quotes than the line's.
	sameQuotes := func(end int) bool {
		if end >= len(a) || q.deep {
			return true
		}
		if qe.pos > end || !qe.advance(a, end) || qe.deep || qe.depth != spanDepth {
			return false
		}
		return string(qe.frames[:qe.depth]) == string(spanFrames[:spanDepth])
	}
	// pastQuotes is a nested value's end (nested), read as span reads
	// a value's in quotes that opened before other text: past the value
	// taken, it ends where the record's quotes are those it starts in.
	pastQuotes := func(end, c int) int {
		if end > c && c < len(a) && strings.IndexByte("'\"$", q.state) >= 0 {
			// The word read from i as though outside the quotes
			// (w.end) took their closing quote as opening, and
			// ended inside the quotes of a later word: in echo
			// "PGPASSWORD=PW"; tool --password "a b" it hid PW to
			// the blank in "a b", --password with it, whose value
			// was then kept. Both readings are hidden, and that
			// later word to its end as the shell reads it.
			e, command := shellWordHolding(a, c+1, end)
			if command {
				// The shell runs the text past the quotes as a
				// command's (span): the shell's reading alone.
				return c
			}
			if end = e; end <= taken {
				// Inside the value taken, which closes its
				// quotes in the record (span).
				return end
			}
			// The record is read again by the rules after this
			// one, from inside the quotes the value stood in:
			// they must close where the text after the value
			// stands outside quotes, or every word after it was
			// read as quoted, and a program's option there
			// (sshpass -p PW) was kept. The later word's closing
			// quote is kept to close them; a word that ends
			// otherwise takes the rest of the line.
			closing := byte('"')
			if q.state != '"' {
				closing = '\''
			}
			if end-1 > c && a[end-1] == closing {
				end--
			} else {
				end = len(a)
			}
		}
		return end
	}
	// flagsTaken is the end of a value from i to end taken past blanks
	// after the = (SECRET= --PGPASSWORD X: the shell's SECRET is empty,
	// and --PGPASSWORD a command's flag) that is a secret's --flag: its
	// own value, whose match was hidden with this one, is taken too, as
	// redactLineArgs takes it: the word after it, read as the shell
	// reads it (wordScanner: $'\' 1' is one word; shellWordEnd ended
	// it at the blank after \', and 1 was kept). A nested value's too
	// (SECRET=SECRET= --PGPASSWORD X kept X).
	flagsTaken := func(i, end int) int {
		for j := i; i > 0 && (a[i-1] == ' ' || a[i-1] == '\t') && end > j; {
			if v := bareWord(a[j:end]); !isOption(v) || !secretName(v) {
				break
			}
			k := skipBlank(a, end)
			if k == end || k == len(a) {
				break
			}
			j, end = k, max(w.end(a, k), shellWordEnd(a, k))
		}
		return end
	}
	span := func(a string, name, i int) (int, int, int) {
		if noValue(name, i) {
			return i, i, -1
		}
		if arg && (blank < 0 || blank >= name) {
			return i, len(a), -1
		}
		bare := q.advance(a, i)
		spanFrames, spanDepth = q.frames, q.depth
		quoted := bare && q.state != 0 && strings.IndexByte("'\"$", q.state) >= 0
		start, end, keep := i, 0, -1
		if !quoted {
			end = w.end(a, i)
		}
		if quoted {
			// In '…', "…" or $'…': to their closing quote, as the
			// shell reads the line (shellQuotes), or past it to the
			// end of the shell word that goes on after them, whose
			// pieces the shell joins to the value ("PGPASSWORD=a"b is
			// ab). There the record keeps the closing quote
			// (redactValuesKeeping), so that the rules after this
			// one read the words after the value outside quotes, as
			// the shell does. It kept nothing in its place, and the
			// record's quotes stood open: echo "PGPASSWORD=a"b; curl
			// -u ann:PW h kept PW.
			//
			// Where the quotes opened before other text (a stray quote's,
			// it may be: pg_dump --dbname="host=db password=1'2'" 3"
			// 4" … writes a word of pieces that the shell splits), the
			// word read from i as though outside them (w.end) is hidden
			// too where it runs further, having taken their closing
			// quote as opening: to the end of the word that holds its
			// end, as the shell reads the words past the quotes (echo
			// "x PGPASSWORD=PW"; tool --password "a b" kept a b when the
			// span ended inside "a b"). The record keeps the closing
			// quote there too. Where the quotes open at the name
			// ("PGPASSWORD=…", $'PGPASSWORD=…'), the shell's reading
			// alone: read as well, echo "PGPASSWORD=a"b x; echo "y" hid
			// to the end of "y", and to the line's end where that word
			// did not end in a quote of the value's kind (the quote
			// kept to close the value's in the record then); and each
			// value of such a line read on to the line's end.
			//
			// Where the shell reads the text that the outside reading
			// adds as a command's, an operator in it or an option's
			// word (psql "host=db password=PW" -c "select 1"; echo
			// 'x PGPASSWORD=PW' && curl -v "a b"), the shell's reading
			// alone too: read as well, it hid -c "select 1", or the
			// rest of the line. Which reading holds cannot be told
			// from the line's quotes, which pair the same way in both
			// shapes; a secret written for the outside reading whose
			// piece past the closing quote has a blank and then - or
			// an operator keeps that piece. See bench/HISTORY.md, "A
			// recorded command line's redaction: values in quotes
			// that opened before the name, glued -H, quoted headers'
			// seeds".
			c := inQuotes(i)
			if q.open+1 != name && (q.state != '$' || q.open+2 != name) {
				if end = w.end(a, i); end > c && c < len(a) {
					if e, command := shellWordHolding(a, c+1, end); command {
						end = c
					} else {
						end = e
					}
				}
			}
			end = max(end, c)
			switch cl := quotesClose; {
			case cl >= len(a) || end <= cl:
			case cl == i:
				start = i + 1 // empty in the quotes: the word past them
			default:
				keep = cl
			}
		} else if bare && q.state != 0 {
			end = max(end, inQuotes(i))
		} else if bare && i < len(a) && a[i] == '(' {
			// bash's array TOKENS=(a b), csh's list set NAME = (a
			// b): every word to the closing ) is the secret's, and
			// the value ended at the first blank.
			return i + 1, listEnd(a, i), -1
		} else if form == shellLine {
			// Outside quotes in a shell line the word, and the value,
			// also end at an operator (PGPASSWORD=x;psql -h db): the
			// command after it was hidden with the secret. Read within
			// the value only, which no other value's scan reads again.
			// In `…` it ends at the closing backtick (tickLimit).
			lim := len(a)
			if bare {
				lim = q.tickLimit(a, i)
			}
			end = lineWordEnd(a[:min(end, lim)], i, false)
			if substitution(a[:lim], end) || i < lim && a[i] == '`' {
				end = substWordEnd(a[:lim], i)
			}
		}
		return start, flagsTaken(i, end), keep
	}
	// USER=ann%PW: smbclient's password, after the user (programUserEnv).
	userSpan := func(a string, name, i int) (int, int, int) {
		n := strings.TrimRight(a[name:i], " \t=+\"'}")
		if piece, ok := programUserEnv(n); ok && !assignedSecret(n) {
			start, end, keep := span(a, name, i)
			if j := strings.Index(a[start:end], piece); j >= 0 && start+j+len(piece) < end {
				return start + j + len(piece), end, keep
			}
			return i, i, -1
		}
		return span(a, name, i)
	}
	// The quotes that hold the header lines inside values taken
	// (headersTaken), read once across them: they come in order.
	hq := shellQuotes{line: headerLine.MatchString(a), shell: form == shellLine}
	taking := func(a string, name, i int) (int, int, int) {
		start, end, keep := userSpan(a, name, i)
		if end > start {
			end = headersTaken(a, start, end, &hq)
			taken = end
		}
		return start, end, keep
	}
	nested := func(a string, name, i int) int {
		if noValue(name, i) {
			return i
		}
		if taken >= len(a) {
			return len(a)
		}
		end := w.nestedEnd(a, i)
		if q.advance(a, i) && q.state != 0 {
			// As a value's (span): a nested value's reading ran
			// into a later word's quotes too, and hid a JSON
			// member's name there (env "PGPASSWORD= x" psql && curl
			// -d "{\"token\": \"PW\"}" kept PW).
			c := inQuotes(i)
			end = max(pastQuotes(end, c), c)
		}
		end = flagsTaken(i, end)
		if end > i {
			// As a value's (taking): a nested value that hides a
			// header line's name and ends inside its credential
			// (PGPASSWORD=SECRET=)$' -H'' -H'authorization:Basic "1
			// 2"') kept the rest of it.
			end = headersTaken(a, i, end, &hq)
		}
		if end > taken && !sameQuotes(end) {
			// A nested value that ends in other quotes than the
			// value it stands in starts in (env "PGPASSWORD=x" psql
			// && PGPASSWORD=" y" | git config credential.password PW:
			// the record lost the closing quote of " y", and PW was
			// read as quoted, and kept): the rest of the line.
			end = len(a)
		}
		taken = max(taken, end)
		return end
	}
	secret := func(n string) bool {
		_, user := programUserEnv(n)
		return user || assignedSecret(n)
	}
	return redactValuesKeeping(a, secretAssign, secret, taking, nested)
}

// headersTaken returns where a value taken from start to end in a ends
// once the credentials of the header lines whose names it hides are
// taken with it, each as redactHeaders would take it from the line (it
// reads the record, in which the name is gone): to where headerValue
// takes it, and to the end of the shell's quotes that hold it (q's
// valueEnd). A value that ended inside a credential kept the rest of it:
// SECRET='x -H "Authorization: OAuth '1 2 3' … hid to the 1, and 2 3
// was kept. The calls come in order of start, as q reads.
func headersTaken(a string, start, end int, q *shellQuotes) int {
	for k := nextSecretHeader(a[:end], start); k >= 0; k = nextSecretHeader(a[:end], k) {
		_, e := headerValue(a, k, len(a))
		if e > end {
			// To the end of the shell word that holds it, as
			// the shell reads on from the value's end: cut inside
			// a later word's quotes, the record read the words
			// after it in others.
			e, _ = shellWordHolding(a, end, e)
		}
		end = max(end, e, q.valueEnd(a, k))
	}
	return end
}

// shellWordHolding returns where the shell word ends that holds the byte
// before at, the words read from from as the shell reads them outside
// quotes (at > from), or at where none does (at is past a blank); and
// whether the text from from to at, so read, is a command's (command):
// an operator stands in it (;, &, |, <, >, (, ), a newline), or a word
// that starts with - (an option) starts in it.
func shellWordHolding(a string, from, at int) (end int, command bool) {
	for j := from; j < at; {
		if strings.IndexByte(" \t\r\v\f`\n;&|<>()", a[j]) >= 0 {
			command = command || strings.IndexByte("\n;&|<>()", a[j]) >= 0
			j++
			continue
		}
		command = command || a[j] == '-'
		e := max(substWordEnd(a, j), j+1)
		if e >= at {
			return e, command
		}
		j = e
	}
	return at, command
}

// substitution says whether a command substitution ($(…) or `…`)
// starts at i in a, or at i-1 (the $ of $( taken with the word before).
func substitution(a string, i int) bool {
	if i >= len(a) {
		return false
	}
	return a[i] == '`' || a[i] == '$' && i+1 < len(a) && a[i+1] == '(' || a[i] == '(' && i > 0 && a[i-1] == '$'
}

// substWordEnd returns where the value that starts at i in the shell
// line a ends: as lineWordEnd, but a command substitution in it ($(…),
// to the ) that closes it, past nested ones and quotes, or `…`) is part
// of it, and a word glued after it too. The substitution's text is a
// command that the shell runs for the value, and it may hold the secret
// itself ($(echo PW), `printf %s PW`, $(cat <<<PW)): the value ended at
// the $( or the backtick, and the rest of it was kept. A substitution
// left open runs to the end of a.
func substWordEnd(a string, i int) int {
	for {
		k := wordEnd(a, i, i, " \t\r\v\f\n;&|`()<>", false)
		switch {
		case k < len(a) && a[k] == '`':
			c := closingEscaped(a, k+1, '`')
			if c < 0 {
				return len(a)
			}
			i = c + 1
		case k+1 < len(a) && a[k] == '$' && a[k+1] == '(', k < len(a) && a[k] == '(':
			// $(…), and fish's (…) (set -x PGPASSWORD (cat f)).
			c := listEnd(a, k+strings.Count(a[k:k+1], "$"))
			if c >= len(a) {
				return len(a)
			}
			i = c + 1
		default:
			return k
		}
	}
}

// listEnd returns where the list whose ( is at i in a (an array's
// words, a $(…)'s command) ends: at the ) that closes it, past nested (
// and $( … ), quoted pieces, backslash-escaped bytes and what else
// shellStep nests (a case's patterns: $(case $x in a) echo PW;; esac)
// ended at a)'s ) and kept PW), or at the end of a if none does. It
// reads each byte at most twice.
func listEnd(a string, i int) int {
	if c := closingShell(a, i+1, '('); c >= 0 {
		return c
	}
	return len(a)
}

// redactParams replaces the default, assigned, alternate or error word
// of each parameter expansion in a whose name says it holds a secret
// (paramDefault: ${PGPASSWORD:-[REDACTED]}), and the password in USER's
// (${USER:=ann%[REDACTED]}): := assigns USER, which Samba's clients read
// as -U, and the other operators' words write the password in the line
// all the same. It was kept, as was an array element's word
// (${TOKENS[0]:-x}), whose name was not matched.
func redactParams(a string) string {
	return redactValues(a, paramDefault, paramSecret, func(a string, name, i int) (int, int) {
		start, end := paramEnd(a, name, i)
		n := a[name:i] // the name, its subscript, the operator
		if k := strings.IndexAny(n, "[:-=?+"); n[k] == '[' {
			n = n[:k+strings.IndexByte(n[k:], ']')+1]
		} else {
			n = n[:k]
		}
		piece, user := programUserEnv(n)
		if !user || assignedSecret(n) || headerSecret(envName(n)) {
			return start, end // a secret's name: the whole word
		}
		if j := strings.Index(a[start:end], piece); j >= 0 && start+j+len(piece) < end {
			return start + j + len(piece), end
		}
		return i, i // a user, no password
	}, nil)
}

// paramSecret says whether the word of a parameter expansion whose name
// (paramDefault's) is n holds a secret: n says so as a header's name
// does, or as an assignment's (an element's subscript: creds[password]),
// or it is a program's user variable (USER), whose password
// redactParams finds past its user.
func paramSecret(n string) bool {
	_, user := programUserEnv(n)
	return user || assignedSecret(n) || headerSecret(envName(n))
}

// paramName says whether the name at i in a is a parameter's inside
// ${…}.
func paramName(a string, i int) bool { return i >= 2 && a[i-2:i] == "${" }

// paramEnd returns where the word of a parameter expansion whose
// operator ends at i in a ends: at the } that closes the expansion, past
// nested ${…}, backslash-escaped bytes and quoted pieces ('…', "…",
// $'…': the shell reads ${X-'a}b'} as a}b, and the value ended at the
// quoted } and kept b), or at the end of a if none does. Inside a
// shell's "…" a ' may stand for itself: read as a quote, more is taken,
// not less.
func paramEnd(a string, _, i int) (int, int) {
	depth := 0
	for j := i; j < len(a); j++ {
		closing := j
		switch a[j] {
		case '\\':
			j++
		case '\'':
			closing = strings.IndexByte(a[j+1:], '\'')
			if closing >= 0 {
				closing += j + 1
			}
		case '"':
			closing = closingDouble(a, j+1)
		case '$':
			if j+1 < len(a) && a[j+1] == '\'' {
				closing = closingEscaped(a, j+2, '\'')
			}
		case '{':
			depth++
		case '}':
			if depth == 0 {
				return i, j
			}
			depth--
		}
		if closing < 0 {
			return i, len(a)
		}
		j = max(j, closing)
	}
	return i, len(a)
}

// redactJSON replaces the values of a's JSON members whose names hold
// secrets: a JSON string's text ("password":"[REDACTED]"), another value
// ("pin":[REDACTED]) to the next ',', '}', ']', blank or quote. A
// string written \"…\" inside a shell's double quotes, whose end takes
// the shell's escapes and JSON's together to tell, runs to the end of the
// shell's quotes, or of a where they cannot be told: more than the value,
// not less. They were kept whole.
func redactJSON(a string) string {
	var q shellQuotes
	return redactValues(a, jsonSecret, jsonSecretName, func(a string, _, i int) (int, int) {
		switch {
		case i >= len(a):
			return i, i
		case strings.HasPrefix(a[i:], `\"`):
			if q.advance(a, i) && q.state == '"' {
				return i, q.end(a, i)
			}
			return i, len(a)
		case a[i] == '"':
			if c := closingDouble(a, i+1); c >= 0 {
				return i + 1, c
			}
			return i, len(a)
		}
		if j := strings.IndexAny(a[i:], ",}] \t\r\n'\""); j >= 0 {
			return i, i + j
		}
		return i, len(a)
	}, nil)
}

// jsonSecretName says whether a JSON member named name holds a secret: as
// secretName says, or it is "auth", which holds a registry's base64
// user:password in a Docker config ({"auths": {"r": {"auth": "…"}}}).
// Elsewhere --auth and AUTH= say no more than that a program uses one
// (mongod --auth).
func jsonSecretName(name string) bool { return secretName(name) || strings.EqualFold(name, "auth") }

// redactLineArgs replaces the shell word after a --flag whose name says
// it holds a secret, and a value set under such a name (setValues), in a
// shell line (sh -c "tool --password 'a b'", an ssh command): the rules
// for argv saw only arguments of their own, and such a line kept the
// secret whole. In an argument that is no shell line a blank is rare, and
// more is hidden, not less.
//
// In a POSIX shell's line (line) the word ends at an operator too, and
// takes the substitutions in it: tool --password 'a b';echo hi hid
// ;echo with the secret.
func redactLineArgs(a string, ps, line bool) string {
	wordEnd := shellWordEnd
	if line && !ps {
		wordEnd = substWordEnd
	}
	var q shellQuotes // for the `…` a value stands in (tickLimit)
	next := func(a string, _, i int) (int, int) {
		j := i
		for j < len(a) {
			switch {
			case a[j] == ' ' || a[j] == '\t':
				j++
				continue
			case line && !ps && strings.HasPrefix(a[j:], "\\\n"):
				// A backslash-newline between the flag and its
				// value, which the shell removes (tool --password
				// \<newline> PW): lineJoin cuts one that joins
				// bytes, so here it stands beside a blank, and PW
				// is the flag's next word. It was read as the
				// value, and PW kept.
				j += 2
				continue
			}
			break
		}
		if j == i {
			return i, i // no blank after the flag: no value of its own
		}
		if line && !ps {
			// In `…` the value ends at its closing backtick.
			a = a[:q.tickLimit(a, j)]
		}
		start, end := j, wordEnd(a, j)
		if w := a[j:end]; strings.Contains(w, "$(") || strings.ContainsAny(w, "`") || strings.HasPrefix(w, "(") {
			// A command substitution, whose text is a command that
			// may hold the secret ($(echo PW)): to its end.
			end = max(end, substWordEnd(a, j))
		}
		// A value that is a secret's --flag itself (tool --secret
		// --token X) may be that flag instead: its value, whose own
		// match this one passes over, is taken too.
		for w := bareWord(a[j:end]); isOption(w) && secretName(w); w = bareWord(a[j:end]) {
			k := skipBlank(a, end)
			if k == end || k == len(a) {
				break
			}
			j, end = k, wordEnd(a, k)
		}
		return start, end
	}
	return redactSetValues(redactValues(a, lineFlag, secretName, next, nil), ps)
}

// redactSetValues replaces the values that the commands of the shell line
// a set under a secret's name (setValues), each to the end of its shell
// word. The words are the shell's (shellCommands): a set or config glued
// to a backtick or $( used to be missed, and so was a name after options
// (git config --global NAME, aws configure set --profile p NAME, fish's
// set -x NAME) or after setenv.
func redactSetValues(a string, ps bool) string {
	// The spans to hide, in the order the commands are read: a
	// command in "$(…)" is read before the command whose word holds
	// it (shellCommands), so they are sorted and merged at the end.
	var spans [][2]int
	var starts []int // where each word's secret starts, or -1
	shellCommands(a, ps, func(words [][2]int, sub bool) {
		word := func(k int) string { return a[words[k][0]:words[k][1]] }
		starts = starts[:0]
		for range words {
			starts = append(starts, -1)
		}
		last := len(words) - 1
		secretAt := func(k int, c secretCut) {
			if sub && k == last {
				// A substitution, whose text is a command: all of
				// it, where its secret starts cannot be told, and
				// what is glued before it past a user (ann:$(…)).
				starts[k] = max(c.start(word(k)), 0)
			} else if s := c.start(word(k)); s >= 0 && (starts[k] < 0 || s < starts[k]) {
				starts[k] = s
			}
		}
		setValues(len(words), word, secretAt)
		programValues(len(words), word, secretAt)
		for k, s := range starts {
			if s < 0 {
				continue
			}
			if sub && k == last {
				start := words[k][0]
				words[k][1] = substWordEnd(a, start)
				if start+s < len(a) && a[start+s] == '(' {
					// A list (csh's set NAME = (a b)) or fish's (…):
					// its parentheses kept where nothing is glued
					// after them, as an array's are.
					s++
					if c := listEnd(a, start+s-1); c+1 == words[k][1] {
						words[k][1] = c
					}
				}
			}
			w := word(k)
			if quotedEnd(w, s) == s || s == 0 && (w == "''" || w == `""`) {
				// An empty secret: see secretCut.apply. ssh-keygen -N ''
				// sets none, which a reviewer may need to see.
				continue
			}
			spans = append(spans, [2]int{words[k][0] + s, words[k][0] + quotedEnd(w, s)})
		}
	}, func(from, to int) { spans = append(spans, [2]int{from, to}) })
	if len(spans) == 0 {
		return a
	}
	slices.SortFunc(spans, func(x, y [2]int) int { return x[0] - y[0] })
	var b strings.Builder
	at := 0
	for _, sp := range spans {
		if sp[1] <= at {
			continue // inside a span already hidden
		}
		if sp[0] >= at {
			b.WriteString(a[at:sp[0]])
			b.WriteString(RedactedArg)
		}
		at = sp[1]
	}
	b.WriteString(a[at:])
	return b.String()
}

// setValues calls value(k) for each of n words (word(k)) that a command
// sets under a name that says it holds a secret: the word after that name
// where the name follows a setter word (isSetter) and options: git config
// --file F --add credential.password X, aws configure set --profile p
// aws_secret_access_key X, setenv PGPASSWORD X, fish's set -gx
// PGPASSWORD X, Set-Item -Path Env:PGPASSWORD -Value X. An option known
// to take the word after it as its argument (setterOptionArgs: --file F)
// is read past with it. Another may take one or not (--global), so the
// word after it and the word after that are both taken as names: more
// may be hidden, not less. A value after '=' (csh's set NAME = X) or after
// -Value or --body (PowerShell, gh secret set) is the word after those.
// After set NAME (fish's list) each word to the command's end that is no
// option is a value too.
// c says where in the word the secret starts: the whole word, or past
// the user of a user%password under a program's user variable (setenv
// USER ann%PW, fish's set -x USER ann%PW: programUserEnv), which were
// read only as NAME=value and kept the password.
func setValues(n int, word func(k int) string, value func(k int, c secretCut)) {
	name := false     // words[m] may be a name
	var setter string // the last setter word, in lower case
	valueAt := -1     // the word after a -Value before the name, or -1
	tool := false     // the setter is a tool's subcommand (toolSet)
	for m := 0; m < n; m++ {
		w := bareWord(word(m))
		if isSetter(w) {
			name, setter, valueAt = true, strings.ToLower(w), -1
			tool = m > 0 && toolSet(bareWord(word(m-1)))
			continue
		}
		if !name {
			continue
		}
		opt := isOption(w)
		if opt && slices.Contains(setterOptionArgs[setter], w) {
			m++ // its argument, no name: the word after it may be one
			continue
		}
		if opt && valueParam(w) && (m+1 >= n || !psParameter(bareWord(word(m+1)))) {
			// PowerShell's parameters come in any order: Set-Item
			// -Value X -Path Env:PGPASSWORD kept X, which was looked
			// for after the name only. A parameter after -Value is no
			// value of it (-Value -Path Env:PGPASSWORD X hid -Path and
			// kept X): the value is then looked for after the name.
			valueAt = m + 1
		}
		var c secretCut
		// An element's name (fish's set -x MYSQL_PWD[1]) is checked as
		// an assignment's is: MYSQL_PWD[1] did not end in _pwd.
		secret := !opt && assignedSecret(w)
		if piece, ok := programUserEnv(w); !opt && !secret && ok {
			secret, c = true, secretCut{after: []string{piece}}
		}
		if (setter == "set-content" || setter == "add-content") && !strings.HasPrefix(strings.ToLower(w), "env:") {
			secret = false // a file's content: the name says less
		}
		if secret && valueAt >= 0 && valueAt < m {
			value(valueAt, c)
		} else if secret {
			v := m + 1
			if v < n {
				if vw := strings.ToLower(bareWord(word(v))); vw == "=" || valueParam(vw) {
					v++
				}
			}
			if v < n {
				value(v, c)
			}
			if setter == "set" && v == m+1 && v < n {
				// fish's set -x NAME a b sets a list, which it
				// exports joined by blanks: every word after the name
				// is the secret, and only the first was hidden. The
				// options among them are aws configure set's or npm
				// config set's (--profile p), kept; fish reads no
				// option after the name, and its list's -b or
				// --profile p are words of the secret, which were
				// kept as options. Nothing after them is a name, and
				// the words are read once.
				for k := v + 1; k < n; k++ {
					if w := bareWord(word(k)); tool && isOption(w) {
						if slices.Contains(setterOptionArgs[setter], w) {
							k++
						}
						continue
					}
					value(k, secretCut{})
				}
				return
			}
		}
		name = opt || m > 0 && isOption(bareWord(word(m-1)))
	}
}

// toolSet says whether a set after the word w is a tool's subcommand
// (aws configure set, npm, pnpm, yarn or git config set), whose options
// may follow the value, rather than a shell's set (fish's, csh's).
func toolSet(w string) bool {
	switch strings.ToLower(w) {
	case "configure", "config":
		return true
	}
	return false
}

// setterOptionArgs are the options, by the setter word they follow,
// that take the word after them as an argument that is no name: a file,
// a type, a profile. Read as a possible name, git config --file
// secret.cfg user.name ann took secret.cfg for a secret's name and hid
// user.name. Only those known for each setter: fish's set -f takes none,
// and PowerShell's -Path is followed by the name.
var setterOptionArgs = map[string][]string{
	// git config, and git 2.46's git config set.
	"config": {"--file", "-f", "--blob", "--type", "--default", "--comment"},
	// aws configure set, git config set.
	"set": {"--profile", "--region", "--output", "--endpoint-url", "--file", "--blob", "--type", "--default", "--comment"},
}

// isSetter says whether w is a word after which a command takes a name and
// the value to set it to: set (aws configure set, npm config set, fish,
// csh), config (git config), setenv (csh, launchctl), PowerShell's
// Set-Item, New-Item, Set-Variable, Set-Content and Add-Content (of an
// Env: name only: setValues) and [Environment]::SetEnvironmentVariable.
func isSetter(w string) bool {
	switch w = strings.ToLower(w); w {
	case "set", "config", "setenv", "set-item", "new-item", "set-variable", "set-content", "add-content":
		return true
	}
	return strings.HasSuffix(w, "::setenvironmentvariable")
}

// valueParam says whether the option w names the value a setter sets:
// PowerShell's -Value, as it takes it shortened to -Va or more (-Val),
// in any case, --value, and gh secret set's --body and -b.
func valueParam(w string) bool {
	w = strings.ToLower(w)
	switch w {
	case "--value", "--body", "-b":
		return true
	}
	return len(w) >= 3 && strings.HasPrefix("-value", w)
}

// psParameter says whether PowerShell reads the word w as a parameter's
// name (-Path), not as an argument: a - and a digit start a number
// (-Value -5).
func psParameter(w string) bool { return isOption(w) && (w[1] < '0' || w[1] > '9') }

// isOption says whether the word w is an option (-x, --global, -Path).
func isOption(w string) bool { return len(w) > 1 && w[0] == '-' }

// bareWord is the shell word w without its quotes, backslashes and
// backticks (PowerShell's escapes: `Set-Item is Set-Item, and was missed),
// and without a comma after it (PowerShell's arguments): what a name is
// checked as. A POSIX line's words hold no backtick (shellCommands).
func bareWord(w string) string {
	if strings.ContainsAny(w, "'\"\\`") {
		w = strings.Map(func(r rune) rune {
			if r == '\'' || r == '"' || r == '\\' || r == '`' {
				return -1
			}
			return r
		}, w)
	}
	return strings.TrimSuffix(w, ",")
}

// shellCommands calls fn with the words (where each starts and ends in a)
// of each simple command of the shell line a, in order: the commands end
// at a newline, ;, &, |, a backtick, ( and ), and $( (a ( glued to a word,
// PowerShell's call, does not end one); < and > end a word. A word is as
// lineWordEnd takes it (ps: a PowerShell line, where a backtick escapes
// instead of ending a command). It reads each byte of a once.
//
// Where a command's words go on into a command substitution ($(…), `…`,
// fish's (…): set -x PGPASSWORD (cat f)), fn's sub is true and the last
// word is the substitution's opening bytes only, a word of the command
// whose value it is: its end (substWordEnd) is read where it is hidden
// only. Those words were not seen, and $(echo PW) set under a secret's
// name was kept.
//
// A command substitution inside a word's double quotes ("$(…)", "`…`",
// and those in a "${…}" there) is a command line too, whose commands fn
// is given before the command whose word holds it (quotedSubstitutions):
// read as one word of that command, echo "$(curl -u ann:PW h)" and
// "$(git config credential.password PW)" kept PW. Each such text is
// read again, once per level it is nested in, so the scan follows them
// maxQuotedSubstitutions deep: past that, and where a substitution is
// left open (it runs to the end of the line, or of the text it stands
// in), the text is given to hide whole (more hidden, not less). A
// substitution the scan finds left open is either a line the shell
// rejects or one whose reading the scan lost (x="$(case … fi esac)",
// before fi and done were read), and read as commands, the line's
// commands after it stood behind its closing " read as an opening one:
// curl -u ann:PW there kept PW. Reading it also read the rest of the
// line once more (TestRedactSubstitutionsLinear's worst unit, 3.86
// bytes read per byte, is 2.45 hidden).
func shellCommands(a string, ps bool, fn func(words [][2]int, sub bool), hide func(from, to int)) {
	shellCommandsIn(a, 0, len(a), ps, 0, fn, hide)
}

// maxQuotedSubstitutions bounds how deep shellCommands reads command
// substitutions in double quotes nested in one another: each level reads
// its text again (its words' ends, its substitutions' ends).
const maxQuotedSubstitutions = 4

// shellCommandsIn is shellCommands over a[lo:hi], a command line nested
// depth double-quoted substitutions deep.
func shellCommandsIn(a string, lo, hi int, ps bool, depth int, fn func(words [][2]int, sub bool), hide func(from, to int)) {
	var words [][2]int
	flush := func(sub int, n int) {
		if k := len(words) - 1; sub >= 0 && k >= 0 && words[k][1] == sub {
			words[k][1] = sub + n // glued to the word: part of it (-u ann:$(…))
		} else if sub >= 0 && k >= 0 {
			words = append(words, [2]int{sub, sub + n})
		}
		if len(words) > 0 {
			fn(words, sub >= 0)
		}
		words = words[:0]
	}
	end := -1       // where the last word ended
	inTick := false // inside a POSIX line's `…`
	tickEnd := hi   // where that `…` closes: its first unescaped backtick
	for i := lo; i < hi; {
		switch c := a[i]; {
		case c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' || c == '<' || c == '>':
			i++
		case c == '\\' && !ps && i+1 < hi && a[i+1] == '\n':
			// A backslash-newline where a word starts, which the
			// shell removes: lineJoin cuts one that joins bytes, so
			// this one separates words (sshpass -p \<newline> PW).
			// Read as a word, it was the option's value, and PW kept.
			i += 2
		case c == '(' && i == end:
			i++
		case c == '`' && !ps:
			if inTick {
				flush(-1, 0)
				tickEnd = hi
			} else {
				flush(i, 1)
				if c := closingEscaped(a[:hi], i+1, '`'); c >= 0 {
					tickEnd = c
				}
			}
			inTick = !inTick
			i++
		case c == '(':
			flush(i, 1)
			i++
		case c == '\n' || c == ';' || c == '&' || c == '|' || c == ')':
			flush(-1, 0)
			i++
		case c == '$' && i+1 < len(a) && a[i+1] == '(':
			flush(i, 2)
			i += 2
		default:
			if ps {
				end = min(lineWordEnd(a, i, ps), hi)
			} else {
				// A word in `…` is read to its closing backtick at
				// most, as the shell reads it: the shell ends `…`
				// at its first unescaped backtick, quotes or not.
				// A quote left open in it (a header's credential
				// hidden with its closing quote: `curl -H
				// 'X-Api-Key: [REDACTED]` | git config
				// credential.password PW) ran the word past it to
				// the line's end, and PW was kept. Read in a cut
				// there, the bytes past it are not read again for
				// each word left open in each `…`.
				to := hi
				if inTick {
					to = tickEnd
				}
				end = quotedSubstitutions(a[:to], i, depth, fn, hide)
			}
			words = append(words, [2]int{i, end})
			i = end
		}
	}
	flush(-1, 0)
}

// quotedSubstitutions returns where the shell word that starts at i in
// a ends, as lineWordEnd does (not ps), and reads the command
// substitutions inside its double quotes (shellCommands): $(…) and `…`,
// and the text of a ${…}, where they may stand too ("${X:-$(…)}"), as
// command lines of their own. Their ends are those the word's own scan
// finds (closingShellSubs), so a byte of the word is read once more per
// level it is nested in (see shellCommands for the bound). A
// substitution left open runs to the word's end. a ends where the
// command line the word stands in ends.
func quotedSubstitutions(a string, i, depth int, fn func(words [][2]int, sub bool), hide func(from, to int)) int {
	var subs [][2]int
	end := wordEndSubs(a, i, i+1, " \t\r\v\f\n;&|`()<>", false, &subs)
	for _, sub := range subs {
		from, to := sub[0], min(sub[1], end)
		if from >= to {
			continue
		}
		if depth+1 >= maxQuotedSubstitutions || sub[1] == len(a) {
			hide(from, to) // more hidden, not less
		} else {
			shellCommandsIn(a, from, to, false, depth+1, fn, hide)
		}
	}
	return end
}

// closingShellSubs is closingShellDouble, and adds to subs the text of
// each substitution or expansion that opens in the string itself ($(…),
// `…`, ${…}); one left open runs to the end of a.
func closingShellSubs(a string, i int, subs *[][2]int) int {
	sub := func(from, to int) { *subs = append(*subs, [2]int{from, to}) }
	start := i
	defer func() { shellScanned.Add(int64(i - start)) }()
	var open [maxShellNesting]byte
	open[0] = '"'
	depth := 1
	from := -1
	for i < len(a) {
		next, push, pop := shellStep(a, i, open[depth-1])
		if pop {
			if depth--; depth == 0 {
				return i
			}
			if depth == 1 && from >= 0 {
				sub(from, i)
				from = -1
			}
		}
		switch {
		case push == '!' || push != 0 && depth == len(open):
			if from >= 0 {
				sub(from, len(a))
			}
			return -1
		case push != 0:
			if depth == 1 {
				from = next
			}
			open[depth] = push
			depth++
		}
		i = next
	}
	if from >= 0 {
		sub(from, len(a))
	}
	return -1
}

// redactValues replaces by RedactedArg the value after each match of re
// in a (a name= or name:) whose first submatch, the name, secret accepts:
// span(a, start of the name, end of the match) says where that value
// starts and ends. A match inside a value already taken is passed over,
// or, where nested is given, read as the start of a value of its own too:
// nested(a, start of the name, end of the match) says where that value
// ends, and the value taken runs at least as far.
func redactValues(a string, re *regexp.Regexp, secret func(string) bool, span func(a string, name, i int) (start, end int), nested func(a string, name, i int) int) string {
	return redactValuesKeeping(a, re, secret, func(a string, name, i int) (int, int, int) {
		start, end := span(a, name, i)
		return start, end, -1
	}, nested)
}

// redactValuesKeeping is redactValues where span also says which byte of
// the value it takes stays in the record (keep; -1 for none): the quote
// that closes the quotes a value starts in, where the shell word goes on
// past them ("PGPASSWORD=a"b, -H "X-Api-Key: a"b). The record has
// RedactedArg on each side of it. Hidden with the value, the quotes
// stood open in the record where the line's had closed, and the rules
// after, which read the record as the shell reads it, read the commands
// after the value as quoted text: echo "PGPASSWORD=a"b; curl -u ann:PW h
// kept PW. A value that nested values ran past (end moved on) keeps
// nothing: those end in the quotes the value starts in (sameQuotes).
func redactValuesKeeping(a string, re *regexp.Regexp, secret func(string) bool, span func(a string, name, i int) (start, end, keep int), nested func(a string, name, i int) int) string {
	var b strings.Builder
	at := 0
	start, end := 0, -1 // the value being taken, or none
	keep, spanEnd := -1, -1
	flush := func() {
		if end >= 0 {
			b.WriteString(a[at:start])
			b.WriteString(RedactedArg)
			if keep > start && keep < end && end == spanEnd {
				b.WriteByte(a[keep])
				if keep+1 < end {
					b.WriteString(RedactedArg)
				}
			}
			at, end = end, -1
		}
	}
	for _, m := range re.FindAllStringSubmatchIndex(a, -1) {
		if m[0] < max(at, end) {
			if nested != nil && end >= 0 && secret(a[m[2]:m[3]]) {
				end = max(end, nested(a, m[2], m[1]))
			}
			continue
		}
		if !secret(a[m[2]:m[3]]) {
			continue
		}
		s, e, k := span(a, m[2], m[1])
		if e == s {
			continue
		}
		flush()
		start, end, keep, spanEnd = s, e, k, e
	}
	flush()
	if at == 0 {
		return a
	}
	b.WriteString(a[at:])
	return b.String()
}

// wordScanner finds where a shell word ends: unquoted, quoted ('…', "…",
// $'…') and backslash-escaped pieces with nothing between them, which the
// shell joins into one value (PGPASSWORD=a"b c"\ d is "ab c d"). The value used
// to end at the first quote or space, and keep the pieces after it. It
// remembers a quote found unclosed, so that the words of one line cost
// time linear in its length.
type wordScanner struct {
	// One more than where a ' (") was found with no closing one after
	// it, or 0: none after it has one either. Words read from before it
	// may still close one there.
	openSingle, openDouble int
	// One more than where a "…" read as the shell reads it, its
	// substitutions nested (closingShellDouble), was found left open, or
	// 0. Unlike openDouble's, a later quote may still close in that
	// reading (its substitutions nest otherwise from there); it is taken
	// as open all the same, more hidden, not less, so that a line of
	// values each left open is read to its end once, not once a value.
	openShell int
	// For nestedEnd: which of its reads (one more than its index in
	// ends) read each byte of a outside quotes, or 0; and where each read
	// ended.
	seen []int32
	ends []int
}

// end returns where the word starting at i in a ends. A quote left open
// as the word's first piece runs to the end of a; left open after other
// pieces (password=X" closing a conninfo's quotes) it ends the word, which
// would otherwise take the rest of the line with it.
func (w *wordScanner) end(a string, i int) int { return w.read(a, i, 0) }

// nestedEnd is end for words that may start inside a word read before
// (the values nested in a value: redactAssignments), in order of where
// they start. A read that comes to a byte that an earlier one read
// outside quotes ends where that one did, so that each byte is read a
// bounded number of times: a line of nested values, each read to the
// line's end, took time quadratic in its length.
func (w *wordScanner) nestedEnd(a string, i int) int {
	if w.seen == nil {
		w.seen = make([]int32, len(a))
	}
	w.ends = append(w.ends, 0)
	id := len(w.ends)
	end := w.read(a, i, int32(id))
	w.ends[id-1] = end
	return end
}

// read is end, for nestedEnd's read id where id > 0.
func (w *wordScanner) read(a string, i int, id int32) int {
	start := i
	for i < len(a) {
		if id > 0 {
			if s := w.seen[i]; s > 0 && i > start {
				return w.ends[s-1]
			}
			w.seen[i] = id
		}
		var closing int // the closing quote's index, or -1
		switch c := a[i]; c {
		case ' ', '\t', '\n', '\v', '\f', '\r':
			return i
		case '\\':
			i = min(i+2, len(a))
			continue
		case '$':
			if i+1 >= len(a) || a[i+1] != '\'' {
				i++
				continue
			}
			// $'…', in which \' does not close: read as '…', it
			// ended at the escaped quote. A $'…' left open has no
			// unescaped ' after it, so no other $' either: it is
			// read once.
			closing = closingEscaped(a, i+2, '\'')
		case '\'':
			closing = -1
			if w.openSingle == 0 || i < w.openSingle-1 {
				if j := strings.IndexByte(a[i+1:], '\''); j >= 0 {
					closing = i + 1 + j
				} else {
					w.openSingle = i + 1
				}
			}
		case '"':
			closing = -1
			if id > 0 {
				// A nested value, inside one read with its
				// substitutions (end): read from inside that one,
				// the shell's nesting would start anew at each
				// quote, and each read could run far.
				if w.openDouble == 0 || i < w.openDouble-1 {
					if closing = closingDouble(a, i+1); closing < 0 {
						w.openDouble = i + 1
					}
				}
			} else if w.openShell == 0 || i < w.openShell-1 {
				if closing = closingShellDouble(a, i+1); closing < 0 {
					w.openShell = i + 1
				}
			} else if w.openDouble == 0 || i < w.openDouble-1 {
				// Past a "…" found open in the shell's reading, this
				// quote was taken as open unread, and the word ended
				// at it: in env "PGPASSWORD=x" psql | grep
				// $(tool --password=PW" a"b) the first value's "…"
				// runs open to the line's end (its substitution's
				// quotes nest), and --password's value ended at
				// PW, a"b kept. It is read as plain "…" (closingDouble,
				// each byte once more at most), as a nested value's.
				if closing = closingDouble(a, i+1); closing < 0 {
					w.openDouble = i + 1
				}
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
func closingDouble(a string, i int) int { return closingEscaped(a, i, '"') }

// maxShellNesting bounds the quotes and substitutions nested in one
// another that closingShell and shellQuotes follow. Deeper nesting is
// read as left open: the value then runs to the end of the line, more
// hidden, not less. A shell line that a person or an agent writes nests
// a few deep; a hostile one cannot make the scan hold more than this.
const maxShellNesting = 32

// shellScanned counts the bytes closingShell has read, for
// TestRedactSubstitutionsLinear, which bounds it by the line's length.
var shellScanned atomic.Int64

// closingShellDouble returns the index of the '"' that closes a shell's
// double-quoted string whose text starts at i, or -1, as the shell reads
// it: a command substitution inside it ($(…), `…`) is a command of its
// own, whose quotes do not close the string, so "$(printf "%s" "a b")"
// is one string, and so is a parameter expansion's word ("${X:-"a b"}").
// closingDouble ended it at the inner quote, and a secret's value with
// it: PGPASSWORD="$(printf "%s" "a b")" kept b. See shellStep.
func closingShellDouble(a string, i int) int { return closingShell(a, i, '"') }

// closingShell returns where the frame f (shellStep's) whose text starts
// at i in a closes, or -1 where it is left open or nests deeper than
// maxShellNesting. It reads each byte from i once, keeping the frames
// open in a fixed array: no recursion, and no more memory for a longer
// line.
func closingShell(a string, i int, f byte) int {
	start := i
	defer func() { shellScanned.Add(int64(i - start)) }()
	var open [maxShellNesting]byte
	open[0] = f
	depth := 1
	for i < len(a) {
		next, push, pop := shellStep(a, i, open[depth-1])
		if pop {
			if depth--; depth == 0 {
				return i
			}
		}
		switch {
		case push == '!' || push != 0 && depth == len(open):
			return -1
		case push != 0:
			open[depth] = push
			depth++
		}
		i = next
	}
	return -1
}

// shellStep reads the byte at i in a, in the frame top the shell reads
// it in, and returns where the next byte to read is and whether a frame
// opens there (push) or top closes (pop; both: top is replaced by push).
// The frames: 0, outside quotes; the single quote and '$', inside '…'
// and $'…'; '"', inside "…"; '(', inside $(…) or a ( within one; '`',
// inside `…` within "…" or $(…); '{', inside ${…} within "…", and 'U'
// within $(…), where quotes nest as outside them. Inside "…" a
// substitution or an expansion opens, whose text is read anew: quotes,
// parentheses and substitutions nest in $(…), and "…" in ${…}, as the
// shell nests them. Inside `…` a backslash escapes and the next backtick
// closes (POSIX: its quotes do not count). Outside quotes a backtick
// opens none (shellCommands reads it), and neither does a ( outside a
// substitution.
//
// In $(…) the shell parses commands (bash's parse_comsub), and the )
// that ends a case pattern does not close the substitution: read as
// nesting, PGPASSWORD="$(case $x in a) echo "b c";; esac)" ended at the
// pattern's ) and kept c. A case word opens 'h' (its word, to in), a
// pattern list 'p' at its start (where esac ends the case) and 'q' past
// it (a leading ( and | read over, ) ends it), a case item's commands
// 'c' at a command's start (where esac ends the case) and 'd' past it
// (;; ;& ;;& start the next pattern list). next == i where a frame is
// replaced or closed without reading the byte, which the new top reads:
// a byte is read at most twice.
//
// Where the scan cannot follow the shell it takes more, not less: a case
// word anywhere is read as one where a word in follows it, an esac after
// a | or a subshell's ) as an argument, an unmatched ) in a case item as
// none. A comment in $(…) runs to its line's end. A here-document in
// $(…), whose body the shell reads as text to its delimiter's line, is
// passed over to that line where every shell reads it alike
// (hereDocumentEnd; its body's bytes are read once more), and otherwise
// not followed: push '!' says the quotes are to be read as left open.
func shellStep(a string, i int, top byte) (next int, push byte, pop bool) {
	c := a[i]
	two := func(b byte) bool { return i+1 < len(a) && a[i+1] == b }
	switch top {
	case '\'':
		return i + 1, 0, c == '\''
	case '`', '$':
		if c == '\\' {
			return i + 2, 0, false
		}
		return i + 1, 0, c == '`' && top == '`' || c == '\'' && top == '$'
	case '"', '{':
		switch {
		case c == '\\':
			return i + 2, 0, false
		case c == '"' && top == '"', c == '}' && top == '{':
			return i + 1, 0, true
		case c == '"', c == '`':
			return i + 1, c, false
		case c == '$' && two('('):
			return i + 2, '(', false
		case c == '$' && two('{'):
			return i + 2, '{', false
		}
		return i + 1, 0, false
	case 'p', 'c':
		// A pattern list's start, or a command's in a case item: esac
		// ends the case (bash reads it so even before a ), as in
		// esac)), anything else starts the list or the command, read
		// again in 'q' or 'd'; a pattern's leading ( is read over.
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			return i + 1, 0, false
		case c == '\\' && two('\n') && (i == 0 || i+2 == len(a) || lineBlank(a[i-1]) || lineBlank(a[i+2])):
			// A backslash-newline that joins nothing (lineJoin),
			// which the shell removes: ;; \<newline> esac ends the
			// case.
			return i + 2, 0, false
		case shellKeyword(a, i, "esac"):
			return i + 4, 0, true
		case c == '(' && top == 'p':
			return i + 1, 'q', true
		case c == '(' && top == 'c':
			// A subshell: past its ), a command's start still, where
			// esac ends the case (a) (echo x) esac).
			return i + 1, '(', false
		case top == 'c' && shellKeyword(a, i, "fi"):
			// A compound command's end (if …; fi, while …; done),
			// after which bash and dash read a reserved word: esac
			// there ends the case (a) if x; then y; fi esac). Read
			// as an argument, it did not, the substitution was left
			// open, and the line's commands after it were read as
			// its words: curl -u ann:PW after it kept PW.
			return i + 2, 0, false
		case top == 'c' && shellKeyword(a, i, "done"):
			return i + 4, 0, false
		case c == '{' && top == 'c' && shellKeyword(a, i, "{"):
			// A group, to its } (groupEnd), past which esac ends the
			// case as after a subshell (a) { echo x; } esac).
			return i + 1, 'B', false
		}
		return i, top + 1, true // 'p'+1 is 'q', 'c'+1 'd'
	case 'B':
		switch {
		case c == '}' && shellKeyword(a, i, "}") && groupEnd(a, i):
			return i + 1, 0, true
		case c == '{' && shellKeyword(a, i, "{"):
			// A group in it, or a { that is an argument: read as
			// a group, whose } the outer one's is not taken for.
			return i + 1, 'B', false
		}
	}
	switch {
	case c == '\\':
		return i + 2, 0, false
	case c == '\'' || c == '"':
		return i + 1, c, false
	case c == '$' && two('\''):
		return i + 2, '$', false
	case c == '$' && two('('):
		return i + 2, '(', false
	case top == 0:
		return i + 1, 0, false
	case c == '$' && two('{'):
		return i + 2, 'U', false
	case c == '`':
		return i + 1, c, false
	case top == 'U':
		return i + 1, 0, c == '}'
	case strings.HasPrefix(a[i:], "<<<"):
		return i + 3, 0, false // a here-string: read as one
	case c == '<' && hereDocument(a, i):
		if e := hereDocumentEnd(a, i); e >= 0 {
			return e, 0, false
		}
		return i + 2, '!', false
	case c == '#' && commentStart(a, i):
		// A comment, to its line's end: its ) closes nothing (read
		// as nesting, $(echo a # )<newline>echo "b c") ended there).
		if j := strings.IndexByte(a[i:], '\n'); j >= 0 {
			return i + j, 0, false
		}
		return len(a), 0, false
	}
	// A command's words: in $(…), a case's word, pattern list or item.
	switch {
	case top == 'h' && shellKeyword(a, i, "in"):
		return i + 2, 'p', true
	case top == 'h' && strings.IndexByte(";&|()<>", c) >= 0:
		return i, 0, true // no case: an operator before in
	case top == 'h':
		return i + 1, 0, false
	case top == 'q':
		if c == ')' {
			return i + 1, 'c', true
		}
		return i + 1, 0, false
	case shellKeyword(a, i, "case") && !shellArgument(a, i):
		return i + 4, 'h', false
	case c == '(':
		return i + 1, c, false
	case c == ')':
		return i + 1, 0, top == '('
	case c == ';' && top != 'd' && (two(';') || two('&')):
		// ;; or ;& outside a case item: a syntax error, past which
		// the shell's reading cannot be told (esac;; b) "x y"…
		// after a case ended): read as left open, the rest hidden.
		return i, '!', false
	case top != 'd':
		return i + 1, 0, false
	case c == ';' && (two(';') || two('&')):
		if i+2 < len(a) && a[i+1] == ';' && a[i+2] == '&' {
			return i + 3, 'p', true
		}
		return i + 2, 'p', true
	case c == ';' || c == '\n' || c == '&' && !two('&') && a[i-1] != '&' && a[i-1] != '|' && a[i-1] != '>' && a[i-1] != '<':
		return i + 1, 'c', true
	}
	return i + 1, 0, false
}

// groupEnd says whether the } at i in a closes a group ({ …; }) as the
// shell reads it: a reserved word, after a ;, & or newline that no
// backslash escapes (past blanks), or after another group's }. Where it
// cannot tell, the group is read as open: the case it stands in goes on,
// and more is hidden, not less.
func groupEnd(a string, i int) bool {
	j := i
	for j > 0 && (a[j-1] == ' ' || a[j-1] == '\t') {
		j--
	}
	if j == 0 || strings.IndexByte(";&\n}", a[j-1]) < 0 {
		return false
	}
	return j < 2 || a[j-2] != '\\'
}

// hereDocumentEnd returns where the text after the here-document whose
// << is at i in a (inside $(…): shellStep) starts, past its body and its
// delimiter's line, or -1 where the scan cannot tell it as every shell
// would: the rest of its line holds more than plain words (quotes,
// substitutions, another here-document, an operator that ends the
// substitution, a comment), a line of the body starts with the
// delimiter and goes on (bash 5.2 ends the body at EOF) and the
// substitution with it; dash reads on), or no line ends it. Read as left
// open there, the rest of the command that held it was hidden
// (PGPASSWORD="$(cat <<E … E)" psql -h db hid psql's words).
//
// The bytes of the body are counted in shellScanned: a scan that passes
// the here-document reads them.
func hereDocumentEnd(a string, i int) int {
	d, j := readHereDelimiter(a, i)
	from := j
	defer func() { shellScanned.Add(int64(j - from)) }()
	k := strings.IndexByte(a[j:], '\n')
	if d.word == "" || k < 0 || strings.Trim(a[j:j+k], " \t|>0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_./,:=+@%-") != "" {
		return -1
	}
	for j += k + 1; j < len(a); {
		line, e := hereLine(a, j, d)
		switch {
		case line == d.word:
			j = e
			return min(e+1, len(a))
		case strings.HasPrefix(line, d.word):
			return -1
		}
		j = e + 1
	}
	return -1
}

// hereDocument says whether a here-document's << stands at i in a: its
// delimiter word starts (after a - and blanks) with a letter, _, a quote
// or a backslash. <<< is a here-string, and 1<<2 an arithmetic shift.
func hereDocument(a string, i int) bool {
	if !strings.HasPrefix(a[i:], "<<") || strings.HasPrefix(a[i:], "<<<") {
		return false
	}
	j := i + 2
	if j < len(a) && a[j] == '-' {
		j++
	}
	for j < len(a) && (a[j] == ' ' || a[j] == '\t') {
		j++
	}
	return j < len(a) && (a[j] >= 'A' && a[j] <= 'Z' || a[j] >= 'a' && a[j] <= 'z' || strings.IndexByte("_'\"\\", a[j]) >= 0)
}

// commentStart says whether the # at i in a starts a comment: it starts
// a word, after a blank or an operator that no backslash escapes ($#,
// a#b and a\ #b are words).
func commentStart(a string, i int) bool {
	if i == 0 || strings.IndexByte(" \t\n\r;&|()<>", a[i-1]) < 0 {
		return false
	}
	k := i - 1
	for k > 0 && a[k-1] == '\\' {
		k--
	}
	return (i-1-k)%2 == 0
}

// shellArgument says whether the word at i in a is surely a simple
// command's argument, which the shell reads as no reserved word (bash's
// reserved_word_acceptable): the word before it is one of a simple
// command's, after its name (echo case in x), where no word before it
// can start a compound command. Read as a case, $(echo case in x) hid
// the rest of the line. Where it cannot tell it says no, and the word
// is read as a keyword: more hidden, not less. The word before must be
// a plain one (no operator, no =, as an assignment or a redirection's
// target may be followed by a command's name), none of the words after
// which a command starts (then, do, {, time -p, zsh's if [[ … ]]
// without then), and itself after a word that is none of those, nor
// function, coproc or repeat, whose next word's next may start a
// compound command (function f case …). It reads back over two words
// and their blanks: a word is read back over for the two words after
// it at most.
func shellArgument(a string, i int) bool {
	w, ok := wordBefore(a, i)
	if !ok || w == i || strings.ContainsRune(a[w:i], '=') || commandStarts(strings.TrimRight(a[w:i], " \t")) {
		return false
	}
	v, ok := wordBefore(a, w)
	if !ok {
		return false
	}
	if v == w {
		return true // the word before is the command's name
	}
	switch strings.TrimRight(a[v:w], " \t") {
	case "function", "coproc", "repeat":
		return false
	}
	return !commandStarts(strings.TrimRight(a[v:w], " \t"))
}

// wordBefore returns where the word before the one at i in a starts
// (past blanks), and whether it is a plain word: ok is false where an
// operator or a newline ends it, other than the start of a command line
// (a ;, &, |, ( or ), a backtick or a newline), where the word at i is
// the command's name and start is i. The word's bytes are the ones that
// are no blank nor operator; a quote, a backslash and a } are taken as
// the word's (more is read as a keyword, not less).
func wordBefore(a string, i int) (start int, ok bool) {
	j := i
	for j > 0 && (a[j-1] == ' ' || a[j-1] == '\t') {
		j--
	}
	switch {
	case j == 0:
		return i, true
	case strings.IndexByte(";&|()`\n", a[j-1]) >= 0:
		if j >= 2 && a[j-2] == '\\' {
			return 0, false // an escaped operator: a word's
		}
		return i, true
	case a[j-1] == '<' || a[j-1] == '>' || a[j-1] == '\r':
		return 0, false
	}
	k := j
	for k > 0 && strings.IndexByte(" \t\n\r;&|()<>`", a[k-1]) < 0 {
		k--
	}
	return k, true
}

// commandStarts says whether a command may start after the word w: a
// reserved word (then, do, !, {, …), one of zsh's (repeat N, if [[ … ]]
// with no then, its precommand modifiers), or time's -p or --.
func commandStarts(w string) bool {
	switch w {
	case "then", "do", "else", "elif", "if", "while", "until", "!", "{", "}", "fi", "done", "esac", "in",
		"time", "-p", "--", "function", "coproc", "select", "for", "foreach", "repeat", "]]",
		"noglob", "nocorrect", "builtin", "command", "exec", "-", "always":
		return true
	}
	return false
}

// shellKeyword says whether the word w (case, esac, in) stands at i in a
// as a word of its own: after the start of a or a blank or operator,
// and before one or the end of a.
func shellKeyword(a string, i int, w string) bool {
	if !strings.HasPrefix(a[i:], w) || i > 0 && strings.IndexByte(" \t\n\r;&|()<>", a[i-1]) < 0 {
		return false
	}
	return i+len(w) == len(a) || strings.IndexByte(" \t\n\r;&|()<>", a[i+len(w)]) >= 0
}

// closingEscaped returns the index of the quote q that closes a string
// whose text starts at i and in which a backslash escapes the byte after
// it ("…", or $'…' with q '\”), or -1.
func closingEscaped(a string, i int, q byte) int {
	for ; i < len(a); i++ {
		switch a[i] {
		case '\\':
			i++
		case q:
			return i
		}
	}
	return -1
}

// authSchemes are the Authorization schemes a header's value may start
// with, kept in the record before its [REDACTED] credentials.
var authSchemes = []string{"bearer", "basic", "token", "digest", "negotiate", "ntlm", "aws4-hmac-sha256", "oauth", "apikey", "key", "hoba", "mutual", "dpop"}

// headerValue returns where the value of the header whose colon ends at
// i starts and ends in a: the credentials of a header line whose name says
// it holds a secret. A value's end cannot be known exactly: the line may be
// a curl argument of its own (the value runs to its end) or inside a
// shell line's quotes (it ends at the closing quote), and a credential
// may itself be quoted ("a b"). Where it cannot tell, it takes more: a
// record that redacts a URL after the credential is fine, one that keeps
// a piece of the credential is a leak. The values of one line cost time
// linear in its length: a value's scan reads its own bytes, plus at most
// the next word (to see whether it is another cookie) or the bytes up to
// the next blank or quote (to see whether a " in a token is closed before
// it), which no other value's scan reads again; a quote left open takes
// the rest of the line, so there is no other. A scheme (Bearer, Basic,
// ...) stays out of the value.
//
// The value is made of unquoted bytes, backslash-escaped ones, and "…",
// \"…\" and '…' pieces (an opening quote is one at the start of the
// credential or after '=', and an opening ' one that a blank or the end
// does not follow; a " inside a token closes a shell's quotes unless
// closed before the next blank), and goes on past a blank when the next
// word is a name= (the next cookie of a Cookie line, a Digest parameter)
// and after a ':' (credential). Another ' ends it (the shell's: a
// credential holds none), as does a line's end, and a blank otherwise.
//
// limit is where the shell's quotes that hold the header line close
// (redactHeaders: quotes that opened at its name), or len(a). A word
// joined before it, read as the shell's word, ends there at the latest:
// in them the shell's quotes are text, and read as quotes from the
// middle of the line, the closing one ran the word, and the value, to
// the end of the line (-H 'Authorization: A --MYSQL_PWD PW' https://h/
// hid the URL).
func headerValue(a string, i, limit int) (start, end int) {
	return headerValueIn(a, i, false, limit)
}

// headerValueIn is headerValue; nested says it reads a header line that
// stands in a word another header's value joined (see there).
func headerValueIn(a string, i int, nested bool, limit int) (start, end int) {
	i, joinNext := credential(a, i)
	start = i
	// The word joined is a --flag's value (credential): the shell's
	// word, whole.
	option := joinNext && a[i] == '-'
	opening := true // a quote here opens a quoted credential
	for i < len(a) {
		switch c := a[i]; {
		case c == '\'' && opening && i+1 < len(a) && (a[i+1] != ' ' && a[i+1] != '\t' || i > start && (a[i-1] == ' ' || a[i-1] == '\t')):
			// A single-quoted credential ('a b', sid='a b'): the
			// quote opens it, where the shell's closing quote would be
			// followed by a blank or the end (-H 'Cookie: sid=' -H …,
			// Basic aGk=' https://…). It ended the value at once, and
			// the whole credential was kept. In a word joined past a
			// blank (the value of a credential that reads as a
			// --flag) it opens one whatever follows: --MYSQL_PWD ' x'
			// kept ' x'.
			closing := strings.IndexByte(a[i+1:], '\'')
			if closing < 0 || hidesHeader(a[i:i+1+closing]) {
				return start, len(a)
			}
			i += 1 + closing + 1
		case c == '$' && i+1 < len(a) && a[i+1] == '\'':
			// $'…' inside the credential, where the shell reads
			// one (--MYSQL_PWD a$' x' after a credential that reads
			// as a --flag): its ' was read as the shell's closing
			// quote and x kept. To its closing ', \' escaped in it;
			// in "…", where it is text, more is taken, not less.
			closing := closingEscaped(a, i+2, '\'')
			if closing < 0 {
				return start, len(a)
			}
			i = closing + 1
		case c == '\'' || c == '\n' || c == '\r':
			return start, i
		case c == ' ' || c == '\t' || c == '\\' && i+1 < len(a) && (a[i+1] == ' ' || a[i+1] == '\t'):
			k := skipBlank(a, i)
			if k == len(a) || !joinNext && !nameAssign(a, k) {
				return start, i
			}
			if joinNext && (option || strings.HasPrefix(a[k:], "$'")) {
				// The word joined, as the shell reads it, all its
				// pieces: $' x' after a credential that reads as a
				// --flag ended at the blank in it, and of '0''0'
				// the second piece was kept. The header lines in it
				// are redactHeaders' to take.
				// One that reads as a --flag itself (Authorization: -
				// --AWS_SECRET_ACCESS_KEY X) takes the next word too.
				e := shellWordEnd(a, k)
				if k < limit {
					e = min(e, limit)
				}
				// A header line that names a secret in the word
				// (TOKEN:- " -H '' -H 'Authorization: Bearer "0 0 "',
				// whose stray " makes the word run into the quoted
				// credential) is read as headerValue reads one, and
				// the value runs at least to its end: passed over
				// with the word, as redactHeaders passes over the
				// lines inside a value taken, its credential ended
				// with the word and its second piece was kept. In a
				// line that stands in such a word itself, one more
				// such line is not read again (the bytes would be
				// read once per level): the rest of a is taken.
				for c := nextSecretHeader(a[:e], k); c >= 0; c = nextSecretHeader(a[:e], c) {
					if nested {
						return start, len(a)
					}
					_, ce := headerValueIn(a, c, true, len(a))
					c, e = max(c, ce), max(e, ce)
					if c >= e {
						break
					}
				}
				i, opening, joinNext = e, false, option && a[k] == '-'
				continue
			}
			// A word joined that reads as a --flag (Authorization: A
			// --MYSQL_PWD X, past an unknown scheme) takes the word
			// after it too, as a credential that reads as one does
			// (credential): hidden here, the option rules no longer
			// saw it, and X was kept.
			joined := joinNext && a[k] == '-'
			i, opening, joinNext, option = k, true, joined, joined
			continue
		case c == ':':
			// Another header's name: may stand in the value taken
			// (Bearer T,X-Api-Key: K; or past a quote that was the
			// shell's): what follows is taken as its credential, since
			// its own match, inside this value, is passed over.
			i, joinNext = credential(a, i+1)
			option = joinNext && a[i] == '-'
			opening = true
			continue
		case c == '"' && opening:
			closing := closingDouble(a, i+1)
			if closing < 0 || hidesHeader(a[i:closing]) {
				return start, len(a)
			}
			i = closing + 1
		case c == '\\' && i+1 < len(a) && a[i+1] == '"' && opening:
			closing := strings.Index(a[i+2:], `\"`)
			if closing < 0 || hidesHeader(a[i:i+2+closing]) {
				return start, len(a)
			}
			i += 2 + closing + 2
		case c == '"':
			k := strings.IndexAny(a[i+1:], "\" \t\n\r'")
			if k < 0 || a[i+1+k] != '"' {
				return start, i // the shell's closing quote
			}
			i += 1 + k + 1
		case c == '\\':
			i = min(i+2, len(a))
		default:
			i++
		}
		opening = a[i-1] == '='
	}
	return start, i
}

// credential returns where the credential of a header whose colon ends
// at i starts in a, past blanks and a known scheme, and whether the word
// there and the next are both taken (an Authorization line's unknown
// scheme, or a credential of letters that a URL follows: more is
// redacted than needed rather than less).
func credential(a string, i int) (int, bool) {
	i = skipBlank(a, i)
	if i < len(a) && a[i] == '-' {
		// A credential that reads as an option (Authorization:
		// --MYSQL_PWD X): hidden as the header's, the option rules no
		// longer see the option and kept its value; the next word is
		// taken too.
		e := i
		for e < len(a) && a[e] != ' ' && a[e] != '\t' && a[e] != '\n' && a[e] != '\r' {
			e++
		}
		return i, skipBlank(a, e) < len(a)
	}
	j := i
	for j < len(a) && (a[j] >= 'A' && a[j] <= 'Z' || a[j] >= 'a' && a[j] <= 'z' || a[j] >= '0' && a[j] <= '9' || a[j] == '-') {
		j++
	}
	k := skipBlank(a, j)
	if k == j || k == len(a) {
		return i, false
	}
	switch word := strings.ToLower(a[i:j]); {
	case slices.Contains(authSchemes, word) && a[k] == '-':
		// A known scheme, then a credential that reads as an option
		// (Authorization: Bearer --MYSQL_PWD X): as one without the
		// scheme, the next word is taken too, or X was kept.
		return credential(a, k)
	case slices.Contains(authSchemes, word):
		return k, false
	case word != "" && strings.Trim(word, "abcdefghijklmnopqrstuvwxyz") == "":
		return i, true
	}
	return i, false
}

// hidesHeader says whether the quoted piece q of a header's value may be
// the shell's quotes instead, closing the header's and opening another
// header's line that names a secret (-H 'Cookie: sid="1' -H 'X-Api-Key:
// "K L"': the value would end inside the X-Api-Key line, in its
// credential, and that line's own match, inside the value, would be
// passed over). The value then runs to the end of the line.
func hidesHeader(q string) bool {
	if !strings.ContainsAny(q, " \t") {
		return false
	}
	for _, m := range headerName.FindAllStringSubmatchIndex(q, -1) {
		if headerSecret(q[m[2]:m[3]]) {
			return true
		}
	}
	return false
}

// skipBlank returns the index of the first byte at or after i in a that is
// not a space or tab, nor a backslash-escaped one.
func skipBlank(a string, i int) int {
	for i < len(a) {
		switch {
		case a[i] == ' ' || a[i] == '\t':
			i++
		case a[i] == '\\' && i+1 < len(a) && (a[i+1] == ' ' || a[i+1] == '\t'):
			i += 2
		default:
			return i
		}
	}
	return i
}

// nameAssign says whether a word starting at i in a is a name= (a cookie,
// a Digest parameter): a name of bytes other than blanks, quotes, ';', ':'
// and '=', then '='.
func nameAssign(a string, i int) bool {
	j := i
	for j < len(a) && !strings.ContainsRune(" \t\n\r'\";=:\\", rune(a[j])) {
		j++
	}
	return j > i && j < len(a) && a[j] == '='
}
