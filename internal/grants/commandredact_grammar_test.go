package grants

import (
	"strings"
	"testing"
)

// FuzzRedactShellGrammar writes shell lines out of a small grammar of the
// shell's, driven by the fuzzer's bytes (prog: each choice takes a byte,
// 0 once they run out), and a secret of digits into the places the
// redaction promises to hide (README's redaction paragraph): a secret's
// NAME=value after export, declare -x and the like, and one in "…" as an
// argument of its own; a --flag's value, glued by = or the next word; curl
// -u user:password; the credential of a header line in -H or --header, in
// '…', "…", $'…' or with escaped blanks; a URI's password; a JSON member's
// value; git config's, sshpass -p's, redis-cli -a's, docker login -p's and
// mysql -p's; a parameter expansion's default word. The grammar puts them
// where the other four fuzzers never do: in lists (;, &&, ||, &,
// newlines), pipelines, if/then/elif/else/fi, while/until/for loops,
// case … in … esac (patterns with (, |, quotes; ;;, ;& and ;;&; a last
// item without ;;), { …; } and ( … ), a function's body, command
// substitutions $(…) and `…` nested, in "…" and in "${x:-"…"}", process
// substitutions, here-documents (<<EOF, <<-EOF with tabs, <<'EOF',
// <<"EOF", <<\EOF; a body of text with lone quotes, $( and ) in it, or a
// script whose commands hold the secret, or text after <<EOF on its line
// that does), comments (with quotes, ) and esac in them), and
// backslash-newlines between words. A value is written in pieces of the
// shell's quotes, as FuzzRedactAssignedSecret writes them. As in the
// other fuzzers the text around the secret has no digit, so any digit in
// the record is a piece of the secret that was kept. Over-hiding passes;
// a digit left fails, as does a record longer than len(line) *
// len(RedactedArg) bytes or more bytes read by closingShell than
// grammarScanBound allows (a linear bound, as TestRedactSubstitutionsLinear's).
//
// The seeds that regression tests keep are in keptSeedCases, as the
// other fuzzers' are: a change to the grammar that moves them (another
// choice read from the same bytes) fails TestRedactFuzzSeedsKeepTheirCase.
func FuzzRedactShellGrammar(f *testing.F) {
	f.Add([]byte{}, "1234")
	// Each command kind once, at the top level and in a substitution.
	for k := range grammarCommandKinds {
		f.Add([]byte{0, byte(k), 3, 1, 2}, "1234")
		f.Add([]byte{1, 12, 0, byte(k), 5, 4, 2}, "20261206")
	}
	for s := range grammarSlots {
		f.Add([]byte{0, 1, byte(s), 6, 5, 4, 3, 2, 1}, "12")
	}
	f.Fuzz(func(t *testing.T, prog []byte, secret string) {
		argv := grammarArgv(prog, secret)
		if argv == nil {
			return
		}
		line := argv[2]
		before := shellScanned.Load()
		got := redactCommand(argv)
		read := shellScanned.Load() - before
		for _, g := range got {
			if i := strings.IndexFunc(g, isDigit); i >= 0 {
				t.Fatalf("a piece of the secret is left at %d: %q\nfrom %q", i, got, argv)
			}
		}
		if len(got[2]) > len(line)*len(RedactedArg) {
			t.Fatalf("a %d-byte line became %d bytes: %q", len(line), len(got[2]), line)
		}
		if read > grammarScanBound(len(line)) {
			t.Fatalf("closingShell read %d bytes of a %d-byte line: %q", read, len(line), line)
		}
	})
}

// grammarScanBound is how many bytes closingShell may read while a
// line of n bytes is redacted: 5 per byte, and a short line's few fixed
// reads again. Text nested in double-quoted substitutions is read once
// per level, to maxQuotedSubstitutions, and a here-document's body
// nested in bodies once per level of bodies: TestRedactSubstitutionsLinear
// bounds such lines by maxQuotedSubstitutions+1, 5, a byte (they read up
// to 3.98; the kept seed nested-bodies-read-again 3.01, and
// nested-bodies-in-substitutions 1.83, 4.40 repeated to 64 KiB before
// 996a410 read such a body apart), its other units by 3.
func grammarScanBound(n int) int64 { return int64(5*n + 256) }

// grammarArgv is the command FuzzRedactShellGrammar redacts for prog and
// secret, or nil where it holds no secret; TestRedactFuzzSeedsKeepTheirCase
// builds it for the kept seeds.
func grammarArgv(prog []byte, secret string) []string {
	secret = digitsOnly(secret)
	if secret == "" {
		return nil
	}
	g := &grammarGen{in: prog, secret: secret}
	shell := []string{"bash", "sh", "dash", "zsh"}[g.pick(4)]
	line := g.list(grammarCtx{})
	if !g.placed {
		// A secret in the first simple command's place.
		first := g.slot(grammarCtx{})
		line = first + g.sep(first) + line
	}
	return []string{shell, "-c", line}
}

// grammarGen builds a shell line from its bytes.
type grammarGen struct {
	in     []byte
	secret string
	placed bool // a secret is written
	delims int  // here-documents opened, for a delimiter of each's own
}

// grammarCtx is where the generator writes.
type grammarCtx struct {
	depth int  // compound commands and substitutions around
	bt    bool // inside `…`, whose own ` cannot nest unescaped
}

// grammarMaxDepth bounds the nesting, so that a line stays short.
const grammarMaxDepth = 4

// pick is the next choice among n, 0 once the bytes run out.
func (g *grammarGen) pick(n int) int {
	if len(g.in) == 0 {
		return 0
	}
	c := g.in[0]
	g.in = g.in[1:]
	return int(c) % n
}

// list is one to three and-or lists, separated as the shell allows.
func (g *grammarGen) list(c grammarCtx) string {
	s := g.andOr(c)
	for n := g.pick(3); n > 0 && len(g.in) > 0; n-- {
		s += g.sep(s) + g.andOr(c)
	}
	return s
}

// sep is what separates a list's command from the one after s: nothing
// after a newline (a here-document's delimiter line, a comment), where a
// ; would be an error.
func (g *grammarGen) sep(s string) string {
	if strings.HasSuffix(s, "\n") {
		return ""
	}
	return []string{"; ", ";", "\n", " & ", "&", " ;\n", "\n\n"}[g.pick(7)]
}

// term ends a list before then, do, fi, done, }, esac.
func (g *grammarGen) term(s string) string {
	switch {
	case strings.HasSuffix(s, "\n"):
		return ""
	case strings.HasSuffix(s, "&"):
		return " "
	}
	return []string{"; ", "\n", ";"}[g.pick(3)]
}

// andOr is pipelines joined by && or ||; a command that ends its line
// (a here-document, a comment) ends it.
func (g *grammarGen) andOr(c grammarCtx) string {
	s := g.pipeline(c)
	for n := g.pick(3); n > 0 && len(g.in) > 0 && !strings.HasSuffix(s, "\n"); n-- {
		s += []string{" && ", " || ", "&&", " &&\n", "||\n"}[g.pick(5)] + g.pipeline(c)
	}
	return s
}

// pipeline is commands joined by |, after an optional !.
func (g *grammarGen) pipeline(c grammarCtx) string {
	s := ""
	if g.pick(6) == 5 {
		s = "! "
	}
	s += g.command(c)
	for n := g.pick(3); n > 0 && len(g.in) > 0 && !strings.HasSuffix(s, "\n"); n-- {
		s += []string{" | ", "|", " |\n", " |& "}[g.pick(4)] + g.command(c)
	}
	return s
}

// grammarCommandKinds name command's choices, for the seeds.
var grammarCommandKinds = []string{"simple", "secret", "heredoc", "if", "loop", "for", "case", "brace", "subshell", "function", "comment", "secret-in-subst"}

// command is one command of grammarCommandKinds.
func (g *grammarGen) command(c grammarCtx) string {
	k := g.pick(len(grammarCommandKinds))
	if c.depth >= grammarMaxDepth && k != 1 {
		k = 0
	}
	in := c
	in.depth++
	switch grammarCommandKinds[k] {
	case "simple":
		return g.simple(c)
	case "secret":
		return g.slot(c)
	case "heredoc":
		return g.hereDoc(in)
	case "if":
		s := "if " + g.listTerm(in) + "then " + g.listTerm(in)
		if g.pick(3) == 0 {
			s += "elif " + g.listTerm(in) + "then " + g.listTerm(in)
		}
		if g.pick(2) == 0 {
			s += "else " + g.listTerm(in)
		}
		return s + "fi"
	case "loop":
		return []string{"while ", "until "}[g.pick(2)] + g.listTerm(in) + "do " + g.listTerm(in) + "done"
	case "for":
		return "for v in a b" + []string{"; ", "\n", ";"}[g.pick(3)] + "do " + g.listTerm(in) + "done"
	case "case":
		return g.caseCommand(in)
	case "brace":
		return "{ " + g.listTerm(in) + "}"
	case "subshell":
		return "( " + g.list(in) + " )"
	case "function":
		return "f() { " + g.listTerm(in) + "}"
	case "comment":
		if c.bt {
			return g.simple(c)
		}
		return g.simple(c) + " #" + g.words(grammarCommentWords, 1+g.pick(4)) + "\n"
	default: // "secret-in-subst": the secret's command inside a substitution
		return "echo " + g.substitution(in, func(c grammarCtx) string { return g.slot(c) })
	}
}

// listTerm is a list and its terminator.
func (g *grammarGen) listTerm(c grammarCtx) string {
	s := g.list(c)
	return s + g.term(s)
}

// words is n words of vocab, each after a blank.
func (g *grammarGen) words(vocab []string, n int) string {
	var b strings.Builder
	for range n {
		b.WriteString(" " + vocab[g.pick(len(vocab))])
	}
	return b.String()
}

// grammarCommentWords are a comment's: quotes, parentheses and keywords
// that read as the shell's outside one.
var grammarCommentWords = []string{"x", "it's", `a "b`, ")", "$(", "esac", "case", "fi", "done", "<<EOF", "#", "`", "'", "${", "}"}

// grammarCaseItems are the patterns of a case item.
var grammarCasePatterns = []string{"a", "(a", "a|b", "*", `"x y"`, "'in'", "x*", "[ab]", "(a|b", `\)`}

// caseCommand is case WORD in, its items, esac.
func (g *grammarGen) caseCommand(c grammarCtx) string {
	s := "case " + []string{"$x", `"$y"`, "x", "in", "esac"}[g.pick(5)] + " in" + []string{" ", "\n", "\n  "}[g.pick(3)]
	n := 1 + g.pick(3)
	for i := range n {
		s += grammarCasePatterns[g.pick(len(grammarCasePatterns))] + ")"
		body := ""
		if g.pick(4) != 0 {
			body = " " + g.list(c)
		}
		if i == n-1 && g.pick(3) == 0 {
			// The last item without ;;.
			if body == "" {
				s += " "
			} else {
				s += body + g.term(body)
			}
			break
		}
		if strings.HasSuffix(body, "\n") {
			s += body + []string{";;", ";&", ";;&"}[g.pick(3)]
		} else {
			s += body + []string{";;", " ;;", ";&", ";;&"}[g.pick(4)]
		}
		s += []string{" ", "\n", "\n  "}[g.pick(3)]
	}
	return s + "esac"
}

// grammarWords are a simple command's arguments without substitutions.
var grammarWords = []string{
	"-v", "--verbose", "x", "a.txt", `"a b"`, "'c d'", "$x", `"$y"`, "${z:-w}", "https://h/p", "case", "in", "esac", "fi", "done", "then",
	"x#y", "'#'", `"it's"`, `\'`, `$'\''`, "a=b", "--name", "-H", `Accept:\ x`, "--", "{a,b}", ">/dev/null", "<a.txt", "<<<x", `<<<"a b"`,
	"&>/dev/null", "$((a+b))", `\"`, `"\""`, "'\"'", `"a\"b"`, "${x%%/*}", "${#x}", "-u", "ann", ":", "=",
}

// grammarCommands are a simple command's names.
var grammarCommands = []string{"echo", "ls", "true", "cat", "grep x", "printf %s", "tool", "curl -s", "psql", "x=y", "env"}

// simple is a command of grammarCommands and words, substitutions among
// them, blanks between them or backslash-newlines.
func (g *grammarGen) simple(c grammarCtx) string {
	s := grammarCommands[g.pick(len(grammarCommands))]
	for n := g.pick(4); n > 0; n-- {
		s += g.blank()
		switch g.pick(4) {
		case 0:
			if c.depth < grammarMaxDepth {
				in := c
				in.depth++
				s += g.substitution(in, g.list)
				continue
			}
			fallthrough
		default:
			s += grammarWords[g.pick(len(grammarWords))]
		}
	}
	return s
}

// blank is what separates two words: blanks, or a backslash-newline.
func (g *grammarGen) blank() string {
	return []string{" ", " ", "  ", " \\\n", " \\\n  ", "\t"}[g.pick(6)]
}

// substitution is a word with a substitution whose text body writes:
// $(…), `…` (inside another, its backticks escaped: \`…\`, its text's
// backslashes and backticks escaped once more), in "…" or in
// "${x:-"…"}", joined to other text, or <(…).
func (g *grammarGen) substitution(c grammarCtx, body func(grammarCtx) string) string {
	k := g.pick(8)
	if k == 1 && c.bt {
		b := body(c)
		return "\\`" + strings.NewReplacer("\\", "\\\\", "`", "\\`").Replace(b) + "\\`"
	}
	if k == 1 {
		c.bt = true
	}
	b := body(c)
	open := "$("
	if strings.HasPrefix(b, "(") {
		open = "$( " // not $((, arithmetic
	}
	switch k {
	case 1:
		return "`" + b + "`"
	case 2:
		return `"` + open + b + `)"`
	case 3:
		return `x="` + open + b + `)"`
	case 4:
		return `"a ` + open + b + `) b"`
	case 5:
		return `"${x:-"` + open + b + `)"}"`
	case 6:
		return "<(" + strings.TrimPrefix(open, "$(") + b + ")"
	case 7:
		return "x" + open + b + ")y"
	}
	return open + b + ")"
}

// grammarDelimiters are here-documents' delimiters, each made unique by
// the count of those before it.
var grammarDelimiters = []string{"EOF", "END", "EOT", "SQL"}

// hereDoc is a command with a here-document: its operator and quoted or
// bare delimiter, what follows on its line (a pipe, && and a command that
// may hold the secret, a redirection), its body (text, or a script) and
// its delimiter's line.
func (g *grammarGen) hereDoc(c grammarCtx) string {
	g.delims++
	d := grammarDelimiters[g.pick(len(grammarDelimiters))] + strings.Repeat("X", g.delims)
	dash := g.pick(3) == 0
	op := "<<"
	if dash {
		op = "<<-"
	}
	op += []string{"", " "}[g.pick(2)]
	quoted := true
	switch g.pick(4) {
	case 0:
		op += d
		quoted = false
	case 1:
		op += "'" + d + "'"
	case 2:
		op += `"` + d + `"`
	case 3:
		op += `\` + d
	}
	s := []string{"cat", "bash", "sh", "psql", "curl -H @- https://h/", "tool"}[g.pick(6)] + " " + op
	switch g.pick(5) {
	case 1:
		s += " | " + g.simple(c)
	case 2:
		s += " && " + g.slot(c)
	case 3:
		s += " >out"
	}
	var body string
	switch g.pick(3) {
	case 0:
		// Text: lone quotes, $( and ), words that read as the shell's.
		vocab := []string{"x", "it's", `a "b`, ")", "esac", "case x in", "# y", "fi", "done", "EOF", "} {", "x=y", "$x", "${y}"}
		if quoted && !c.bt {
			// Where the delimiter is bare, the shell reads these as
			// it would in "…", and joins a line that ends in a
			// backslash to the next.
			vocab = append(vocab, "$(", "`", "${", "a\\")
		}
		for n := 1 + g.pick(3); n > 0; n-- {
			body += strings.TrimPrefix(g.words(vocab, 1+g.pick(3)), " ") + "\n"
		}
	case 1:
		// A script, whose commands may hold the secret.
		body = g.list(c)
		if !strings.HasSuffix(body, "\n") {
			body += "\n"
		}
	case 2:
		// Text with a substitution in it, which the shell runs where
		// the delimiter is bare.
		in := c
		in.depth++
		body = "x " + g.substitution(in, g.list) + " y\n"
	}
	if dash && g.pick(2) == 0 {
		body = "\t" + strings.ReplaceAll(strings.TrimSuffix(body, "\n"), "\n", "\n\t") + "\n"
		d = "\t" + d
	}
	return s + "\n" + body + d + "\n"
}

// grammarNames are secrets' names.
var grammarNames = []string{"PGPASSWORD", "GITHUB_TOKEN", "MYSQL_PWD", "AWS_SECRET_ACCESS_KEY", "SSHPASS", "api_key"}

// grammarSlots are the places a secret is written in.
var grammarSlots = []string{"assign", "flag", "flag-eq", "curl-u", "header", "uri", "json", "set", "param", "dq-assign"}

// slot is a command that holds the secret, in one of grammarSlots.
func (g *grammarGen) slot(c grammarCtx) string {
	g.placed = true
	name := grammarNames[g.pick(len(grammarNames))]
	switch grammarSlots[g.pick(len(grammarSlots))] {
	case "assign":
		pre := []string{"", "export ", "declare -x ", "local ", "readonly ", "env "}[g.pick(6)]
		return pre + name + "=" + g.value() + []string{"", " psql", " tool x"}[g.pick(3)]
	case "flag":
		return "tool " + []string{"--password", "--api-key", "--token", "--db-password", "--secret-string", "-v --password"}[g.pick(6)] + g.blank() + g.value() + []string{"", " x", " -v"}[g.pick(3)]
	case "flag-eq":
		return "tool --password=" + g.value()
	case "curl-u":
		return "curl" + g.blank() + []string{"-u ann:", "-su ann:", "--user ann:", "-uann:", "-u" + g.blank() + "ann:"}[g.pick(5)] + g.value() + " https://h/"
	case "header":
		return "curl " + []string{"-H", "--header", "-s -H"}[g.pick(3)] + g.blank() + g.header() + " https://h/"
	case "uri":
		var b strings.Builder
		for i := 0; i < len(g.secret); i++ {
			b.WriteString(strings.ReplaceAll([]string{"{d}", "{d}@", ":{d}"}[g.pick(3)], "{d}", g.secret[i:i+1]))
		}
		return []string{"git clone", "psql", "curl"}[g.pick(3)] + " https://ann:" + b.String() + "@h/r"
	case "json":
		if g.pick(2) == 0 {
			return `curl -d '{"password": "` + g.spaced("") + `"}' https://h/`
		}
		return `curl -d "{\"token\": \"` + g.spaced("") + `\"}" https://h/`
	case "set":
		switch g.pick(5) {
		case 0:
			return "git config" + g.blank() + "credential.password" + g.blank() + g.value()
		case 1:
			return "sshpass -p" + g.blank() + g.value() + " ssh h"
		case 2:
			return "redis-cli -a" + g.blank() + g.value() + " ping"
		case 3:
			return "docker login -u ann -p" + g.blank() + g.value() + " reg"
		}
		return "mysql -u r" + g.blank() + "-p" + g.secret + " db"
	case "param":
		var b strings.Builder
		for i := 0; i < len(g.secret); i++ {
			b.WriteString(strings.ReplaceAll([]string{"{d}", "'{d}'", `" {d}"`}[g.pick(3)], "{d}", g.secret[i:i+1]))
		}
		return "echo ${" + name + ":-" + b.String() + "}/x"
	default: // "dq-assign"
		var b strings.Builder
		for i := 0; i < len(g.secret); i++ {
			b.WriteString(strings.ReplaceAll([]string{"{d}", " {d}", `\" {d}`}[g.pick(3)], "{d}", g.secret[i:i+1]))
		}
		return `env "` + name + "=" + b.String() + `" psql`
	}
}

// value is the secret as a shell word of pieces in the shell's quotes.
func (g *grammarGen) value() string {
	pieces := []string{"{d}", "'{d}'", `" {d}"`, `\ {d}`, "' {d}'", "$' {d}'", `"\" {d}"`, `$'\' {d}'`}
	var b strings.Builder
	for i := 0; i < len(g.secret); i++ {
		b.WriteString(strings.ReplaceAll(pieces[g.pick(len(pieces))], "{d}", g.secret[i:i+1]))
	}
	return b.String()
}

// spaced is the secret with blanks after some digits, each escaped by
// esc.
func (g *grammarGen) spaced(esc string) string {
	var b strings.Builder
	for i := 0; i < len(g.secret); i++ {
		b.WriteByte(g.secret[i])
		if i < len(g.secret)-1 && g.pick(2) == 1 {
			b.WriteString(esc + " ")
		}
	}
	return b.String()
}

// header is a header line whose credential is the secret, as a shell
// word: in '…', "…" or $'…' with blanks in it, quoted inside them, or
// with its blanks escaped.
func (g *grammarGen) header() string {
	line := []string{"Authorization: Bearer ", "X-Api-Key: ", "Cookie: a=b; sid=", "Proxy-Authorization: Basic ", "authorization:Bearer "}[g.pick(5)]
	switch g.pick(5) {
	case 0:
		return "'" + line + g.spaced("") + "'"
	case 1:
		return `"` + line + g.spaced("") + `"`
	case 2:
		return "$'" + line + g.spaced("") + "'"
	case 3:
		return `"` + line + `\"` + g.spaced("") + `\""`
	}
	return strings.ReplaceAll(line, " ", `\ `) + g.spaced(`\`)
}

// TestRedactPiecesReadOnce: the pieces of a line that shellPieces cuts
// around a body read apart, whose own bodies and comments leave nothing
// open, are not read again (redactPieces): here-documents in
// substitutions after such a body cost closingShell what they cost
// without it. a90150f read them again, once per level: 4.32 bytes a byte
// against 3.59 for FuzzRedactShellGrammar's kept seed
// nested-bodies-read-again repeated to 64 KiB.
func TestRedactPiecesReadOnce(t *testing.T) {
	seed := keptSeedCases["FuzzRedactShellGrammar/nested-bodies-read-again"][2]
	if !strings.Contains(seed, "\nit's\n") {
		t.Fatalf("the seed %q has no body that leaves a quote open", seed)
	}
	read := func(line string) int64 {
		before := shellScanned.Load()
		redactCommand([]string{"bash", "-c", line})
		return shellScanned.Load() - before
	}
	apart, whole := read(seed), read(strings.Replace(seed, "\nit's\n", "\nits\n", 1))
	if apart > whole+16 {
		t.Errorf("closingShell read %d bytes of a line after a body read apart, %d after one read with the line: the pieces after it were read again", apart, whole)
	}
}
