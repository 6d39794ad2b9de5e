package pggw

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/findings"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/netpark"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

const (
	ioBufSize      = 8 << 10
	maxStartupBody = 10000 // PostgreSQL's MAX_STARTUP_PACKET_LENGTH
	maxAuthBody    = 8 << 10
	killWriteGrace = time.Second
)

// conn is one client connection: its startup, then its relay to the
// upstream backend.
type conn struct {
	gw  *Gateway
	srv *serving // the Serve call that accepted it (nil in tests)
	raw net.Conn
	// cx is the session's context (ctx(), sessctx.go).
	cx sessCtx
	// su is what only the startup phase needs, dropped when it ends
	// (endStartup): an idle session carries none of it.
	su *startupState

	br *idleReader // client side, read by the serving goroutine only

	// wmu guards everything written to the client and the fields that kill
	// reads: several goroutines answer the client (the upstream relay, the
	// client loop's own refusals, kill).
	wmu sync.Mutex
	nc  net.Conn // raw, or the TLS connection over it
	// cwb is the writer to the client, nil while the session is parked
	// with nothing buffered for the client (letGoWriter): use cw().
	cwb *flushWriter
	up  net.Conn

	// Small fields side by side (the struct is allocated per session).
	killOnce sync.Once
	dead     bool // killed: nothing more is written (wmu)
	// reuse: what becomes of the upstream at the session's end (wmu;
	// reuse.go).
	reuse uint8
	// resetWait counts the ReadyForQuery the reset still awaits (the
	// upstream loop's, wmu; reuse.go).
	resetWait uint8
	// parkedSides has bit 1<<side set while that side's loop is parked
	// (cx.mu; sessCtx.parked): here, in a byte of padding, rather than in
	// cx, where it cost 8 bytes.
	parkedSides uint8

	// Set once the session is established. The session's grant is
	// sess.Grant (grant()).
	st   *grantState
	t    *target
	sess *gateway.Session
	key  uint32 // the gateway's BackendKeyData pid for this connection
	tls  bool
	// readOnly: the grant can only read, so reads are forwarded while
	// their records are written (disclose.go).
	readOnly bool
	// ownObjects: the session has run a statement that may have defined
	// objects of its own, or its role may define objects that outlive
	// sessions (ownObjects in disclose.go); the client loop's.
	ownObjects bool
	// leavesState: the session may have made backend state that DISCARD
	// ALL does not reset, so its upstream is not kept (leavesState in
	// reuse.go); the client loop's.
	leavesState bool

	txs atomic.Uint32 // upstream transaction status ('I', 'T', 'E')
	// panicked is set when one of the connection's goroutines panicked.
	panicked atomic.Bool
	// scsOff: upstream reports standard_conforming_strings off, so plain
	// literals take backslash escapes (for the tokenizer).
	scsOff atomic.Bool
	// upEnded: the upstream ended the connection before the gateway or
	// the client did (set under wmu: upstreamGone; cutReason). Here, in
	// the padding before upc, it costs the struct nothing.
	upEnded atomic.Bool
	// upc is the upstream connection for abort, which must not take wmu.
	upc atomic.Pointer[net.Conn]
	// badEncoding: upstream reports a client_encoding the scanner cannot
	// read safely (unsafeClientEncoding); the session ends at the next
	// message from the client.
	badEncoding atomic.Pointer[string]

	pk parking // park.go

	// What lives exactly as long as the connection, in its allocation
	// rather than four of its own (bench/HISTORY.md, "An idle session in
	// fewer objects"): the relay's state (set up as the relay starts:
	// run), the cancel key (once the upstream login gave one) and
	// netpark's wrapper of the client socket (raw, when it has one). An
	// idle session's objects otherwise sat one each in spans shared with
	// its login's garbage, keeping them from being given back. The
	// upstream's wrapper is not here: a kept upstream outlives its session
	// (reuse.go) and would keep this whole object alive.
	rs     relayState
	ck     cancelKey
	client netpark.Conn
}

// startupState is a connection's state for its startup phase only.
type startupState struct {
	// ctx is the startup's context, cancelled by kill too (cancel, under
	// wmu; set by startupApart). The startup's calls (the upstream login
	// through pgconn, TLS, the authority) register children on the
	// context they get, each watched by a goroutine of its own on a
	// context that is not the package's (such as the session's, sessCtx).
	ctx    context.Context
	cancel context.CancelFunc
	// slot is held until the startup phase ends; it counts against
	// source's share (acquireStartup).
	slot   bool
	source string
	// admitted is the grant whose session slot the login holds (admit)
	// until its session is added under the grant (addSession); given back
	// if the startup ends first.
	admitted *grantState
	// shared is the login's slot among the replicas' (Options.Slots),
	// held with admitted's.
	shared gateway.Slot
	// client is the peer the session is recorded under: its address, or
	// the agent a relaying control plane named (Relays); clientName.
	client string
	// tlsClient is the fingerprint of the client's TLS certificate, if it
	// presented one (findings.TLSClient), for the session's start.
	tlsClient string
}

func newConn(g *Gateway, nc net.Conn) *conn {
	accepted.Add(1) // a login's garbage is coming: memRelease waits
	c := &conn{gw: g}
	nc = g.park.WrapInto(&c.client, nc)
	c.raw, c.nc = nc, nc
	c.su = &startupState{slot: true, client: nc.RemoteAddr().String()}
	c.br = getIdleReader(nc)
	c.cwb = getFlushWriter(nc)
	c.txs.Store('I')
	return c
}

// cw returns the writer to the client, taken from the pool again if a
// parked loop gave it back (letGoWriter); wmu held.
func (c *conn) cw() *flushWriter {
	if c.cwb == nil {
		c.cwb = getFlushWriter(c.nc)
	}
	return c.cwb
}

// letGoWriter gives the writer to the client back to the pool if it holds
// nothing (no buffered bytes, no error to report): an idle session needs
// none, and the next answer or kill takes one again (cw).
func (c *conn) letGoWriter() {
	c.wmu.Lock()
	if w := c.cwb; w != nil && w.idle() {
		c.cwb = nil
		putFlushWriter(w)
	}
	c.wmu.Unlock()
}

// endStartup gives back the connection's startup slot, once.
func (c *conn) endStartup() {
	su := c.su
	if su == nil {
		return
	}
	if su.slot {
		su.slot = false
		c.gw.releaseStartup(su.source)
	}
	c.unadmit()
}

// unadmit gives back the grant's session slot a login that is ending
// before its session was added holds: before the client is told why, so
// that a client retrying at once finds it free.
func (c *conn) unadmit() {
	if su := c.su; su != nil && su.admitted != nil {
		st, shared := su.admitted, su.shared
		su.admitted, su.shared = nil, nil
		st.unadmit()
		st.mu.Lock()
		delete(st.cut, c)
		st.mu.Unlock()
		if shared != nil {
			shared.Release()
		}
	}
}

// established drops the startup state of a session whose startup
// succeeded, before its relay starts: an idle session carries none of it.
// A refused or failed startup keeps it (refuse and recovered record its
// client) until the connection is let go.
func (c *conn) established() {
	c.wmu.Lock()
	c.su = nil
	c.wmu.Unlock()
}

// clientName is the peer the connection's startup records (startupState's
// client); once the session is established (the recorder keeps its
// client), the socket's peer address, for logs.
func (c *conn) clientName() string {
	if su := c.su; su != nil {
		return su.client
	}
	if a := c.raw.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// sctx is the startup's context (startupApart); startup goroutine only.
func (c *conn) sctx() context.Context { return c.su.ctx }

// grant is the session's grant, once it is established.
func (c *conn) grant() *gateway.Grant { return c.sess.Grant }

// send writes b to the client, flushing if asked. It is a no-op once the
// connection is killed.
func (c *conn) send(b []byte, flush bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.dead {
		return net.ErrClosed
	}
	if _, err := c.cw().Write(b); err != nil {
		return err
	}
	if flush {
		return c.cw().Flush()
	}
	return nil
}

// kill ends the connection from outside (grant ended, gateway closing):
// the client gets e as its last message, both connections close.
func (c *conn) kill(e *pgError) {
	c.killOnce.Do(func() {
		c.cx.cancel()
		// A write blocked on a client that does not read must not hold
		// wmu forever.
		_ = c.raw.SetWriteDeadline(time.Now().Add(killWriteGrace))
		c.wmu.Lock()
		if c.su != nil && c.su.cancel != nil {
			c.su.cancel()
		}
		if c.reuse == reuseResetting || c.reuse == reuseKept {
			c.reuse = reuseFailed
		}
		if c.up != nil && c.ownsUpstream() {
			c.up.Close()
		}
		if !c.dead {
			c.dead = true
			if _, err := c.cw().Write(e.appendTo(nil)); err == nil {
				_ = c.cw().Flush()
			}
		}
		c.nc.Close()
		c.wmu.Unlock()
	})
}

// closeAll closes both connections without a message; an upstream
// connection being reset for reuse, or kept, is left to the reset
// (reuse.go).
func (c *conn) closeAll() {
	c.cx.cancel()
	c.wmu.Lock()
	c.dead = true
	if c.up != nil && c.ownsUpstream() {
		c.up.Close()
	}
	c.nc.Close()
	c.wmu.Unlock()
}

func (c *conn) serve() {
	defer func() {
		if !c.pk.relaying {
			c.closeAll()
		}
	}()
	defer c.endStartup()
	_ = c.raw.SetDeadline(time.Now().Add(c.gw.o.StartupTimeout))
	c.gw.hook("startup", nil)
	up, err := c.startupApart()
	if errors.Is(err, errCancelHandled) {
		return
	}
	if err != nil {
		c.unadmit()
		c.refuse(err)
		return
	}
	c.endStartup()
	c.established()
	_ = c.raw.SetDeadline(time.Time{})
	c.run(up) // from here the relay loops end the session (park.go)
}

// startupApart runs the startup on a goroutine of its own. The startup
// (SCRAM, the upstream login through pgconn) grows a goroutine's stack to
// tens of KiB, and a stack only shrinks at garbage collections; this
// goroutine then spends the session's life in the client relay, mostly
// blocked in a read, which needs a few KiB. Run apart, the large stack is
// freed when the startup ends (and reused by the next one). A panic there
// is carried back here, to the connection's containment.
func (c *conn) startupApart() (net.Conn, error) {
	var (
		up  net.Conn
		err error
		pv  any
	)
	sctx, scancel := context.WithCancel(context.Background())
	defer scancel()
	c.wmu.Lock()
	if c.dead {
		scancel() // killed already
	}
	c.su.ctx, c.su.cancel = sctx, scancel
	c.wmu.Unlock()
	defer func() {
		c.wmu.Lock()
		c.su.ctx, c.su.cancel = nil, nil
		c.wmu.Unlock()
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if v := recover(); v != nil {
				pv = startupPanic(fmt.Sprintf("%s\n(in the startup goroutine)\n%s", panicText(v), debug.Stack()))
			}
		}()
		up, err = c.startup()
	}()
	<-done
	if pv != nil {
		panic(pv)
	}
	return up, err
}

// refusal is a connection refused before its session started.
type refusal struct {
	pg           *pgError // sent to the client; nil: just close
	reason       string   // for the log; pg's text if empty
	credentialID string
	grant        *gateway.Grant
}

func (r *refusal) Error() string {
	if r.reason != "" {
		return r.reason
	}
	if r.pg != nil {
		return r.pg.Error()
	}
	return "refused"
}

// refuse answers a failed startup: the client gets the error (if the
// connection still works), the attempt goes to the log.
func (c *conn) refuse(err error) {
	var r *refusal
	if !errors.As(err, &r) {
		r = &refusal{reason: err.Error()}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			r.pg = fatal(codeProtocolViolation, "airlock: the startup did not complete in time")
			r.reason = "startup timed out"
		} else if isEOF(err) {
			r.reason = "connection closed during startup"
		} else {
			r.pg = fatal(codeProtocolViolation, "airlock: invalid startup: "+err.Error())
		}
	}
	// The attempt is in the log before the client hears of it.
	rej := gateway.Rejection{Gateway: "postgres", Client: c.clientName(), CredentialID: r.credentialID, Reason: r.Error()}
	if r.grant != nil {
		rej.GrantID, rej.Target = r.grant.ID, r.grant.Target
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx()), 10*time.Second)
	defer cancel()
	if err := c.gw.o.Authority.Reject(ctx, rej); err != nil {
		c.gw.log.Error("recording a refused connection failed", "client", rej.Client, "reason", rej.Reason, "err", err)
	}
	if r.pg != nil {
		_ = c.raw.SetWriteDeadline(time.Now().Add(killWriteGrace))
		_ = c.send(r.pg.appendTo(nil), true)
	}
}

// useTLS switches the client side to TLS over under: the raw connection
// after an SSLRequest, or a prefixConn over it for direct TLS.
func (c *conn) useTLS(under net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	tc := tls.Server(under, cfg)
	if err := tc.HandshakeContext(c.sctx()); err != nil {
		return nil, &refusal{reason: "TLS handshake failed: " + err.Error()}
	}
	c.wmu.Lock()
	c.nc = tc
	c.cw().Reset(tc)
	c.wmu.Unlock()
	c.br.Reset(tc)
	c.tls = true
	cs := tc.ConnectionState()
	c.su.tlsClient = findings.TLSClient(&cs)
	return tc, nil
}

// prefixConn is a connection whose first bytes were already read: Read
// returns pre first, then reads the connection. Only its net.Conn methods
// are promoted (not SyscallConn): reads must go through Read.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.pre) == 0 {
		return p.Conn.Read(b)
	}
	n := copy(b, p.pre)
	p.pre = p.pre[n:]
	if len(p.pre) == 0 {
		p.pre = nil // the session keeps this conn: not the buffer
	}
	return n, nil
}

// connectUpstream logs in as the grant's role.
func (c *conn) connectUpstream(role Role, runtime map[string]string) (*pgconn.HijackedConn, error) {
	cfg := c.t.cfg.Copy()
	cfg.User, cfg.Password, cfg.Database = role.Name, role.Password, c.t.db
	cfg.RuntimeParams = runtime
	// The admin DSN's own notice and validation hooks do not apply.
	cfg.OnNotice, cfg.OnNotification, cfg.OnPgError = nil, nil, nil
	cfg.ValidateConnect, cfg.AfterConnect = nil, nil
	var pf *pooledFrontend // frontends.go
	if cfg.MaxProtocolMessageBodyLen == 0 {
		cfg.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
			pf = getFrontend(r, w)
			return pf.f
		}
	}
	// The client's side of the startup is bounded by its socket's
	// deadline (serve), which a login waiting on the upstream never
	// meets: an upstream that accepts and never answers held the startup,
	// its slot (MaxStartups) and the client until the grant ended. The
	// login gets StartupTimeout of its own, on the gateway's clock.
	ctx, cancel := context.WithCancelCause(c.sctx())
	defer cancel(nil)
	timer := c.gw.o.Clock.AfterFunc(c.gw.o.StartupTimeout, func() { cancel(errUpstreamLoginTimeout) })
	defer timer.Stop()
	timedOut := func(err error) error {
		if errors.Is(context.Cause(ctx), errUpstreamLoginTimeout) && c.sctx().Err() == nil {
			return fmt.Errorf("%w (%v)", errUpstreamLoginTimeout, err)
		}
		return err
	}
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, timedOut(err)
	}
	if err := pc.SyncConn(ctx); err != nil {
		pc.Close(context.Background())
		return nil, timedOut(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(context.Background())
		return nil, err
	}
	if hc.Frontend.ReadBufferLen() != 0 {
		// Bytes pgconn read ahead would be lost to the relay.
		hc.Conn.Close()
		return nil, errors.New("upstream sent data after its startup")
	}
	if pf != nil && pf.f == hc.Frontend {
		putFrontend(pf)
		hc.Frontend = nil
	}
	_ = hc.Conn.SetDeadline(time.Time{})
	return hc, nil
}

// errUpstreamLoginTimeout ends an upstream login that took longer than
// StartupTimeout.
var errUpstreamLoginTimeout = errors.New("the upstream did not complete the login in time")

// forwardedParams are the startup parameters passed on to the upstream.
// Others are dropped: "options" could carry -c settings the client should
// set with SQL instead (where they are recorded; the client is told with
// a warning, optionsIgnored), and protocol extensions (_pq_.*) are
// negotiated by pgconn itself.
const optionsIgnored = "airlock: the startup parameter options (PGOPTIONS) is not passed to the database; " +
	"run SET after connecting instead, where it is recorded"

var forwardedParams = map[string]bool{
	"application_name": true, "client_encoding": true, "DateStyle": true, "datestyle": true,
	"TimeZone": true, "timezone": true, "IntervalStyle": true, "intervalstyle": true,
	"extra_float_digits": true, "search_path": true,
}

func isEOF(err error) bool {
	return errors.Is(err, errEOF) || errors.Is(err, errUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

// redact reports whether this session's bound parameter values are
// recorded as their length only.
func (c *conn) redact() bool {
	return c.gw.o.RedactParameters || (c.t != nil && c.t.RedactParameters)
}
