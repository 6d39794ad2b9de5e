package pggw

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/netpark"
	"github.com/airlock-dev/airlock/internal/tlscert"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// gatewaySockets counts the process's open TCP sockets whose local port is
// port and that are not listening: the gateway's side of its clients'
// connections. (The upstream side is counted by PostgreSQL: backends.)
func gatewaySockets(t *testing.T, port int) int {
	t.Helper()
	inodes := map[string]bool{}
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			// sl local_address rem_address st ... inode (10th)
			if len(fs) < 10 || fs[3] == "0A" {
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			if i < 0 {
				continue
			}
			if p, err := strconv.ParseUint(fs[1][i+1:], 16, 16); err == nil && int(p) == port {
				inodes[fs[9]] = true
			}
		}
		f.Close()
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		l, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil || !strings.HasPrefix(l, "socket:[") {
			continue
		}
		if inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] {
			n++
		}
	}
	return n
}

// Many sessions through real PostgreSQL, their sockets shed in bursts
// while they interleave statements (simple and extended), notifications
// from the upstream, cancel requests and idle spells, while some clients
// hang up, one grant is revoked and another expires under their sessions.
// Every client reads exactly its own answers and notifications (a
// descriptor of one session reused by another's would show as someone
// else's value); every session of the ended grants is cut; then, with
// nothing shedding, every session left is shed, gets a notification
// (its client socket rebuilt while parked) and must still wake for its
// next statement at once. No socket, upstream backend or goroutine
// outlives the sessions.
func TestShedStressSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("stress")
	}
	const (
		grants = 4
		perG   = 5
		rounds = 50
		// Grant 0 is revoked and grant 1 expires (the gateway's clock
		// passes its end) when one of their sessions is half-way.
		revoked, expired = 0, 1
	)
	fake := clock.NewFake(time.Now())
	e := newParkEnv(t, func(o *Options) {
		o.ParkIdleAfter = 2 * time.Millisecond
		o.Clock = fake
	})
	gs := make([]*gateway.Grant, grants)
	for i := range gs {
		ttl := time.Hour
		if i == expired {
			ttl = 30 * time.Minute
		}
		gs[i] = e.grant(ttl, "pg:select %s.public.customers")
	}
	// The notifiers: admin connections, one per grant's sessions.
	admins := make([]*pgx.Conn, grants)
	for i := range admins {
		admins[i] = e.admin()
	}
	gBefore := runtime.NumGoroutine()

	stop := make(chan struct{})
	var shedders sync.WaitGroup
	var shed atomic.Int64
	// Shedding in bursts, so that sockets are used both just shed and
	// just rebuilt.
	shedders.Go(func() {
		r := rand.New(rand.NewPCG(1, 1))
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, pc := range e.gw.sockets() {
				if r.IntN(2) == 0 && pc.Shed() {
					shed.Add(1)
				}
			}
			time.Sleep(time.Duration(r.IntN(3000)) * time.Microsecond)
		}
	})

	var endOnce [grants]sync.Once
	endedAt := make([]chan struct{}, grants)
	for i := range endedAt {
		endedAt[i] = make(chan struct{})
	}
	var amu [grants]sync.Mutex
	results := make(chan stressResult, grants*perG)
	var wg, roundsDone, connected sync.WaitGroup
	roundsDone.Add(grants * perG)
	// Every session is up before any starts its rounds: the grants end
	// under established sessions. Without this a session still in its
	// startup (the source's startup slots are fewer than the sessions,
	// and a loaded machine makes a startup slow) could see its grant
	// ended by another session's round 25, and be refused at connect.
	connected.Add(grants * perG)
	quiet := make(chan struct{})
	for gi := range grants {
		doomed := gi == revoked || gi == expired
		for si := range perG {
			wg.Go(func() {
				id := fmt.Sprintf("g%ds%d", gi, si)
				r := rand.New(rand.NewPCG(uint64(gi), uint64(si)))
				hangUp := !doomed && si == perG-1
				results <- stressSession(e, gs[gi], admins[gi], &amu[gi], id, r, rounds, doomed, hangUp,
					func(round int) {
						if !doomed || round != rounds/2 {
							return
						}
						endOnce[gi].Do(func() {
							// Closed first: a session may be cut
							// before the grant's end returns.
							close(endedAt[gi])
							if gi == revoked {
								e.auth.End(gs[gi], "revoked")
							} else {
								fake.Set(gs[gi].ExpiresAt)
							}
						})
					}, endedAt[gi], connected.Done, connected.Wait, roundsDone.Done, quiet)
			})
		}
	}
	roundsDone.Wait()
	close(stop)
	shedders.Wait()
	// A session that failed has returned: say why before counting the
	// parked sockets, which it would only make fewer.
	var early []stressResult
drain:
	for {
		select {
		case res := <-results:
			early = append(early, res)
		default:
			break drain
		}
	}
	for _, res := range early {
		if res.err != nil {
			t.Error(res.err)
		}
	}
	if t.Failed() {
		close(quiet)
		wg.Wait()
		return
	}
	for _, res := range early {
		results <- res // counted with the others below
	}
	// The sessions left, idle, parked, all shed at once.
	left := (grants - 2) * (perG - 1)
	e.waitParked(2 * left)
	e.shed(2 * left)
	close(quiet)
	wg.Wait()
	close(results)
	cut, fatal := 0, 0
	for res := range results {
		if res.err != nil {
			t.Error(res.err)
		}
		if res.cut {
			cut++
		}
		if res.fatal {
			fatal++
		}
	}
	if t.Failed() {
		return
	}
	if cut != 2*perG {
		t.Fatalf("%d sessions of the ended grants were cut, want %d", cut, 2*perG)
	}
	t.Logf("%d sheds; %d of %d cut sessions read the FATAL", shed.Load(), fatal, cut)
	if shed.Load() == 0 {
		t.Fatal("nothing was shed")
	}
	for _, g := range gs {
		e.waitSessionsEnded(g)
	}
	// The live grants keep the upstream connections of the sessions that
	// ended cleanly (reuse.go): the backends left are those, and no
	// others.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, ups := gatewaySockets(t, e.addr.Port), 0
		for _, g := range gs {
			ups += backends(t, admins[0], g) - len(e.idleUpstreams(g))
		}
		// No termination of an orphaned backend waits either: the
		// ended grants' roles were dropped, the live grants' sessions
		// hung up between statements.
		if n == 0 && ups == 0 && e.gw.parkedSockets() == 0 && reapers() == 0 && runtime.NumGoroutine() <= gBefore {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("after every session ended: %d gateway sockets, %d upstream backends, %d parked, %d orphans' terminations waiting, %d goroutines (%d before)\n%s",
				n, ups, e.gw.parkedSockets(), reapers(), runtime.NumGoroutine(), gBefore, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type stressResult struct {
	cut   bool // the session's grant ended and it saw an error
	fatal bool // that error was the FATAL the gateway sends
	err   error
}

// stressClient is one client of TestShedStressSessions.
type stressClient struct {
	id      string
	pc      *pgconn.PgConn
	ctx     context.Context
	adm     *pgx.Conn
	amu     *sync.Mutex // adm's
	channel string
	doomed  bool          // its grant ends during the test
	endedAt chan struct{} // closed as its grant ends
	nmu     sync.Mutex
	notes   []string
	res     stressResult
}

func (c *stressClient) fail(format string, args ...any) {
	if c.res.err == nil {
		c.res.err = fmt.Errorf(c.id+": "+format, args...)
	}
}

// failed records err: the cut if the client's grant has ended, a failure
// otherwise.
func (c *stressClient) failed(err error, format string, args ...any) {
	select {
	case <-c.endedAt:
		if c.doomed {
			c.res.cut = true
			c.res.fatal = pgCode(err) == codeAdminShutdown
			return
		}
	default:
	}
	c.fail(format+": %v", append(args, err)...)
}

// query runs a statement whose answer is want, simple or extended; false
// if it failed.
func (c *stressClient) query(want string, extended bool) bool {
	if extended {
		rr := c.pc.ExecParams(c.ctx, "select $1::text", [][]byte{[]byte(want)}, nil, nil, nil).Read()
		if rr.Err != nil {
			c.failed(rr.Err, "extended query %q", want)
			return false
		}
		if len(rr.Rows) != 1 || string(rr.Rows[0][0]) != want {
			c.fail("extended query answered %q, want %q", rr.Rows, want)
			return false
		}
		return true
	}
	rr, err := c.pc.Exec(c.ctx, "select '"+want+"'").ReadAll()
	if err != nil {
		c.failed(err, "simple query %q", want)
		return false
	}
	if len(rr) != 1 || len(rr[0].Rows) != 1 || string(rr[0].Rows[0][0]) != want {
		c.fail("simple query answered %v, want %q", rr, want)
		return false
	}
	return true
}

// notified has the upstream send the idle client a notification, want,
// and waits for it: false if it failed or another came.
func (c *stressClient) notified(want string) bool {
	c.amu.Lock()
	_, err := c.adm.Exec(c.ctx, "select pg_notify($1, $2)", c.channel, want)
	c.amu.Unlock()
	if err != nil {
		c.fail("notify: %v", err)
		return false
	}
	for {
		c.nmu.Lock()
		got := c.notes
		c.notes = nil
		c.nmu.Unlock()
		if len(got) > 0 {
			if len(got) != 1 || got[0] != c.channel+"/"+want {
				c.fail("notifications %q, want %q", got, c.channel+"/"+want)
				return false
			}
			return true
		}
		wctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		err := c.pc.WaitForNotification(wctx)
		cancel()
		if err != nil {
			c.failed(err, "waiting for notification %q", want)
			return false
		}
	}
}

// tooManyConnections reports whether a connection through the gateway was
// refused for want of connection slots, its own startup slots or the
// upstream's (the gateway passes PostgreSQL's 53300 on): worth trying
// again shortly.
func tooManyConnections(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == codeTooManyConnections
}

// stressSession runs one client of TestShedStressSessions: once it and
// every other session are connected (it calls connected, then waits in
// allConnected), rounds of statements, notifications, cancels and idle
// spells, then, if it is
// still on, waits for quiet (nothing sheds any more) to have one last
// notification and statement. It calls roundsDone once the rounds are
// over.
func stressSession(e *env, g *gateway.Grant, adm *pgx.Conn, amu *sync.Mutex, id string, r *rand.Rand,
	rounds int, doomed, hangUp bool, onRound func(int), endedAt chan struct{}, connected, allConnected, roundsDone func(), quiet <-chan struct{}) stressResult {
	once := sync.OnceFunc(roundsDone)
	defer once()
	up := sync.OnceFunc(connected) // also if it never gets up
	defer up()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := &stressClient{id: id, ctx: ctx, adm: adm, amu: amu, channel: "stress_" + id, doomed: doomed, endedAt: endedAt}
	cfg, err := pgconn.ParseConfig(e.url(g, ""))
	if err != nil {
		c.fail("%v", err)
		return c.res
	}
	cfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) {
		c.nmu.Lock()
		c.notes = append(c.notes, n.Channel+"/"+n.Payload)
		c.nmu.Unlock()
	}
	// One source has 16 startup slots: the others retry. So does a
	// session whose upstream login found the shared PostgreSQL out of
	// connection slots for the moment (other packages' tests run at the
	// same time): the gateway passes its 53300 on.
	for start, pause := time.Now(), 10*time.Millisecond; ; pause = min(2*pause, 200*time.Millisecond) {
		if c.pc, err = pgconn.ConnectConfig(ctx, cfg); err == nil {
			break
		}
		if !tooManyConnections(err) || time.Since(start) > 30*time.Second {
			c.fail("connect: %v", err)
			return c.res
		}
		time.Sleep(pause)
	}
	defer c.pc.Close(context.Background())
	if _, err := c.pc.Exec(ctx, "listen "+c.channel).ReadAll(); err != nil {
		c.fail("listen: %v", err)
		return c.res
	}
	up()
	allConnected()
	for round := range rounds {
		onRound(round)
		if hangUp && round == rounds/3 {
			// Gone without a Terminate, the sockets perhaps shed.
			c.pc.Conn().Close()
			return c.res
		}
		want := fmt.Sprintf("%s-%d-%d", id, round, r.Uint64())
		ok := true
		switch r.IntN(4) {
		case 0:
			ok = c.query(want, false)
		case 1:
			ok = c.query(want, true)
		case 2:
			ok = c.notified(want)
		case 3: // a cancel request for the idle session
			if err := c.pc.CancelRequest(ctx); err != nil {
				c.fail("round %d: cancel: %v", round, err)
				ok = false
			}
		}
		if !ok {
			return c.res
		}
		// Idle, long enough to park and be shed, now and then.
		if r.IntN(2) == 0 {
			time.Sleep(time.Duration(r.IntN(8000)) * time.Microsecond)
		}
	}
	if doomed {
		// Its grant ended while it was between statements or after its
		// last: the next one must fail.
		<-endedAt
		for range 100 {
			if !c.query(id+"-after", false) {
				break
			}
			// The end may still be on its way.
			time.Sleep(10 * time.Millisecond)
		}
		if !c.res.cut && c.res.err == nil {
			c.fail("statements still ran a second after the grant ended")
		}
		return c.res
	}
	once()
	// Quiet: the test shed this session's sockets, parked. The
	// notification rebuilds the client's socket while it stays parked;
	// the statement must still wake it, with no shedder to re-register
	// it by chance.
	<-quiet
	if !c.notified(id + "-quiet") {
		return c.res
	}
	// Bounded: the poller's own sweep (shedParkedAfter) would re-register
	// a lost registration some seconds later, and hide it.
	start := time.Now()
	if c.query(id+"-last", false) && time.Since(start) > 2*time.Second {
		c.fail("the last statement took %v: a wake-up lost, found late by the sweep", time.Since(start))
	}
	return c.res
}

// A client on TLS keeps its goroutine and is never parked, so never shed
// (the TLS layer may hold decrypted bytes its socket will not signal
// again); its plain upstream socket is shed and rebuilt under it as
// usual, for the client's statements and for a notification.
func TestShedTLSClient(t *testing.T) {
	cfg, _, err := tlscert.Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newParkEnv(t, func(o *Options) { o.TLS = cfg })
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	adm := e.admin()
	ctx := ctxT(t, 30*time.Second)
	pcfg, err := pgconn.ParseConfig(strings.Replace(e.url(g, ""), "sslmode=disable", "sslmode=require", 1))
	if err != nil {
		t.Fatal(err)
	}
	notes := make(chan string, 1)
	pcfg.OnNotification = func(_ *pgconn.PgConn, n *pgconn.Notification) { notes <- n.Payload }
	pc, err := pgconn.ConnectConfig(ctx, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	if _, ok := pc.Conn().(*tls.Conn); !ok {
		t.Fatalf("the client is on %T, want TLS", pc.Conn())
	}
	// The client side's socket, under the gateway's TLS.
	var client *netpark.Conn
	e.gw.mu.Lock()
	for c := range e.gw.conns {
		client, _ = c.raw.(*netpark.Conn)
	}
	e.gw.mu.Unlock()
	if client == nil {
		t.Fatal("the client's socket is not parkable")
	}
	for i := range 3 {
		rr, err := pc.Exec(ctx, fmt.Sprintf("select 'tls-%d'", i)).ReadAll()
		if err != nil || len(rr) != 1 || len(rr[0].Rows) != 1 || string(rr[0].Rows[0][0]) != fmt.Sprintf("tls-%d", i) {
			t.Fatalf("statement %d: %v %v", i, rr, err)
		}
		e.waitParked(1) // the upstream only
		e.shed(1)
		if client.Parked() || client.Shed() || client.Bare() {
			t.Fatal("a TLS client's socket was parked or shed")
		}
	}
	notifyIdle(t, pc, ctx, notes, adm, func() { e.waitParked(1); e.shed(1) })
	if client.Parked() || client.Bare() {
		t.Fatal("a TLS client's socket was parked or shed")
	}
}
