//go:build linux

package netpark

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fdList lists the process's descriptors and what they are, for a
// failure's message.
func fdList(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		out = append(out, e.Name()+"->"+l)
	}
	return out
}

// stressMsg is the fixed size of the stress test's messages.
const stressMsg = 22 // "c%03d-r%03d-%012d"

// echoServer parks pc and, at each wake-up, reads one message and writes
// it back, then parks again, until the read fails; then it closes pc. It
// is what a relay loop does with its socket, without PostgreSQL.
type echoServer struct {
	pc   *Conn
	done chan struct{}
	once sync.Once
	// killed: the killer wrote its message and closed pc.
	mu     sync.Mutex
	killed bool
}

func (s *echoServer) Wake() {
	var b [stressMsg]byte
	if _, err := io.ReadFull(s.pc, b[:]); err != nil {
		s.end()
		return
	}
	s.mu.Lock()
	killed := s.killed
	var err error
	if !killed {
		_, err = s.pc.Write(b[:])
	}
	s.mu.Unlock()
	if killed || err != nil {
		s.end()
		return
	}
	if err := s.pc.ParkWaker(s); err != nil {
		s.end()
	}
}

func (s *echoServer) end() {
	s.once.Do(func() {
		s.pc.Close()
		close(s.done)
	})
}

// notify writes msg unasked, unless s is killed; it reports whether it
// did.
func (s *echoServer) notify(msg string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.killed {
		return false
	}
	_, err := s.pc.Write([]byte(msg))
	return err == nil
}

// kill writes a last message, as pggw's kill writes its FATAL, and
// closes pc while it may be parked, shed, woken or rebuilt.
func (s *echoServer) kill() {
	s.mu.Lock()
	if !s.killed {
		s.killed = true
		_ = s.pc.SetWriteDeadline(time.Now().Add(time.Second))
		var b [stressMsg]byte
		copy(b[:], "KILLED")
		_, _ = s.pc.Write(b[:])
		s.pc.Close()
	}
	s.mu.Unlock()
}

// Many connections park, are shed (by Shed and by the sweep, in bursts),
// wake for their clients' messages and answer them, are written to while
// parked (a relayed notification: rebuilt, still parked), are killed (a
// last message, then Close) or hung up on by their clients, all at once.
// Every client reads exactly its own messages: a descriptor number reused
// by another connection while the old owner still used or registered it
// would show as another client's message, a lost wake-up as a client that
// times out. Then, with nothing shedding any more, each survivor is shed,
// written to and must still wake: a registration lost by a rebuild is not
// found again by a later shed. At the end no descriptor, registration or
// goroutine is left.
func TestShedStress(t *testing.T) {
	const (
		n      = 64
		rounds = 150
	)
	p := newPoller(t)
	ln := listen(t)
	fdsBefore := openFDs(t)
	listBefore := fdList(t)
	gBefore := runtime.NumGoroutine()

	servers := make([]*echoServer, n)
	clients := make([]net.Conn, n)
	for i := range n {
		pc, cl := pair(t, p, ln) // closed again at the end (a no-op) or if the test fails half-way
		servers[i] = &echoServer{pc: pc, done: make(chan struct{})}
		clients[i] = cl
		if err := pc.ParkWaker(servers[i]); err != nil {
			t.Fatal(err)
		}
	}

	stop := make(chan struct{})
	var shedders sync.WaitGroup
	var shed, notes atomic.Int64
	// Shedding comes in bursts with pauses between them, so that a
	// connection is used both right after being shed and after a rebuild
	// that nothing sheds again soon (a rebuild that lost the registration
	// would leave its connection asleep for good).
	for k := range 2 {
		shedders.Go(func() {
			r := rand.New(rand.NewPCG(uint64(k), 2))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if k == 0 {
					for _, s := range servers {
						if r.IntN(2) == 0 && s.pc.Shed() {
							shed.Add(1)
						}
					}
				} else {
					shed.Add(int64(p.sweep(0)))
				}
				time.Sleep(time.Duration(r.IntN(3000)) * time.Microsecond)
			}
		})
	}
	// The notifier writes to connections while they are parked, shed or
	// not, as pggw relays a notification to an idle client.
	shedders.Go(func() {
		r := rand.New(rand.NewPCG(3, 3))
		for {
			select {
			case <-stop:
				return
			default:
			}
			i := r.IntN(n)
			if servers[i].notify(fmt.Sprintf("n%03d-%017d", i, r.Uint64()%1e17)) {
				notes.Add(1)
			}
			time.Sleep(time.Duration(r.IntN(500)) * time.Microsecond)
		}
	})

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			cl := clients[i]
			survived := false
			defer func() {
				if !survived {
					cl.Close()
				}
			}()
			r := rand.New(rand.NewPCG(uint64(i), 1))
			// A third of the clients are killed by their server, a
			// sixth hang up, at a random round.
			fate, at := i%6, r.IntN(rounds)
			for round := range rounds {
				if round == at && fate <= 1 {
					go servers[i].kill()
				}
				if round == at && fate == 2 {
					return
				}
				msg := fmt.Sprintf("c%03d-r%03d-%012d", i, round, r.Uint64()%1e12)
				_ = cl.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := cl.Write([]byte(msg)); err != nil {
					if fate <= 1 && round >= at {
						return // killed: the socket may be reset
					}
					errs <- fmt.Errorf("client %d round %d: write: %v", i, round, err)
					return
				}
				var b [stressMsg]byte
				_, err := io.ReadFull(cl, b[:])
				// Notifications first, each of them this client's.
				for err == nil && b[0] == 'n' {
					if string(b[1:4]) != msg[1:4] {
						errs <- fmt.Errorf("client %d round %d: read another's notification %q", i, round, b[:])
						return
					}
					_, err = io.ReadFull(cl, b[:])
				}
				switch {
				case err == nil && string(b[:]) == msg:
				case fate <= 1 && round >= at && (err != nil || string(b[:6]) == "KILLED"):
					// Killed: the last message, then the end (or a
					// reset, if the answer crossed the close).
					if err == nil {
						if _, err := cl.Read(b[:1]); err == nil {
							errs <- fmt.Errorf("client %d: data after the kill", i)
						}
					}
					return
				default:
					errs <- fmt.Errorf("client %d round %d: read %q, %v, want %q", i, round, b[:], err, msg)
					return
				}
				// Idle now and then, long enough to be parked and shed.
				if r.IntN(4) == 0 {
					time.Sleep(time.Duration(r.IntN(2000)) * time.Microsecond)
				}
			}
			// A client whose kill was due may still finish every round:
			// the kill runs on a goroutine of its own, which a loaded
			// machine may start only after the last round (CI caught a
			// socket left in CLOSE_WAIT with the kill's message unread).
			// Only the others are survivors, which the checks below use
			// and close; this one is closed here, and its server ends
			// by the kill.
			survived = fate > 2
		})
	}
	wg.Wait()
	close(stop)
	shedders.Wait()
	// The killed and hung-up ones end first (a kill may still be closing
	// its connection), so that nothing moves while the survivors are
	// checked.
	for i, s := range servers {
		if i%6 <= 2 {
			select {
			case <-s.done:
			case <-time.After(10 * time.Second):
				t.Fatalf("server %d never saw its end: a lost wake-up", i)
			}
		}
	}
	// Quiet now: each survivor's connection, parked, is shed, written to
	// (rebuilt while parked), and must still wake for its client's next
	// message: nothing sheds it again to hide a registration lost on the
	// way.
	for i, s := range servers {
		if i%6 <= 2 {
			continue // killed or hung up
		}
		deadline := time.Now().Add(10 * time.Second)
		for !s.pc.Parked() {
			if time.Now().After(deadline) {
				t.Fatalf("server %d did not park again", i)
			}
			time.Sleep(time.Millisecond)
		}
		s.pc.Shed()
		note := fmt.Sprintf("n%03d-%017d", i, 0)
		if !s.notify(note) {
			t.Fatalf("server %d: notification not written", i)
		}
		checkItems(t, p)
		msg := fmt.Sprintf("c%03d-last-%012d", i, 0)
		_ = clients[i].SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := clients[i].Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		// Earlier notifications not read yet come first.
		var b [stressMsg]byte
		for want := note; ; {
			if _, err := io.ReadFull(clients[i], b[:]); err != nil {
				t.Fatalf("client %d: %v, want %q: a lost wake-up", i, err, want)
			}
			switch got := string(b[:]); {
			case got == want && want == msg:
			case got == want:
				want = msg
				continue
			case want == note && got[0] == 'n' && got[1:4] == note[1:4]:
				continue
			default:
				t.Fatalf("client %d read %q, want %q", i, got, want)
			}
			break
		}
		// Its server ends before the next is checked: its wake-up
		// unregisters it meanwhile.
		clients[i].Close()
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("server %d never saw its client's end: a lost wake-up", i)
		}
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, s := range servers {
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			t.Fatalf("server %d never saw its client's end: a lost wake-up", i)
		}
	}
	if shed.Load() == 0 {
		t.Fatal("nothing was shed")
	}
	if notes.Load() == 0 {
		t.Fatal("nothing was notified")
	}
	t.Logf("%d sheds, %d notifications", shed.Load(), notes.Load())
	if p.Len() != 0 {
		t.Fatalf("%d still parked", p.Len())
	}
	checkItems(t, p)
	// A descriptor the end closed may still be going away (a close handed
	// to the poller's goroutine, a socket the runtime closes after its
	// last reader left): wait for it, boundedly; one that stays is a leak.
	for deadline := time.Now().Add(5 * time.Second); openFDs(t) != fdsBefore && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if got := openFDs(t); got != fdsBefore {
		t.Fatalf("%d descriptors open after the end, %d before\n%v\n%v", got, fdsBefore, listBefore, fdList(t))
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > gBefore {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), gBefore, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, s := range servers {
		if err := s.pc.Close(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("a second Close: %v, want net.ErrClosed", err)
		}
	}
}
