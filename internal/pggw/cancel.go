package pggw

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// cancelKey maps the BackendKeyData the gateway gave a client to the
// upstream backend it stands for. The client never learns the upstream's
// pid or key.
type cancelKey struct {
	secret [4]byte
	// The upstream backend's own key: its pid and secret key, in short
	// when it is 4 bytes long (protocol 3.0, what the gateway asks for),
	// else in long. So a key is 32 bytes (a size class) and keeps no
	// slice of its own: an idle session holds one.
	pid   uint32
	c     *conn // its upstream connection's address is where a cancel goes
	short [4]byte
	// sending counts the cancels being forwarded with this key (under
	// cancelKeys.mu; in the padding after short, so the key stays 32
	// bytes): the session's backend is not kept while one is (leave).
	sending uint32
	long    *[]byte
}

func newCancelKey(c *conn, pid uint32, key []byte) *cancelKey {
	k := new(cancelKey)
	k.set(c, pid, key)
	return k
}

// set makes a zero k the key of c's upstream backend pid with its secret
// key (copied).
func (k *cancelKey) set(c *conn, pid uint32, key []byte) {
	k.c, k.pid = c, pid
	if len(key) == len(k.short) {
		copy(k.short[:], key)
	} else {
		long := append([]byte(nil), key...)
		k.long = &long
	}
}

// key is the upstream backend's secret key.
func (k *cancelKey) key() []byte {
	if k.long != nil {
		return *k.long
	}
	return k.short[:]
}

// errSessionClosed: a cancel for a session whose upstream connection is
// closed.
var errSessionClosed = errors.New("the session's upstream connection is closed")

type cancelKeys struct {
	mu sync.Mutex
	m  map[uint32]*cancelKey
}

// add registers k under a fresh random pid and returns it.
func (ks *cancelKeys) add(k *cancelKey) uint32 {
	if _, err := rand.Read(k.secret[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	for {
		var b [4]byte
		_, _ = rand.Read(b[:])
		pid := binary.BigEndian.Uint32(b[:]) &^ (1 << 31) // positive, as a PostgreSQL pid
		if _, taken := ks.m[pid]; pid != 0 && !taken {
			ks.m[pid] = k
			return pid
		}
	}
}

func (ks *cancelKeys) remove(pid uint32) {
	ks.mu.Lock()
	delete(ks.m, pid)
	ks.mu.Unlock()
}

// leave removes the key registered under pid as its session ends with its
// upstream kept, and reports whether the backend may go to the grant's
// next session: false while a cancel with the key is being forwarded,
// which would otherwise reach that session's statement (forwarding).
func (ks *cancelKeys) leave(pid uint32) bool {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	k := ks.m[pid]
	delete(ks.m, pid)
	return k != nil && k.sending == 0
}

// forwarding marks a cancel with k as being forwarded, if k is still
// registered under pid (its session has not ended); done must follow.
// The session's end (leave) and the cancel each see the other: a cancel
// of a session that has ended is not sent, and a session's backend with
// a cancel under way is not kept.
func (ks *cancelKeys) forwarding(pid uint32, k *cancelKey) (done func(), ok bool) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.m[pid] != k {
		return nil, false
	}
	k.sending++
	return func() {
		ks.mu.Lock()
		k.sending--
		ks.mu.Unlock()
	}, true
}

// get returns the key registered under pid, or nil.
func (ks *cancelKeys) get(pid uint32) *cancelKey {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.m[pid]
}

// lookup returns the key for a client's CancelRequest, or nil.
func (ks *cancelKeys) lookup(pid uint32, secret []byte) *cancelKey {
	ks.mu.Lock()
	k := ks.m[pid]
	ks.mu.Unlock()
	if k == nil || subtle.ConstantTimeCompare(k.secret[:], secret) != 1 {
		return nil
	}
	return k
}

// sendCancel delivers a CancelRequest for the upstream backend on a new
// connection, as the protocol requires, and waits for the server to close
// it (which it does once the request is processed).
func sendCancel(ctx context.Context, k *cancelKey) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	// The address is worked out here, for the rare cancel, rather than
	// kept with every session's key. c.up is set before the key is added
	// and never changed. A shed connection (netpark) reads it from its
	// socket, and has none once closed: the session is over.
	ra := k.c.up.RemoteAddr()
	if ra == nil {
		return errSessionClosed
	}
	nc, err := d.DialContext(ctx, ra.Network(), ra.String())
	if err != nil {
		return err
	}
	defer nc.Close()
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	msg := pgproto3.CancelRequest{ProcessID: k.pid, SecretKey: k.key()}
	buf, err := msg.Encode(nil)
	if err != nil {
		return err
	}
	if _, err := nc.Write(buf); err != nil {
		return err
	}
	var one [1]byte
	_, _ = nc.Read(one[:])
	return nil
}

// A backend left running.
//
// Closing the upstream socket does not stop a statement the backend is
// running: PostgreSQL notices a closed client only when it next reads
// from it or writes to it, so a pg_sleep, a long join or an UPDATE runs to
// its end. The session and its slot under max_sessions_per_grant were
// gone meanwhile: an agent that started a slow statement and hung up, time
// and again, held as many backends as it liked (the server's
// max_connections, which the bound is there to protect), and ran
// statements past its session's end. A session that ends with a statement
// in flight, its upstream not kept, has the gateway send the backend a
// CancelRequest: the statement stops, and the backend, writing its error
// to the closed socket, exits.
//
// A statement can catch the cancel (a DO block's loop with EXCEPTION WHEN
// query_canceled, which any role may run) and go on. On PostgreSQL 14 and
// later the gateway's logins also set client_connection_check_interval
// (checkInterval): a backend running a statement polls its socket that
// often, and once the gateway has closed it, ends with a FATAL error that
// no handler catches. Before 14 the setting does not exist (a login asking
// for it would fail); and the session may SET it to 0 before such a
// statement, as any setting it may change. So, orphanGrace after the
// cancel, the target's admin terminates the backend if it is still there
// (reapOrphan; the role manager's TerminateBackend), as the grant's end
// terminates all of them (pgroles.Drop).

// checkInterval is client_connection_check_interval on the gateway's
// upstream logins: how long a backend goes on with a statement after the
// gateway closed its connection. The check is a poll of the socket per
// interval while a statement runs.
const checkInterval = "1s"

// checkIntervalSince is the first server_version_num with
// client_connection_check_interval.
const checkIntervalSince = 140000

// busyBackend returns the cancel key of a session's upstream backend if a
// statement is in flight as the session ends and the upstream is closed
// with it, else nil; ended's, before finish drops the key.
func (c *conn) busyBackend() *cancelKey {
	r := &c.rs
	r.qmu.Lock()
	busy := r.front() != nil
	r.qmu.Unlock()
	if !busy {
		return nil
	}
	c.wmu.Lock()
	owns := c.up != nil && c.ownsUpstream()
	c.wmu.Unlock()
	if !owns {
		return nil
	}
	return c.gw.keys.get(c.key)
}

// cancelOrphan sends the CancelRequest for the statement a closed session
// left running (busyBackend), bounded as any cancel is (sendCancel), and
// has the backend terminated should it still run orphanGrace later.
func (c *conn) cancelOrphan(k *cancelKey) {
	ctx := context.WithoutCancel(c.ctx())
	if err := sendCancel(ctx, k); err != nil {
		c.gw.log.Warn("cancelling the statement of a closed session failed", "session", c.sess.ID, "err", err)
	}
	c.gw.reapOrphan(c.st, k.pid, c.sess.ID)
}

// orphanGrace is how long the statement of a closed session has to stop
// (the cancel, client_connection_check_interval) before its backend is
// terminated: a few check intervals.
const orphanGrace = 5 * time.Second

// BackendTerminator is the optional part of a RoleManager that ends one
// backend of a grant's role from the admin's side (reapOrphan);
// *pgroles.Manager implements it. Without it, a statement that outlives
// its closed session's cancel runs until it or the grant ends.
type BackendTerminator interface {
	// TerminateBackend ends backend pid of the grant's role if that
	// backend started before since (a time.Now of this process, used for
	// its age), and reports whether there was one to end.
	TerminateBackend(ctx context.Context, grantID string, pid uint32, since time.Time) (bool, error)
}

// reapOrphan terminates upstream backend pid of st's grant orphanGrace
// from now (on the gateway's clock) if it is still there, unless the
// grant ends or expires first (its role's backends are all terminated
// then) or the gateway closes.
//
// "Still there" is the pid of the grant's role and a backend that started
// before now: the orphan may exit meanwhile (the cancel, the check
// interval) and the server give its pid to a backend it starts later, the
// grant's next session's among them, which the role's name alone does not
// tell from the orphan. since is read from the real clock, not the
// gateway's (a fake one in tests), and only its age is compared with the
// server's clock, so an offset between the two hosts does not move it.
func (g *Gateway) reapOrphan(st *grantState, pid uint32, session string) {
	bt, ok := st.t.Roles.(BackendTerminator)
	if !ok {
		return
	}
	since := time.Now()
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.wg.Add(1)
	g.mu.Unlock()
	due := make(chan struct{})
	timer := g.o.Clock.AfterFunc(orphanGrace, func() { close(due) })
	go func() {
		defer g.wg.Done()
		select {
		case <-due:
		case <-st.over:
			// The grant ended or expired: the role's drop ends all
			// its backends, the orphan's among them.
			timer.Stop()
			return
		case <-g.ctx.Done():
			timer.Stop()
			return
		}
		ctx, cancel := context.WithTimeout(g.ctx, roleTimeout)
		defer cancel()
		st.t.roleMu.RLock()
		ended, err := bt.TerminateBackend(ctx, st.g.ID, pid, since)
		st.t.roleMu.RUnlock()
		if err != nil && g.ctx.Err() == nil {
			g.log.Error("terminating the backend a closed session left running failed; it runs until its statement or the grant ends",
				"session", session, "grant", st.g.ID, "err", err)
		} else if ended {
			g.log.Warn("the statement of a closed session outlived its cancel; its backend was terminated", "session", session, "grant", st.g.ID)
		}
	}()
	g.hook("reap", nil)
}
