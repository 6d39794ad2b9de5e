package pggw

import (
	"bytes"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The recording model. Every statement the client asks to run is one
// request Call, durable before the statement is forwarded (or, for a read
// on a read-only session, before any byte of its answer is relayed; see
// disclose.go):
//
//	Kind     "request"
//	Action   "pg:" + the statement's leading keyword (pg:select, pg:insert,
//	         pg:copy, pg:begin, …; pg:statement when it is not a known
//	         keyword), so the review's "scope used" reads like the scope
//	         vocabulary; the database, not the gateway, decides what is
//	         allowed, and the gateway cannot know the tables without a
//	         full SQL parser
//	Resource the target's database name
//	Params   statement  the text, passwords and keys redacted (secrets.go)
//	         parameters $1='…', $2=NULL, … for extended-protocol binds
//	                    (values redacted when RedactParameters is set)
//	         protocol   "simple", "extended" or "function-call"
//	         n          the statement's number within the session
//
// and one result Call with the same Action, Resource and Params["n"], Rows
// (from the CommandComplete tag, or the data rows of a suspended portal),
// Duration (from forwarding to completion), Error ("SQLSTATE message"),
// for COPY the bytes that passed, and Refused when the database refused
// the statement for lack of privilege before it did anything (see
// entry.refused): the review then counts it as denied, not as scope
// used, since the grant's role is how the database enforces the grant's
// scope. Results are recorded after the
// client has its answer, so a client waits for one durable write per
// statement, not two; a result that cannot be recorded is logged. A
// refused statement's result is queued (not made durable: the recorder
// batches results, and a read flushes them) before its answer is flushed
// to the client, so that a review read once the client has the error
// counts the refusal (relay.go, upstreamLoop). Only a write to the client
// in between by another path (kill, the gateway's own answer to a
// pipelining client) or a full client buffer (a large row or COPY chunk
// of a later statement read with it) can release it first.
//
// A simple Query message holding several statements ("select 1; delete
// from t") is recorded as one request per statement (split by the
// tokenizer in sqlscan.go, which respects quotes, dollar quotes, comments
// and BEGIN ATOMIC bodies), each with its own action and n, and
// Params["part"] = "k/N"; each gets its own result from its
// CommandComplete, and after an error the rest are recorded as not run.
// Beyond 64 statements, the rest is one request whose Also lists the
// actions of the statements it holds. Statements that change a role's
// authentication (ALTER ROLE … PASSWORD …) are refused: recorded as denied
// requests, answered with ERROR 42501, never forwarded (statements.go).

// verbs are the leading keywords recorded as the Action, by their
// letters' key (letterKey): actionOf looks up every statement's first
// word, three times for a simple Query's, and a string key cost a hash of
// the word each time (it reads them from verbTable).
var verbs = func() map[uint64]string {
	m := map[uint64]string{}
	for _, v := range strings.Fields(`abort alter analyze begin call checkpoint close cluster comment commit copy create
		deallocate declare delete discard do drop end execute explain fetch grant import insert listen load lock merge
		move notify prepare reassign refresh reindex release reset revoke rollback savepoint security select set show
		start table truncate unlisten update vacuum values with`) {
		k := uint64(0)
		for i := range len(v) {
			k = letterKey(k, v[i])
		}
		m[k] = "pg:" + v
	}
	return m
}()

// verbTable is verbs as an open-addressed table, looked up in a few
// instructions (verbOf) where the map took about 140.
var verbTable = func() (t [128]verbSlot) {
	for k, a := range verbs {
		i := verbHash(k)
		for t[i].key != 0 {
			i = (i + 1) % uint64(len(t))
		}
		t[i] = verbSlot{k, a}
	}
	return t
}()

type verbSlot struct {
	key    uint64
	action string
}

// verbHash is a key's first slot in verbTable: Fibonacci hashing to 7 bits.
func verbHash(k uint64) uint64 { return (k * 0x9E3779B97F4A7C15) >> 57 }

// verbOf is verbs[k]. No verb's key is 0 (a word of no letters), the
// key of an empty slot.
func verbOf(k uint64) (string, bool) {
	for i := verbHash(k); ; i = (i + 1) % uint64(len(verbTable)) {
		switch s := &verbTable[i]; s.key {
		case k:
			return s.action, k != 0
		case 0:
			return "", false
		}
	}
}

// maxVerbLetters is the most letters a key holds, at 5 bits each: more
// than the longest verb's (10).
const maxVerbLetters = 12

// letterKey appends letter c (ASCII, either case) to key k: 5 bits each,
// a to z as 1 to 26, so that words of different letters or lengths have
// different keys.
func letterKey(k uint64, c byte) uint64 { return k<<5 | uint64(c|0x20-'a'+1) }

// actionOf returns the Action for a statement: its first keyword, skipping
// white space, comments (as the tokenizer reads them, sqlscan.go) and
// opening parentheses.
func actionOf(sql string) string {
	i := 0
	for i < len(sql) {
		c := sql[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '(':
			i++
		case strings.HasPrefix(sql[i:], "--"):
			i = lineCommentEnd(sql, i)
		case strings.HasPrefix(sql[i:], "/*"):
			// Nested, as PostgreSQL reads it: "/* /* */ select */
			// delete …" is a DELETE.
			i = blockCommentEnd(sql, i)
		default:
			// A word of more than maxVerbLetters letters is no verb: it
			// stops there, before a letter, which isIdent refuses.
			j, k := i, uint64(0)
			for j < len(sql) && j-i < maxVerbLetters && isLetter(sql[j]) {
				k = letterKey(k, sql[j])
				j++
			}
			if a, ok := verbOf(k); ok && (j == len(sql) || !isIdent(sql[j])) {
				return a
			}
			return "pg:statement"
		}
	}
	return "pg:statement"
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isIdent(c byte) bool  { return isLetter(c) || c == '_' || (c >= '0' && c <= '9') || c >= 0x80 }

// redactPasswords replaces the string literal after every PASSWORD keyword
// (CREATE/ALTER ROLE … PASSWORD '…', psql's \password) with '<redacted>',
// so a password set through the gateway never lands in the recording.
func redactPasswords(sql string) string {
	if !containsFold(sql, "password") {
		return sql
	}
	var b strings.Builder
	i := 0
	for {
		k := indexFold(sql[i:], "password")
		if k < 0 {
			break
		}
		k += i
		end := k + len("password")
		if (k > 0 && isIdent(sql[k-1])) || (end < len(sql) && isIdent(sql[end])) {
			b.WriteString(sql[i:end])
			i = end
			continue
		}
		j := end
		for j < len(sql) && (sql[j] == ' ' || sql[j] == '\t' || sql[j] == '\n' || sql[j] == '\r') {
			j++
		}
		lit := literalEnd(sql, j)
		if lit <= j {
			b.WriteString(sql[i:end])
			i = end
			continue
		}
		repl := "'<redacted>'"
		if lit == j+2 && sql[j] == '\'' && lit < len(sql) && sql[lit] != '\'' && !isSpace(sql[lit]) && sql[lit] != ';' {
			// ''secret'': a literal inside a literal (dynamic SQL in a DO
			// block), its quotes doubled.
			if k := strings.Index(sql[lit:], "''"); k >= 0 {
				lit += k + 2
			} else {
				lit = len(sql)
			}
			repl = "''<redacted>''"
		}
		b.WriteString(sql[i:j])
		b.WriteString(repl)
		i = lit
	}
	b.WriteString(sql[i:])
	return b.String()
}

// literalEnd returns the index just past a string literal starting at i
// (quoted with doubled quotes, E-quoted with backslashes, $tag$…$tag$), or i if
// there is none. An unterminated literal runs to the end.
func literalEnd(s string, i int) int {
	if i >= len(s) {
		return i
	}
	switch {
	case s[i] == '\'':
		return quotedEnd(s, i+1, false)
	case (s[i] == 'E' || s[i] == 'e') && i+1 < len(s) && s[i+1] == '\'':
		return quotedEnd(s, i+2, true)
	case s[i] == '$':
		j := strings.IndexByte(s[i+1:], '$')
		if j < 0 {
			return i
		}
		tag := s[i : i+j+2]
		for _, c := range []byte(tag[1 : len(tag)-1]) {
			if !isIdent(c) {
				return i
			}
		}
		k := strings.Index(s[i+len(tag):], tag)
		if k < 0 {
			return len(s)
		}
		return i + len(tag) + k + len(tag)
	}
	return i
}

func quotedEnd(s string, i int, backslash bool) int {
	for i < len(s) {
		switch s[i] {
		case '\\':
			if backslash {
				i += 2
				continue
			}
		case '\'':
			if i+1 < len(s) && s[i+1] == '\'' {
				i += 2
				continue
			}
			return i + 1
		}
		i++
	}
	return len(s)
}

func containsFold(s, sub string) bool { return indexFold(s, sub) >= 0 }

// indexFold is strings.Index ignoring ASCII case, without allocating;
// sub must be lower case.
func indexFold(s, sub string) int {
	n := len(sub)
	for i := 0; i+n <= len(s); i++ {
		if s[i]|0x20 != sub[0] {
			continue
		}
		j := 1
		for j < n && s[i+j]|0x20 == sub[j] {
			j++
		}
		if j == n {
			return i
		}
	}
	return -1
}

// maxParamBytes bounds how much of one bound value is recorded; the rest is
// summarised by its length.
const maxParamBytes = 1024

// formatParams renders bound values for the recording: $1='text',
// $2=NULL, binary values as hex. redact replaces every value by its size.
func formatParams(params [][]byte, formats []int16, redact bool) string {
	if len(params) == 0 {
		return ""
	}
	var b strings.Builder
	// One allocation for the usual case: short text values.
	size := 0
	for _, p := range params {
		size += 12 + min(len(p), maxParamBytes)
	}
	b.Grow(size)
	for i, p := range params {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(i + 1))
		b.WriteByte('=')
		switch {
		case p == nil:
			b.WriteString("NULL")
		case redact:
			b.WriteString("<redacted ")
			b.WriteString(strconv.Itoa(len(p)))
			b.WriteString(" bytes>")
		case paramBinary(formats, i):
			v := p
			if len(v) > maxParamBytes/2 {
				v = v[:maxParamBytes/2]
			}
			b.WriteString(`'\x`)
			b.WriteString(hex.EncodeToString(v))
			b.WriteByte('\'')
			truncNote(&b, len(p), len(v))
		default:
			v := p
			if len(v) > maxParamBytes {
				v = v[:maxParamBytes]
			}
			kept := len(v)
			b.WriteByte('\'')
			for {
				j := bytes.IndexByte(v, '\'')
				if j < 0 {
					break
				}
				b.Write(v[:j+1])
				b.WriteByte('\'')
				v = v[j+1:]
			}
			b.Write(v)
			b.WriteByte('\'')
			truncNote(&b, len(p), kept)
		}
	}
	return b.String()
}

func truncNote(b *strings.Builder, full, kept int) {
	if full > kept {
		b.WriteString("…(")
		b.WriteString(strconv.Itoa(full))
		b.WriteString(" bytes)")
	}
}

// paramBinary applies the Bind format-code rules: none means all text, one
// applies to all, otherwise one per parameter.
func paramBinary(formats []int16, i int) bool {
	switch {
	case len(formats) == 0:
		return false
	case len(formats) == 1:
		return formats[0] == 1
	case i < len(formats):
		return formats[i] == 1
	}
	return false
}

// privilegeError reports whether er is PostgreSQL's insufficient_privilege
// (42501) raised by the statement itself: without an error context
// (Where), which a function or DO block adds to an error raised inside it,
// where work done before, or committed by a procedure, may stand.
func privilegeError(er *pgproto3.ErrorResponse) bool {
	return er.Code == "42501" && er.Where == ""
}

// refused reports whether e's result records a statement the database
// refused for lack of privilege before it did anything, which the review
// counts as denied rather than as scope used (gateway.Call.Refused). Only
// when nothing says otherwise: its own error was such a refusal
// (privilegeError), no row, completion tag or byte reached the client or
// the server (a read that sent rows before failing did read), and its
// request held one statement's action (a request with Also holds other
// statements, or a prepared one's, that the error may not be about). A
// statement whose result never comes stays used.
func (e *entry) refused() bool {
	return e.privErr && !e.also && e.tag == "" && e.rows == 0 && e.dataRows == 0 && e.bytesOut == 0 && e.bytesIn == 0
}

// tagRows returns the row count at the end of a CommandComplete tag
// ("SELECT 3", "INSERT 0 5", "COPY 10"), and whether there was one.
//
// Every statement's CommandComplete comes here, and its count is digits
// alone: up to 18 of them are summed in place, without strconv.ParseInt's
// string, sign and base handling (130 of the relay's 8,300 instructions a
// pgbench -S statement, bench/HISTORY.md, "pgbench -S: a CommandComplete's
// count and a statement's state test by hand"); anything else (a sign, 19
// digits or more, which may overflow) goes to ParseInt as before.
func tagRows(tag []byte) (int64, bool) {
	tag = bytes.TrimRight(tag, "\x00")
	i := bytes.LastIndexByte(tag, ' ')
	if i < 0 {
		return 0, false
	}
	if d := tag[i+1:]; len(d) > 0 && len(d) <= 18 {
		var n int64
		for _, c := range d {
			if c < '0' || c > '9' {
				n = -1
				break
			}
			n = n*10 + int64(c-'0')
		}
		if n >= 0 {
			return n, true
		}
	}
	n, err := strconv.ParseInt(string(tag[i+1:]), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}
