package pggw

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/sniff"
)

// Guards that keep one client, or a flood of them, from taking the gateway
// down: a cap on connections still authenticating, and panics contained to
// the connection that hit them.

// defaultMaxStartups is how many connections may be in their startup phase
// (TLS, startup message, SCRAM, upstream login) at once when
// Options.MaxStartups is zero. Each holds a goroutine and two buffers (no
// PBKDF2 run: the grants' SCRAM verifiers are derived once, verifiers.go);
// a session that is up no longer counts.
const defaultMaxStartups = 64

// defaultMaxStartupsPerHost is how many of those one source may hold when
// Options.MaxStartupsPerHost is zero: a client that opens connections and
// never finishes their startup cannot take every slot and keep everyone
// else out for as long as it keeps doing so.
const defaultMaxStartupsPerHost = 16

const (
	codeTooManyConnections = "53300" // too_many_connections
	codeInternalError      = "XX000" // internal_error
)

// tooManyMessage is the error a connection over the startup cap gets.
const tooManyMessage = "airlock: too many connections are authenticating; try again shortly"

// acquireStartup takes a startup slot for a connection from source (see
// startupSource), or returns why none is free: all of them are taken, or
// source holds its share.
func (g *Gateway) acquireStartup(source string) (refused string) {
	select {
	case g.startups <- struct{}{}:
	default:
		return "too many connections in startup"
	}
	if source == "" {
		return ""
	}
	g.startupMu.Lock()
	defer g.startupMu.Unlock()
	if g.startupsBySource[source] >= g.o.MaxStartupsPerHost {
		<-g.startups
		return "too many connections in startup from this source"
	}
	g.startupsBySource[source]++
	return ""
}

// releaseStartup gives back a slot acquireStartup took for source.
func (g *Gateway) releaseStartup(source string) {
	if source != "" {
		g.startupMu.Lock()
		if n := g.startupsBySource[source] - 1; n > 0 {
			g.startupsBySource[source] = n
		} else {
			delete(g.startupsBySource, source)
		}
		g.startupMu.Unlock()
	}
	<-g.startups
}

// startupSource is the source a connection's startup slot counts against:
// its IPv4 address, or its IPv6 address's /64, as for the caps of the
// HTTP listeners (sniff.Source). "" (not an IP peer) counts against the
// global cap only.
func startupSource(addr net.Addr) string { return sniff.Source(addr) }

// refuseBusy answers a connection over the startup cap at once, as
// PostgreSQL does when it has too many clients: FATAL 53300, then close,
// without reading anything. The attempt goes to the Authority, which counts
// a flood of them into a summary rather than a log entry each.
func (g *Gateway) refuseBusy(nc net.Conn, reason string) {
	client := nc.RemoteAddr().String()
	ctx, cancel := context.WithTimeout(g.ctx, 10*time.Second)
	defer cancel()
	rej := gateway.Rejection{Gateway: "postgres", Client: client, Reason: reason}
	if err := g.o.Authority.Reject(ctx, rej); err != nil {
		g.log.Error("recording a refused connection failed", "client", client, "reason", rej.Reason, "err", err)
	}
	// A fresh connection's send buffer is empty: this write does not wait
	// for the client, and the deadline covers the case where it would.
	_ = nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = nc.Write(fatal(codeTooManyConnections, tooManyMessage).appendTo(nil))
	nc.Close()
}

// panicHook, when set (by tests), is called at points where a connection's
// goroutines handle client or upstream input, so that a test can make one
// of them panic: stage is "startup", "session" (the session's recording
// just started), "login" (the upstream login just succeeded), "greet" (the
// client's greeting is about to be sent), "query" (arg: the SQL) or
// "upstream" (arg: the raw message).
type panicHook func(stage string, arg []byte)

func (g *Gateway) hook(stage string, arg []byte) {
	if h := g.panicHook.Load(); h != nil {
		(*h)(stage, arg)
	}
}

// startupPanic is a panic of the startup goroutine carried to the
// connection's: what panicText gave of it, the stack where it happened.
type startupPanic string

// panicText is what the log keeps of a panic's value: a runtime error's
// message (an index out of range, a nil dereference: no data) or only the
// value's type, since a value that code made may quote what the session
// carried (a statement, a parameter).
func panicText(v any) string {
	switch v := v.(type) {
	case runtime.Error:
		return v.Error()
	case startupPanic:
		return string(v)
	}
	return fmt.Sprintf("a value of type %T", v)
}

// contain recovers a panic in one of c's goroutines: the stack goes to the
// gateway's log, the client gets FATAL XX000 if it can, and both
// connections close. The session, if there is one, records the internal
// error when it ends (finish). Deferred directly in each goroutine.
func (c *conn) contain(where string) {
	v := recover()
	if v == nil {
		return
	}
	c.panicked.Store(true)
	c.gw.panics.Add(1)
	sess := ""
	if c.sess != nil {
		sess = c.sess.ID
	}
	c.gw.log.Error("panic in a PostgreSQL connection; the connection is closed, the gateway keeps serving",
		"where", where, "client", c.clientName(), "session", sess, "panic", panicText(v), "stack", string(debug.Stack()))
	c.abort()
}

// abort closes c after an internal error without taking locks a panicking
// goroutine may have held: the FATAL is sent only if the writer is free.
func (c *conn) abort() {
	c.cx.cancel()
	if c.wmu.TryLock() {
		if !c.dead {
			c.dead = true
			_ = c.raw.SetWriteDeadline(time.Now().Add(killWriteGrace))
			if _, err := c.cw().Write(fatal(codeInternalError, "airlock: internal error; this session is closed").appendTo(nil)); err == nil {
				_ = c.cw().Flush()
			}
		}
		c.wmu.Unlock()
	}
	c.raw.Close()
	if up := c.upc.Load(); up != nil {
		(*up).Close()
	}
}

// recordInternalError puts the internal error into the session's
// recording, so that the reviewer sees why it ended.
func (c *conn) recordInternalError() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx()), 10*time.Second)
	defer cancel()
	call := gateway.Call{Kind: "result", Action: "pg:session", Resource: c.t.db, Allowed: false,
		Error: "internal error: the gateway closed this session"}
	if err := c.sess.Result(ctx, call); err != nil {
		c.gw.log.Error("recording a session's internal error failed", "session", c.sess.ID, "err", err)
	}
}

// served runs c from its startup to its end with every panic contained: a
// panic in the startup is recorded as a refused attempt, one after the
// session started ends the session with the internal error recorded.
func (c *conn) served() {
	defer func() {
		if v := recover(); v != nil {
			c.recovered(v, "connection")
		}
	}()
	c.serve()
}

// recovered handles a panic v recovered on the goroutine that ends the
// connection (the serving goroutine, or the last relay loop's: park.go).
func (c *conn) recovered(v any, where string) {
	c.gw.panics.Add(1)
	c.gw.log.Error("panic in a PostgreSQL connection; the connection is closed, the gateway keeps serving",
		"where", where, "client", c.clientName(), "panic", panicText(v), "stack", string(debug.Stack()))
	c.abort()
	// Whatever state the panic left, the attempt or the session must
	// still reach the log; a second panic here is the process's.
	if c.sess == nil {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx()), 10*time.Second)
		defer cancel()
		rej := gateway.Rejection{Gateway: "postgres", Client: c.clientName(), Reason: "internal error during startup"}
		if err := c.gw.o.Authority.Reject(rctx, rej); err != nil {
			c.gw.log.Error("recording a refused connection failed", "client", c.clientName(), "err", err)
		}
		return
	}
	if c.key != 0 {
		c.gw.keys.remove(c.key)
	}
	if c.st != nil {
		_ = c.st.removeSession(c) // the panic is what the record says
	}
	c.recordInternalError()
	c.endSession()
}

// panics counts contained panics (tests read it).
type panicCounter = atomic.Int64
