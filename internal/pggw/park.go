package pggw

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/netpark"
)

// Parking idle sessions.
//
// An idle session would otherwise keep two goroutines blocked reading, one
// on the client and one on the upstream, several KiB of stack each, for as
// long as the client keeps its connection open (connection pools hold
// dozens for hours). A relay loop waits for its socket's next message with
// a read deadline about ParkIdleAfter away; if it fires with nothing read
// and nothing in flight (the session idle), the loop parks its socket
// with netpark and returns, and its goroutine ends. The next byte,
// the peer's hang-up or a close of the connection (a grant's end, the
// gateway's shutdown: both close the connections) starts the loop again on
// a new goroutine, where it reads as before. The two loops park and wake
// independently; the last loop to end ends the session (ended), on
// whichever goroutine that is.
//
// The deadline stays set from one message to the next and is renewed at
// most once per ParkIdleAfter/2, so a busy session pays a clock read per
// message and never parks; firing in the middle of a message it is
// removed and the read retried (idleReader), so it only ever ends a wait
// at a message boundary. TLS connections (client or upstream) are not
// parked: the TLS layer may hold decrypted bytes the socket will not
// signal again; such a side keeps its goroutine.
//
// A socket parked for shedParkedAfter is shed: netpark keeps a duplicate
// of its descriptor and closes its net.Conn, and rebuilds one at the next
// use of the *netpark.Conn, which the session holds throughout (c.raw,
// c.nc, c.up): the wake-up's read, a write to it (an answer relayed to a
// parked client, kill's FATAL), a deadline (kill's), the cancel key's
// RemoteAddr (read from the socket while shed). Close works on either
// state, and the session's code never sees the difference.

// defaultParkIdleAfter is how long a loop waits idle before parking: long
// against the gaps of a busy session (whose waits never reach it), short
// against a pooled connection's idle life.
const defaultParkIdleAfter = 20 * time.Millisecond

// side is one of a session's two relay loops.
type side uint8

const (
	clientSide side = iota
	upstreamSide
)

// errParked ends a relay loop whose socket is parked: the session goes on.
var errParked = errors.New("parked")

// parking is a session's part in parking (see above).
type parking struct {
	// ubr is the upstream loop's reader; nil while it is parked (letGoIO).
	ubr *idleReader
	// loops counts the relay loops not ended; a parked loop has not ended.
	loops atomic.Int32
	// relaying is set by run once the relay loops own the session's end.
	relaying bool
	// tracked: the gateway holds the connection (in its set and its
	// WaitGroup) until the session ends (release). Beside relaying and
	// loops: 16 bytes in all, and conn in the 240-byte size class.
	tracked bool
}

// shedParkedAfter is how long a socket stays parked before it is shed
// (netpark's Shed, up to half as long again): its net.Conn closed, its
// descriptor kept bare, about 300 bytes of heap and the runtime's 512-byte
// poll descriptor let go per socket, half of what an idle session holds
// beside its own state (bench/HISTORY.md, "Idle sessions shed their
// net.Conns"). Rebuilding it when the session wakes costs about a dozen
// system calls and 1 KB of allocations per socket: long against a pooled
// connection's gaps between statements.
const shedParkedAfter = 5 * time.Second

// crowdParks is how many sockets parked since netpark's last sweep make a
// crowd (netpark's ShedWhenCrowded): a burst of logins (a pool opening its
// connections) is then shed about 100 ms after it parks rather than
// shedParkedAfter, so that the runtime's poll descriptors, which it keeps
// for reuse and never returns, number about the sockets in use at once,
// not every socket the burst opened within shedParkedAfter (bench/HISTORY.md,
// "One more idle connection: the poll descriptors of a burst"). Sessions
// with statements less than 100 ms apart are never shed by it.
const crowdParks = 64

// parker is the process's poller, started with the first gateway; nil if
// epoll could not be set up (nothing is parked then).
var parker = sync.OnceValue(func() *netpark.Poller {
	p, err := netpark.New(nil)
	if err != nil {
		return nil
	}
	p.OnSweep(func(n int) { memRelease.onSweep(n) })
	p.ShedWhenCrowded(crowdParks)
	p.ShedAfter(shedParkedAfter)
	return p
})

// idle reports whether s's loop may park: nothing in flight, nothing held
// for the upstream (the client loop's batch) or to record (the upstream
// loop's results).
func (c *conn) idle(s side) bool {
	r := &c.rs
	if s == clientSide && !r.batchState.empty() || s == upstreamSide && len(r.done) > 0 {
		return false
	}
	r.qmu.Lock()
	defer r.qmu.Unlock()
	return r.front() == nil
}

// rest is called by a relay loop before it reads its next message from b:
// the wait has a deadline at least ParkIdleAfter/2 away, after which the
// loop parks if the session is idle by then (parkOn). The deadline is
// renewed at most once per ParkIdleAfter/2, so a busy session pays a
// clock read per message for it. Whether the session is idle is checked
// only when the deadline fires: a loop often starts waiting while a
// statement is in flight (the client loop, right after forwarding it), and
// nothing would wake it to check again when the statement completes.
func (c *conn) rest(s side, b *idleReader) {
	if c.gw.parkAfter > 0 {
		b.rest(time.Now, c.gw.parkAfter)
	}
}

// busyRecheck spaces a loop's checks for idleness while a statement runs,
// in units of ParkIdleAfter.
const busyRecheck = 4

// parkOn is called by a relay loop whose read from b failed with err. It returns
// errParked if the loop parked (it must return at once: its wake-up may
// already be running), nil if the loop should read again (the deadline
// fired but the session is no longer idle, or parking failed), and err
// itself if the read really failed.
func (c *conn) parkOn(s side, b *idleReader, err error) error {
	if !b.parkTimeout(err) {
		return err
	}
	b.disarm()
	pc, ok := b.rd.(*netpark.Conn)
	if !ok || b.Buffered() != 0 || !c.idle(s) {
		b.arm(time.Now().Add(busyRecheck * c.gw.parkAfter))
		return nil
	}
	// c itself, as a Waker of the side's loop: a method value would be a
	// closure held while parked, made again at every parking.
	var wake netpark.Waker = (*clientWaker)(c)
	if s == upstreamSide {
		wake = (*upstreamWaker)(c)
	}
	c.rs.letGo(s)
	c.letGoIO(s)
	c.cx.parked(&c.parkedSides, s)
	if pc.ParkWaker(wake) != nil {
		// Closed (the read will say so) or not registered: the loop goes
		// on as if woken, on a goroutine of its own, since it gave its
		// reader back.
		go wake.Wake()
	}
	return errParked
}

// clientWaker and upstreamWaker wake a parked session's loops.
type (
	clientWaker   conn
	upstreamWaker conn
)

func (w *clientWaker) Wake()   { (*conn)(w).clientRelay() }
func (w *upstreamWaker) Wake() { (*conn)(w).upstreamRelay() }

// letGoIO gives side s's reader back to the pool, with the client loop's
// writer to the upstream and the writer to the client if they hold
// nothing, as its loop parks: an idle session holds none of them (about
// 500 bytes with their callbacks), and the loop takes them again when it
// wakes (takeIO). The reader has nothing buffered (parkOn checked).
func (c *conn) letGoIO(s side) {
	if s == clientSide {
		putIdleReader(c.br)
		c.br = nil
		if r := &c.rs; r.uw.idle() {
			putFlushWriter(r.uw)
			r.uw = nil
		}
	} else {
		putIdleReader(c.pk.ubr)
		c.pk.ubr = nil
	}
	c.letGoWriter()
}

// takeIO gives side s's loop, starting or woken, what letGoIO took.
func (c *conn) takeIO(s side) {
	c.cx.woke(&c.parkedSides, s)
	if s == clientSide {
		if c.br == nil {
			c.br = getIdleReader(c.nc)
		}
		r := &c.rs
		if r.uw == nil {
			r.uw = getFlushWriter(c.up)
		}
		if r.batchState == nil {
			r.batchState = batchStates.Get().(*batchState)
		}
	} else if c.pk.ubr == nil {
		c.pk.ubr = getIdleReader(c.up)
	}
}

// letGo drops the buffers and queues that side s's statements grew, as its
// loop parks (idle: they are empty): an idle session keeps its prepared
// statements and portals, not the capacity its last batch needed.
func (r *relayState) letGo(s side) {
	if s == clientSide {
		// Cleared whole: the last Bind's parameters pin the buffer they
		// were read into, and the slices' capacity is the last batch's.
		*r.batchState = batchState{}
		batchStates.Put(r.batchState)
		r.batchState = nil
		return
	}
	r.done = nil
	r.qmu.Lock()
	if r.front() == nil {
		r.q, r.head = nil, 0
	}
	r.qmu.Unlock()
}

// loopDone is deferred by each relay loop's goroutine: unless the loop
// parked, it has ended, and the last loop to end ends the session.
func (c *conn) loopDone(parked *bool) {
	if !*parked && c.pk.loops.Add(-1) == 0 {
		c.ended()
	}
}

// ended ends the session after both relay loops: what the serving
// goroutine did after the relay before sessions could park.
func (c *conn) ended() {
	defer func() {
		c.release()
	}()
	defer func() {
		if v := recover(); v != nil {
			c.recovered(v, "session end")
		}
	}()
	// An upstream the reset kept goes back to the grant before the
	// session's end is recorded, its cancel key first taken away from
	// the client that leaves (reuse.go).
	ui, k := c.kept()
	if k != nil {
		c.handBack(ui, k, c.gw.keys.leave(c.key))
	}
	var busy *cancelKey
	if k == nil {
		busy = c.busyBackend() // cancel.go
	}
	c.finish()
	c.closeAll()
	if busy != nil {
		c.cancelOrphan(busy)
	}
}

// release lets go of the gateway's hold on a connection its accept loop
// tracked (a connection made otherwise, in tests, has none), once, when the
// session ends.
func (c *conn) release() {
	if c.pk.tracked {
		c.pk.tracked = false
		c.gw.untrack(c)
		c.gw.wg.Done()
	}
}
