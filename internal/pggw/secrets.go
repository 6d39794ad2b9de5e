package pggw

import (
	"slices"
	"strings"
)

// What else of a statement's text the recording leaves out, beyond the
// literal after a PASSWORD keyword (redactPasswords):
//
//   - a connection string's password inside a string literal, as
//     dblink_connect, dblink, dblink_exec and CREATE/ALTER SUBSCRIPTION …
//     CONNECTION take it: the value of a password or sslpassword keyword
//     ('host=h password=<redacted>') and the password of a URI's user part
//     ('postgresql://u:<redacted>@h/db');
//   - the literal after an option named password or sslpassword, also as a
//     quoted identifier (CREATE USER MAPPING … OPTIONS ("password" '…'),
//     sslpassword '…');
//   - every string literal in the key or password arguments of pgcrypto's
//     functions (pgp_sym_encrypt(data, '<redacted>'), hmac(data,
//     '<redacted>', 'sha256'), crypt('<redacted>', salt), and a key in
//     dearmor('…') there); the data arguments are kept.
//
// The statement keeps its shape: only the secret's characters become
// <redacted>, so the record still says that a password was given and
// where. A literal is redacted only where it is one under both readings
// of backslashes in plain literals (standard_conforming_strings on and
// off), so that redaction never hides from the record text the server
// runs as code.

// secretArgs are pgcrypto's functions and the (1-based) positions of their
// key or password arguments.
var secretArgs = map[string][]int{
	"pgp_sym_encrypt": {2}, "pgp_sym_encrypt_bytea": {2},
	"pgp_sym_decrypt": {2}, "pgp_sym_decrypt_bytea": {2},
	"pgp_pub_decrypt": {2, 3}, "pgp_pub_decrypt_bytea": {2, 3},
	"hmac":    {2},
	"encrypt": {2}, "decrypt": {2}, "encrypt_iv": {2}, "decrypt_iv": {2},
	"crypt": {1},
}

// secretWords are what a text with a secret to redact holds: "password"
// (redactPasswords, and the options and connection strings below), a
// pgcrypto function's name, or a URI's "://".
var secretWords = newFoldSet(false, "password", "crypt", "hmac", "://")

// redactSecrets is a statement's text as recorded.
func redactSecrets(sql string) string {
	if !secretWords.in(sql) {
		// Neither here nor in redactPasswords is there anything to
		// redact: the common statement, in one pass.
		return sql
	}
	sql = redactPasswords(sql)
	if !containsFold(sql, "password") && !strings.Contains(sql, "://") && !containsFold(sql, "crypt") && !containsFold(sql, "hmac") {
		return sql
	}
	spans := secretSpans(sql, false)
	if len(spans) == 0 {
		return sql
	}
	other := secretSpans(sql, true)
	var b strings.Builder
	at := 0
	for _, sp := range spans {
		if !slices.Contains(other, sp) || sp[0] < at {
			continue
		}
		b.WriteString(sql[at:sp[0]])
		b.WriteString("<redacted>")
		at = sp[1]
	}
	if at == 0 {
		return sql
	}
	b.WriteString(sql[at:])
	return b.String()
}

// secretSpans returns the byte ranges of the secrets in sql, in order, as
// the tokenizer reads it with the given reading of backslashes.
func secretSpans(sql string, backslashQuotes bool) [][2]int {
	type call struct {
		depth, arg int
		keys       []int
	}
	var (
		out     [][2]int
		calls   []call
		depth   int
		pending []int // a pgcrypto function's name was the last token
		option  bool  // the last token was password or sslpassword
	)
	sc := scanner{s: sql, backslashQuotes: backslashQuotes}
	for {
		t, ok := sc.next()
		if !ok {
			return out
		}
		text := sql[t.start:t.end]
		wasOption, fn := option, pending
		option, pending = false, nil
		switch t.kind {
		case tWord:
			option = strings.EqualFold(text, "password") || strings.EqualFold(text, "sslpassword")
			pending = secretArgs[strings.ToLower(text)]
		case tIdent:
			body := sql[t.bodyStart:t.bodyEnd]
			option = strings.EqualFold(body, "password") || strings.EqualFold(body, "sslpassword")
			pending = secretArgs[body]
		case tString:
			inKey := false
			for _, c := range calls {
				inKey = inKey || slices.Contains(c.keys, c.arg)
			}
			switch {
			case wasOption || inKey:
				out = append(out, [2]int{t.bodyStart, t.bodyEnd})
			case sql[t.start] == '$':
				// A dollar-quoted body is often SQL itself (DO, CREATE
				// FUNCTION): its statements' secrets too.
				for _, sp := range secretSpans(sql[t.bodyStart:t.bodyEnd], backslashQuotes) {
					out = append(out, [2]int{t.bodyStart + sp[0], t.bodyStart + sp[1]})
				}
			default:
				out = append(out, conninfoSecrets(sql, t.bodyStart, t.bodyEnd)...)
			}
		case tOther:
			switch text {
			case "(", "[":
				depth++
				if text == "(" && fn != nil {
					calls = append(calls, call{depth: depth, arg: 1, keys: fn})
				}
			case ")", "]":
				for len(calls) > 0 && calls[len(calls)-1].depth >= depth {
					calls = calls[:len(calls)-1]
				}
				depth--
			case ",":
				if n := len(calls); n > 0 && calls[n-1].depth == depth {
					calls[n-1].arg++
				}
			}
		}
	}
}

// conninfoSecrets returns the passwords of connection strings in the
// literal body s[from:to]: the values of password and sslpassword
// keywords, and the passwords of URIs' user parts.
func conninfoSecrets(s string, from, to int) [][2]int {
	body := s[from:to]
	var out [][2]int
	for i := 0; ; {
		k := indexFold(body[i:], "password")
		if k < 0 {
			break
		}
		k += i
		i = k + len("password")
		start := k
		if start >= 3 && strings.EqualFold(body[start-3:start], "ssl") {
			start -= 3
		}
		if start > 0 && isIdent(body[start-1]) {
			continue
		}
		j := i
		for j < len(body) && isSpace(body[j]) {
			j++
		}
		if j >= len(body) || body[j] != '=' {
			continue
		}
		j++
		for j < len(body) && isSpace(body[j]) {
			j++
		}
		// A quoted value: its quote as the literal writes it (', '' or
		// \'), up to the same quote again.
		q := j
		for q < len(body) && q-j < 2 && (body[q] == '\'' || body[q] == '\\') {
			q++
		}
		end := len(body)
		if quote := body[j:q]; quote != "" {
			if e := strings.Index(body[q:], quote); e >= 0 {
				end = q + e
			}
			j = q
		} else {
			end = j
			for end < len(body) && !isSpace(body[end]) {
				end++
			}
		}
		if end > j {
			out = append(out, [2]int{from + j, from + end})
		}
		i = max(i, end)
	}
	for i := 0; ; {
		k := strings.Index(body[i:], "://")
		if k < 0 {
			break
		}
		k += i + 3
		i = k
		end := k
		for end < len(body) && !isSpace(body[end]) && !strings.ContainsRune("/?#'", rune(body[end])) {
			end++
		}
		at := strings.LastIndexByte(body[k:end], '@')
		if at < 0 {
			continue
		}
		if c := strings.IndexByte(body[k:k+at], ':'); c >= 0 && c+1 < at {
			out = append(out, [2]int{from + k + c + 1, from + k + at})
		}
	}
	slices.SortFunc(out, func(a, b [2]int) int { return a[0] - b[0] })
	return out
}
