package pggw

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/jackc/pgx/v5/pgproto3"
)

// Limits on per-session protocol state the client controls.
const (
	maxPrepared = 10000 // named prepared statements
	maxPortals  = 10000 // named portals
)

var errRecordFailed = &pgError{Severity: "ERROR", Code: codeSystemError,
	Message: "airlock: could not record the statement; it was not run"}

// errRecordFailedInTx ends a session whose statement could not be recorded
// inside a transaction block.
var errRecordFailedInTx = fatal(codeSystemError,
	"airlock: could not record the statement; it was not run, and the session is closed so that its open transaction is rolled back")

// entryKind says what an entry of the response queue waits for.
type entryKind uint8

const (
	eSimple       entryKind = iota // a Query or FunctionCall: done at ReadyForQuery
	ePart                          // a statement of a multi-statement Query but its last: done at its CommandComplete
	eExec                          // an Execute: done at CommandComplete, EmptyQueryResponse, PortalSuspended or ErrorResponse
	eSync                          // a Sync: consumed by its ReadyForQuery
	eSynthetic                     // an answer the gateway gives itself, in order with upstream answers
	eClose                         // a client's Close: done at its CloseComplete
	eSwallow                       // a Close the gateway sent itself: its CloseComplete is not relayed
	eSwallowParse                  // a Parse the gateway sent itself: its ParseComplete is not relayed
	eCheck                         // the gateway's own Bind and Execute of checkQuery: not relayed, but an error
)

// entry is one forwarded request awaiting its response, in protocol order.
type entry struct {
	kind   entryKind
	n      int64
	action string
	// rec holds the parameters of the statement's request and result
	// records (stmtRecord), which the recorder may keep after the entry
	// is recycled (freeEntry); set by number.
	rec      *stmtRecord
	start    time.Time
	rows     int64
	dataRows int64
	tag      string
	err      string
	bytesIn  int64
	bytesOut int64
	dur      time.Duration
	// eSynthetic: bytes to send, then ReadyForQuery if ready.
	synthetic []byte
	ready     bool
	// passed: the upstream loop has waited for the record of this entry
	// and of every one before it (hold), under qmu while it is queued.
	passed bool
	// stale: an Execute of a portal the gateway closed first
	// (staleExecute, staleCode or staleSkipped); the server's 34000 is
	// relayed as the gateway's own.
	stale uint8
	// privErr: err is the server's insufficient_privilege with no error
	// context; also: the request listed other actions (Also). See
	// refused.
	privErr, also bool
	// pend is the request's record while it may not be durable yet (a
	// read forwarded at once, see disclose.go); nil once it is.
	pend *gateway.Pending
	// record is what pend points to when set, held in the entry rather
	// than allocated apart.
	record gateway.Pending
}

// stmt is a statement's text as recorded: its action and its text with
// passwords redacted, worked out once at Parse rather than at every
// Execute (a prepared statement runs many times).
type stmt struct {
	action, text string
	read         bool // readStatement
	unsure       bool // see group; beside read, the struct is 8 bytes smaller
	// The Parse as the client sent it (query and parameter types), and for
	// a named statement the session's code generation (relayState.code)
	// when the gateway last gave it to the server or checked it there
	// (bindStmt).
	query string
	oids  []uint32
	gen   uint64
	// group is the sync group (relayState.syncs) of the Parse, Bind or
	// check that last gave the server this statement or portal; unsure
	// until that group is known to have had no error (settled): after an
	// error the server skips every message up to Sync, and so may still
	// hold what the name held before.
	group uint64
}

// stmtRecord is what a statement's request and result records point to:
// their parameters, as pairs (gateway.Call.Pairs), "n" (the statement's
// number in decimal, in num) first, so that its result's are pairs[:1]
// (resultPairs), then room for the request's others. It is an object of
// its own, never reused, rather than part of the entry: a recorder may
// keep a call's Pairs for as long as it likes ("must not change once the
// call is recorded": the sessions recorder's results batch until its
// flush, however long the log fails; the tests' in-memory authority for
// ever), and the entry is recycled once the statement's result is
// recorded (freeEntry). 144 bytes, where the entry (384) and the number's
// string (8, at n ≥ 100) were two allocations a statement.
type stmtRecord struct {
	pairs [4]gateway.Param
	num   [16]byte // n in decimal (strconv.AppendInt); a longer n is put apart
}

// number numbers e's statement n (relayState.n), with a record of its own
// (stmtRecord), and returns its request's pairs so far, "n" alone, with
// room for the others (appended in the record, the log sorts them).
func (e *entry) number(n int64) []gateway.Param {
	e.n = n
	r := new(stmtRecord)
	b := strconv.AppendInt(r.num[:0], n, 10)
	// The bytes are written once, here, before the string exists, and
	// the record is never reused: the string is as immutable as any.
	r.pairs[0] = gateway.Param{Key: "n", Value: unsafe.String(unsafe.SliceData(b), len(b))}
	e.rec = r
	return r.pairs[:1]
}

// resultPairs are the parameters of the statement's result record: its
// number, by which it pairs with its request.
func (e *entry) resultPairs() []gateway.Param { return e.rec.pairs[:1:1] }

// entryPool holds queue entries no list and no record points to any more,
// for the next statements of any session (newEntry, freeEntry): an entry
// was 384 bytes a statement, a pgbench -S transaction's largest object in
// the gateway, and a prepared batch's three (its Bind's unused place and
// its Sync's among them) 1,152.
var entryPool = sync.Pool{New: func() any { return new(entry) }}

// newEntry returns a zero entry for the client loop to fill and push.
func newEntry() *entry { return entryPool.Get().(*entry) }

// freeEntry gives e back for another statement, of this session or
// another, once nothing reads or writes it any more. Its callers show
// that:
//   - it is out of the queue (popped, under qmu, by the upstream loop or
//     by finish once both loops ended) and out of done: only the
//     upstream loop pops, only it holds done (hold and recordResults run
//     on it), and the client loop keeps no pointer to an entry it pushed
//     (recordQuery's and endBatch's lists are local, endBatch's scratch
//     only cleared);
//   - its request is no longer the recorder's: recorded at once (pend
//     nil from the start; Request has returned), or its Pending waited
//     for with a nil answer (the recorder's wait is done with the call
//     and gives its own object back: sessions' callWait). An entry
//     whose record failed or was never waited for is left to the
//     collector, since the recorder may still hold its Pending;
//   - its result, if any, is recorded, and the result's call points to
//     the statement's record (stmtRecord), not to the entry.
//
// Entries that are not statements (a Sync, a Close, a check, the
// gateway's own answers) have no record: popping them is their end.
func freeEntry(e *entry) {
	*e = entry{}
	entryPool.Put(e)
}

func newStmt(sql string) stmt {
	action := actionOf(sql)
	return stmt{action: action, text: redactSecrets(sql), read: readStatement(action, sql)}
}

// A portal's stmt.gen is the session's code generation (relayState.code)
// when the portal was bound or last ran, not its statement's: code run
// since can have closed it and opened a cursor of the same name
// (staleExecute).
type portal struct {
	stmt   stmt
	params string
}

// pendingExec is an Execute of the current batch, recorded at its end.
type pendingExec struct {
	portal string
	p      portal
	found  bool
	// stale: the gateway closed the portal ahead of this Execute, which
	// the server then answers with an error (staleExecute).
	stale uint8
	// close, when not zero, makes this a Close in the batch instead of an
	// Execute: eClose (the client's) or eSwallow (the gateway's own).
	close entryKind
	// bind, when not zero, makes this the client's Bind of portal instead
	// (bindOnly, or bindRun once an Execute of the batch runs the portal).
	bind uint8
}

// Values of pendingExec.bind. PostgreSQL plans a statement at its Bind,
// which evaluates functions declared IMMUTABLE over constant arguments
// (the parameters' values included) and the parameters' domain checks:
// code of the database's or the session's, which may change state. A
// Bind that an Execute of its batch runs is covered by that Execute's
// record, made before the batch is forwarded; any other is recorded on
// its own (recordBind).
const (
	bindOnly = 1
	bindRun  = 2
)

// undoOp restores one name of the gateway's statement or portal maps as
// it was before a message of a batch that is then refused (not forwarded).
type undoOp struct {
	portal bool   // a portal, else a prepared statement
	name   string // "" for the unnamed one
	had    bool
	st     stmt
	p      portal
}

// batchState is the client loop's extended-protocol batch: what it holds
// from a batch's first message to its Sync or Flush, and scratch space.
// It is empty between batches, and a parked client loop gives it back to
// batchStates (letGo): an idle session holds none of its 208 bytes.
type batchState struct {
	batch    []byte
	execs    []pendingExec
	batchErr *pgError
	scratch  []*entry // endBatch's entries, reused
	bind     bindMsg
	undo     []undoOp // the current batch's changes to the maps
	// txEffect: what the current batch's statements did to a transaction
	// block so far: 0 nothing, txBegin opened one, txEnd may have ended
	// one (a Sync after which may end an implicit transaction).
	// batchMsgs: the current batch holds some (not only Flush or Sync).
	// Both are cleared at the batch's end (endBatch).
	txEffect  uint8
	batchMsgs bool
}

// empty reports whether b holds nothing of a batch.
func (b *batchState) empty() bool {
	return len(b.batch) == 0 && len(b.execs) == 0 && len(b.undo) == 0 && b.batchErr == nil
}

var batchStates = sync.Pool{New: func() any { return new(batchState) }}

// relayState is a session's protocol state.
type relayState struct {
	// Owned by the client loop. batchState is nil while the loop is
	// parked (takeIO gives it one again).
	*batchState
	uw      *flushWriter
	n       int64
	discard bool // after a refused batch: ignore everything up to Sync
	// pending: code may have been scheduled to run at the end of the
	// transaction (a deferred trigger, a WITH HOLD cursor's query), which
	// then runs at a COMMIT, SET CONSTRAINTS or Sync (commitPoint). It
	// outlives batches and parkings.
	pending bool
	// open: extended-protocol messages were forwarded since the last
	// Sync (the server may be skipping to it); it outlives a batch ended
	// by Flush, and a parking.
	open bool
	// checking counts the eCheck entries queued (bindStmt; pop takes
	// them off): here, beside the flags, it leaves relayState 8 bytes
	// smaller (192, a size class of its own).
	checking atomic.Int32
	// stmts holds pointers, never changed once stored (a new stmt
	// replaces one): a map group has room for eight entries, and with
	// stmt values a session's first prepared statement cost a group of
	// eight of them for as long as it lived.
	stmts map[string]*stmt
	// un is the unnamed statement and portal, noUnnamed until the
	// session first sets either (ownUnnamed).
	un      *unnamedState
	portals map[string]portal
	// code counts the statements forwarded that may have run code of the
	// database's or the session's (a DO block, a function, a trigger, a
	// view of the session's own): such code can DEALLOCATE and PREPARE a
	// named statement again with dynamic SQL the gateway cannot read.
	code uint64
	// syncs counts the Syncs forwarded: the messages since the last one
	// are sync group syncs.
	syncs uint64
	// Written by the upstream loop: synced is one more than the last sync
	// group answered (its ReadyForQuery passed), errAt one more than the
	// last sync group in which the server reported an error (and so may
	// have skipped messages).
	synced atomic.Uint64
	errAt  atomic.Uint64

	copyIn atomic.Int64 // COPY FROM STDIN bytes not yet attributed

	// The response queue: pushed by the client loop, consumed by the
	// upstream loop (under qmu, which is taken after wmu).
	qmu  sync.Mutex
	q    []*entry
	head int

	// Owned by the upstream loop: completed, to be recorded once the
	// client has their answers. (The loop's last command tag, reused
	// while it repeats, is kept by its reader: tagString.)
	done []*entry
}

func (r *relayState) push(e ...*entry) {
	r.qmu.Lock()
	r.q = append(r.q, e...)
	r.qmu.Unlock()
}

// front returns the oldest entry; qmu held.
func (r *relayState) front() *entry {
	if r.head < len(r.q) {
		return r.q[r.head]
	}
	return nil
}

// pop drops the oldest entry; qmu held.
func (r *relayState) pop() {
	e := r.q[r.head]
	switch e.kind {
	case eCheck:
		r.checking.Add(-1)
		freeEntry(e)
	case eSimple, eExec, ePart:
		// complete (or finish) moved it to done: freed once its
		// result is recorded (recordResults).
	default:
		freeEntry(e)
	}
	r.q[r.head] = nil
	r.head++
	if r.head == len(r.q) {
		r.q, r.head = r.q[:0], 0
	}
}

// unnamedState is a session's unnamed statement and portal.
type unnamedState struct {
	st stmt
	p  portal
}

// noUnnamed is the unnamed statement and portal before any Parse or Bind
// (what a client runs with them is recorded as the empty statement),
// shared by the sessions that have set neither: about 200 bytes that a
// session of simple queries, as psql's, does not hold. Never changed.
var noUnnamed = &unnamedState{st: newStmt(""), p: portal{stmt: newStmt("")}}

// ownUnnamed returns the session's own unnamedState, to be changed.
func (r *relayState) ownUnnamed() *unnamedState {
	if r.un == noUnnamed {
		r.un = &unnamedState{st: noUnnamed.st, p: noUnnamed.p}
	}
	return r.un
}

func newRelayState(uw *flushWriter) *relayState {
	r := new(relayState)
	r.init(uw)
	return r
}

// init sets a zero relayState up for a session's relay.
func (r *relayState) init(uw *flushWriter) {
	r.batchState, r.uw, r.un = batchStates.Get().(*batchState), uw, noUnnamed
}

// run relays between the client and the upstream until either ends.
func (c *conn) run(up net.Conn) {
	c.rs.init(getFlushWriter(up))
	// up is c.up, set by the startup and not changed after: pointing at
	// the field costs no allocation.
	c.upc.Store(&c.up)
	c.pk.ubr = getIdleReader(up)
	c.pk.loops.Store(2)
	c.pk.relaying = true
	go c.upstreamRelay()
	c.clientRelay()
}

// upstreamRelay runs the upstream loop with a panic contained to the
// connection (it would otherwise end the process), until the loop ends or
// parks (park.go).
func (c *conn) upstreamRelay() {
	parked := false
	defer c.loopDone(&parked)
	defer c.contain("upstream relay")
	c.takeIO(upstreamSide)
	if parked = c.upstreamLoop(c.pk.ubr); !parked {
		c.closeAll()
	}
}

// clientRelay runs the client loop with a panic contained to the
// connection, until the loop ends or parks (park.go).
func (c *conn) clientRelay() {
	parked := false
	defer c.loopDone(&parked)
	defer c.contain("client relay")
	c.takeIO(clientSide)
	err := c.clientLoop()
	if parked = errors.Is(err, errParked); parked {
		return
	}
	var pe *pgError
	if errors.As(err, &pe) {
		c.recordRefused("pg:protocol", pe.Message)
		c.kill(pe)
	}
	if !c.panicked.Load() {
		c.closeAll()
	}
}

// finish records what never completed and ends the session.
func (c *conn) finish() {
	c.gw.keys.remove(c.key)
	slotCut := c.st.removeSession(c)
	r := &c.rs
	r.qmu.Lock()
	for e := r.front(); e != nil; e = r.front() {
		if e.kind == eSimple || e.kind == eExec || e.kind == ePart {
			e.err = c.cutReason(slotCut, e.err)
			e.bytesIn += r.copyIn.Swap(0)
			r.done = append(r.done, e)
		}
		r.pop()
	}
	r.qmu.Unlock()
	c.dropUnrecorded()
	c.recordResults()
	if c.panicked.Load() {
		// Before the end, as every result: an end is the session's last
		// record (gateway.Session.Result).
		c.recordInternalError()
	}
	if slotCut != "" {
		c.recordCut(slotCut)
	}
	c.endSession()
}

// cutReason is the error recorded for a statement still in flight when
// the session ended: the grant's end, the gateway's shutdown (Close, or
// the end of its Serve call's context) or slotCut
// (why, if it cut the session), which killed the session, named as the
// AWS gateway names a cut call; else the upstream's: upErr, the error it
// answered the statement with before the session ended (its FATAL, when an
// administrator ended its server process), or its close; else the
// connection's close (the client left).
func (c *conn) cutReason(slotCut, upErr string) string {
	c.st.mu.Lock()
	ended := c.st.ended
	c.st.mu.Unlock()
	switch {
	case slotCut != "":
		return "airlock: cut off: " + slotCut
	case ended:
		return fmt.Sprintf("airlock: cut off: grant %s has %s before the statement completed", c.grant().ID, c.gw.grantEnd(c.grant()))
	case c.gw.isClosed() || (c.srv != nil && c.srv.stopped.Load()):
		return "airlock: cut off: the gateway shut down before the statement completed"
	case upErr != "":
		return upErr
	case c.upEnded.Load():
		return "airlock: the upstream closed the connection before the statement completed"
	}
	return "airlock: the connection closed before the statement completed"
}

// upstreamGone notes that the upstream loop's read failed with err:
// unless the message was malformed, or the gateway had closed the
// connections by then (closeAll and kill mark the session dead before
// closing the upstream), the upstream ended the connection.
func (c *conn) upstreamGone(err error) {
	var tl *errTooLarge
	var bl *errBadLength
	if errors.As(err, &tl) || errors.As(err, &bl) {
		return
	}
	c.wmu.Lock()
	if !c.dead {
		c.upEnded.Store(true)
	}
	c.wmu.Unlock()
}

func (c *conn) endSession() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx()), 10*time.Second)
	defer cancel()
	if err := c.sess.End(ctx); err != nil {
		c.gw.log.Error("ending the session's recording failed", "session", c.sess.ID, "err", err)
	}
}

// clientLoop reads the client's messages, records and forwards them. It
// returns nil when the client leaves, a *pgError for a protocol violation.
func (c *conn) clientLoop() error {
	r := &c.rs
	mr := msgReader{r: c.br, max: c.gw.o.MaxMessageBytes}
	for {
		c.rest(clientSide, c.br)
		raw, err := mr.next()
		if err != nil {
			switch err = c.parkOn(clientSide, c.br, err); err {
			case nil:
				continue
			case errParked:
				return err
			}
			var tl *errTooLarge
			var bl *errBadLength
			switch {
			case errors.As(err, &tl):
				return fatal(codeProgramLimit, "airlock: "+tl.Error())
			case errors.As(err, &bl):
				return fatal(codeProtocolViolation, "airlock: "+bl.Error())
			}
			return nil
		}
		if err := c.clientMessage(raw); err != nil {
			if errors.Is(err, errTerminate) {
				return nil
			}
			return err
		}
		mr.release()
		if c.br.Buffered() == 0 {
			if err := r.uw.Flush(); err != nil {
				return nil
			}
		}
	}
}

var errTerminate = errors.New("terminate")

// clientMessage handles one client message.
func (c *conn) clientMessage(raw []byte) error {
	r := &c.rs
	typ, body := raw[0], raw[5:]
	if enc := c.badEncoding.Load(); enc != nil && typ != 'X' {
		return fatal(codeFeatureNotSupp, encodingMessage(*enc))
	}
	if r.discard && typ != 'S' && typ != 'X' {
		return nil
	}
	switch typ {
	case 'P', 'B', 'D', 'C', 'E', 'S', 'H':
		return c.extended(typ, raw)
	}
	if len(r.batch) > 0 {
		// A batch ended by something other than Sync or Flush.
		if err := c.endBatch(false); err != nil {
			return err
		}
		if r.discard {
			return nil
		}
	}
	if r.open && (typ == 'Q' || typ == 'F') {
		// After an error the server skips everything up to Sync, a Query
		// or FunctionCall included, without an answer: the queue of
		// answers, the records and the sync groups would no longer line
		// up with what ran.
		return fatal(codeProtocolViolation, "airlock: a simple Query or FunctionCall after extended-protocol messages without Sync; send Sync first")
	}
	switch typ {
	case 'Q':
		if len(body) == 0 || body[len(body)-1] != 0 {
			return fatal(codeProtocolViolation, "airlock: invalid Query message")
		}
		c.gw.hook("query", body[:len(body)-1])
		sql := string(body[:len(body)-1])
		if changesAuth(sql) {
			return c.refuseAuthChange(sql)
		}
		action := actionOf(sql) // once, for what follows
		c.noteState(sql, action)
		if mayChangePrepared(sql) {
			// Names may change behind the protocol: each named statement
			// is checked on the server at its next Bind (bindStmt), each
			// named portal closed before its next Execute (staleExecute).
			r.code++
		}
		c.settlePending()
		if err := c.recordQuery(sql, action); err != nil {
			return c.refuseStatement(err, true)
		}
		if r.tracksCode() && c.queryRunsCode(sql) {
			r.noteCode()
		}
		_, err := r.uw.Write(raw)
		return upErr(err)
	case 'F':
		var fc pgproto3.FunctionCall
		if fc.Decode(body) != nil {
			return fatal(codeProtocolViolation, "airlock: invalid FunctionCall message")
		}
		// The function's body is not seen: as code, and as leaving
		// state that DISCARD ALL does not reset (reuse.go).
		r.code++
		c.leavesState = true
		r.n++
		e := newEntry()
		e.kind, e.action = eSimple, "pg:function-call"
		call := gateway.Call{Kind: "request", Action: e.action, Resource: c.t.db, Allowed: true, Pairs: append(e.number(r.n),
			gateway.Param{Key: "function", Value: strconv.FormatUint(uint64(fc.Function), 10)}, gateway.Param{Key: "protocol", Value: "function-call"})}
		if p := formatParams(fc.Arguments, int16s(fc.ArgFormatCodes), c.redact()); p != "" {
			call.Pairs = append(call.Pairs, gateway.Param{Key: "parameters", Value: p})
		}
		if err := c.recordRequest(call); err != nil {
			return c.refuseStatement(err, true)
		}
		e.start = time.Now()
		r.push(e)
		_, err := r.uw.Write(raw)
		return upErr(err)
	case 'd':
		r.copyIn.Add(int64(len(body)))
		_, err := r.uw.Write(raw)
		return upErr(err)
	case 'c', 'f':
		_, err := r.uw.Write(raw)
		return upErr(err)
	case 'X':
		if c.startReset() { // reuse.go
			return errTerminate
		}
		_, _ = r.uw.Write(raw)
		_ = r.uw.Flush()
		return errTerminate
	}
	return fatal(codeProtocolViolation, fmt.Sprintf("airlock: invalid frontend message type %q", typ))
}

// errUpstream ends the client loop quietly: the upstream loop reports.
var errUpstream = errors.New("upstream write failed")

func upErr(err error) error {
	if err != nil {
		return errUpstream
	}
	return nil
}

func int16s(u []uint16) []int16 {
	out := make([]int16, len(u))
	for i, v := range u {
		out[i] = int16(v)
	}
	return out
}

// What the gateway keeps for a batch's messages until its end, besides
// their bytes: an Execute's or a Close's pending record (and, at the end,
// its queue entry), and the map changes it may have to undo. An Execute
// is 10 bytes on the wire; counted by its bytes alone, a batch bounded to
// twice MaxMessageBytes held ten times that.
const (
	execCost = int(unsafe.Sizeof(pendingExec{}) + unsafe.Sizeof(entry{}))
	undoCost = int(unsafe.Sizeof(undoOp{}))
)

// batchCost is what the current batch holds with a next message of n
// bytes (which may add one pending record).
func (r *relayState) batchCost(n int) int {
	return len(r.batch) + n + (len(r.execs)+1)*execCost + len(r.undo)*undoCost
}

// extended buffers one extended-protocol message; Sync and Flush end the
// batch, which is recorded, then forwarded as a whole.
func (c *conn) extended(typ byte, raw []byte) error {
	r := &c.rs
	body := raw[5:]
	if r.discard {
		if typ == 'S' {
			r.discard = false
			if r.open {
				// Messages of this sync group were forwarded before the
				// refused batch: the server's group ends with this Sync.
				r.batch = append(r.batch, raw...)
				return c.endBatch(true)
			}
			c.synthetic(nil, true)
		}
		return nil
	}
	if len(r.batch) == 0 {
		c.settlePending()
	}
	if len(r.batch) == 0 {
		r.txEffect = 0
	}
	if r.batchCost(len(raw)) > 2*c.gw.o.MaxMessageBytes {
		return fatal(codeProgramLimit, "airlock: too many extended-protocol messages without Sync or Flush")
	}
	if typ != 'S' && typ != 'H' {
		r.batchMsgs = true
	}
	switch typ {
	case 'P':
		var m pgproto3.Parse
		if m.Decode(body) != nil {
			return fatal(codeProtocolViolation, "airlock: invalid Parse message")
		}
		c.noteState(m.Query, actionOf(m.Query))
		if changesAuth(m.Query) {
			c.refuseParse(m.Query)
		} else if m.Name == "" {
			r.undo = append(r.undo, undoOp{had: true, st: r.un.st})
			un := r.ownUnnamed()
			un.st = newStmt(m.Query)
			un.st.query, un.st.oids, un.st.group, un.st.unsure = m.Query, m.ParameterOIDs, r.syncs, true
		} else {
			if r.stmts == nil {
				r.stmts = map[string]*stmt{}
			}
			if _, ok := r.stmts[m.Name]; !ok && len(r.stmts) >= maxPrepared {
				r.batchErr = &pgError{Severity: "ERROR", Code: codeProgramLimit, Message: "airlock: too many prepared statements; close some"}
			} else {
				if !r.tracksCode() {
					// What ran before was not classified.
					r.pending = true
				}
				r.saveStmt(m.Name)
				st := newStmt(m.Query)
				st.query, st.oids, st.gen, st.group, st.unsure = m.Query, m.ParameterOIDs, r.code, r.syncs, true
				r.stmts[m.Name] = &st
				// The server keeps an existing statement of this name
				// (42P05) and the client's next Bind would run it: close
				// it first, so that the name holds this statement or none.
				r.batch = appendClose(r.batch, 'S', m.Name)
				r.execs = append(r.execs, pendingExec{close: eSwallow})
			}
		}
	case 'B':
		m := &r.bind
		if !m.parse(body) {
			return fatal(codeProtocolViolation, "airlock: invalid Bind message")
		}
		st, ok := r.un.st, true
		if len(m.stmt) > 0 {
			var sp *stmt
			if sp, ok = r.stmts[string(m.stmt)]; ok {
				st = *sp
			}
			if ok && (st.gen != r.code || st.unsure) {
				st = r.bindStmt(string(m.stmt), st)
			}
		} else if st.unsure {
			st = r.bindUnnamed(st)
		}
		if !ok {
			// Not prepared through the protocol as far as the gateway
			// knows (SQL PREPARE, or a Close the server skipped after an
			// error): whatever the server holds under the name is not what
			// the gateway could record. It closes the name first, so the
			// server refuses the Bind (26000) and runs nothing.
			r.batch = appendClose(r.batch, 'S', string(m.stmt))
			r.execs = append(r.execs, pendingExec{close: eSwallow})
			st = newStmt("<prepared statement " + strconv.Quote(string(m.stmt)) + " unknown to the gateway: closed before its Bind>")
		}
		p := portal{stmt: st, params: formatParams(m.params, m.formats, c.redact())}
		p.stmt.gen, p.stmt.group, p.stmt.unsure = r.code, r.syncs, true
		if len(m.portal) == 0 {
			r.undo = append(r.undo, undoOp{portal: true, had: true, p: r.un.p})
			r.ownUnnamed().p = p
		} else {
			if r.portals == nil {
				r.portals = map[string]portal{}
			}
			if _, ok := r.portals[string(m.portal)]; !ok && len(r.portals) >= maxPortals {
				r.batchErr = &pgError{Severity: "ERROR", Code: codeProgramLimit, Message: "airlock: too many open portals; close some"}
			} else {
				if !r.tracksCode() {
					r.pending = true
				}
				name := string(m.portal)
				r.savePortal(name)
				r.portals[name] = p
				// As for a statement: an open cursor of this name (DECLARE
				// … WITH HOLD) would be what the next Execute runs.
				raw := r.batch
				r.batch = appendClose(raw, 'P', name)
				r.execs = append(r.execs, pendingExec{close: eSwallow})
			}
		}
		r.execs = append(r.execs, pendingExec{portal: string(m.portal), p: p, found: true, bind: bindOnly})
		clear(m.params) // the values belong to the message buffer
	case 'E':
		name, ok := parseExecute(body)
		if !ok {
			return fatal(codeProtocolViolation, "airlock: invalid Execute message")
		}
		pe := pendingExec{p: r.un.p, found: true}
		if len(name) > 0 {
			pe.portal = string(name)
			pe.p, pe.found = r.portals[pe.portal]
			if !pe.found {
				// A cursor of SQL's (DECLARE) or one the gateway lost track
				// of: it cannot tell what it runs, so it closes the name
				// and the server answers 34000.
				r.staleExecute(&pe, staleUnknown)
				pe.found = true
				r.execs = append(r.execs, pe)
				break // it runs nothing
			}
			if pe.found && pe.p.stmt.gen != r.code {
				r.staleExecute(&pe, staleCode)
				r.execs = append(r.execs, pe)
				break // it runs nothing
			}
			if pe.found && !r.settled(&pe.p.stmt) {
				r.staleExecute(&pe, staleSkipped)
				r.execs = append(r.execs, pe)
				break // it runs nothing
			}
		}
		// It runs the portal as bound in this batch, if it was: that
		// Bind needs no record of its own.
		for i := len(r.execs) - 1; i >= 0; i-- {
			if b := &r.execs[i]; b.bind != 0 && b.portal == pe.portal {
				b.bind = bindRun
				break
			}
		}
		r.execs = append(r.execs, pe)
		switch a := pe.p.stmt.action; {
		case !pe.found || a == "pg:commit" || a == "pg:end" || a == "pg:rollback" || a == "pg:abort" || a == "pg:prepare":
			r.txEffect = txEnd // what follows may run in an implicit transaction
		case a == "pg:begin" || a == "pg:start":
			r.txEffect = txBegin
		}
		if r.tracksCode() {
			// Noted now, not when the batch is recorded, so that a
			// statement later in this batch sees it.
			if !pe.found || !definesNothing[pe.p.stmt.action] {
				c.ownObjects = true
			}
			if !pe.found || c.runsCode(pe.p.stmt.action, pe.p.stmt.read) || (r.pending && commitPoint[pe.p.stmt.action]) {
				r.noteCode()
			} else if changesNames[pe.p.stmt.action] {
				// PREPARE, DEALLOCATE, DISCARD, DECLARE, CLOSE through the
				// protocol: names change when it runs, as by code.
				r.code++
			}
			if pe.found && pe.portal != "" {
				// A portal's own run cannot close it (PostgreSQL refuses
				// to drop an active portal): its next Execute continues
				// what was recorded.
				p := r.portals[pe.portal]
				p.stmt.gen, p.stmt.unsure = r.code, pe.p.stmt.unsure
				r.portals[pe.portal] = p
			}
		}
	case 'C':
		var m pgproto3.Close
		if m.Decode(body) != nil {
			return fatal(codeProtocolViolation, "airlock: invalid Close message")
		}
		if m.Name != "" {
			if m.ObjectType == 'S' {
				r.saveStmt(m.Name)
				delete(r.stmts, m.Name)
			} else {
				r.savePortal(m.Name)
				delete(r.portals, m.Name)
			}
		}
		r.execs = append(r.execs, pendingExec{close: eClose})
	case 'D':
		var m pgproto3.Describe
		if m.Decode(body) != nil {
			return fatal(codeProtocolViolation, "airlock: invalid Describe message")
		}
	}
	r.batch = append(r.batch, raw...)
	if typ == 'S' && r.pending && r.tracksCode() && !c.syncInBlock() {
		// A Sync that ends an implicit transaction fires its deferred
		// triggers; one inside a transaction block does not (and so
		// leaves a named portal read in parts alone).
		r.code++
	}
	if typ == 'S' || typ == 'H' {
		return c.endBatch(typ == 'S')
	}
	return nil
}

// endBatch records every Execute of the batch, then forwards it; if one
// cannot be recorded nothing is forwarded and the client gets an error.
func (c *conn) endBatch(sync bool) error {
	r := &c.rs
	defer func() {
		clear(r.undo)
		r.batch, r.execs, r.batchErr, r.undo, r.batchMsgs, r.txEffect = r.batch[:0], r.execs[:0], nil, r.undo[:0], false, 0
		if cap(r.batch) > 1<<20 {
			r.batch = nil
		}
	}()
	if r.batchErr != nil {
		r.undoBatch()
		if r.batchErr.Code == codeInsufficientPrivilege && c.inTransaction() {
			// As for a statement that cannot be recorded: upstream saw no
			// error, so its transaction must not survive the refusal.
			c.kill(fatal(codeInsufficientPrivilege, authChangeMessage+"; the session is closed so that its open transaction is rolled back"))
			return errTerminate
		}
		c.synthetic(r.batchErr, sync)
		r.discard = !sync
		return nil
	}
	// The batch's entries come from the pool (newEntry), one for each
	// Execute and Close and one for the Sync; their pointers are gathered
	// in a slice the session reuses (push copies them). They were one
	// slab of len(r.execs)+1 entries, a place for each Bind too.
	entries := r.scratch[:0]
	defer func() { clear(entries); r.scratch = entries[:0] }()
	async := c.mayReadEarly()
	var checks int32
	for i := range r.execs {
		pe := &r.execs[i]
		if pe.close != 0 || pe.bind != 0 {
			continue
		}
		if !pe.found {
			pe.p.stmt = newStmt("<portal " + strconv.Quote(pe.portal) + " unknown to the gateway>")
		}
		async = async && pe.p.stmt.read
	}
	for _, pe := range r.execs {
		if pe.bind == bindOnly && (!pe.p.stmt.read || c.ownObjects) {
			if err := c.recordBind(pe); err != nil {
				if len(entries) > 0 {
					c.gw.log.Error("statements recorded but not run: a later Bind of their batch could not be recorded",
						"session", c.sess.ID, "first", entries[0].n, "last", entries[len(entries)-1].n)
				}
				r.undoBatch()
				return c.refuseStatement(err, sync)
			}
		}
		if pe.bind != 0 {
			continue
		}
		if pe.close != 0 {
			e := newEntry()
			e.kind = pe.close
			if pe.close == eCheck {
				e.tag = pe.portal // the statement checked
				checks++
			}
			entries = append(entries, e)
			continue
		}
		r.n++
		e := newEntry()
		action := pe.p.stmt.action
		call := gateway.Call{Kind: "request", Action: action, Resource: c.t.db, Allowed: true, Pairs: append(e.number(r.n),
			gateway.Param{Key: "protocol", Value: "extended"}, gateway.Param{Key: "statement", Value: pe.p.stmt.text})}
		if pe.p.params != "" {
			call.Pairs = append(call.Pairs, gateway.Param{Key: "parameters", Value: pe.p.params})
		}
		pend, err := c.request(call, async, &e.record)
		if err != nil {
			if len(entries) > 0 {
				c.gw.log.Error("statements recorded but not run: a later statement of their batch could not be recorded",
					"session", c.sess.ID, "first", entries[0].n, "last", entries[len(entries)-1].n)
			}
			r.undoBatch()
			return c.refuseStatement(err, sync)
		}
		e.kind, e.action, e.pend, e.stale = eExec, action, pend, pe.stale
		entries = append(entries, e)
	}
	now := time.Now()
	for _, e := range entries {
		e.start = now
	}
	if sync {
		e := newEntry()
		e.kind, e.n = eSync, int64(r.syncs)
		entries = append(entries, e)
		r.syncs++
		r.open = false
	} else if r.batchMsgs {
		r.open = true
	}
	if len(entries) > 0 {
		r.checking.Add(checks)
		r.push(entries...)
	}
	_, err := r.uw.Write(r.batch)
	return upErr(err)
}

// recordBind records, durably, a Bind that no Execute of its batch runs:
// the statement is planned, and so may run code, before any Execute. It
// is a request without a result of its own (an Execute of the portal in a
// later batch is recorded as usual), named by "bind" instead of "n". Not
// for a read that calls only pure built-ins (readStatement) on a session
// with no objects of its own: planning it runs nothing else.
func (c *conn) recordBind(pe pendingExec) error {
	call := gateway.Call{Kind: "request", Action: pe.p.stmt.action, Resource: c.t.db, Allowed: true, Params: map[string]string{
		"statement": pe.p.stmt.text, "protocol": "extended", "bind": "planned without an Execute in its batch",
	}}
	if pe.portal != "" {
		call.Params["portal"] = pe.portal
	}
	if pe.p.params != "" {
		call.Params["parameters"] = pe.p.params
	}
	return c.recordRequest(call)
}

// recordRequest makes a request durable, or says why it cannot run.
func (c *conn) recordRequest(call gateway.Call) error {
	c.noteObjects(call)
	if !c.grant().Live(c.gw.o.Clock.Now()) {
		c.kill(fatal(codeAdminShutdown, c.gw.grantEndedMessage(c.grant())))
		return errGrantEnded
	}
	return c.sess.Request(c.ctx(), call)
}

var errGrantEnded = errors.New("grant ended")

// refuseStatement answers a statement that could not be recorded: an error
// (and ReadyForQuery, when the client expects one now), nothing forwarded.
func (c *conn) refuseStatement(err error, ready bool) error {
	if errors.Is(err, errGrantEnded) || c.ctx().Err() != nil {
		return errTerminate
	}
	if errors.Is(err, gateway.ErrNoGrant) {
		// The control plane refused the record because the grant has
		// ended (among replicas, on another one, before this one heard):
		// the session ends as at any grant's end, not as after a store
		// failure the client might retry.
		c.kill(fatal(codeAdminShutdown, c.gw.grantEndedMessage(c.grant())))
		return errTerminate
	}
	c.gw.log.Error("a statement could not be recorded and was refused", "session", c.sess.ID, "err", err)
	r := &c.rs
	r.qmu.Lock()
	busy := r.front() != nil
	r.qmu.Unlock()
	if c.txs.Load() != 'I' || busy {
		// Inside a transaction block (or with statements still running,
		// which may open one), an error would leave the upstream
		// transaction open: PostgreSQL aborts a transaction on an
		// error, but upstream saw none, so a COMMIT after the refusal
		// would commit the statements before it. Closing the upstream
		// connection rolls the transaction back, as the client expects.
		c.kill(errRecordFailedInTx)
		return errTerminate
	}
	c.synthetic(errRecordFailed, ready)
	r.discard = !ready
	return nil
}

// recordRefused records a message the gateway refused (protocol violation,
// limit) as a denied call.
func (c *conn) recordRefused(action, why string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx()), 10*time.Second)
	defer cancel()
	call := gateway.Call{Kind: "request", Action: action, Resource: c.t.db, Allowed: false, Error: why}
	if err := c.sess.Request(ctx, call); err != nil {
		c.gw.log.Error("recording a refused message failed", "session", c.sess.ID, "err", err)
	}
}

// synthetic sends the client an answer of the gateway's own (e, then
// ReadyForQuery if ready), after every answer still due from upstream.
func (c *conn) synthetic(e *pgError, ready bool) {
	var b []byte
	if e != nil {
		b = e.appendTo(nil)
	}
	r := &c.rs
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.dead {
		return
	}
	r.qmu.Lock()
	if r.front() != nil {
		e := newEntry()
		e.kind, e.synthetic, e.ready = eSynthetic, b, ready
		r.q = append(r.q, e)
		r.qmu.Unlock()
		return
	}
	r.qmu.Unlock()
	if ready {
		b = appendReady(b, byte(c.txs.Load()))
	}
	if _, err := c.cw().Write(b); err == nil {
		_ = c.cw().Flush()
	}
}

// upstreamLoop relays the upstream's messages to the client, completing
// queue entries as their answers pass, and records the results once the
// client has them. It returns true if it parked (park.go).
func (c *conn) upstreamLoop(ubr *idleReader) (parked bool) {
	r := &c.rs
	mr := msgReader{r: ubr, max: maxBufferedUpstream}
	for {
		c.rest(upstreamSide, ubr)
		typ, total, err := mr.header()
		if err != nil {
			switch c.parkOn(upstreamSide, ubr, err) {
			case nil:
				continue
			case errParked:
				return true
			}
			c.upstreamGone(err)
			return false
		}
		if total > ubr.Size() && (typ == 'D' || typ == 'd') {
			// A large row or COPY chunk streams through without being
			// held whole in memory (each piece held as a message is).
			if !c.streamLarge(ubr, typ, total) {
				return false
			}
			continue
		}
		raw, err := mr.next()
		if err != nil {
			c.upstreamGone(err)
			return false
		}
		// Once the message is read whole: none of its bytes is read
		// while it waits (disclose.go).
		if !c.hold() {
			return false
		}
		c.gw.hook("upstream", raw)
		ok, held := c.relayUpstream(raw, ubr.Buffered() == 0)
		if !ok {
			return false
		}
		mr.release()
		if held {
			// A refused statement's answer waits in the client's buffer
			// until its result is recorded: the review counts the
			// refusal from that result (the call becomes a denied
			// attempt, its pair leaves the scope used), and a read made
			// as soon as the client has the error must find it, not
			// the statement as a call. Results are queued in memory
			// (the recorder batches them; a read flushes the queue), so
			// this costs the refused statement one queued record before
			// its answer, and every other statement nothing.
			c.recordResults()
			if !c.flushClient() {
				return false
			}
			continue
		}
		if len(r.done) > 0 && ubr.Buffered() == 0 {
			c.recordResults()
		}
	}
}

// flushClient flushes what the upstream loop wrote to the client; false
// when the client side is gone.
func (c *conn) flushClient() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return !c.dead && c.cw().Flush() == nil
}

// refusedDone reports whether a completed statement not recorded yet was
// refused (entry.refused), so that its answer is held until its result is
// (upstreamLoop). Not under wmu: the recorder may block (a full queue of
// results waits for the log), and kill takes wmu.
func (r *relayState) refusedDone() bool {
	for _, e := range r.done {
		if e.refused() {
			return true
		}
	}
	return false
}

// relayUpstream passes one upstream message to the client and tracks it;
// false when the client side is gone. held: flush was asked for, and left
// to the caller, since the message completed a refused statement whose
// result is recorded first (upstreamLoop). wmu is released even if tracking
// panics, so that the connection can still be closed.
func (c *conn) relayUpstream(raw []byte, flush bool) (ok, held bool) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.reuse == reuseResetting {
		return c.resetMessage(raw, flush), false // reuse.go
	}
	if c.dead {
		return false, false
	}
	if (raw[0] == '3' || raw[0] == '1' || (c.rs.checking.Load() > 0 && (raw[0] == '2' || raw[0] == 'D' || raw[0] == 'C'))) && c.swallowed(raw[0]) {
		if flush {
			if c.rs.refusedDone() {
				return true, true
			}
			return c.cw().Flush() == nil, false
		}
		return true, false
	}
	if raw[0] == 'E' {
		raw = c.staleError(raw)
	}
	_, werr := c.cw().Write(raw)
	c.observe(raw)
	if werr == nil && flush {
		if c.rs.refusedDone() {
			// Flushed once its result is recorded, without wmu
			// (upstreamLoop).
			return true, true
		}
		werr = c.cw().Flush()
	}
	return werr == nil, false
}

// maxBufferedUpstream bounds the upstream messages the gateway reads whole
// (all but data rows and COPY data, which stream): a CommandComplete or an
// ErrorResponse is small.
const maxBufferedUpstream = 64 << 20

// streamLarge copies one large DataRow or CopyData to the client, piece
// by piece as the upstream sends it: each piece is read without wmu and
// written under it. Held across the reads, wmu kept kill and closeAll
// (which take it) waiting on the upstream: one that stalled in the middle
// of a large row kept a session its client had left, or whose grant had
// ended, open until the upstream's TCP connection gave up. Between pieces
// only kill (whose FATAL ends the connection anyway) and the client
// loop's own answers with nothing in flight (synthetic; a row answers
// what is in flight) write to the client.
func (c *conn) streamLarge(ubr *idleReader, typ byte, total int) bool {
	for left := total; left > 0; {
		if ubr.Buffered() == 0 {
			// Whatever comes next: Peek(1) fills the buffer.
			if _, err := ubr.Peek(1); err != nil {
				return false
			}
		}
		b, _ := ubr.Peek(min(left, ubr.Buffered()))
		if !c.hold() {
			return false
		}
		c.wmu.Lock()
		if c.dead {
			c.wmu.Unlock()
			return false
		}
		_, err := c.cw().Write(b)
		c.wmu.Unlock()
		if err != nil {
			return false
		}
		_, _ = ubr.Discard(len(b))
		left -= len(b)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.dead {
		return false
	}
	r := &c.rs
	r.qmu.Lock()
	if h := r.front(); h != nil {
		if typ == 'D' {
			h.dataRows++
		}
		h.bytesOut += int64(total - 5)
	}
	r.qmu.Unlock()
	if ubr.Buffered() == 0 {
		return c.cw().Flush() == nil
	}
	return true
}

// observe tracks one upstream message against the queue; wmu held.
func (c *conn) observe(raw []byte) {
	r := &c.rs
	typ := raw[0]
	switch typ {
	case 'D', 'd', 'C', 'I', 's', 'E', 'Z', '3':
	case 'S':
		c.parameterStatus(raw[5:])
		return
	default:
		return
	}
	r.qmu.Lock()
	defer r.qmu.Unlock()
	h := r.front()
	switch typ {
	case '3':
		if h != nil && h.kind == eClose {
			r.pop()
			c.emitSynthetic()
		}
	case 'D':
		if h != nil {
			h.dataRows++
			// A row's bytes are what the client took out, as a COPY's are.
			h.bytesOut += int64(len(raw) - 5)
		}
	case 'd':
		if h != nil {
			h.bytesOut += int64(len(raw) - 5)
		}
	case 'C':
		if h == nil {
			return
		}
		tag := raw[5:]
		if len(tag) > 0 && tag[len(tag)-1] == 0 {
			tag = tag[:len(tag)-1]
		}
		n, ok := tagRows(tag)
		if !ok {
			n = h.dataRows
		}
		h.dataRows = 0
		switch h.kind {
		case eExec, ePart:
			h.rows, h.tag = n, c.pk.ubr.tagString(tag)
			c.complete(h)
		case eSimple:
			h.rows += n
			h.tag = c.pk.ubr.tagString(tag)
		}
	case 'I', 's':
		if h != nil && h.kind == eExec {
			if typ == 's' {
				h.rows, h.tag = h.dataRows, "suspended"
			}
			c.complete(h)
		}
	case 'E':
		if h == nil {
			c.noteSkip()
			return
		}
		var er pgproto3.ErrorResponse
		msg, priv := "error", false
		if er.Decode(raw[5:]) == nil {
			msg, priv = er.Code+" "+er.Message, privilegeError(&er)
		}
		switch h.kind {
		case eSimple:
			if h.err == "" {
				h.err, h.privErr = msg, priv
			}
		case ePart:
			h.err, h.privErr = msg, priv
			c.complete(h)
			// The server abandons the rest of the query string.
			for h = r.front(); h != nil && (h.kind == ePart || h.kind == eSimple); h = r.front() {
				h.err = "airlock: not run: an earlier statement of its query failed"
				if h.kind == eSimple {
					break
				}
				c.complete(h)
			}
		case eExec, eClose, eSwallow, eSwallowParse, eCheck, eSync:
			// The backend skips the rest of the batch up to Sync: the
			// first Execute at or after the failure gets its error.
			c.noteSkip()
			first := true
			for ; h != nil && (h.kind == eExec || h.kind == eClose || h.kind == eSwallow || h.kind == eSwallowParse || h.kind == eCheck); h = r.front() {
				if h.kind != eExec {
					r.pop()
					continue
				}
				if first {
					h.err, h.privErr, first = msg, priv, false
				} else {
					h.err = "airlock: not run: an earlier message of its batch failed"
				}
				c.complete(h)
			}
			c.emitSynthetic()
		}
	case 'Z':
		if len(raw) > 5 {
			c.txs.Store(uint32(raw[5]))
		}
		for h != nil && (h.kind == eExec || h.kind == ePart || h.kind == eClose || h.kind == eSwallow || h.kind == eSwallowParse || h.kind == eCheck) {
			if h.kind == eClose || h.kind == eSwallow || h.kind == eSwallowParse || h.kind == eCheck {
				r.pop()
				h = r.front()
				continue
			}
			// Executes not answered by their Sync did not run; a
			// statement of a query without a completion of its own ran
			// as part of its neighbour, if the tokenizer and the server
			// split the query differently.
			h.err = "airlock: no result before ReadyForQuery"
			c.complete(h)
			h = r.front()
		}
		if h == nil {
			return
		}
		switch h.kind {
		case eSimple:
			c.complete(h)
		case eSync:
			r.synced.Store(uint64(h.n) + 1)
			r.pop()
			c.emitSynthetic()
		}
	}
}

// noteSkip notes an error of the extended protocol, after which the server
// skips every message up to Sync: in the sync group of the first Sync
// still queued, or if none is, in the group no Sync of which was forwarded
// yet; qmu held. (An error without anything queued may also be a FATAL
// one, which ends the session.)
func (c *conn) noteSkip() {
	r := &c.rs
	for i := r.head; i < len(r.q); i++ {
		if r.q[i].kind == eSync {
			r.errAt.Store(uint64(r.q[i].n) + 1)
			return
		}
	}
	r.errAt.Store(r.synced.Load() + 1)
}

// tagString returns tag as a string, reusing the last one's: a session
// mostly repeats the same few statements, so the same tags. The last tag
// is kept by the upstream loop's reader (b), which a parked loop gives
// back: an idle session holds neither (a pooled reader may bring another
// session's last tag, reused only if equal). A nil b (no upstream loop:
// tests) caches nothing.
func (b *idleReader) tagString(tag []byte) string {
	if b == nil {
		return string(tag)
	}
	if string(tag) != b.lastTag {
		b.lastTag = string(tag)
	}
	return b.lastTag
}

// complete moves the oldest entry to done; qmu and wmu held.
func (c *conn) complete(h *entry) {
	r := &c.rs
	if h.kind == eSimple || h.kind == ePart {
		h.bytesIn += r.copyIn.Swap(0)
	}
	if !h.start.IsZero() {
		h.dur = time.Since(h.start)
	}
	r.done = append(r.done, h)
	r.pop()
	c.emitSynthetic()
}

// emitSynthetic sends the gateway's own answers now at the front; qmu and
// wmu held.
func (c *conn) emitSynthetic() {
	r := &c.rs
	for h := r.front(); h != nil && h.kind == eSynthetic; h = r.front() {
		b := h.synthetic
		if h.ready {
			b = appendReady(b, byte(c.txs.Load()))
		}
		_, _ = c.cw().Write(b)
		r.pop()
	}
}

// recordResults records the upstream loop's completed results. The client
// already has their answers (but for a refused statement's, see
// upstreamLoop), so this overlaps with its next request instead
// of adding to its wait; and it is done here rather than by a goroutine of
// its own because the control plane batches results (Record does not wait
// for them to be durable), so a hand-off would cost more than the call: two
// goroutine wake-ups and a timer per statement. A failure is logged; the
// statement has run by now.
func (c *conn) recordResults() {
	r := &c.rs
	for i, e := range r.done {
		if e.pend != nil {
			// Completed before hold waited for its record: an upstream
			// out of step answered it with a message read before it was
			// forwarded. A result follows its request in the log, and
			// has none if its request failed (as dropUnrecorded), which
			// ends the session as at hold.
			if err := e.pend.Wait(c.ctx()); err != nil {
				c.refuseHeld(err)
				r.done[i] = nil // the recorder may hold it: not freed
				continue
			}
		}
		call := gateway.Call{Kind: "result", Action: e.action, Resource: c.t.db, Allowed: true, Refused: e.refused(), OutcomeAtResult: !e.also,
			Pairs:  e.resultPairs(),
			Status: e.tag, Rows: e.rows, Error: e.err, BytesIn: e.bytesIn, BytesOut: e.bytesOut, Duration: e.dur}
		// Not cut off by kill: the statement has run. The session's
		// context carries no values (sessCtx), so context.WithoutCancel
		// of it would be Background, at an allocation per session.
		if err := c.sess.Result(context.Background(), call); err != nil {
			c.gw.log.Error("recording a statement's result failed", "session", c.sess.ID, "n", e.n, "err", err)
		}
	}
	// Every entry left in done has its request durable and its result
	// recorded, and is in no list once done is cleared (freeEntry).
	for _, e := range r.done {
		if e != nil {
			freeEntry(e)
		}
	}
	clear(r.done)
	r.done = r.done[:0]
}

// swallowed reports whether a CloseComplete ('3') or ParseComplete ('1')
// answers a Close or Parse the gateway sent itself (and drops that entry),
// or a BindComplete ('2'), DataRow or CommandComplete ('C', which drops
// the entry) its check (eCheck); wmu held. A client's own ParseComplete
// comes while something else is at the front: the gateway's Parse always
// follows its Close, whose entry is at the front until its CloseComplete;
// and the client's answers before the check come before that Close's.
func (c *conn) swallowed(typ byte) bool {
	r := &c.rs
	r.qmu.Lock()
	defer r.qmu.Unlock()
	h := r.front()
	if h == nil {
		return false
	}
	switch typ {
	case '3', '1':
		want := eSwallow
		if typ == '1' {
			want = eSwallowParse
		}
		if h.kind != want {
			return false
		}
	default:
		if h.kind != eCheck {
			return false
		}
		if typ != 'C' {
			return true
		}
	}
	r.pop()
	c.emitSynthetic()
	return true
}

// checkName names the statement and portal of the gateway's own check
// (bindStmt); checkQuery fails (22012) unless statement $1 is one a
// protocol Parse made with text $2. Every name is qualified: the session
// can change search_path and define functions and operators of its own.
const (
	checkName  = "airlock.check"
	checkQuery = "SELECT 1 OPERATOR(pg_catalog./) pg_catalog.count(*) FROM pg_catalog.pg_prepared_statements " +
		"WHERE name OPERATOR(pg_catalog.=) $1 AND statement OPERATOR(pg_catalog.=) $2 AND NOT from_sql"
)

// bindStmt makes sure, ahead of a Bind, that the server holds named
// statement name as the gateway recorded it, when statements that may run
// code were forwarded since the gateway last did (dynamic SQL in a DO
// block or a function, 'deal'||'locate', can replace a name without
// spelling out what mayChangePrepared looks for), or when the Parse that
// gave it may have been skipped (settled). Only a protocol Parse, which
// the gateway always sees, makes a statement that is not from_sql, so the
// gateway checks on the server that the name holds such a statement with
// the recorded text (checkQuery: Close, Parse, Bind, Execute, their
// answers not relayed); if it does not, the check fails, the server skips
// the client's Bind and what follows up to Sync, and the client gets
// 26000 (staleError). The statement itself is left as it is, so that
// PostgreSQL still refuses to run it once its result type changed (0A000),
// as giving it to the server again would not. It returns st as now held.
func (r *relayState) bindStmt(name string, st stmt) stmt {
	sure := r.settled(&st)
	if sure && st.gen == r.code {
		if !st.unsure {
			// Known from now on, true whatever the batch becomes; a new
			// stmt, as what the map holds is never changed.
			known := st
			r.stmts[name] = &known
		}
		return st
	}
	if !sure && r.synced.Load() > st.group {
		// Its Parse's group had an error, or one after it did: only a
		// check that passes tells the statement is held. Not answered
		// yet (a client pipelining across Sync), the Parse's group is
		// the one to wait for.
		st.group = r.syncs
	}
	r.saveStmt(name)
	// The check's own names: whatever they held is gone.
	if _, ok := r.stmts[checkName]; ok {
		r.saveStmt(checkName)
		delete(r.stmts, checkName)
	}
	if _, ok := r.portals[checkName]; ok {
		r.savePortal(checkName)
		delete(r.portals, checkName)
	}
	r.batch = appendClose(r.batch, 'S', checkName)
	r.batch = appendClose(r.batch, 'P', checkName)
	r.batch = appendParse(r.batch, checkName, checkQuery, checkOIDs)
	r.batch = appendCheckBind(r.batch, name, st.query)
	r.batch = appendExecute(r.batch, checkName)
	r.execs = append(r.execs, pendingExec{close: eSwallow}, pendingExec{close: eSwallow},
		pendingExec{close: eSwallowParse}, pendingExec{close: eCheck, portal: name})
	st.gen = r.code
	checked := st
	r.stmts[name] = &checked
	return st
}

var checkOIDs = []uint32{25, 25} // text, text

// bindUnnamed gives the server the unnamed statement again as the client
// prepared it (Close, then the client's Parse, their answers not relayed),
// ahead of a Bind, when the Parse that gave it may have been skipped
// (settled). Code cannot replace the unnamed statement, and
// pg_prepared_statements does not show it. It returns st as now held.
func (r *relayState) bindUnnamed(st stmt) stmt {
	if r.settled(&st) {
		if !st.unsure {
			r.ownUnnamed().st = st
		}
		return st
	}
	r.undo = append(r.undo, undoOp{had: true, st: r.un.st})
	r.batch = appendClose(r.batch, 'S', "")
	r.batch = appendParse(r.batch, "", st.query, st.oids)
	r.execs = append(r.execs, pendingExec{close: eSwallow}, pendingExec{close: eSwallowParse})
	st.group = r.syncs
	r.ownUnnamed().st = st
	return st
}

// settled reports whether the server holds statement or portal st as far
// as skipped messages go: the Parse or Bind that gave it is of the current
// sync group (if it was skipped, so is what follows it up to Sync), or
// its group was answered with no error; st is then known (unsure false)
// if its group was answered. Client loop only.
func (r *relayState) settled(st *stmt) bool {
	if !st.unsure || st.group == r.syncs {
		return true
	}
	// synced first: errAt is stored before synced moves past its group.
	if r.synced.Load() > st.group && r.errAt.Load() <= st.group {
		st.unsure = false
		return true
	}
	return false
}

// noteCode counts a forwarded statement that may run code, now or, through
// what it schedules, at the end of its transaction.
func (r *relayState) noteCode() {
	r.code++
	r.pending = true
}

// settlePending forgets code scheduled for the end of a transaction once
// none is open upstream and nothing is in flight: at the start of a Query
// or a batch, before its own statements. Client loop only.
func (c *conn) settlePending() {
	if c.rs.pending && !c.inTransaction() {
		c.rs.pending = false
	}
}

// Values of relayState.txEffect.
const (
	txBegin = 1
	txEnd   = 2
)

// syncInBlock reports whether the current batch's Sync is known to come
// inside a transaction block: a BEGIN of the batch's own, or, with nothing
// of the batch ending one, nothing in flight ahead of it (the batch is
// not forwarded yet) and upstream's last status in a block. Client loop
// only.
func (c *conn) syncInBlock() bool {
	r := &c.rs
	switch r.txEffect {
	case txBegin:
		return true
	case txEnd:
		return false
	}
	r.qmu.Lock()
	busy := r.front() != nil
	r.qmu.Unlock()
	return !busy && c.txs.Load() != 'I'
}

// tracksCode reports whether the session holds named statements or
// portals, which code run by a statement can replace: only then does the
// gateway classify what it forwards as code or not (relayState.code).
func (r *relayState) tracksCode() bool {
	return len(r.stmts) > 0 || len(r.portals) > 0
}

// staleExecute turns an Execute of named portal pe.portal, bound before
// statements that may have run code, into one of a portal the gateway has
// just closed (Close, its answer swallowed), which the server answers with
// 34000 and so runs nothing. Code of the database's or the session's can
// close a portal and open a cursor of the same name (plpgsql OPEN of a
// refcursor holding that name, or DECLARE in dynamic SQL) for any query,
// a DELETE … RETURNING included: the Execute would then run that query
// while being recorded as the one the client bound. So, with why
// staleSkipped, is one whose Bind may have been skipped after an error of
// its sync group (settled), which leaves a WITH HOLD cursor of that name
// in place. Unlike a statement, a portal cannot be given to the server
// again as it was: it may have been partly run (a suspended portal) and
// its snapshot is the Bind's. The unnamed portal needs none of this: code
// cannot open one (PostgreSQL names a cursor opened with an empty name
// itself), nor close it while it runs, and an error ends the transaction
// of the one a skipped Bind would have replaced.
func (r *relayState) staleExecute(pe *pendingExec, why uint8) {
	r.savePortal(pe.portal)
	delete(r.portals, pe.portal)
	r.batch = appendClose(r.batch, 'P', pe.portal)
	r.execs = append(r.execs, pendingExec{close: eSwallow})
	pe.stale = why
	reason := "statements that may run code ran since it was bound to: " + pe.p.stmt.text
	switch why {
	case staleSkipped:
		reason = "its Bind may not have run (an error earlier in its sync group), bound to: " + pe.p.stmt.text
	case staleUnknown:
		reason = "it was not bound through the protocol in this session"
	}
	pe.p = portal{stmt: newStmt("<portal " + strconv.Quote(pe.portal) +
		" closed by the gateway before this Execute: " + reason + ">")}
}

// Values of entry.stale and pendingExec.stale.
const (
	staleCode    = 1
	staleSkipped = 2
	staleUnknown = 3
)

// changesNames are the actions of statements that create, replace or drop
// prepared statements or portals (cursors) by name when they run.
var changesNames = setOf("pg:prepare", "pg:deallocate", "pg:discard", "pg:declare", "pg:close")

// staleError returns the ErrorResponse to relay for upstream's raw: the
// gateway's own explanation when raw is the server's 34000 for an Execute
// of a portal the gateway closed (staleExecute) or the server's 22012 for
// its check of a statement (bindStmt), else raw; wmu held.
func (c *conn) staleError(raw []byte) []byte {
	r := &c.rs
	r.qmu.Lock()
	h := r.front()
	var stale uint8
	var checked string
	check := h != nil && h.kind == eCheck
	if check {
		checked = h.tag
	} else if h != nil && h.kind == eExec {
		stale = h.stale
	}
	r.qmu.Unlock()
	if stale == 0 && !check {
		return raw
	}
	var er pgproto3.ErrorResponse
	if er.Decode(raw[5:]) != nil || er.Severity != "ERROR" {
		return raw
	}
	switch {
	case check && er.Code == codeDivisionByZero:
		return (&pgError{Severity: "ERROR", Code: codeInvalidSQLStatementName,
			Message: "airlock: prepared statement " + strconv.Quote(checked) + " is not the one last prepared through the protocol " +
				"(statements that may run code can replace it, and a Parse after an error of its batch does not run); it was not run: prepare it again"}).appendTo(nil)
	case stale == staleCode && er.Code == codeInvalidCursorName:
		return (&pgError{Severity: "ERROR", Code: codeInvalidCursorName,
			Message: "airlock: the portal was closed: statements that may run code (and so replace a portal by name) ran since its Bind; bind it again",
			Detail:  er.Message}).appendTo(nil)
	case stale == staleSkipped && er.Code == codeInvalidCursorName:
		return (&pgError{Severity: "ERROR", Code: codeInvalidCursorName,
			Message: "airlock: the portal was closed: its Bind may not have run (an error earlier in its batch makes the server skip to Sync); bind it again",
			Detail:  er.Message}).appendTo(nil)
	case stale == staleUnknown && er.Code == codeInvalidCursorName:
		return (&pgError{Severity: "ERROR", Code: codeInvalidCursorName,
			Message: "airlock: the portal was closed: it was not bound through the protocol in this session, so the gateway cannot record what it runs; read a SQL cursor with FETCH",
			Detail:  er.Message}).appendTo(nil)
	}
	return raw
}

// appendParse appends a Parse message.
func appendParse(b []byte, name, query string, oids []uint32) []byte {
	n := 4 + len(name) + 1 + len(query) + 1 + 2 + 4*len(oids)
	b = append(b, 'P', byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	b = append(b, name...)
	b = append(b, 0)
	b = append(b, query...)
	b = append(b, 0, byte(len(oids)>>8), byte(len(oids)))
	for _, o := range oids {
		b = append(b, byte(o>>24), byte(o>>16), byte(o>>8), byte(o))
	}
	return b
}

// appendCheckBind appends the Bind of the gateway's check (checkQuery) of
// statement name holding query, both parameters in text format.
func appendCheckBind(b []byte, name, query string) []byte {
	n := 4 + 2*(len(checkName)+1) + 2 + 2 + 4 + len(name) + 4 + len(query) + 2
	b = append(b, 'B', byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	b = append(b, checkName...)
	b = append(b, 0)
	b = append(b, checkName...)
	b = append(b, 0, 0, 0, 0, 2)
	for _, v := range [2]string{name, query} {
		b = append(b, byte(len(v)>>24), byte(len(v)>>16), byte(len(v)>>8), byte(len(v)))
		b = append(b, v...)
	}
	return append(b, 0, 0)
}

// appendExecute appends an Execute of portal name for all its rows.
func appendExecute(b []byte, name string) []byte {
	n := 4 + len(name) + 1 + 4
	b = append(b, 'E', byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	b = append(b, name...)
	return append(b, 0, 0, 0, 0, 0)
}

// appendClose appends a Close message for a statement ('S') or portal ('P').
func appendClose(b []byte, typ byte, name string) []byte {
	n := 4 + 1 + len(name) + 1
	b = append(b, 'C', byte(n>>24), byte(n>>16), byte(n>>8), byte(n), typ)
	b = append(b, name...)
	return append(b, 0)
}

// saveStmt and savePortal note a name's current entry before the batch
// changes it, so that a refused batch leaves the maps as the server has them.
func (r *relayState) saveStmt(name string) {
	var st stmt
	sp, had := r.stmts[name]
	if had {
		st = *sp
	}
	r.undo = append(r.undo, undoOp{name: name, had: had, st: st})
}

func (r *relayState) savePortal(name string) {
	p, had := r.portals[name]
	r.undo = append(r.undo, undoOp{portal: true, name: name, had: had, p: p})
}

// undoBatch restores the maps as they were before the current batch, none
// of which is forwarded.
func (r *relayState) undoBatch() {
	for i := len(r.undo) - 1; i >= 0; i-- {
		u := r.undo[i]
		switch {
		case !u.portal && u.name == "":
			r.ownUnnamed().st = u.st
		case u.portal && u.name == "":
			r.ownUnnamed().p = u.p
		case !u.portal && u.had:
			st := u.st
			r.stmts[u.name] = &st
		case !u.portal:
			delete(r.stmts, u.name)
		case u.had:
			r.portals[u.name] = u.p
		default:
			delete(r.portals, u.name)
		}
	}
}

// mayChangePrepared reports whether a statement text may replace a named
// prepared statement or cursor behind the protocol's back (PREPARE,
// DEALLOCATE, DISCARD, DECLARE … CURSOR, CLOSE, at top level or in a DO
// block or function body, dynamic SQL included): the gateway then no
// longer knows what those names hold. The words alone are a cheap first
// test; preparedChange then wants them in the shape of those statements,
// so that a column named close (a price's) does not make every named
// statement of the session unknown to its recording.
func mayChangePrepared(sql string) bool {
	return preparedWords.in(sql) && preparedChange.MatchString(sql)
}

// preparedWords are the words mayChangePrepared looks for first, as whole
// words.
var preparedWords = newFoldSet(true, "prepare", "deallocate", "discard", "declare", "close")

// preparedChange matches the statements mayChangePrepared looks for.
var preparedChange = regexp.MustCompile(`(?i)\b(?:` +
	`prepare\s+(?:"[^"]*"|[a-z_][\w$]*)\s*(?:\(|as\b)` +
	`|deallocate\b` +
	`|discard\s+(?:all|plans)\b` +
	`|declare\s+(?:"[^"]*"|[a-z_][\w$]*)\s+(?:(?:binary|insensitive|asensitive|no\s+scroll|scroll)\s+)*cursor\b` +
	`|close\s+(?:"[^"]*"|[a-z_][\w$]*)\s*(?:[;'$)]|\z))`)
