// Command pgbench measures the PostgreSQL gateway against PgBouncer, in
// one run: `pgbench -S` with 8 clients, simple and prepared protocol,
// directly, through PgBouncer in session mode, and through the real
// `airlock serve` with every statement durably recorded, all against the
// same database; then the memory each holds per idle client connection:
// per connection of a batch, and (-idle-slope) as the slope of RssAnon
// over batches held after a warm-up (slope.go).
//
// It creates a database owned by a non-superuser CREATEROLE admin role
// (as a real deployment's), initialises it with `pgbench -i` as that
// role, starts PgBouncer and `airlock serve` on free loopback ports, gets
// a grant for pg:select on the database's tables through the CLI, and
// alternates the three paths so that machine noise falls on all of them.
// Everything it starts or creates is stopped or dropped at the end.
//
// Run it from the repository root: go run ./bench/pgbench
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

// options are the command's flags.
type options struct {
	load
	rounds  int
	connect int // seconds of the new-connection-per-transaction phase per path; 0 skips
	scale   int
	idle    int
	// idleMore is a second batch of idle connections opened after the
	// first: its VmRSS growth over its own count is what one more idle
	// connection costs, apart from the fixed steps (the heap filling to
	// its goal) that the first batch's figure divides among few.
	idleMore int
	// idleSlope is the slope phase's batch (0 skips it), slopeBatches
	// how many batches after its base, idleWarm the seconds of its
	// warm-up (slope.go).
	idleSlope, slopeBatches, idleWarm int
	// private runs everything on a PostgreSQL cluster of the benchmark's
	// own, with room for the idle connections (each idle gateway session
	// holds a server connection).
	private bool
	sslmode string
	out     string
	airlock string
	// cgdump: airlock serve runs under callgrind (-airlock is a script
	// that execs valgrind --tool=callgrind for serve): its counts are
	// zeroed before each measured gateway phase and dumped after it, so
	// that each dump is one phase's instructions.
	cgdump bool
	// hold stops after the set-up: it prints airlock serve's and PgBouncer's PIDs and the
	// grant's environment for pgbench, and waits for SIGINT before the
	// cleanup, so that the server can be counted or sampled by hand.
	hold bool
	// stat is perf stat's events, counted on airlock serve during each
	// measured gateway phase and on PgBouncer during each of its own
	// (the same counts for the peer in the same run), printed per
	// transaction; keepLog where
	// to copy the server's log once it has stopped (its runtime policies' lines).
	stat, keepLog string
}

func main() {
	os.Exit(run())
}

func run() int {
	var o options
	var phaseLen time.Duration
	flag.IntVar(&o.clients, "clients", 8, "pgbench clients (-c)")
	flag.IntVar(&o.threads, "threads", 2, "pgbench threads (-j)")
	flag.DurationVar(&phaseLen, "phase", 5*time.Second, "length of each measured phase (whole seconds)")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds; each runs every mode once on every path")
	flag.IntVar(&o.connect, "connect", 3, "seconds of `pgbench -S -C` (a new connection per transaction, as an agent running psql per query) on each path after the rounds (0 skips)")
	flag.IntVar(&o.scale, "scale", 10, "pgbench -i scale factor (100,000 accounts each)")
	flag.IntVar(&o.idle, "idle", 80, "idle connections opened through each middle process to measure its memory (0 skips)")
	flag.IntVar(&o.idleMore, "idle-more", 0, "a second batch of idle connections after the first, for the memory of one more connection (VmRSS growth over the batch, 75 s after it, past the gateway's once-a-minute release of free heap pages; 0 skips); needs room on the server: see -private")
	flag.IntVar(&o.idleSlope, "idle-slope", 0, "the slope phase's batch: after a warm-up (-idle-warm) and a base batch of -idle + -idle-more + this many (past the earlier phase's peak), this many idle connections opened -slope-batches times through each middle, RssAnon read 75 s after each batch with every batch still open, and the least-squares slope over the connections held: one more idle connection's memory without the one-off fills (0 skips)")
	flag.IntVar(&o.slopeBatches, "slope-batches", 3, "batches of the slope phase after its base (≥ 1)")
	flag.IntVar(&o.idleWarm, "idle-warm", 15, "seconds of `pgbench -S` through each middle before the slope phase's batches: enough statements to grow the gateway's log past its store's caches")
	flag.BoolVar(&o.private, "private", false, "run on a PostgreSQL cluster of the benchmark's own (initdb in a temporary directory, max_connections sized for -idle, -idle-more and -idle-slope) instead of AIRLOCK_TEST_PG_DSN's")
	flag.StringVar(&o.sslmode, "sslmode", "disable", "sslmode for every path (the gateway and PostgreSQL both offer TLS; PgBouncer here does not)")
	flag.StringVar(&o.out, "out", "bench/out/pgbench.json", "where to write the raw figures as JSON")
	flag.BoolVar(&o.cgdump, "cgdump", false, "airlock serve runs under callgrind (-airlock a script that execs valgrind --tool=callgrind for serve, keeping its PID): zero its counts before each measured gateway phase and dump them after it (callgrind_control), labelled with the round and mode")
	flag.StringVar(&o.stat, "stat", "", "count these events (comma-separated, as `perf stat -e`) on airlock serve during each measured gateway phase, and on PgBouncer during each of its phases, and print them per transaction")
	flag.StringVar(&o.keepLog, "keep-log", "", "copy airlock serve's log here once it has stopped")
	flag.StringVar(&o.airlock, "airlock", "", "airlock binary to run (default: build ./cmd/airlock)")
	flag.BoolVar(&o.hold, "hold", false, "set up the database, airlock serve and its grant and PgBouncer, print their PIDs, the environment pgbench needs to connect through the gateway and PgBouncer's port (BOUNCER_PORT, as BOUNCER_USER without a password), and wait for SIGINT (then clean up): for counting or sampling the server by hand")
	benchkit.PeerSlackFlag()
	flag.Parse()
	benchkit.Progress("%s", benchkit.PeerSlackNote())
	o.seconds = int(phaseLen.Round(time.Second) / time.Second)
	if o.seconds < 1 || o.rounds < 1 || o.clients < 1 || o.threads < 1 || o.clients%o.threads != 0 || o.scale < 1 || o.idle < 0 || o.idleMore < 0 || (o.idleMore > 0 && o.idle == 0) || o.connect < 0 ||
		o.idleSlope < 0 || (o.idleSlope > 0 && (o.slopeBatches < 1 || o.idleWarm < 1)) {
		fmt.Fprintln(os.Stderr, "pgbench: bad flags (phase ≥ 1s, rounds, clients, threads ≥ 1, clients a multiple of threads, scale ≥ 1, idle ≥ 0, idle-more ≥ 0 and only with idle, connect ≥ 0, idle-slope ≥ 0, slope-batches and idle-warm ≥ 1 with idle-slope)")
		return 2
	}
	return benchkit.Main("pgbench", func(ctx context.Context, r *benchkit.Runner) {
		if o.hold {
			hold(ctx, r, o)
			return
		}
		rep := bench(ctx, r, o)
		r.Close()
		benchkit.Progress("stopped airlock and pgbouncer, dropped the database and roles")
		printReport(os.Stdout, rep)
		if err := benchkit.WriteJSON(o.out, rep); err != nil {
			r.Fatalf("writing %s: %v", o.out, err)
		}
		fmt.Printf("raw figures in %s\n", o.out)
	})
}

// slopeBase is the slope phase's first batch: past the most connections
// the earlier phase held, by one batch, so that the batches after it need
// memory of their own (slope.go).
func (o options) slopeBase() int { return o.idle + o.idleMore + o.idleSlope }

// slopeHeld is the most connections the slope phase holds at once.
func (o options) slopeHeld() int {
	if o.idleSlope == 0 {
		return 0
	}
	return o.slopeBase() + o.idleSlope*o.slopeBatches
}

// hold sets up as bench does, PgBouncer included, and waits for ctx. It
// prints the gateway's environment as export lines and PgBouncer's port,
// so that the same pgbench can be pointed at either (PGPORT=$BOUNCER_PORT
// with the admin role, which PgBouncer trusts).
func hold(ctx context.Context, r *benchkit.Runner, o options) {
	if _, err := exec.LookPath("pgbench"); err != nil {
		r.Skip("pgbench not found; install it with: apt-get install postgresql-client")
	}
	f := newFixture(ctx, r, superDSN(), o.scale, o.sslmode)
	bin := benchkit.BuildAirlock(r, o.airlock, r.TempDir())
	srv := startGateway(r, bin, f, o.keepLog)
	_, gw := grant(r, srv, f, o.sslmode)
	bnc := startBouncer(r, f, o.clients+50, max(20, o.clients+4))
	fmt.Printf("AIRLOCK_PID=%d\n", srv.PID())
	fmt.Printf("BOUNCER_PID=%d\nBOUNCER_PORT=%d\nBOUNCER_USER=%s\n", bnc.pid(), bnc.client.Port, bnc.client.User)
	for _, kv := range gw.environ() {
		if strings.HasPrefix(kv, "PG") {
			fmt.Printf("export %s\n", kv)
		}
	}
	benchkit.Progress("holding airlock serve (PID %d) until SIGINT", srv.PID())
	<-ctx.Done()
}

var modes = []string{"simple", "prepared"}

func bench(ctx context.Context, r *benchkit.Runner, o options) *report {
	if _, err := exec.LookPath("pgbench"); err != nil {
		r.Skip("pgbench not found; install it with: apt-get install postgresql-client")
	}
	rep := &report{Clients: o.clients, Threads: o.threads, Scale: o.scale, PhaseSeconds: o.seconds, Rounds: o.rounds,
		SSLMode: o.sslmode, CPUs: runtime.NumCPU(), LoadBefore: loadavg()}
	dsn := superDSN()
	if o.private {
		dsn = privateCluster(r, o)
		rep.PrivateCluster = true
	}
	f := newFixture(ctx, r, dsn, o.scale, o.sslmode)
	benchkit.Progress("database %s initialised (pgbench -i -s %d as %s)", f.db, o.scale, f.admin.User)
	bin := benchkit.BuildAirlock(r, o.airlock, r.TempDir())
	srv := startGateway(r, bin, f, o.keepLog)
	id, gw := grant(r, srv, f, o.sslmode)
	benchkit.Progress("airlock serve up; grant %s, gateway at %s:%d", id, gw.Host, gw.Port)
	bnc := startBouncer(r, f, max(o.idle+o.idleMore, o.slopeHeld())+o.clients+50, max(20, o.clients+4))
	benchkit.Progress("pgbouncer up at %s:%d", bnc.client.Host, bnc.client.Port)

	var calls gatewayCalls // everything sent through the gateway

	// Idle connections first, on processes that have not yet served the
	// load: memory a busy run freed could otherwise hide their cost.
	if o.idle > 0 {
		n := o.idle
		// Each idle gateway connection holds a server session; keep a
		// margin for other users of the server.
		if free := freeSlots(ctx, r, dsn) - 10; free < n {
			rep.IdleNote = fmt.Sprintf("only %d of the %d idle connections asked for: the server had few free connection slots", max(free, 0), n)
			n = max(free, 0)
		}
		if n > 0 {
			gatewayGo := func() (map[string]float64, error) { return srv.ScrapeGauges(benchkit.GoMemory) }
			gatewayGC := func() (float64, error) {
				g, err := srv.ScrapeGauges(gcCounters[:1])
				return g[gcCounters[0]], err
			}
			for _, m := range []struct {
				path string
				pid  int
				e    pgEnv
				gm   goMemory
				gc   gcCount
			}{{"gateway", srv.PID(), gw, gatewayGo, gatewayGC}, {"pgbouncer", bnc.pid(), bnc.client, nil, nil}} {
				more := o.idleMore
				if more > 0 {
					if free := freeSlots(ctx, r, dsn) - 10 - n; free < more {
						rep.IdleNote += fmt.Sprintf("only %d of the %d more idle connections asked for: the server had few free connection slots; ", max(free, 0), more)
						more = max(free, 0)
					}
				}
				res, err := idleMemory(ctx, m.path, m.pid, m.e, n, more, m.gm, m.gc)
				if err != nil {
					r.Fatalf("idle connections: %v\nserver log:\n%s", err, srv.LogTail())
				}
				if m.path == "gateway" {
					calls.IdleQueries++ // its first connection's SELECT 1
				}
				rep.Idle = append(rep.Idle, res)
				gcs := ""
				if m.gc != nil {
					gcs = fmt.Sprintf("; %.0f GC cycles", res.GCCycles)
				}
				benchkit.Progress("idle     %-9s %d connections: RSS %d → %d kB, %.1f KiB each; after %s idle %d kB, %.1f KiB each (anonymous: %.1f, %.1f KiB each)%s", m.path, n, res.BeforeKB, res.AfterKB, res.PerConnKB, idleLater, res.LaterKB, res.PerConnLaterKB, res.AnonPerConnKB, res.AnonPerConnLaterKB, gcs)
				if res.More > 0 {
					benchkit.Progress("idle     %-9s %d more: RSS %d kB %s after them, %.2f KiB each (anonymous %.2f KiB each)", m.path, res.More, res.MoreLaterKB, idleMoreLater, res.MorePerConnKB, res.AnonMorePerConnKB)
					if res.GoMoreBytes != nil {
						benchkit.Progress("idle     %-9s %d more, Go runtime per connection: %s", m.path, res.More, goMemoryLine(res.GoMoreBytes, res.AnonMorePerConnKB))
					}
				}
			}
		}
	}

	if o.idleSlope > 0 {
		n := o.slopeHeld()
		if free := freeSlots(ctx, r, dsn) - 10; free < n {
			r.Fatalf("idle slope: %d connections asked for, the server has %d free slots (see -private)", n, free)
		}
		gatewayGo := func() (map[string]float64, error) { return srv.ScrapeGauges(benchkit.GoMemory) }
		warm := load{clients: o.clients, threads: o.threads, seconds: o.idleWarm}
		for _, s := range []slopeSpec{
			{path: "gateway", pid: srv.PID(), e: gw, gm: gatewayGo, store: filepath.Join(srv.Dir, "data", "airlock.db")},
			{path: "pgbouncer", pid: bnc.pid(), e: bnc.client},
		} {
			s.warm, s.base, s.batch, s.batches, s.wait = warm, o.slopeBase(), o.idleSlope, o.slopeBatches, idleMoreLater
			res, w, err := idleSlope(ctx, s)
			if s.path == "gateway" && w.Transactions > 0 {
				calls.Transactions += w.Transactions
				calls.Runs++
			}
			if err != nil {
				r.Fatalf("idle slope: %v\nserver log:\n%s", err, srv.LogTail())
			}
			rep.IdleSlope = append(rep.IdleSlope, res)
			benchkit.Progress("slope    %-9s %s", s.path, slopeLine(res))
		}
	}

	targets := map[string]struct {
		e   pgEnv
		pid int
	}{"direct": {f.admin, 0}, "pgbouncer": {bnc.client, bnc.pid()}, "gateway": {gw, srv.PID()}}
	measuring := false // after the warm-up: -cgdump's dumps
	callgrind := func(op string) {
		if out, err := exec.Command("callgrind_control", op, strconv.Itoa(srv.PID())).CombinedOutput(); err != nil {
			r.Fatalf("callgrind_control %s: %v\n%s", op, err, out)
		}
	}
	phaseOn := func(path, mode string, l load) phase {
		t := targets[path]
		cg := o.cgdump && measuring && path == "gateway"
		if cg {
			callgrind("-z")
		}
		var before benchkit.LogWait
		var gc0 map[string]float64
		if path == "gateway" {
			var err error
			if before, err = srv.ScrapeLogWait(); err != nil {
				r.Fatalf("gateway metrics: %v", err)
			}
			if gc0, err = srv.ScrapeGauges(gcCounters); err != nil {
				r.Fatalf("gateway metrics: %v", err)
			}
		}
		var stat *benchkit.PerfStat
		if o.stat != "" && measuring && (path == "gateway" || path == "pgbouncer") {
			var err error
			if stat, err = benchkit.StartPerfStat(t.pid, o.stat); err != nil {
				r.Fatalf("perf stat: %v", err)
			}
		}
		run := func() (phase, error) { return runPgbench(ctx, t.e, mode, l, t.pid) }
		var p phase
		var err error
		if path == "direct" {
			// Only the direct path logs in afresh every phase (slots.go).
			var retries int
			p, retries, err = retrySlots(run, slotRetries, func(try int, err error) bool {
				benchkit.Progress("direct   %s: PostgreSQL refused pgbench's logins for want of connection slots (%s); again in %s (%d of %d)",
					mode, slotUse(ctx, dsn), slotWait, try, slotRetries)
				select {
				case <-ctx.Done():
					return false
				case <-time.After(slotWait):
					return true
				}
			})
			p.SlotRetries = retries
		} else {
			p, err = run()
		}
		if cg {
			callgrind(fmt.Sprintf("--dump=gateway-%s-%dtx", mode, p.Transactions))
		}
		if stat != nil {
			p.PerfStat = stat.Stop(p.Transactions)
			benchkit.Progress("perf stat %-9s %-8s a transaction:%s", path, mode, p.PerfStat)
		}
		if err != nil {
			extra := ""
			switch path {
			case "gateway":
				extra = "\nserver log:\n" + srv.LogTail()
			case "pgbouncer":
				extra = "\npgbouncer log:\n" + bnc.logTail()
			}
			if slotsExhausted(err.Error()) {
				extra += fmt.Sprintf("\nPostgreSQL had no connection slot free for pgbench's %d clients (%s): other programs hold them; run again when the server is quieter, or with -private", l.clients, slotUse(ctx, dsn))
			}
			r.Fatalf("%s: %v%s", path, err, extra)
		}
		p.Path = path
		if path == "gateway" {
			calls.Transactions += p.Transactions
			calls.Runs++
			after, err := srv.ScrapeLogWait()
			if err != nil {
				r.Fatalf("gateway metrics: %v", err)
			}
			w := after.Sub(before)
			p.RecordWait = &w
			gc1, err := srv.ScrapeGauges(gcCounters)
			if err != nil {
				r.Fatalf("gateway metrics: %v", err)
			}
			p.GCCycles = gc1[gcCounters[0]] - gc0[gcCounters[0]]
			p.AllocBytes = gc1[gcCounters[1]] - gc0[gcCounters[1]]
		}
		return p
	}
	// A short unmeasured run of each path and mode: connections, plans and
	// the gateway's role are set up before anything counts.
	for _, path := range paths {
		for _, mode := range modes {
			phaseOn(path, mode, load{clients: o.clients, threads: o.threads, seconds: 1})
		}
	}
	benchkit.Progress("warmed up")
	measuring = true
	// The durable write's latency on the journal's filesystem, with
	// nothing else running: the floor under every gateway transaction.
	probe, err := benchkit.ProbeSync(filepath.Join(srv.Dir, "data"), 2000)
	if err != nil {
		r.Fatal(err)
	}
	rep.SyncProbe = &probe
	benchkit.Progress("durable write: %s", probe)

	for round := range o.rounds {
		// direct, pgbouncer, gateway, then gateway, pgbouncer, direct:
		// no path always runs first, on a warmer or a more tired machine.
		order := slices.Clone(paths)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, mode := range modes {
			for _, path := range order {
				p := phaseOn(path, mode, o.load)
				p.Round = round
				rep.Phases = append(rep.Phases, p)
				wait := ""
				if p.RecordWait != nil {
					wait = "; record wait " + p.RecordWait.String()
					wait += fmt.Sprintf("; GC cycles %.0f, %.0f bytes allocated a transaction", p.GCCycles, p.AllocBytes/float64(max(p.Transactions, 1)))
				}
				if p.SlotRetries > 0 {
					wait += fmt.Sprintf("; run %d more times for connection slots", p.SlotRetries)
				}
				benchkit.Progress("round %d  %-8s %-9s %8.0f tps  (%d transactions, %.2f ms avg; CPU s: pgbench %.2f, middle %.2f%s)",
					round, mode, path, p.TPS, p.Transactions, p.LatencyMS, p.PgbenchCPU, p.MiddleCPU, wait)
			}
		}
	}
	// Logins: a new connection for every transaction, each path once. The
	// gateway's includes its SCRAM exchange, the session's durable start
	// and end, and a new upstream backend as the grant's role; PgBouncer's
	// (trust authentication here) reuses its server connections.
	if o.connect > 0 {
		for _, path := range paths {
			p := phaseOn(path, "simple", load{clients: o.clients, threads: o.threads, seconds: o.connect, connect: true})
			p.Mode = "connect"
			rep.Phases = append(rep.Phases, p)
			benchkit.Progress("connect  %-9s %8.0f connections/s  (%d in %.1fs, %.2f ms average connection time; CPU s: pgbench %.2f, middle %.2f)",
				path, p.TPS, p.Transactions, p.Seconds, p.ConnectMS, p.PgbenchCPU, p.MiddleCPU)
		}
	}
	rep.Summary = summarize(modes, rep.Phases, o.clients, rep.SyncProbe)
	rep.GatewayTransactions, rep.GatewayCalls = calls.Transactions, calls
	rep.RecordedCalls, rep.RecordingOK, rep.RecordingCheck = srv.CheckRecording(r, id, calls.total())
	rep.RecordingCheck += ",\n  " + calls.explain(rep.RecordedCalls)
	benchkit.Progress("recording checked")
	rep.LoadAfter = loadavg()
	return rep
}

// loadavg is the first three fields of /proc/loadavg: whether the machine
// was busy with other work during the run.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
