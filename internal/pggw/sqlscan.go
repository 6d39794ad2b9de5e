package pggw

import "strings"

// A careful SQL tokenizer, not a parser: enough to split a simple Query
// into its statements (for the recording) and to spot statements that
// change a role's authentication (which the gateway refuses). It follows
// PostgreSQL's lexer (scan.l) where that matters for finding statement
// boundaries and keywords:
//
//   - white space; "--" comments to the end of the line (a newline or a
//     carriage return); "/* */" comments,
//     nested;
//   - string literals '…' ('' inside), with a prefix E (backslash escapes),
//     U&, N, B or X; with standard_conforming_strings off, plain '…' takes
//     backslash escapes too;
//   - quoted identifiers "…" ("" inside), U&"…";
//   - dollar quotes $tag$…$tag$ (the tag an identifier or empty), and $1
//     parameters, which are not quotes;
//   - identifiers and keywords ([A-Za-z_\x80-\xff] then also digits and $);
//   - ";" ends a statement, except inside the BEGIN … END body of CREATE
//     [OR REPLACE] FUNCTION/PROCEDURE … BEGIN ATOMIC, which psql's lexer
//     tracks the same way (CASE … END nests inside it).
//
// An unterminated comment, literal or quote runs to the end of the text,
// as it does for the server (which then reports a syntax error).

type tokKind uint8

const (
	tWord   tokKind = iota // an unquoted identifier or keyword
	tIdent                 // a quoted identifier
	tString                // a string literal or dollar-quoted string
	tSemi                  // ;
	tOther                 // anything else: operators, numbers, parameters
)

type token struct {
	kind       tokKind
	start, end int // the token's bytes in the text
	// body is the literal's content span for tString (without quotes,
	// prefix or tag; escapes left as they are).
	bodyStart, bodyEnd int
}

// scanner walks a text token by token.
type scanner struct {
	s string
	i int
	// backslashQuotes: plain '…' literals take backslash escapes
	// (standard_conforming_strings off).
	backslashQuotes bool
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isIdentStart(c byte) bool { return isLetter(c) || c == '_' || c >= 0x80 }
func isIdentCont(c byte) bool  { return isIdentStart(c) || (c >= '0' && c <= '9') || c == '$' }

// next returns the next token; ok is false at the end of the text.
func (sc *scanner) next() (t token, ok bool) {
	s := sc.s
	for sc.i < len(s) {
		c := s[sc.i]
		switch {
		case isSpace(c):
			sc.i++
		case c == '-' && sc.i+1 < len(s) && s[sc.i+1] == '-':
			sc.i = lineCommentEnd(s, sc.i)
		case c == '/' && sc.i+1 < len(s) && s[sc.i+1] == '*':
			sc.i = blockCommentEnd(s, sc.i)
		default:
			return sc.token(), true
		}
	}
	return token{}, false
}

// lineCommentEnd returns the index past the "--" comment at i: it ends at
// a newline or a carriage return, as in PostgreSQL's lexer
// (non_newline is [^\n\r]).
func lineCommentEnd(s string, i int) int {
	j := strings.IndexAny(s[i:], "\n\r")
	if j < 0 {
		return len(s)
	}
	return i + j + 1
}

// blockCommentEnd returns the index past the (nested) comment at i.
func blockCommentEnd(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch {
		case s[i] == '/' && i+1 < len(s) && s[i+1] == '*':
			depth++
			i += 2
		case s[i] == '*' && i+1 < len(s) && s[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return len(s)
}

// token scans the token at sc.i, which is not white space or a comment.
func (sc *scanner) token() token {
	s, i := sc.s, sc.i
	c := s[i]
	t := token{start: i}
	switch {
	case c == ';':
		t.kind, sc.i = tSemi, i+1
	case c == '\'':
		t.kind = tString
		t.bodyStart = i + 1
		t.bodyEnd, sc.i = quoteEnd(s, i+1, '\'', sc.backslashQuotes)
	case c == '"':
		t.kind = tIdent
		t.bodyStart = i + 1
		t.bodyEnd, sc.i = quoteEnd(s, i+1, '"', false)
	case c == '$' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
		// A parameter ($1), not a dollar quote.
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		t.kind, sc.i = tOther, j
	case c == '$':
		if tagEnd, ok := dollarTag(s, i); ok {
			tag := s[i:tagEnd]
			t.kind, t.bodyStart = tString, tagEnd
			if k := strings.Index(s[tagEnd:], tag); k >= 0 {
				t.bodyEnd, sc.i = tagEnd+k, tagEnd+k+len(tag)
			} else {
				t.bodyEnd, sc.i = len(s), len(s)
			}
		} else {
			t.kind, sc.i = tOther, i+1
		}
	case isIdentStart(c):
		j := i + 1
		for j < len(s) && isIdentCont(s[j]) {
			j++
		}
		word := s[i:j]
		// A prefixed literal or identifier: E'…', N'…', B'…', X'…',
		// U&'…', U&"…".
		if j < len(s) && s[j] == '\'' && len(word) == 1 && strings.ContainsRune("eEnNbBxX", rune(word[0])) {
			t.kind, t.bodyStart = tString, j+1
			t.bodyEnd, sc.i = quoteEnd(s, j+1, '\'', word[0]|0x20 == 'e' || sc.backslashQuotes)
			break
		}
		if (word == "u" || word == "U") && j+1 < len(s) && s[j] == '&' && (s[j+1] == '\'' || s[j+1] == '"') {
			q := s[j+1]
			t.kind, t.bodyStart = tString, j+2
			if q == '"' {
				t.kind = tIdent
			}
			t.bodyEnd, sc.i = quoteEnd(s, j+2, q, false)
			break
		}
		t.kind, sc.i = tWord, j
	default:
		t.kind, sc.i = tOther, i+1
	}
	t.end = sc.i
	return t
}

// quoteEnd scans a quoted text from i (just past the opening quote) and
// returns the end of its content and the index past the closing quote.
func quoteEnd(s string, i int, q byte, backslash bool) (bodyEnd, next int) {
	for i < len(s) {
		switch s[i] {
		case '\\':
			if backslash {
				i += 2
				continue
			}
		case q:
			if i+1 < len(s) && s[i+1] == q {
				i += 2
				continue
			}
			return i, i + 1
		}
		i++
	}
	return len(s), len(s)
}

// dollarTag reports whether a dollar-quote opening tag ($$ or $tag$)
// starts at i, and returns the index past it.
func dollarTag(s string, i int) (int, bool) {
	j := i + 1
	if j < len(s) && s[j] == '$' {
		return j + 1, true
	}
	if j >= len(s) || !isIdentStart(s[j]) {
		return 0, false
	}
	for j < len(s) && s[j] != '$' {
		if !isIdentCont(s[j]) {
			return 0, false
		}
		j++
	}
	if j >= len(s) {
		return 0, false
	}
	return j + 1, true
}

// sqlStatement is one statement of a query text.
type sqlStatement struct {
	// start, end: its bytes, from just after the previous ";" to just
	// before its own, white space trimmed; comments around it are kept.
	start, end int
}

// splitStatements splits sql into its statements at ";", skipping the
// empty ones. backslashQuotes is standard_conforming_strings off.
func splitStatements(sql string, backslashQuotes bool) []sqlStatement {
	var out []sqlStatement
	eachStatement(sql, backslashQuotes, func(st sqlStatement) { out = append(out, st) })
	return out
}

// eachStatement calls f with each statement of sql, in order, as
// splitStatements finds them, without holding them: a Query of "a;a;…"
// has a statement every two bytes, and their slice took eight times the
// message's size.
func eachStatement(sql string, backslashQuotes bool, f func(sqlStatement)) {
	sc := scanner{s: sql, backslashQuotes: backslashQuotes}
	seg, has := 0, false
	emit := func(end int) {
		if has {
			st := sqlStatement{start: seg, end: end}
			for st.start < st.end && isSpace(sql[st.start]) {
				st.start++
			}
			for st.end > st.start && isSpace(sql[st.end-1]) {
				st.end--
			}
			f(st)
		}
	}
	// The BEGIN ATOMIC tracking, per statement, as psql does it.
	var words, depth int
	var create, routine bool
	for {
		t, ok := sc.next()
		if !ok {
			break
		}
		if t.kind == tSemi && depth == 0 {
			emit(t.start)
			seg, has = t.end, false
			words, depth, create, routine = 0, 0, false, false
			continue
		}
		has = true
		if t.kind != tWord {
			continue
		}
		w := sql[t.start:t.end]
		words++
		switch {
		case words == 1:
			create = strings.EqualFold(w, "create")
		case create && words <= 4 && (strings.EqualFold(w, "function") || strings.EqualFold(w, "procedure")):
			routine = true
		case routine && strings.EqualFold(w, "begin"):
			depth++
		case routine && depth > 0 && strings.EqualFold(w, "case"):
			depth++
		case routine && depth > 0 && strings.EqualFold(w, "end"):
			depth--
		}
	}
	emit(len(sql))
}

// authChangeMessage is the error a statement that changes a role's
// authentication gets (SQLSTATE 42501).
const authChangeMessage = "airlock: statements that change a role's password, validity or name are refused through the gateway"

// maxNesting bounds how deep changesAuth looks into string literals of
// DO blocks and routine bodies.
const maxNesting = 3

// changesAuth reports whether sql holds a statement that would change a
// role's authentication: ALTER ROLE/USER … with PASSWORD (also ENCRYPTED
// PASSWORD, psql's \password), VALID UNTIL or RENAME TO. It refuses these
// for any role name: a grant's role may only change itself, and a name
// can be written too many ways (quoted, U&"…", CURRENT_USER, SESSION_USER,
// CURRENT_ROLE) to be worth telling apart. The check runs with both
// readings of backslashes in plain literals, since the client can switch
// standard_conforming_strings. In a DO block or a CREATE FUNCTION or
// PROCEDURE it also looks inside string literals (dynamic SQL), loosely:
// ALTER then ROLE or USER, then one of those keywords, in any literal of
// the body. SQL assembled at run time from pieces that do not spell the
// words out is beyond any tokenizer; pg_hba.conf (docs/pg_hba.md) is what
// keeps a changed password from being used.
//
// A text another client encoding may read with literals, quotes or
// comments ending elsewhere (encodingAmbiguous) is refused when its bytes
// spell ALTER, then ROLE or USER, then one of those keywords anywhere, in
// literals and comments too: the server's statements are not the
// scanner's there.
func changesAuth(sql string) bool {
	// Every form it refuses spells ALTER out somewhere in the text.
	if !alterWord.in(sql) {
		return false
	}
	if encodingAmbiguous(sql) && authWordsInOrder(sql) {
		return true
	}
	return changesAuthMode(sql, false, maxNesting) || changesAuthMode(sql, true, maxNesting)
}

// alterWord is changesAuth's first test, in one pass (foldset.go).
var alterWord = newFoldSet(false, "alter")

// authWordsInOrder reports whether sql's bytes hold "alter", then "role"
// or "user", then "password", "valid" or "rename", ASCII case ignored,
// wherever they are.
func authWordsInOrder(sql string) bool {
	i := indexFold(sql, "alter")
	if i < 0 {
		return false
	}
	rest := sql[i+len("alter"):]
	j := -1
	for _, w := range []string{"role", "user"} {
		if k := indexFold(rest, w); k >= 0 && (j < 0 || k < j) {
			j = k + len(w)
		}
	}
	if j < 0 {
		return false
	}
	rest = rest[j:]
	return indexFold(rest, "password") >= 0 || indexFold(rest, "valid") >= 0 || indexFold(rest, "rename") >= 0
}

// Texts that a client encoding with ASCII second bytes reads differently.
//
// The scanner reads bytes as UTF8 and the single-byte encodings do. In the
// encodings unsafeClientEncoding names, a byte >= 0x80 may begin a
// character whose second byte is ASCII (0x40-0x7E; JOHAB and GB18030 from
// 0x30): one character to the server, a byte of a name and then a
// punctuation mark to the scanner. The gateway ends a session whose
// upstream reports such an encoding, but the upstream reports it at the
// ReadyForQuery of the statement that set it, and the client's messages
// pipelined behind "SET client_encoding TO 'SJIS'" reach the server in
// that encoding while the gateway reads them as before. 0x83 0x5C and
// 0x83 0x40 are SJIS characters, so "select E'\x83\'; alter role … --'"
// is one SELECT to the scanner (an escaped quote in a literal) and a
// SELECT and an ALTER ROLE to the server, and so is "select $\x83@$ --
// $\x83@$; alter role …", where the server reads a dollar quote and the
// scanner a comment.
//
// Such a second byte changes nothing where the scanner reads letters,
// digits or "_" (the same name either way), nor inside comments, quoted
// names, dollar quotes and literals, where punctuation is text, but for
// a backslash in a literal that takes escapes; none of these bytes is a
// quote, "$", "-", "/" or "*". So the two readings part only where a name
// ends with a byte >= 0x80 right before a punctuation mark of 0x3A-0x7E,
// or where a literal that takes escapes holds a backslash right after a
// byte >= 0x80 (encodingAmbiguous). Such a text is never taken for a read
// (readStatement), and is checked loosely for a change of authentication
// (changesAuth).

// encodingAmbiguous reports whether sql, under either reading of
// backslashes in plain literals, has a name whose last byte is >= 0x80
// right before one of the punctuation marks an encoding's second byte
// can be (trailPunct), or a quoted literal (not a dollar quote) with a
// backslash right after a byte >= 0x80.
func encodingAmbiguous(sql string) bool {
	if !highBeforePunct(sql) {
		return false // the common text: no scan
	}
	for _, backslashQuotes := range []bool{false, true} {
		sc := scanner{s: sql, backslashQuotes: backslashQuotes}
		for {
			t, ok := sc.next()
			if !ok {
				break
			}
			switch {
			case t.kind == tWord && sql[t.end-1] >= 0x80 && t.end < len(sql) && trailPunct(sql[t.end]):
				return true
			case t.kind == tString && sql[t.start] != '$' && highBackslash(sql[t.bodyStart:t.bodyEnd]):
				return true
			}
		}
	}
	return false
}

// trailPunct reports whether c is a punctuation mark that may be the
// second byte of a character in an encoding unsafeClientEncoding names:
// 0x3A-0x7E but letters and "_".
func trailPunct(c byte) bool {
	return c >= 0x3A && c <= 0x7E && !isLetter(c) && c != '_'
}

// highBeforePunct reports whether s holds a byte >= 0x80 right before a
// trailPunct byte.
func highBeforePunct(s string) bool {
	// Past the text's first byte >= 0x80, found eight bytes at a time:
	// most texts have none, and every simple Query's and Parse's text is
	// checked (readStatement).
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8]
		if (w[0]|w[1]|w[2]|w[3]|w[4]|w[5]|w[6]|w[7])&0x80 != 0 {
			break
		}
	}
	for i = max(i, 1); i < len(s); i++ {
		if s[i-1] >= 0x80 && trailPunct(s[i]) {
			return true
		}
	}
	return false
}

// highBackslash reports whether s holds a backslash right after a byte
// >= 0x80.
func highBackslash(s string) bool {
	for i := 1; i < len(s); {
		k := strings.IndexByte(s[i:], '\\')
		if k < 0 {
			return false
		}
		i += k
		if s[i-1] >= 0x80 {
			return true
		}
		i++
	}
	return false
}

func changesAuthMode(sql string, backslashQuotes bool, depth int) bool {
	sc := scanner{s: sql, backslashQuotes: backslashQuotes}
	var stmt []token
	check := func() bool {
		defer func() { stmt = stmt[:0] }()
		return alterRoleAuth(sql, stmt) || (depth > 0 && dynamicAuth(sql, stmt, backslashQuotes, depth))
	}
	for {
		t, ok := sc.next()
		if !ok {
			break
		}
		// Any ";" ends a statement here, even in a BEGIN ATOMIC body:
		// a statement inside one is checked on its own.
		if t.kind == tSemi {
			if check() {
				return true
			}
			continue
		}
		stmt = append(stmt, t)
	}
	return check()
}

// alterRoleAuth checks one statement's tokens for ALTER ROLE/USER with an
// authentication keyword.
func alterRoleAuth(sql string, stmt []token) bool {
	if len(stmt) < 3 || !isWord(sql, stmt[0], "alter") || !(isWord(sql, stmt[1], "role") || isWord(sql, stmt[1], "user")) {
		return false
	}
	// ALTER USER MAPPING FOR … is a foreign server's options, not a role.
	if isWord(sql, stmt[1], "user") && len(stmt) > 3 && isWord(sql, stmt[2], "mapping") && isWord(sql, stmt[3], "for") {
		return false
	}
	for _, t := range stmt[2:] {
		if isWord(sql, t, "password") || isWord(sql, t, "valid") || isWord(sql, t, "rename") {
			return true
		}
	}
	return false
}

// dynamicAuth looks into the literals of a DO block or routine definition.
func dynamicAuth(sql string, stmt []token, backslashQuotes bool, depth int) bool {
	if len(stmt) == 0 {
		return false
	}
	body := isWord(sql, stmt[0], "do")
	if isWord(sql, stmt[0], "create") {
		for _, t := range stmt[1:min(len(stmt), 5)] {
			if isWord(sql, t, "function") || isWord(sql, t, "procedure") {
				body = true
			}
		}
	}
	if !body {
		return false
	}
	var words []string
	collectWords(sql, stmt, backslashQuotes, depth, &words)
	for i := 0; i+1 < len(words); i++ {
		if words[i] != "alter" || (words[i+1] != "role" && words[i+1] != "user") {
			continue
		}
		for _, w := range words[i+2:] {
			if w == "password" || w == "valid" || w == "rename" {
				return true
			}
		}
	}
	return false
}

// maxCollected bounds the words dynamicAuth looks at.
const maxCollected = 1 << 16

// collectWords appends the lower-cased words of toks, and of the literals
// among them (to depth levels), in order.
func collectWords(sql string, toks []token, backslashQuotes bool, depth int, out *[]string) {
	for _, t := range toks {
		if len(*out) >= maxCollected {
			return
		}
		switch t.kind {
		case tWord:
			w := sql[t.start:t.end]
			if len(w) <= 16 {
				*out = append(*out, strings.ToLower(w))
			}
		case tString:
			if depth == 0 {
				continue
			}
			inner := sql[t.bodyStart:t.bodyEnd]
			// A literal quoted inside a literal has its quotes doubled.
			inner = strings.ReplaceAll(inner, "''", "'")
			sc := scanner{s: inner, backslashQuotes: backslashQuotes}
			var sub []token
			for {
				u, ok := sc.next()
				if !ok {
					break
				}
				sub = append(sub, u)
			}
			collectWords(inner, sub, backslashQuotes, depth-1, out)
		}
	}
}

func isWord(sql string, t token, w string) bool {
	return t.kind == tWord && strings.EqualFold(sql[t.start:t.end], w)
}
