package pggw

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/scope"
)

// Durable before disclosure (DESIGN.md, "Fail closed").
//
// A session is read-only when every statement of its grant's scope names
// pg:select and nothing else (readOnlyScope): its role then holds SELECT
// and no other table privilege. On such a session a message whose
// statements all begin with a read keyword (readVerb: SELECT, SHOW,
// VALUES, TABLE) and none is SELECT … INTO (readStatement) is
// forwarded at once while its records are written (Session.RequestAsync),
// provided it calls no function but built-ins that only compute
// (callsOnlyPure, purecalls.go);
// every other message, and every message of a session whose grant can
// write, is recorded durably before it is forwarded, as before.
//
// What the upstream sends is held until the records of the statements it
// may answer are durable: before relaying any upstream message (each
// piece of a large row or COPY chunk too), the upstream loop waits for
// the record of every statement forwarded with its record pending before
// the message was read (hold), oldest first, whatever the message is and
// whichever statement the queue says it answers. The queue is not relied
// on: an upstream that answers short or out of step (a lost answer or
// ReadyForQuery, an ErrorResponse the relay takes as settling statements
// up to their Sync, rows sent late) shifts it, and a later statement's
// rows would pass for an earlier one's whose record is durable; nor is
// the upstream's word that a message answers nothing (a notice, a
// notification, a parameter status). Waiting, it reads nothing more from
// the upstream, so what is held is one message (bounded as every
// upstream message is) beside the loop's read buffer and the kernel's
// socket buffers, and the upstream stops sending (and pipelining clients
// stop being read) when they fill. A client that sends one statement at
// a time waits for its one record, as before; a pipelining client's
// answers may wait for the records of statements it sent after them
// (the log commits records in batches, in the order queued, so those
// are mostly durable together). Answers are released in protocol order,
// never reordered. If a record fails, nothing more is relayed: the client
// gets FATAL 58000 and the session ends (its upstream connection closes,
// so a transaction the statement ran in rolls back).
//
// Why the keyword as well as the scope: a role with SELECT only can still
// do what PostgreSQL lets every role do (SET, LISTEN and NOTIFY, temporary
// tables, advisory locks, large objects, functions granted to PUBLIC), and
// statements that are not reads by their keyword wait for their record.
// Why the calls as well as the keyword: a SELECT reaches the same effects
// through functions (pg_notify, lo_from_bytea, pg_advisory_lock, a
// SECURITY DEFINER function granted to PUBLIC), so a read that calls any
// function outside a list of built-ins that only compute waits for its
// record too. What the database's own objects do when read (a view or rule
// over such a function, a type's input function) is not seen from the
// text: the DBA's design, documented (pgroles doc).

// readOnlyScope reports whether a scope grants pg:select and nothing else.
func readOnlyScope(sc scope.Scope) bool {
	if len(sc) == 0 {
		return false
	}
	for _, st := range sc {
		for _, a := range st.Actions {
			if a != "pg:select" {
				return false
			}
		}
	}
	return true
}

// readVerb reports whether a statement's action (actionOf) is a read by
// its leading keyword. FETCH is not: it runs the query of a cursor
// declared earlier, whatever that query calls.
func readVerb(action string) bool {
	switch action {
	case "pg:select", "pg:show", "pg:values", "pg:table":
		return true
	}
	return false
}

// readStatement reports whether statement sql, whose action is action, may
// be forwarded while its record is written: a read by its leading keyword
// that is not SELECT … INTO, which creates a table (CREATE TABLE AS),
// calls no function but built-ins that only compute (callsOnlyPure), and
// has nothing that a client encoding set by a message pipelined before it
// may read otherwise, hiding other statements or calls
// (encodingAmbiguous, sqlscan.go).
func readStatement(action, sql string) bool {
	return readVerb(action) && !hasInto(sql) && callsOnlyPure(sql) && !encodingAmbiguous(sql)
}

// A read also reaches what the session itself defined: PUBLIC may create
// temporary views, functions, types and domains, and a temporary relation
// hides a table of the same name, so "select * from v" runs whatever the
// view v the session created calls, with no function named in its text.
// Once a read-only session has run a statement that may define an object
// (anything but the actions in definesNothing), its reads wait for their
// records like writes. So do all its reads where the grant's role may
// CREATE in a schema that outlives the session (Role.MayDefine: PUBLIC
// keeps CREATE on public in a database upgraded from PostgreSQL 14 or
// older): a view or function a grant role defined there in an earlier
// session, or one named like a built-in that a call resolves to, runs
// when read. And so do all its reads where the role may call a function
// of the database's that takes a row (Role.RowFunctions): PostgreSQL
// calls f(c) for "c.f", which the text shows as a column; or one of the
// database's named like a built-in of pureFuncs (Role.ShadowsBuiltins):
// public.lower(varchar) is what "lower(v)" calls over a varchar v.

// definesNothing are the actions of statements that define no object a
// later read could reach. SELECT … INTO and EXPLAIN ANALYZE CREATE TABLE
// AS make tables, which compute nothing when read.
var definesNothing = setOf("pg:select", "pg:show", "pg:values", "pg:table", "pg:with", "pg:begin", "pg:start",
	"pg:commit", "pg:end", "pg:rollback", "pg:abort", "pg:savepoint", "pg:release", "pg:set", "pg:reset", "pg:discard",
	"pg:close", "pg:deallocate", "pg:declare", "pg:fetch", "pg:move", "pg:listen", "pg:unlisten", "pg:notify",
	"pg:explain", "pg:lock", "pg:copy", "pg:prepare", "pg:execute", "pg:insert", "pg:update", "pg:delete", "pg:merge",
	"pg:truncate", "pg:analyze", "pg:vacuum", "pg:checkpoint")

// noteObjects notes, before call's statement is forwarded, that it may
// define objects of the session's own. Client loop only.
func (c *conn) noteObjects(call gateway.Call) {
	if !definesNothing[call.Action] {
		c.ownObjects = true
	}
	for _, u := range call.Also {
		if action, _, _ := strings.Cut(u, " "); !definesNothing[action] {
			c.ownObjects = true
		}
	}
}

// noCode are the actions of statements that run no code of the database's
// or the session's: transaction control, settings, notifications. What is
// not a pure read (readStatement) and not one of these may run a function,
// a trigger or a DO block, which may replace a named statement (bindStmt).
var noCode = setOf("pg:begin", "pg:start", "pg:commit", "pg:end", "pg:rollback", "pg:abort", "pg:savepoint",
	"pg:release", "pg:set", "pg:reset", "pg:show", "pg:listen", "pg:unlisten", "pg:lock", "pg:prepare",
	"pg:deallocate", "pg:discard", "pg:close")

// commitPoint are the actions of statements that run code scheduled
// earlier in their transaction: COMMIT and END (and PREPARE TRANSACTION)
// fire deferred triggers and run a WITH HOLD cursor's query to its end,
// SET CONSTRAINTS … IMMEDIATE fires deferred triggers. They count as
// code while such code may be pending (relayState.pending); so does the
// Sync that ends an implicit transaction.
var commitPoint = setOf("pg:commit", "pg:end", "pg:prepare", "pg:set")

// runsCode reports whether a statement of action (read: readStatement) may
// run code that could replace a named statement: anything but a pure read
// or one of noCode, and a read too once the session has defined objects of
// its own (a view of its own runs its function). Client loop only.
func (c *conn) runsCode(action string, read bool) bool {
	if read {
		return c.ownObjects
	}
	return !noCode[action]
}

// queryRunsCode reports whether a simple Query may run code (runsCode),
// its statements split under either reading of backslashes.
func (c *conn) queryRunsCode(sql string) bool {
	if c.ownObjects {
		return true
	}
	runs := false
	for _, backslashQuotes := range []bool{false, true} {
		eachStatement(sql, backslashQuotes, func(st sqlStatement) {
			if runs {
				return
			}
			text := sql[st.start:st.end]
			action := actionOf(text)
			runs = c.runsCode(action, readStatement(action, text)) || (c.rs.pending && commitPoint[action])
		})
	}
	return runs
}

// mayReadEarly reports whether the session's reads may be forwarded while
// their records are written. Client loop only.
func (c *conn) mayReadEarly() bool {
	return c.readOnly && !c.ownObjects
}

// readQuery reports whether every statement of a simple Query's text is a
// readStatement, with the text split into statements under either reading
// of backslashes in plain literals. The gateway's reading (scsOff) is
// what the upstream last reported, and a query pipelined behind one that
// changes standard_conforming_strings runs under the new reading before
// the upstream reports it: "select '\” ; set … --'" is one SELECT with
// the setting on, a SELECT and a SET with it off.
func readQuery(sql string) bool { return readQueryOf(sql, actionOf(sql), mayHoldSeveral(sql)) }

// readQueryOf is readQuery given action, actionOf(sql), and several,
// mayHoldSeveral(sql): the client loop has them already (each is a pass
// over the text, about 230 and 120 instructions for a pgbench statement).
func readQueryOf(sql, action string, several bool) bool {
	if !several {
		return readStatement(action, sql)
	}
	read := true
	for _, backslashQuotes := range []bool{false, true} {
		eachStatement(sql, backslashQuotes, func(st sqlStatement) {
			text := sql[st.start:st.end]
			read = read && readStatement(actionOf(text), text)
		})
	}
	return read
}

// intoWord is hasInto's first test, in one pass (foldset.go).
var intoWord = newFoldSet(false, "into")

// hasInto reports whether sql holds the keyword INTO outside literals,
// quoted identifiers and comments, with either reading of backslashes in
// plain literals. INTO is reserved, so such a word is the keyword; in a
// statement that begins with a read keyword it can only be SELECT … INTO.
func hasInto(sql string) bool {
	if !intoWord.in(sql) {
		return false
	}
	for _, backslashQuotes := range []bool{false, true} {
		sc := scanner{s: sql, backslashQuotes: backslashQuotes}
		for {
			t, ok := sc.next()
			if !ok {
				break
			}
			if isWord(sql, t, "into") {
				return true
			}
		}
	}
	return false
}

// request records call before its statement is forwarded: durably now
// (nil Pending), or, when async, queued with a Pending to wait on before
// its answer is relayed.
func (c *conn) request(call gateway.Call, async bool, p *gateway.Pending) (*gateway.Pending, error) {
	// A statement's: its result may say Refused (entry.refused), which
	// the metrics count instead of allowed.
	call.OutcomeAtResult = len(call.Also) == 0
	if !async {
		return nil, c.recordRequest(call)
	}
	if !c.grant().Live(c.gw.o.Clock.Now()) {
		c.kill(fatal(codeAdminShutdown, c.gw.grantEndedMessage(c.grant())))
		return nil, errGrantEnded
	}
	return c.sess.RequestAsyncIn(c.ctx(), call, p), nil
}

// errRecordFailedHeld ends a session whose statement ran while its record
// was written, and whose record then failed: its answer is discarded.
var errRecordFailedHeld = fatal(codeSystemError,
	"airlock: could not record the statement; its answer was withheld and the session is closed")

// hold waits until the upstream bytes the loop has read may be
// disclosed: until the records of every statement forwarded before they
// were read are durable. It returns false when one failed (the session is
// then killed) or the connection ends. Called by the upstream loop, with
// the bytes read and not yet relayed, without wmu.
//
// Which statements those are is not what the queue says the bytes answer
// (see the top of this file): it waits for every record forwarded so far,
// a superset of those forwarded before the bytes were read, the oldest
// first, each (a record may fail on its own: a grant that ended). Those
// are the entries not passed yet: the completed ones (done) the loop has
// not recorded, then the queued ones, the passed ones always before the
// others, so it looks back from the newest only as far as the first
// passed. An entry queued while it waits is left to the next message, so
// that a client pipelining faster than its records land cannot hold the
// upstream loop here for ever.
func (c *conn) hold() bool {
	if !c.readOnly {
		return true
	}
	r := &c.rs
	// The upstream loop's own: no lock.
	i := len(r.done)
	for i > 0 && !r.done[i-1].passed {
		i--
	}
	for _, e := range r.done[i:] {
		e.passed = true
		if e.pend != nil {
			if err := e.pend.Wait(c.ctx()); err != nil {
				c.refuseHeld(err)
				return false
			}
			e.pend = nil
		}
	}
	// Only this loop pops the queue: what it indexes stays while it
	// waits, unlocked, whatever the client loop appends.
	r.qmu.Lock()
	end := len(r.q)
	i = end
	for i > r.head && !r.q[i-1].passed {
		i--
	}
	for ; i < end; i++ {
		e := r.q[i]
		e.passed = true
		p := e.pend
		if p == nil {
			continue
		}
		r.qmu.Unlock()
		if err := p.Wait(c.ctx()); err != nil {
			c.refuseHeld(err)
			return false
		}
		r.qmu.Lock()
		e.pend = nil
	}
	r.qmu.Unlock()
	return true
}

// refuseHeld ends a session whose held answer may not be disclosed.
func (c *conn) refuseHeld(err error) {
	if c.ctx().Err() != nil {
		return // killed already (grant ended, gateway closing)
	}
	if errors.Is(err, errGrantEnded) || errors.Is(err, gateway.ErrNoGrant) || !c.grant().Live(c.gw.o.Clock.Now()) {
		c.kill(fatal(codeAdminShutdown, c.gw.grantEndedMessage(c.grant())))
		return
	}
	c.gw.log.Error("a statement's record failed after it was forwarded; its answer is withheld and the session closed",
		"session", c.sess.ID, "err", err)
	c.kill(errRecordFailedHeld)
}

// dropUnrecorded removes from the results to record those whose request
// was forwarded while being recorded and whose record failed (or did not
// end in time): a result must follow its request in the log. Called by
// finish, once the relay has stopped.
func (c *conn) dropUnrecorded() {
	r := &c.rs
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx()), 10*time.Second)
	defer cancel()
	kept := r.done[:0]
	for _, e := range r.done {
		if e.pend != nil && e.pend.Wait(ctx) != nil {
			continue
		}
		e.pend = nil
		kept = append(kept, e)
	}
	clear(r.done[len(kept):])
	r.done = kept
}
