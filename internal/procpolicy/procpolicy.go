// Package procpolicy sets how many Ps (GOMAXPROCS) `airlock serve` runs Go
// code on: one while the server's work fits well within one core, the
// runtime's default (the machine's or the container's CPUs) once it does
// not.
//
// Why: a gateway's calls are short goroutines handed from socket to socket
// and to the log's writer. With a second P idle, the runtime wakes a thread
// for about every goroutine made ready, which runs it, finds nothing else
// and sleeps again: a context switch or two a call that buys nothing while
// one P could have run it at once (bench/HISTORY.md, "What wakes airlock
// serve's threads per pgbench statement"). On a 2-vCPU host that also ran
// the clients and the upstream, the policy cut the server's CPU per S3 GET
// 1 KiB by 8-23 % (five pairs of five) and per pgbench statement by 12-34 %
// (three pairs of four) against the same binary at two Ps, at the same
// throughput ("GOMAXPROCS by the server's load on a quiet host"). Fixing
// GOMAXPROCS=1 would cap the server at one core; this policy keeps one P
// only while the server uses less than RaiseCPU of a core, and gives back
// the default within a Window of that changing.
//
// Where other jobs keep the CPUs busy, the kernel rather than the server's
// need sets how much CPU it gets: its use can stay under RaiseCPU while it
// waits, and one P is then one thread competing for the CPUs (bench/
// HISTORY.md, "GOMAXPROCS by the server's load: what the P policy changes
// per call, by counts"). README tells operators of such hosts to set
// GOMAXPROCS.
//
// The policy reads the process's CPU time (getrusage, every thread, user
// and system) every Window. At one P it raises to the default when the
// process used RaiseCPU of a core or more over the window: the P is busy
// most of the time, and a goroutine made ready waits for the ones before
// it. At more than one it lowers to one after LowerAfter windows in a row
// below LowerCPU. The band between the two keeps a load from switching
// back and forth: one P's CPU per call is lower, so a load moved down reads
// less, not more, than it did.
//
// It does not read the runtime's scheduling latencies: on a machine whose
// CPUs are busy with other processes (the clients and the database beside
// a small gateway), goroutines wait for a P whose thread the kernel is not
// running, and those waits, long at any number of Ps, said nothing of
// whether one P was enough (measured: bench/HISTORY.md, the policy's
// section). A long computation on the one P is cut into 10 ms slices by
// the runtime's preemption, and raises the Ps within a window if it goes
// on.
//
// An operator's GOMAXPROCS in the environment stays in charge: with it set,
// Apply changes nothing. So does a machine of one CPU, where the default is
// one P already.
//
// ExecWithTimerSlack, which `airlock serve` calls before anything else on
// Linux, sets its threads' timer slack to TimerSlack. sysmon, the
// runtime's monitor thread, polls every 20 µs while a P is busy or in a
// system call, and with one P it must retake the P from each journal write
// blocked on the disk; each of its sleeps is a nanosleep, a timer and two
// context switches, which on the measured 2-vCPU guest cost 20–45 µs of
// CPU apiece: sysmon's thread was 27–31 % of the server's CPU per pgbench
// transaction, as much as PgBouncer's whole process. With 500 µs of slack
// the kernel may end each such sleep up to that much later, so sysmon
// sleeps two to three times less: in twelve pairs against the kernel's
// 50 µs, 0.45–0.84 nanosleeps a transaction against 0.84–2.09, 17–56 %
// fewer context switches, and less CPU in ten (by 5–48 %; bench/
// HISTORY.md, "pgbench -S by system call"). What it costs is lateness: a P
// blocked in a system call is taken back, a timer's sleep ends, up to that
// much later.
package procpolicy

import (
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
)

// The policy's figures.
const (
	// Window is how often the policy looks, and so how long a server at
	// one P runs short of Ps before it has them back.
	Window = 250 * time.Millisecond
	// RaiseCPU is the CPU use, in cores over a window, at which one P is
	// too few: the P is busy most of the time, and a call made ready
	// waits for the one before it.
	RaiseCPU = 0.8
	// LowerCPU is the CPU use below which a window counts towards
	// lowering to one P, and LowerAfter how many such windows in a row
	// lower it.
	LowerCPU   = 0.4
	LowerAfter = 8
	// TimerSlack is the timer slack `airlock serve` runs its threads
	// with (ExecWithTimerSlack): how much later than asked the kernel
	// may end a timed sleep, to wake it with others.
	TimerSlack = 500 * time.Microsecond
)

// next is the decision for one window in which the process used cores of
// CPU: raise to the runtime's default (from one P), lower to one P, or
// neither, and the count of quiet windows in a row above one P.
func next(atOne bool, quiet int, cores float64) (raise, lower bool, quietAfter int) {
	switch {
	case atOne:
		return cores >= RaiseCPU, false, 0
	case cores >= LowerCPU:
		return false, false, 0
	case quiet+1 >= LowerAfter:
		return false, true, 0
	}
	return false, false, quiet + 1
}

// mu serialises Apply and stop; running is the applied policy, at most
// one in the process.
var (
	mu      sync.Mutex
	running *tuner
)

type tuner struct {
	clock clock.Clock
	// read gives the process's CPU time so far (false: not on this
	// system);
	// setProcs sets GOMAXPROCS: 1, or 0 for the runtime's default, whose
	// count it returns. The runtime's in Apply, fakes in the tests.
	read     func() (time.Duration, bool)
	setProcs func(int) int
	log      *slog.Logger

	mu      sync.Mutex
	cur     int // the Ps set
	max     int // the default's count, as last set
	quiet   int
	last    time.Duration // the CPU time at
	at      time.Time
	check   clock.Timer
	stopped atomic.Bool
}

// Apply applies the policy to the process, starting at one P, unless
// getenv("GOMAXPROCS") is set (not empty) or the runtime's default is one
// P, in which case it changes nothing. It logs each change to log (nil:
// none). It reports whether it applied the policy; stop (never nil) ends
// it and gives the runtime its default back.
func Apply(getenv func(string) string, log *slog.Logger) (stop func(), applied bool) {
	if getenv("GOMAXPROCS") != "" {
		return func() {}, false
	}
	mu.Lock()
	defer mu.Unlock()
	if running != nil {
		return func() {}, false
	}
	if _, ok := cpuTime(); !ok {
		return func() {}, false
	}
	t := newTuner(clock.Real, cpuTime, setRuntime, log)
	if !t.start() {
		return func() {}, false
	}
	running = t
	return t.stop, true
}

func newTuner(c clock.Clock, read func() (time.Duration, bool), set func(int) int, log *slog.Logger) *tuner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &tuner{clock: c, read: read, setProcs: set, log: log}
}

// setRuntime sets GOMAXPROCS to n, or to the runtime's default for 0, and
// returns the count set. SetDefaultGOMAXPROCS also gives the runtime back
// its own updates of the default (a container's CPU limit changing).
func setRuntime(n int) int {
	if n == 0 {
		runtime.SetDefaultGOMAXPROCS()
		return runtime.GOMAXPROCS(0)
	}
	runtime.GOMAXPROCS(n)
	return n
}

// start takes the default's count and, if it is more than one, sets one P
// and arms the first check. It reports whether it did.
func (t *tuner) start() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.max = t.setProcs(0)
	if t.max <= 1 {
		return false
	}
	t.cur = t.setProcs(1)
	t.last, _ = t.read()
	t.at = t.clock.Now()
	t.check = t.clock.AfterFunc(Window, t.tick)
	return true
}

// tick is one window's decision; it arms the next.
func (t *tuner) tick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Load() {
		return
	}
	cpu, ok := t.read()
	now := t.clock.Now()
	if d := now.Sub(t.at); ok && d > 0 && cpu >= t.last {
		cores := float64(cpu-t.last) / float64(d)
		raise, lower, quiet := next(t.cur == 1, t.quiet, cores)
		t.quiet = quiet
		was := t.cur
		switch {
		case raise:
			// The default may be one P by now (a container's CPU limit
			// lowered): then the next busy window asks again.
			t.cur = t.setProcs(0)
			t.max = t.cur
		case lower:
			t.cur = t.setProcs(1)
		}
		if t.cur != was {
			t.log.Info("gomaxprocs", "procs", t.cur, "cpu_cores", round2(cores))
		}
	}
	if ok {
		t.last, t.at = cpu, now
	}
	t.check = t.clock.AfterFunc(Window, t.tick)
}

func round2(f float64) float64 { return float64(int(f*100+0.5)) / 100 }

func (t *tuner) stop() {
	mu.Lock()
	defer mu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Swap(true) {
		return
	}
	if t.check != nil {
		t.check.Stop()
	}
	t.setProcs(0)
	if running == t {
		running = nil
	}
}

// Procs is the number of Ps the process may run Go code on at most: with
// the policy applied, the runtime's default it raises to (the count
// GOMAXPROCS held before, or since, as the runtime updates it); otherwise
// GOMAXPROCS. Code that sizes a pool of workers or connections once, at
// its start, sizes it with this rather than GOMAXPROCS, which the policy
// may have set to one for a while.
func Procs() int {
	mu.Lock()
	t := running
	mu.Unlock()
	n := runtime.GOMAXPROCS(0)
	if t != nil {
		t.mu.Lock()
		defer t.mu.Unlock()
		n = max(n, t.max) // the runtime may have updated its default since
	}
	return n
}
