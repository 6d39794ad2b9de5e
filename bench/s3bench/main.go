// Command s3bench measures the AWS gateway against the same upstream
// reached directly, in one run: GetObject of 1 KiB (requests/s), GetObject
// and PutObject of 1 MiB (MiB/s) from concurrent AWS SDK clients, and a
// large object streamed through the gateway while its RSS is sampled.
//
// It starts versitygw (internal/testenv) and the real `airlock serve`
// with the AWS gateway, gets a grant through the CLI, and alternates
// direct and gateway phases so that machine noise falls on both sides.
// The gateway records every call durably, as in production.
//
// A third side, nginx as a plain reverse proxy in front of the same
// versitygw, runs in the same rounds when /usr/sbin/nginx is installed:
// clients, proxy and upstream share the machine's cores, so a hop costs
// throughput whatever the proxy, and nginx doing nothing but forwarding
// shows how much of the gateway's gap to direct that alone explains.
//
// A fourth side, goproxy, is Go's own net/http/httputil.ReverseProxy as a
// plain forwarding hop in front of the same versitygw, in a process of its
// own (s3bench re-executes itself in a hidden mode), with the gateway's
// upstream Transport settings and copy buffers. nginx shows what a C
// event-loop proxy costs; goproxy shows the floor of Go's HTTP stack,
// server and Transport, which the gateway is built on, so that what is
// left between goproxy and the gateway is the gateway's own work: SigV4
// verification, scope, the durable record and re-signing.
//
// Run it from the repository root: go run ./bench/s3bench
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
	"github.com/airlock-dev/airlock/internal/testenv"
	"github.com/airlock-dev/airlock/internal/tlscert"
)

// options are the command's flags.
type options struct {
	clients   int
	phase     time.Duration
	rounds    int
	big       int64
	bigDirect bool
	nginx     bool
	goproxy   bool
	out       string
	airlock   string
	ws        []workload
	// tls makes the clients reach the gateway and goproxy over TLS.
	tls bool
	// keepLog is where to copy airlock serve's log once it has stopped.
	keepLog string
}

func main() {
	// The goproxy side is this binary run again in this mode; it must not
	// parse s3bench's flags or start anything else.
	if up := os.Getenv(envGoproxyUpstream); up != "" {
		os.Exit(serveGoproxy(up, os.Getenv(envGoproxyListen)))
	}
	os.Exit(run())
}

func run() int {
	var o options
	var big string
	flag.IntVar(&o.clients, "clients", 8, "concurrent clients, each an S3 client in its own goroutine")
	flag.DurationVar(&o.phase, "phase", 5*time.Second, "length of each measured phase")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds; each runs every workload once on every side (direct, nginx, goproxy, gateway)")
	flag.StringVar(&big, "big", "1GiB", "size of the object streamed through the gateway (e.g. 1GiB, 256MiB; 0 skips it)")
	flag.BoolVar(&o.bigDirect, "big-direct", true, "also stream the big object directly, for comparison")
	flag.BoolVar(&o.nginx, "nginx", true, "also run every workload through nginx, a plain reverse proxy, in front of the same upstream ("+nginxBin+")")
	flag.BoolVar(&o.goproxy, "goproxy", true, "also run every workload through Go's net/http/httputil.ReverseProxy, in a process of its own, in front of the same upstream")
	flag.StringVar(&o.out, "out", "bench/out/s3bench.json", "where to write the raw figures as JSON")
	flag.StringVar(&o.keepLog, "keep-log", "", "copy airlock serve's log here once it has stopped")
	flag.StringVar(&o.airlock, "airlock", "", "airlock binary to run (default: build ./cmd/airlock)")
	flag.BoolVar(&o.tls, "tls", false, "clients reach the gateway and goproxy over TLS (HTTP/1.1), as an agent on another machine does; the upstream and the direct side stay plain HTTP, and nginx is skipped")
	var wl string
	flag.StringVar(&wl, "workloads", "", "comma-separated subset of get1k,get1m,put1m (default all)")
	benchkit.PeerSlackFlag()
	flag.Parse()
	benchkit.Progress("%s", benchkit.PeerSlackNote())
	var err error
	if o.big, err = parseSize(big); err != nil || o.clients < 1 || o.rounds < 1 || o.phase <= 0 {
		fmt.Fprintf(os.Stderr, "s3bench: bad flags (-big %q: %v)\n", big, err)
		return 2
	}
	if o.ws, err = workloads(wl); err != nil {
		fmt.Fprintln(os.Stderr, "s3bench: -workloads:", err)
		return 2
	}
	if o.tls {
		o.nginx = false // its TLS set-up is not this benchmark's
	}

	return benchkit.Main("s3bench", func(ctx context.Context, r *benchkit.Runner) {
		rep := bench(ctx, r, o)
		r.Close()
		benchkit.Progress("stopped airlock, versitygw and any nginx and goproxy, removed temporary files")
		printReport(os.Stdout, rep)
		if err := benchkit.WriteJSON(o.out, rep); err != nil {
			r.Fatalf("writing %s: %v", o.out, err)
		}
		fmt.Printf("raw figures in %s\n", o.out)
	})
}

func bench(ctx context.Context, r *benchkit.Runner, o options) *report {
	// versitygw closes every connection after one request unless told
	// otherwise (testenv passes the environment on); S3 itself keeps
	// connections alive, and so must the upstream here, or both sides
	// would measure TCP set-up.
	os.Setenv("VGW_KEEP_ALIVE", "true")
	up := testenv.Versity(r)
	benchkit.Progress("versitygw up at %s", up.URL)
	bin := benchkit.BuildAirlock(r, o.airlock, r.TempDir())
	benchkit.Progress("airlock built")
	srv := startServer(r, bin, up, o.keepLog)
	id, cr := grant(r, srv)
	benchkit.Progress("airlock serve up; grant %s, gateway at %s", id, cr.Endpoint.URL)

	rep := &report{Clients: o.clients, PhaseSeconds: o.phase.Seconds(), Rounds: o.rounds, CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), TLS: o.tls}
	// With -tls the clients trust airlock's own CA (its data directory)
	// and goproxy's, made for this run.
	var roots *x509.CertPool
	gatewayURL := cr.Endpoint.URL
	var goproxyTLS string
	if o.tls {
		roots = x509.NewCertPool()
		goproxyTLS = r.TempDir()
		for _, ca := range []string{filepath.Join(srv.Dir, "data", tlscert.CAFile), filepath.Join(goproxyTLS, tlscert.CAFile)} {
			if ca == filepath.Join(goproxyTLS, tlscert.CAFile) {
				if _, _, err := tlscert.Ensure(goproxyTLS, []string{"127.0.0.1"}); err != nil {
					r.Fatalf("goproxy's certificate: %v", err)
				}
			}
			pem, err := os.ReadFile(ca)
			if err != nil || !roots.AppendCertsFromPEM(pem) {
				r.Fatalf("reading the CA %s: %v", ca, err)
			}
		}
		gatewayURL = strings.Replace(gatewayURL, "http://", "https://", 1)
	}
	var ngx *nginxProxy
	switch {
	case o.tls:
		rep.NginxNote = "none (-tls)"
	case o.nginx:
		ngx, rep.NginxNote = startNginx(r, up.URL)
	default:
		rep.NginxNote = "none (-nginx=false)"
	}
	if ngx != nil {
		rep.Nginx = fmt.Sprintf("%s, %d workers", ngx.Version, ngx.Workers)
		benchkit.Progress("nginx up at %s (%s), proxying to versitygw", ngx.URL, rep.Nginx)
	} else {
		benchkit.Progress("nginx: %s", rep.NginxNote)
	}

	var gp *goProxy
	if o.goproxy {
		gp = startGoproxy(r, up.URL, goproxyTLS)
		rep.Goproxy = fmt.Sprintf("%s httputil.ReverseProxy, GOMAXPROCS %d", runtime.Version(), gp.Procs)
		benchkit.Progress("goproxy up at %s (%s, pid %d), proxying to versitygw", gp.URL, rep.Goproxy, gp.pid())
	} else {
		rep.GoproxyNote = "none (-goproxy=false)"
	}

	meter := cpuMeter{gatewayPID: srv.PID(), upstreamPID: benchkit.ChildPID("versitygw"), nginx: ngx, goproxy: gp}
	if meter.upstreamPID == 0 {
		r.Fatal("could not find versitygw's process to measure its CPU")
	}
	// sideOrder is round 0's order; odd rounds reverse it.
	sideOrder := []string{"direct"}
	if ngx != nil {
		sideOrder = append(sideOrder, "nginx")
	}
	if gp != nil {
		sideOrder = append(sideOrder, "goproxy")
	}
	sideOrder = append(sideOrder, "gateway")
	dials := map[string]*atomic.Int64{}
	sides := map[string][]*s3.Client{}
	for _, side := range sideOrder {
		dials[side] = new(atomic.Int64)
		sides[side] = make([]*s3.Client, o.clients)
	}
	for i := range o.clients {
		sides["direct"][i] = newClient(up.URL, "us-east-1", up.AccessKeyID, up.SecretAccessKey, "", dials["direct"], nil)
		sides["gateway"][i] = newClient(gatewayURL, cr.Endpoint.Region, cr.AccessKeyID, cr.SecretAccessKey, cr.SessionToken, dials["gateway"], roots)
		if ngx != nil {
			// versitygw's own credentials, as directly: nginx only
			// forwards, and the signature it passes on is checked by
			// versitygw against the Host header nginx leaves as it is.
			sides["nginx"][i] = newClient(ngx.URL, "us-east-1", up.AccessKeyID, up.SecretAccessKey, "", dials["nginx"], nil)
		}
		if gp != nil {
			// Likewise through goproxy, which keeps the Host header.
			sides["goproxy"][i] = newClient(gp.URL, "us-east-1", up.AccessKeyID, up.SecretAccessKey, "", dials["goproxy"], roots)
		}
	}
	direct, viaGW := sides["direct"], sides["gateway"]
	// logs is what a failing side's message shows.
	logs := func(side string) string {
		switch side {
		case "gateway":
			return "\nserver log:\n" + srv.LogTail()
		case "nginx":
			return "\nnginx error log:\n" + ngx.logTail()
		case "goproxy":
			return "\ngoproxy log:\n" + gp.logTail()
		}
		return ""
	}
	if err := seed(ctx, direct[0], o.clients); err != nil {
		r.Fatal(err)
	}
	ws := o.ws
	for _, side := range sideOrder {
		// Through nginx and goproxy, this is also the check that SigV4
		// survives the hop: versitygw rejects every call whose signature
		// does not.
		if err := warm(ctx, sides[side], ws); err != nil {
			r.Fatalf("%s: %v%s", side, err, logs(side))
		}
	}
	gwCalls := int64(3 * len(ws) * o.clients)
	benchkit.Progress("seeded and warmed up")
	// The durable write's cost on the gateway's data directory, with
	// nothing else running: every batch of the journal pays one, and on
	// some machines its CPU, more than its latency, is what separates the
	// gateway from the ReverseProxy (bench/HISTORY.md).
	probe, err := benchkit.ProbeSync(filepath.Join(srv.Dir, "data"), 2000)
	if err != nil {
		r.Fatal(err)
	}
	rep.SyncProbe = &probe
	benchkit.Progress("durable write: %s", probe)

	for round := range o.rounds {
		// direct, nginx, goproxy, gateway, then the reverse: no side
		// always runs first, on a warmer or a more tired machine.
		order := slices.Clone(sideOrder)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, w := range ws {
			for _, side := range order {
				var before benchkit.LogWait
				if side == "gateway" {
					if before, err = srv.ScrapeLogWait(); err != nil {
						r.Fatalf("gateway metrics: %v", err)
					}
				}
				p, err := runPhase(ctx, sides[side], dials[side], meter, w, o.phase)
				if err != nil {
					r.Fatalf("%s phase: %v%s", side, err, logs(side))
				}
				p.Side, p.Round = side, round
				wait := ""
				if side == "gateway" {
					gwCalls += p.Ops
					after, err := srv.ScrapeLogWait()
					if err != nil {
						r.Fatalf("gateway metrics: %v", err)
					}
					d := after.Sub(before)
					p.RecordWait = &d
					wait = "; record wait " + d.String()
				}
				rep.Phases = append(rep.Phases, p)
				ngCPU := ""
				if ngx != nil {
					ngCPU = fmt.Sprintf(", nginx %.2f", p.CPU.Nginx)
				}
				if gp != nil {
					ngCPU += fmt.Sprintf(", goproxy %.2f", p.CPU.Goproxy)
				}
				benchkit.Progress("round %d  %-16s %-8s %10.1f %s  (%d calls in %.1fs, %d new connections; CPU s: clients %.2f, gateway %.2f%s, upstream %.2f%s)",
					round, w.Name, side, p.Rate, p.Unit, p.Ops, p.Seconds, p.Dials, p.CPU.Clients, p.CPU.Gateway, ngCPU, p.CPU.Upstream, wait)
			}
		}
	}
	rep.Summary = summarize(ws, rep.Phases)
	if o.big > 0 {
		benchkit.Progress("streaming a %s object", size(o.big))
	}

	if o.big > 0 {
		var n int64
		rep.Big, n = bigTest(ctx, r, o, srv, direct[0], viaGW[0])
		gwCalls += n
	}
	rep.GatewayCalls = gwCalls
	rep.RecordedCalls, _, rep.RecordingCheck = srv.CheckRecording(r, id, gwCalls)
	benchkit.Progress("recording checked")
	return rep
}

// bigTest streams one large object up and down through the gateway while
// sampling the gateway's RSS, then (optionally) directly for comparison,
// and deletes the object. It returns the results and the number of
// gateway calls made.
func bigTest(ctx context.Context, r *benchkit.Runner, o options, srv *benchkit.Server, direct, viaGW *s3.Client) (*bigResult, int64) {
	const key = "big/object"
	b := &bigResult{Size: o.big, TargetMB: 100}
	defer func() {
		// The object is large; do not leave it behind even for the
		// temporary directory's removal.
		_, _ = direct.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	}()
	st, err := benchkit.ProcStatus(srv.PID(), "VmRSS")
	if err != nil {
		r.Fatalf("reading the gateway's RSS: %v", err)
	}
	b.BaselineRSSKB = st["VmRSS"]
	type step struct {
		op, side string
		c        *s3.Client
		pid      int
		f        func(context.Context, *s3.Client, string, int64) (int64, error)
	}
	steps := []step{
		{"PutObject", "gateway", viaGW, srv.PID(), bigPut},
		{"GetObject", "gateway", viaGW, srv.PID(), bigGet},
	}
	if o.bigDirect {
		steps = append(steps, step{"PutObject", "direct", direct, 0, bigPut}, step{"GetObject", "direct", direct, 0, bigGet})
	}
	var calls int64
	for _, s := range steps {
		t, err := timed(ctx, s.op, s.side, s.pid, func(ctx context.Context) (int64, error) { return s.f(ctx, s.c, key, o.big) })
		if err != nil {
			r.Fatalf("big object: %v\nserver log:\n%s", err, srv.LogTail())
		}
		if s.side == "gateway" {
			calls++
			b.PeakRSSKB = max(b.PeakRSSKB, t.PeakRSSKB)
		}
		b.Transfers = append(b.Transfers, t)
		benchkit.Progress("big      %-16s %-8s %10.1f MiB/s (%.1fs)", s.op+" "+size(o.big), s.side, t.MiBps, t.Seconds)
	}
	if st, err := benchkit.ProcStatus(srv.PID(), "VmHWM"); err == nil {
		b.HWMKB = st["VmHWM"]
	}
	b.Met = float64(b.PeakRSSKB)*1024 < float64(b.TargetMB)*1e6
	return b, calls
}

// parseSize reads sizes such as 1GiB, 256MiB, 64KiB or a byte count.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("want a size such as 1GiB, 256MiB or a number of bytes")
	}
	return n * mult, nil
}
