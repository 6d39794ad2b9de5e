package pggw

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
)

// The statements of a simple Query, and the ones the gateway refuses.

const codeInsufficientPrivilege = "42501" // insufficient_privilege

// maxRecordedStatements bounds the requests one Query message is recorded
// as (each is a durable write before the query runs): statements beyond
// the last are recorded with it, in one request whose Also lists their
// actions.
const maxRecordedStatements = 64

// recordQuery records a simple Query before it is forwarded: one request
// per statement (split by splitStatements), each with its own action, so
// that "select 1; delete from t" counts pg:select and pg:delete as scope
// used. The statements' results follow their requests by n: each gets its
// own CommandComplete; after an error the rest are "not run". action is
// actionOf(sql), which the client loop has already.
func (c *conn) recordQuery(sql, action string) error {
	r := &c.rs
	// The first maxRecordedStatements statements; of the rest, only how
	// many, where the last ends and their actions (tailAlso) are kept.
	var sts []sqlStatement
	n, tailEnd := 0, 0
	var tailAction string
	var tailAlso []string
	several := mayHoldSeveral(sql)
	if several {
		eachStatement(sql, c.scsOff.Load(), func(st sqlStatement) {
			n++
			if len(sts) < maxRecordedStatements {
				sts = append(sts, st)
				if len(sts) == maxRecordedStatements {
					last := sts[len(sts)-1]
					tailAction, tailEnd = actionOf(sql[last.start:last.end]), last.end
				}
				return
			}
			tailEnd = st.end
			if a := actionOf(sql[st.start:st.end]); a != tailAction {
				if u := a + " " + c.t.db; !contains(tailAlso, u) {
					tailAlso = append(tailAlso, u)
				}
			}
		})
	}
	if n <= 1 {
		r.n++
		e := newEntry()
		e.kind, e.action = eSimple, action
		call := gateway.Call{Kind: "request", Action: e.action, Resource: c.t.db, Allowed: true, Pairs: append(e.number(r.n),
			gateway.Param{Key: "protocol", Value: "simple"}, gateway.Param{Key: "statement", Value: redactSecrets(sql)})}
		c.withPrepared(&call, sql)
		e.also = len(call.Also) > 0
		pend, err := c.request(call, c.mayReadEarly() && readQueryOf(sql, action, several), &e.record)
		if err != nil {
			return err
		}
		e.start, e.pend = time.Now(), pend
		r.push(e)
		return nil
	}
	// One message: forwarded at once only if every statement may be.
	async := c.mayReadEarly() && readQueryOf(sql, action, several)
	count := len(sts)
	total := strconv.Itoa(n)
	entries := make([]*entry, 0, count)
	for i := range count {
		text := sql[sts[i].start:sts[i].end]
		action := actionOf(text)
		part := strconv.Itoa(i+1) + "/" + total
		var also []string
		if i == count-1 && count < n {
			// The rest of the query, in one request.
			text = sql[sts[i].start:tailEnd]
			part = strconv.Itoa(i+1) + "-" + total + "/" + total
			also = tailAlso
		}
		r.n++
		e := newEntry()
		e.action = action
		call := gateway.Call{Kind: "request", Action: action, Resource: c.t.db, Also: also, Allowed: true, Pairs: append(e.number(r.n),
			gateway.Param{Key: "part", Value: part}, gateway.Param{Key: "protocol", Value: "simple"}, gateway.Param{Key: "statement", Value: redactSecrets(text)})}
		c.withPrepared(&call, text)
		e.also = len(call.Also) > 0
		pend, err := c.request(call, async, &e.record)
		if err != nil {
			if len(entries) > 0 {
				c.gw.log.Error("statements recorded but not run: a later statement of their query could not be recorded",
					"session", c.sess.ID, "first", entries[0].n, "last", r.n-1)
			}
			return err
		}
		kind := ePart
		if i == count-1 {
			kind = eSimple
		}
		e.kind, e.pend = kind, pend
		entries = append(entries, e)
	}
	now := time.Now()
	for _, e := range entries {
		e.start = now
	}
	r.push(entries...)
	return nil
}

// withPrepared adds to the record of a SQL EXECUTE of a statement the
// client prepared through the protocol (a Parse, which is not recorded on
// its own) that statement's text ("prepared") and its action (Also, so
// that scope used counts it): otherwise "EXECUTE d" would be all the log
// held of a DELETE. A name prepared with SQL PREPARE has its text in that
// statement's record instead.
func (c *conn) withPrepared(call *gateway.Call, text string) {
	if call.Action != "pg:execute" || len(c.rs.stmts) == 0 {
		return
	}
	m := executeName.FindStringSubmatch(text)
	if m == nil {
		return
	}
	name := m[1]
	if strings.HasPrefix(name, `"`) {
		name = strings.ReplaceAll(name[1:len(name)-1], `""`, `"`)
	} else {
		name = strings.ToLower(name) // as PostgreSQL folds an unquoted name
	}
	st, ok := c.rs.stmts[name]
	if !ok {
		return
	}
	call.Pairs = append(call.Pairs, gateway.Param{Key: "prepared", Value: st.text})
	if u := st.action + " " + c.t.db; st.action != call.Action && !contains(call.Also, u) {
		call.Also = append(call.Also, u)
	}
}

// executeName finds the statement name of a SQL EXECUTE.
var executeName = regexp.MustCompile(`(?is)^(?:\s|\(|--[^\n]*\n|/\*.*?\*/)*execute\s+("(?:[^"]|"")+"|[a-z_][a-z0-9_$]*)`)

// mayHoldSeveral reports whether a Query's text may hold more than one
// statement, which only a ";" outside quotes and comments separates. Most
// queries hold none, or one at the very end ("select …;"), which cannot
// separate two statements wherever it is: those need not be tokenized.
func mayHoldSeveral(sql string) bool {
	i := strings.IndexByte(sql, ';')
	if i < 0 {
		return false
	}
	for _, c := range []byte(sql[i+1:]) {
		if !isSpace(c) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// inTransaction reports whether upstream may have a transaction open: its
// last status, or statements still running that may open one.
func (c *conn) inTransaction() bool {
	r := &c.rs
	r.qmu.Lock()
	busy := r.front() != nil
	r.qmu.Unlock()
	return busy || c.txs.Load() != 'I'
}

// offendingStatement returns the statement of sql that changesAuth
// refuses, for the recording's action.
func (c *conn) offendingStatement(sql string) string {
	found := ""
	eachStatement(sql, c.scsOff.Load(), func(st sqlStatement) {
		if s := sql[st.start:st.end]; found == "" && changesAuth(s) {
			found = s
		}
	})
	if found != "" {
		return found
	}
	return sql
}

// recordAuthRefusal records a refused statement as a denied request.
func (c *conn) recordAuthRefusal(sql, protocol string) {
	r := &c.rs
	r.n++
	call := gateway.Call{Kind: "request", Action: actionOf(c.offendingStatement(sql)), Resource: c.t.db, Allowed: false,
		Error:  codeInsufficientPrivilege + " " + authChangeMessage,
		Params: map[string]string{"statement": redactSecrets(sql), "protocol": protocol, "n": strconv.FormatInt(r.n, 10)}}
	ctx, cancel := context.WithTimeout(c.ctx(), 10*time.Second)
	defer cancel()
	if err := c.sess.Request(ctx, call); err != nil {
		c.gw.log.Error("recording a refused statement failed", "session", c.sess.ID, "err", err)
	}
}

// refuseAuthChange answers a simple Query that would change a role's
// authentication: recorded as refused, not forwarded, ERROR 42501. Inside
// a transaction block the session is closed instead: upstream saw no
// error, so a COMMIT after the refusal would commit what came before it.
func (c *conn) refuseAuthChange(sql string) error {
	c.recordAuthRefusal(sql, "simple")
	if c.inTransaction() {
		c.kill(fatal(codeInsufficientPrivilege, authChangeMessage+"; the session is closed so that its open transaction is rolled back"))
		return errTerminate
	}
	c.synthetic(&pgError{Severity: "ERROR", Code: codeInsufficientPrivilege, Message: authChangeMessage}, true)
	return nil
}

// refuseParse refuses a Parse of such a statement: recorded now, and its
// batch answered with ERROR 42501 at its Sync, nothing of it forwarded.
func (c *conn) refuseParse(query string) {
	c.recordAuthRefusal(query, "extended")
	c.rs.batchErr = &pgError{Severity: "ERROR", Code: codeInsufficientPrivilege, Message: authChangeMessage}
}

// parameterStatus tracks the upstream settings the tokenizer depends on.
func (c *conn) parameterStatus(body []byte) {
	name, rest, ok := bytes.Cut(body, []byte{0})
	if !ok {
		return
	}
	value, _, _ := bytes.Cut(rest, []byte{0})
	switch string(name) {
	case "standard_conforming_strings":
		c.scsOff.Store(string(value) == "off")
	case "client_encoding":
		if unsafeClientEncoding(string(value)) {
			enc := string(value)
			c.badEncoding.Store(&enc) // the session ends at the client's next message
		}
	}
}

// unsafeClientEncoding reports whether PostgreSQL client encoding enc (as
// the server names it) has multibyte characters whose second byte can be
// 0x5C, a backslash to the gateway's statement scanner (sqlscan.go) but
// part of the character to the server: inside E'…' the two would then
// disagree on where a literal ends, and so on where a statement does, what
// it is, and whether it changes a password. Client-only encodings; a
// server never uses one.
func unsafeClientEncoding(enc string) bool {
	switch strings.ToUpper(enc) {
	case "SJIS", "SHIFT_JIS_2004", "BIG5", "GBK", "GB18030", "JOHAB":
		return true
	}
	return false
}

func encodingMessage(enc string) string {
	return "airlock: client_encoding " + enc + " is not supported through the gateway (a byte of its characters can read as a backslash); use UTF8"
}
