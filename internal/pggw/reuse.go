package pggw

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/jackc/pgx/v5/pgconn"
)

// Reusing a grant's upstream connections.
//
// An agent that runs psql once per query opens a session per statement,
// and each session would otherwise pay a login to PostgreSQL: a backend's
// start and authentication, 17–104 ms on the 2-vCPU hosts of
// bench/HISTORY.md against well under a millisecond for the rest of the
// session, which is how PgBouncer, reusing its server connections, serves
// `pgbench -C` some eighty times faster than PostgreSQL itself does. The
// gateway keeps an upstream connection when its session ends cleanly, for
// the next session of the same grant.
//
// Only cleanly: the client ended with Terminate while nothing was in
// flight, outside a transaction block, with no COPY or unsynced extended-
// protocol messages. Then, instead of passing the Terminate on, the
// gateway sends DISCARD ALL, which resets the backend to what the login
// left (settings back to the startup's, the role reset, temporary tables,
// prepared statements, cursors, advisory locks, LISTENs and cached plans
// dropped), and, in the same write, a setseed with a value from
// crypto/rand: DISCARD ALL leaves random()'s state alone, so a session
// that called setseed(0.5) would otherwise know every random() of the
// grant's next session (another agent run's tokens, samples, retry
// jitter). It keeps the connection once the server has answered both
// with ReadyForQuery outside a transaction. Anything else (an error, another
// message, no answer within resetTimeout, the grant's end, the gateway's
// shutdown) closes it, as before.
//
// A kept connection is logged in as the grant's own role: it serves only
// later sessions of that grant (so nothing of one agent's session reaches
// another's, even should DISCARD ALL miss something), that asked for the
// same startup parameters (application_name, client_encoding, … :
// forwardedParams), and only within idleUpstreamTTL of its last use; at
// most MaxIdleUpstreams (8) wait per grant. The grant's end and the gateway's
// shutdown close them. A connection is checked before it is reused: one
// the server closed meanwhile (a restart, pg_terminate_backend) or that
// has bytes waiting is closed, and the session logs in afresh. Each
// session is recorded as its own, from its own start to its own end; the
// reset is the gateway's, not the agent's, and is not a statement of
// either session.

const (
	// defaultIdleUpstreamTTL is how long a kept connection waits for the
	// grant's next session: the gaps of an agent running one psql per
	// query, not an idle pool that holds backends for hours.
	defaultIdleUpstreamTTL = 15 * time.Second
	// defaultMaxIdleUpstreams bounds a grant's kept connections: each is a
	// backend, counted against the server's max_connections.
	defaultMaxIdleUpstreams = 8
	// resetTimeout bounds the wait for the reset's answers.
	resetTimeout = 5 * time.Second
)

// States of a session's upstream at its end (conn.reuse, under wmu).
const (
	reuseNone      uint8 = iota // closed with the session, as before
	reuseResetting              // the reset sent, its answers awaited
	reuseKept                   // reset: to be handed to the grant's pool
	reuseFailed                 // the reset failed or timed out: closed
	reuseHanded                 // in the grant's pool, or another session's
)

// ownsUpstream reports whether closing the session closes its upstream;
// wmu held.
func (c *conn) ownsUpstream() bool {
	return c.reuse == reuseNone || c.reuse == reuseFailed
}

// discardAll is the reset's first Query message.
var discardAll = []byte("Q\x00\x00\x00\x10DISCARD ALL\x00")

// resetAnswers is how many ReadyForQuery the reset awaits: DISCARD ALL's,
// then the reseed's. DISCARD ALL refuses to run within a multi-statement
// Query (an implicit transaction block), so they are two messages, sent
// in one write: one round trip, as DISCARD ALL alone.
const resetAnswers = 2

// resetMessages returns DISCARD ALL and a Query that seeds random() with
// an unpredictable value. The function is named with its schema and its
// argument is a literal cast to a qualified type, so that neither a
// search_path the session's startup asked for nor an object the session
// defined can stand in for them.
func resetMessages() []byte {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	// 53 random bits, in [-1, 1) as setseed wants.
	seed := float64(binary.BigEndian.Uint64(b[:])>>11)/(1<<52) - 1
	q := "SELECT pg_catalog.setseed('" + strconv.FormatFloat(seed, 'g', -1, 64) + "'::pg_catalog.float8)"
	msg := make([]byte, 0, len(discardAll)+5+len(q)+1)
	msg = append(msg, discardAll...)
	msg = append(msg, 'Q')
	msg = binary.BigEndian.AppendUint32(msg, uint32(4+len(q)+1))
	msg = append(msg, q...)
	return append(msg, 0)
}

// upstreamInfo is what an upstream login asked for and what the server
// reported at its end, shared by a grant's sessions whose logins match (a
// session holds a pointer to it in its grant's sessions map, not a copy):
// a kept connection's next session greets its client with these
// statuses.
type upstreamInfo struct {
	key      string            // role and forwarded startup parameters
	statuses map[string]string // ParameterStatus, never changed once shared
}

// upstreamKey identifies what a login asked for: two sessions whose keys
// match may share an upstream connection.
func upstreamKey(role Role, runtime map[string]string) string {
	var b strings.Builder
	b.WriteString(role.Name)
	for _, k := range slices.Sorted(maps.Keys(runtime)) {
		b.WriteByte(0)
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(runtime[k])
	}
	return b.String()
}

// forwarded returns the startup parameters passed to the upstream.
func forwarded(params map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range params {
		if forwardedParams[k] {
			out[k] = v
		}
	}
	return out
}

// idleUpstream is a kept connection waiting in its grant's pool.
type idleUpstream struct {
	nc     net.Conn
	info   *upstreamInfo
	pid    uint32
	secret []byte
	timer  clock.Timer
	// slot is the grant's slot among the replicas' that the connection
	// holds on from its session (Options.Slots; nil without).
	slot gateway.Slot
}

// close closes the kept connection and gives its slot among the
// replicas' back (on a goroutine: callers are on a login's path or hold
// a timer's).
func (e *idleUpstream) close() {
	e.nc.Close()
	if e.slot != nil {
		go e.slot.Release()
	}
}

// info returns the grant's shared upstreamInfo for key and statuses, made
// if no session holds an equal one; st.mu held.
func (st *grantState) infoLocked(key string, statuses map[string]string) *upstreamInfo {
	for _, ui := range st.sessions {
		if ui != nil && ui.key == key && maps.Equal(ui.statuses, statuses) {
			return ui
		}
	}
	for _, e := range st.idle {
		if e.info.key == key && maps.Equal(e.info.statuses, statuses) {
			return e.info
		}
	}
	return &upstreamInfo{key: key, statuses: statuses}
}

// takeIdle returns a kept connection for key as a hijacked login, or nil.
func (g *Gateway) takeIdle(st *grantState, key string) *pgconn.HijackedConn {
	if g.idleTTL < 0 {
		return nil
	}
	for {
		st.mu.Lock()
		i := slices.IndexFunc(st.idle, func(e *idleUpstream) bool { return e.info.key == key })
		if i < 0 || st.ended {
			st.mu.Unlock()
			return nil
		}
		e := st.idle[i]
		st.idle = slices.Delete(st.idle, i, i+1)
		st.mu.Unlock()
		e.timer.Stop()
		if !quiet(e.nc) {
			e.close()
			continue
		}
		if e.slot != nil {
			// The session has a slot of its own (admitted).
			go e.slot.Release()
		}
		return &pgconn.HijackedConn{Conn: e.nc, PID: e.pid, SecretKey: e.secret,
			ParameterStatuses: e.info.statuses, TxStatus: 'I'}
	}
}

// putIdle keeps nc in st's pool, or closes it if the grant has ended, the
// gateway is closing, the pool is full, or keeping it would leave the
// grant more backends than max_sessions_per_grant (its sessions, the one
// ending included, the logins admitted and the kept connections).
//
// Among replicas the session's slot in the shared store goes with the
// connection, kept (gateway.Slot.Keep): a grant's backends, not only its
// sessions, stay within the bound across replicas. A login elsewhere that
// finds the grant full only of kept connections takes their slots over,
// and the connection is then closed (lost).
func (g *Gateway) putIdle(c *conn, st *grantState, e *idleUpstream) {
	st.mu.Lock()
	max := st.t.MaxSessionsPerGrant
	if st.ended || st.idleClosed || len(st.idle) >= g.maxIdle || max >= 0 && len(st.sessions)+st.admitting+len(st.idle) > max {
		st.mu.Unlock()
		e.nc.Close() // the session's slot is given back with it (removeSession)
		return
	}
	st.idle = append(st.idle, e)
	e.timer = g.o.Clock.AfterFunc(g.idleTTL, func() { st.dropIdle(e) })
	if e.slot = st.slots[c]; e.slot != nil {
		delete(st.slots, c)
	}
	st.mu.Unlock()
	if e.slot != nil {
		e.slot.Keep(func() { st.dropIdle(e) })
	}
}

// makeRoom closes the grant's oldest kept connection if a new upstream
// login would otherwise leave the grant more backends than
// max_sessions_per_grant: kept connections of other startup parameters
// must not hold slots a session needs. The login's own session is counted
// in st.sessions.
func (st *grantState) makeRoom() {
	max := st.t.MaxSessionsPerGrant
	st.mu.Lock()
	var e *idleUpstream
	if max >= 0 && len(st.idle) > 0 && len(st.sessions)+st.admitting+len(st.idle) > max {
		e = st.idle[0]
		st.idle = st.idle[1:]
	}
	st.mu.Unlock()
	if e != nil {
		e.timer.Stop()
		e.close()
	}
}

// dropIdle closes e if it is still in st's pool: its time is up, or its
// slot among the replicas' was taken over (putIdle).
func (st *grantState) dropIdle(e *idleUpstream) {
	st.mu.Lock()
	i := slices.Index(st.idle, e)
	if i >= 0 {
		st.idle = slices.Delete(st.idle, i, i+1)
	}
	st.mu.Unlock()
	if i >= 0 {
		e.timer.Stop()
		e.close()
	}
}

// closeIdle closes st's kept connections and keeps no more: the grant has
// ended or the gateway is closing.
func (st *grantState) closeIdle() {
	st.mu.Lock()
	idle := st.idle
	st.idle = nil
	st.idleClosed = true
	st.mu.Unlock()
	for _, e := range idle {
		e.timer.Stop()
		e.nc.Close()
		if e.slot != nil {
			// Here, not on a goroutine: Close waits for this one, so
			// the slots are back before the store closes.
			e.slot.Release()
		}
	}
}

// quiet reports whether an idle upstream connection is still open with
// nothing to read: a peek that does not wait.
func quiet(nc net.Conn) bool {
	if tc, ok := nc.(*tls.Conn); ok {
		// Any byte below TLS, a record the server sent unasked (an alert
		// before its close), disqualifies it too.
		nc = tc.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var b [1]byte
	err = rc.Control(func(fd uintptr) {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = errors.Is(err, syscall.EAGAIN)
	})
	return err == nil && open
}

// reusable reports whether the session may keep its upstream connection as
// the client terminates: nothing in flight or half-sent, outside a
// transaction block; the client loop's.
func (c *conn) reusable() bool {
	r := &c.rs
	if c.gw.idleTTL < 0 || c.leavesState || c.txs.Load() != 'I' || !r.batchState.empty() || r.open || r.discard ||
		c.badEncoding.Load() != nil || c.panicked.Load() || !c.grant().Live(c.gw.o.Clock.Now()) {
		return false
	}
	r.qmu.Lock()
	idle := r.front() == nil
	r.qmu.Unlock()
	return idle
}

// State that DISCARD ALL does not reset.
//
// DISCARD ALL resets what SQL keeps for a session, not what a loaded
// library keeps in the backend's memory: a LOADed library stays loaded,
// its hooks installed; dblink's connections stay open, logged in
// elsewhere, perhaps as another role, and usable by name
// (dblink_get_connections lists them after DISCARD ALL); PL/Python's GD and
// PL/Perl's %_SHARED keep their values. A session that may have made such
// state does not leave its upstream to the grant's next session, which
// must start from what its own login gives: the gateway closes it. What
// may make it, read from the statements' text before they are forwarded:
//   - LOAD, DO and CALL, and a FunctionCall message (a function by OID):
//     code whose effect the text does not show;
//   - CREATE of anything but a table, sequence, view, schema or
//     domain (whose expressions are in the text): a function, operator,
//     cast or aggregate the session defines (in pg_temp, which PUBLIC
//     may) runs code later statements do not name;
//   - a call of a function by name other than a built-in that keeps
//     nothing DISCARD ALL misses: those that only compute (pureFuncs),
//     those whose state it or the reseed resets (keepFuncs), unqualified
//     or named with pg_catalog, and any other named with pg_catalog,
//     where only a superuser defines functions. A function of the
//     database's (a wrapper of dblink, a PL/Python or PL/Perl function)
//     is thus seen when a statement names it;
//   - the word dblink anywhere, a literal's or a comment's included;
//     query_to_xml, ts_stat and ts_rewrite, built-ins that run SQL given
//     as text; and U&"…" identifiers, whose escapes spell any name.
// What the text does not show, the database's views, triggers, rules and
// defaults calling such functions, or a function of the database's named
// like a built-in that a call resolves to, is the database's design, as
// for early reads (purecalls.go).

// stateWords are what, anywhere in a statement's text, may call a
// function with state of its own or run SQL the text does not show.
var stateWords = []string{"dblink", "query_to_xml", "ts_stat", "ts_rewrite", `u&"`}

// keepRule accepts the calls a statement may make and leave its upstream
// to the grant's next session: of keepFuncs, and of any function named
// with pg_catalog.
var keepRule = callRule{funcs: keepFuncs, anyCatalog: true, columnLists: true}

// keepFuncs are the built-ins a statement may call and leave its upstream
// to the grant's next session: pureFuncs, and those whose session state
// DISCARD ALL (advisory locks, sequences' currval, settings, LISTEN) or
// the reseed (random) resets.
var keepFuncs = func() map[string]bool {
	m := setOf("setseed", "random", "random_normal", "set_config", "nextval", "currval", "setval", "lastval",
		"pg_notify", "pg_listening_channels", "pg_sleep", "pg_sleep_for", "pg_sleep_until", "txid_current",
		"pg_current_xact_id", "pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock",
		"pg_try_advisory_lock_shared", "pg_advisory_unlock", "pg_advisory_unlock_shared", "pg_advisory_unlock_all",
		"pg_advisory_xact_lock", "pg_advisory_xact_lock_shared", "pg_try_advisory_xact_lock",
		"pg_try_advisory_xact_lock_shared")
	for f := range pureFuncs {
		m[f] = true
	}
	return m
}()

// isStateAction reports whether action a is a statement whose code the
// text does not show. A switch, not a set: every statement of a session
// that may be reused asks, and a map's lookup cost 146 instructions a
// pgbench -S statement (bench/HISTORY.md, "pgbench -S: a CommandComplete's
// count and a statement's state test by hand").
func isStateAction(a string) bool {
	switch a {
	case "pg:load", "pg:do", "pg:call":
		return true
	}
	return false
}

// createsNoCode reports whether a CREATE of kind k (createdKind) makes an
// object without leaving state (leavesState): its expressions are in the
// statement's text.
func createsNoCode(k string) bool {
	switch k {
	case "table", "sequence", "view", "recursive", "schema", "domain":
		return true
	}
	return false
}

// leavesState reports whether sql may make backend state that DISCARD
// ALL does not reset.
func leavesState(sql string) bool { return leavesStateOf(sql, actionOf(sql)) }

// leavesStateOf is leavesState given action, actionOf(sql), which the
// client loop has already.
func leavesStateOf(sql, action string) bool {
	if hasStateWord(sql) {
		return true
	}
	if !callsOnly(sql, &keepRule) {
		return true
	}
	if i := strings.IndexByte(sql, ';'); i < 0 || strings.TrimSpace(sql[i+1:]) == "" {
		// One statement, the common case: no split.
		return stateStatement(sql, action)
	}
	found := false
	for _, backslashQuotes := range []bool{false, true} {
		eachStatement(sql, backslashQuotes, func(st sqlStatement) {
			if found {
				return
			}
			text := sql[st.start:st.end]
			found = stateStatement(text, actionOf(text))
		})
	}
	return found
}

// stateStatement reports whether one statement, sql of action a
// (actionOf), may make state that DISCARD ALL does not reset by what it
// is (leavesState).
func stateStatement(sql, a string) bool {
	switch {
	case isStateAction(a):
		return true
	case a == "pg:create":
		return !createsNoCode(createdKind(sql))
	}
	return false
}

// hasStateWord reports whether sql has one of stateWords, A-Z folded to
// a-z and every other byte exact (indexFold folds "_" too), in one pass.
func hasStateWord(sql string) bool { return stateWordSet.in(sql) }

var stateWordSet = newFoldSet(false, stateWords...)

// foldedIs reports whether s is w (lower case) with A-Z folded to a-z.
func foldedIs(s, w string) bool {
	for j := 0; j < len(w); j++ {
		c := s[j]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != w[j] {
			return false
		}
	}
	return true
}

// createdKind returns the kind of object a CREATE statement makes, lower
// case, past its modifiers ("create or replace temp view" is "view").
func createdKind(sql string) string {
	sc := scanner{s: sql}
	first := true
	for {
		t, ok := sc.next()
		if !ok || t.kind != tWord {
			return ""
		}
		w := lowerASCII(sql[t.start:t.end])
		if first {
			first = false // CREATE itself
			continue
		}
		switch w {
		case "or", "replace", "temp", "temporary", "local", "global", "unlogged", "materialized":
			continue
		}
		return w
	}
}

// noteState notes, before sql (of action, actionOf(sql)) is forwarded,
// whether it may leave state that DISCARD ALL does not reset; the client
// loop's.
func (c *conn) noteState(sql, action string) {
	if !c.leavesState && c.gw.idleTTL >= 0 && leavesStateOf(sql, action) {
		c.leavesState = true
	}
}

// startReset sends the reset (DISCARD ALL and the reseed) in place of the
// client's Terminate, if the session may keep its upstream; the client
// loop's, at Terminate.
func (c *conn) startReset() bool {
	if !c.reusable() {
		return false
	}
	c.wmu.Lock()
	if c.dead || c.reuse != reuseNone {
		c.wmu.Unlock()
		return false
	}
	c.reuse = reuseResetting
	c.resetWait = resetAnswers
	c.wmu.Unlock()
	if _, err := c.rs.uw.Write(resetMessages()); err != nil || c.rs.uw.Flush() != nil {
		c.failReset()
		return true
	}
	t := c.gw.o.Clock.AfterFunc(resetTimeout, c.failReset)
	// Held by the grant, not the session (whose struct has no room), and
	// stopped once both relay loops have ended (kept): a timer left to
	// fire would hold the ended session's objects for resetTimeout.
	c.st.mu.Lock()
	if c.st.resets == nil {
		c.st.resets = map[*conn]clock.Timer{}
	}
	c.st.resets[c] = t
	c.st.mu.Unlock()
	return true
}

// failReset gives up a reset still awaited: the upstream is closed, which
// ends the upstream loop if it waits.
func (c *conn) failReset() {
	c.wmu.Lock()
	if c.reuse == reuseResetting {
		c.reuse = reuseFailed
		if c.up != nil {
			c.up.Close()
		}
	}
	c.wmu.Unlock()
}

// resetMessage handles one upstream message during the reset; the
// upstream loop's, wmu held. It returns false when the loop should end:
// the reset is done (kept) or failed. drained: the loop's reader holds
// nothing more.
func (c *conn) resetMessage(raw []byte, drained bool) bool {
	switch raw[0] {
	case 'C', 'N', 'A', 'T', 'D':
		// DISCARD ALL's completion, setseed's row and completion; a
		// notice or a notification sent meanwhile, for a client that has
		// gone.
		return true
	case 'S':
		c.st.resetStatus(c, raw[5:])
		return true
	case 'Z':
		if len(raw) != 6 || raw[5] != 'I' {
			break
		}
		if c.resetWait--; c.resetWait > 0 {
			return true // DISCARD ALL's: the reseed's answer follows
		}
		if drained {
			c.reuse = reuseKept
			return false
		}
	}
	c.reuse = reuseFailed
	return false
}

// resetStatus applies a ParameterStatus the reset reported to c's
// upstreamInfo, as a copy: the one it had is shared.
func (st *grantState) resetStatus(c *conn, body []byte) {
	n, rest, ok := cstring(body)
	if !ok {
		return
	}
	v, _, ok := cstring(rest)
	if !ok {
		return
	}
	name, value := string(n), string(v)
	st.mu.Lock()
	defer st.mu.Unlock()
	ui := st.sessions[c]
	if ui == nil || ui.statuses[name] == value {
		return
	}
	statuses := maps.Clone(ui.statuses)
	statuses[name] = value
	st.sessions[c] = &upstreamInfo{key: ui.key, statuses: statuses}
}

// setInfo records what c's upstream login asked for and reported.
func (st *grantState) setInfo(c *conn, key string, statuses map[string]string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.sessions[c]; ok {
		st.sessions[c] = st.infoLocked(key, statuses)
	}
}

// kept returns, for a session whose reset kept its upstream, what the
// upstream goes back to the grant with; after any other reset, now over
// (both relay loops have ended), it marks the upstream to be closed.
func (c *conn) kept() (*upstreamInfo, *cancelKey) {
	c.wmu.Lock()
	state := c.reuse
	if state == reuseResetting {
		c.reuse = reuseFailed
	}
	c.wmu.Unlock()
	if state == reuseNone {
		return nil, nil
	}
	c.st.mu.Lock()
	if t := c.st.resets[c]; t != nil {
		t.Stop()
		delete(c.st.resets, c)
	}
	ui := c.st.sessions[c]
	c.st.mu.Unlock()
	if state != reuseKept {
		return nil, nil
	}
	k := c.gw.keys.get(c.key)
	if ui == nil || k == nil {
		c.wmu.Lock()
		c.reuse = reuseFailed
		c.wmu.Unlock()
		return nil, nil
	}
	return ui, k
}

// handBack gives a kept upstream to the grant's pool if keep (no cancel
// of the session is under way: cancelKeys.leave); closeAll, which
// follows, closes any other. The session keeps c.up, which a cancel
// already under way may read for its address (cancel.go), but no longer
// owns it: kill, closeAll and abort leave it alone.
func (c *conn) handBack(ui *upstreamInfo, k *cancelKey, keep bool) {
	c.wmu.Lock()
	up := c.up
	ok := keep && c.reuse == reuseKept && up != nil
	if ok {
		c.reuse = reuseHanded
		c.upc.Store(nil)
	} else {
		c.reuse = reuseFailed
	}
	c.wmu.Unlock()
	if ok {
		c.gw.putIdle(c, c.st, &idleUpstream{nc: up, info: ui, pid: k.pid, secret: k.key()})
	}
}
