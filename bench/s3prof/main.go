// Command s3prof drives a fixed number of S3 GetObject 1 KiB calls through
// one proxy process — the real `airlock serve` (AWS gateway, every call
// recorded) or s3bench's Go httputil.ReverseProxy child — in front of
// versitygw, so that the whole proxy process can be counted by a tool
// wrapped around it (valgrind --tool=callgrind, given with -wrap) or
// sampled by perf (-perf). Two runs with different -calls, the proxy
// stopped with SIGTERM at the end of each, give the whole process's cost
// per call as their difference over the extra calls.
//
// Run it from the repository root: go run ./bench/s3prof -h
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

const bucket = "bench"

type options struct {
	side, airlock, s3bench, wrap, perf, calls string
	// stat is perf stat's events, counted on the proxy from a second
	// before each count's calls to their end and printed per call.
	stat string
	// attach is a command run around each count's calls, {pid} and
	// {calls} replaced by the proxy's process ID and the count, ended
	// with SIGINT when the calls are done.
	attach              string
	warm, clients, port int
	// cgdump makes callgrind_control zero the counts after the warm-up and
	// dump them after each measured run, and the proxy end with SIGKILL:
	// callgrind 3.19 fails an assertion on the Go runtime's signal return.
	cgdump bool
	// keepLog is where the server's log is copied when it stops.
	keepLog string
	nocheck bool
}

func main() {
	var o options
	flag.StringVar(&o.side, "side", "gateway", "gateway (airlock serve) or goproxy (s3bench's ReverseProxy child)")
	flag.StringVar(&o.airlock, "airlock", "", "airlock binary")
	flag.StringVar(&o.s3bench, "s3bench", "", "s3bench binary (its hidden goproxy mode is the ReverseProxy)")
	flag.StringVar(&o.wrap, "wrap", "", "command line the proxy runs under (e.g. valgrind --tool=callgrind ...), space-separated")
	flag.StringVar(&o.perf, "perf", "", "write `perf record -e cpu-clock -g` of the proxy during the measured calls here")
	flag.StringVar(&o.stat, "stat", "", "count these events (comma-separated, as `perf stat -e`) on the proxy during the measured calls and print them per call")
	flag.StringVar(&o.attach, "attach", "", "command run around each count's calls, ended with SIGINT after them, space-separated; {pid} and {calls} stand for the proxy's process ID and the count (e.g. `perf trace -s -p {pid} -o trace.{calls}`)")
	flag.StringVar(&o.calls, "calls", "500", "comma-separated counts of measured calls, run one after another, each split over the clients")
	flag.BoolVar(&o.cgdump, "cgdump", false, "the proxy runs under callgrind: zero its counts after the warm-up and dump them after each count")
	flag.BoolVar(&o.nocheck, "nocheck", false, "skip the check that the review counts every call (its query's allocations would fall into a heap profile taken at the stop)")
	flag.StringVar(&o.keepLog, "keep-log", "", "copy airlock serve's log here when it stops")
	flag.IntVar(&o.warm, "warm", 200, "unmeasured warm-up calls")
	flag.IntVar(&o.clients, "clients", 8, "concurrent clients")
	flag.IntVar(&o.port, "port", 21500, "first of the four ports used (versitygw, API, AWS gateway, goproxy)")
	benchkit.PeerSlackFlag()
	flag.Parse()
	benchkit.Progress("%s", benchkit.PeerSlackNote())
	os.Exit(benchkit.Main("s3prof", func(ctx context.Context, r *benchkit.Runner) { run(ctx, r, o) }))
}

func addr(o options, i int) string { return fmt.Sprintf("127.0.0.1:%d", o.port+i) }

func waitHTTP(r *benchkit.Runner, url string, d time.Duration, ok func(int) bool) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if ok(resp.StatusCode) {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.Fatalf("%s did not answer within %s", url, d)
}

func run(ctx context.Context, r *benchkit.Runner, o options) {
	// versitygw, kept-alive as in s3bench.
	vdir := r.TempDir()
	upURL := "http://" + addr(o, 0)
	key, secret := "VGWROOTs3prof", "s3profsecret0123456789"
	vctx, vcancel := context.WithCancel(context.Background())
	v := exec.CommandContext(vctx, "versitygw", "--access", key, "--secret", secret, "--port", addr(o, 0), "--quiet", "posix", vdir)
	v.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID=", "ROOT_SECRET_ACCESS_KEY=", "VGW_KEEP_ALIVE=true")
	if err := v.Start(); err != nil {
		r.Fatal(err)
	}
	r.Cleanup(func() { vcancel(); _ = v.Wait() })
	waitHTTP(r, upURL+"/", 15*time.Second, func(int) bool { return true })
	direct := newClient(upURL, "us-east-1", key, secret, "")
	if _, err := direct.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		r.Fatal(err)
	}
	for i := range o.clients {
		b := make([]byte, 1<<10)
		for j := range b {
			b[j] = byte(j*31) ^ byte(i)
		}
		if _, err := direct.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(fmt.Sprintf("small/%d", i)), Body: bytes.NewReader(b), ContentLength: aws.Int64(1024)}); err != nil {
			r.Fatal(err)
		}
	}

	var wrap []string
	if o.wrap != "" {
		wrap = strings.Fields(o.wrap)
	}
	command := func(bin string, args ...string) *exec.Cmd {
		all := append(append(wrap, bin), args...)
		return exec.Command(all[0], all[1:]...)
	}
	var proxy *exec.Cmd
	var srv *benchkit.Server
	var clients []*s3.Client
	var stdin *os.File
	switch o.side {
	case "gateway":
		s := benchkit.NewServer(r, o.airlock)
		srv = s
		s.API = addr(o, 1)
		s.WritePolicy(r, "bench.cedar", benchkit.S3Policy)
		cfg := filepath.Join(s.Dir, "airlock.yaml")
		benchkit.Write(r, cfg, benchkit.S3Config(s, addr(o, 2), upURL))
		proxy = command(o.airlock, "serve", "--config", cfg)
		proxy.Dir = s.Dir
		proxy.Env = append(os.Environ(), "AWS_BENCH_ACCESS_KEY_ID="+key, "AWS_BENCH_SECRET_ACCESS_KEY="+secret)
		logPath := filepath.Join(s.Dir, "serve.log")
		logf, err := os.Create(logPath)
		if err != nil {
			r.Fatal(err)
		}
		proxy.Stdout, proxy.Stderr = logf, logf
		if err := proxy.Start(); err != nil {
			r.Fatal(err)
		}
		r.Cleanup(func() {
			stop(proxy)
			if o.keepLog != "" {
				b, _ := os.ReadFile(logPath)
				_ = os.WriteFile(o.keepLog, b, 0o644)
			}
		})
		waitHTTP(r, "http://"+s.API+"/healthz", 5*time.Minute, func(c int) bool { return c == 200 })
		id := s.Request(r, "aws-bench", "s3:GetObject,s3:PutObject,s3:ListBucket arn:aws:s3:::bench/*", "2h", "s3prof")
		var cr struct {
			AccessKeyID     string `json:"access_key_id"`
			SecretAccessKey string `json:"secret_access_key"`
			SessionToken    string `json:"session_token"`
			Endpoint        struct {
				URL    string `json:"url"`
				Region string `json:"region"`
			} `json:"endpoint"`
		}
		if err := json.Unmarshal([]byte(s.CLI(r, "credentials", id, "--format", "json")), &cr); err != nil {
			r.Fatal(err)
		}
		for range o.clients {
			clients = append(clients, newClient(cr.Endpoint.URL, cr.Endpoint.Region, cr.AccessKeyID, cr.SecretAccessKey, cr.SessionToken))
		}
		r.Cleanup(func() {
			if o.nocheck {
				return
			}
			// Runs before the proxy's stop (cleanups run last first).
			n, ok, msg := s.CheckRecording(r, id, calls)
			benchkit.Progress("recording: %v %v %s", n, ok, msg)
		})
	case "goproxy":
		inR, inW, err := os.Pipe()
		if err != nil {
			r.Fatal(err)
		}
		stdin = inW
		proxy = command(o.s3bench)
		proxy.Env = append(os.Environ(), "S3BENCH_GOPROXY_UPSTREAM="+upURL, "S3BENCH_GOPROXY_LISTEN="+addr(o, 3))
		proxy.Stdin, proxy.Stderr = inR, os.Stderr
		if err := benchkit.StartPeer(proxy); err != nil {
			r.Fatal(err)
		}
		inR.Close()
		r.Cleanup(func() { stop(proxy); stdin.Close() })
		waitHTTP(r, "http://"+addr(o, 3)+"/", 5*time.Minute, func(c int) bool { return c != http.StatusBadGateway })
		for range o.clients {
			clients = append(clients, newClient("http://"+addr(o, 3), "us-east-1", key, secret, ""))
		}
	default:
		r.Fatalf("-side %q", o.side)
	}
	pid := proxy.Process.Pid
	if err := drive(ctx, clients, o.warm); err != nil {
		r.Fatal(err)
	}
	benchkit.Progress("warmed up with %d calls", o.warm)
	if o.cgdump {
		callgrindControl(r, "-z", pid)
	}
	total := o.warm
	for f := range strings.SplitSeq(o.calls, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			r.Fatalf("-calls: %v", err)
		}
		var perf *exec.Cmd
		if o.perf != "" {
			perf = exec.Command("perf", "record", "-e", "cpu-clock", "-g", "-p", fmt.Sprint(pid), "-o", fmt.Sprintf("%s.%d", o.perf, n))
			perf.Stdout, perf.Stderr = os.Stderr, os.Stderr
			if err := perf.Start(); err != nil {
				r.Fatal(err)
			}
			time.Sleep(time.Second) // perf attaches
		}
		var attached *exec.Cmd
		if o.attach != "" {
			attached = attachCommand(o.attach, pid, n)
			attached.Stdout, attached.Stderr = os.Stderr, os.Stderr
			if err := attached.Start(); err != nil {
				r.Fatal(err)
			}
			time.Sleep(time.Second) // it attaches
		}
		var stat *benchkit.PerfStat
		if o.stat != "" {
			var err error
			if stat, err = benchkit.StartPerfStat(pid, o.stat); err != nil {
				r.Fatal(err)
			}
		}
		metrics := append([]string{"airlock_log_batches_total", "airlock_log_batch_calls_sum", "go_gc_duration_seconds_count", "go_memstats_mallocs_total", "go_memstats_alloc_bytes_total",
			"airlock_log_batch_write_seconds_sum", "airlock_log_wait_seconds_sum", "airlock_log_wait_seconds_count"}, batchBuckets...)
		var m0 map[string]float64
		if srv != nil {
			m0, _ = srv.ScrapeGauges(metrics)
		}
		cpu0, _ := benchkit.CPUTime(pid)
		t0 := time.Now()
		if err := drive(ctx, clients, n); err != nil {
			r.Fatal(err)
		}
		el := time.Since(t0)
		cpu1, _ := benchkit.CPUTime(pid)
		if perf != nil {
			_ = perf.Process.Signal(syscall.SIGINT)
			_ = perf.Wait()
		}
		if attached != nil {
			_ = attached.Process.Signal(syscall.SIGINT)
			_ = attached.Wait()
		}
		if stat != nil {
			fmt.Printf("  per call:%s\n", stat.Stop(int64(n)))
		}
		if o.cgdump {
			callgrindControl(r, "-d", pid)
		}
		total += n
		if srv != nil {
			if m1, err := srv.ScrapeGauges(metrics); err == nil && m0 != nil {
				d := func(i int) float64 { return m1[metrics[i]] - m0[metrics[i]] }
				fmt.Printf("  journal batches %.0f, calls in them %.0f, GC cycles %.0f, allocations %.1f and %.0f bytes a call\n", d(0), d(1), d(2), d(3)/float64(n), d(4)/float64(n))
				fmt.Printf("  a batch's write %.0f µs, a call's wait for its record %.0f µs (means); batches by calls in them:", 1e6*d(5)/d(0), 1e6*d(6)/d(7))
				prev := 0.0
				for i, le := range batchLE {
					c := d(8 + i)
					fmt.Printf(" ≤%s %.0f", le, c-prev)
					prev = c
				}
				fmt.Println()
			} else {
				fmt.Printf("  metrics: %v\n", err)
			}
		}
		fmt.Printf("side %s pid %d calls %d in %.2fs (%.0f/s); proxy CPU %.3fs = %.1f µs/call\n", o.side, pid, n, el.Seconds(), float64(n)/el.Seconds(), (cpu1 - cpu0).Seconds(), float64((cpu1-cpu0).Microseconds())/float64(n))
	}
	calls = int64(total)
	if o.cgdump {
		kill = true
	}
}

// batchLE are the bounds of airlock_log_batch_calls' buckets (package
// metrics) that s3prof prints, and batchBuckets their series' names: how
// many calls share a journal write is what the group commit decides.
var (
	batchLE      = []string{"1", "2", "4", "8", "16", "+Inf"}
	batchBuckets = func() []string {
		var out []string
		for _, le := range batchLE {
			out = append(out, `airlock_log_batch_calls_bucket{le="`+le+`"}`)
		}
		return out
	}()
)

// calls is how many calls went through the proxy, for the recording's
// check; kill makes stop use SIGKILL.
var (
	calls int64
	kill  bool
)

// attachCommand is -attach's command line for the proxy pid and a count
// of n calls.
func attachCommand(line string, pid, n int) *exec.Cmd {
	args := strings.Fields(strings.NewReplacer("{pid}", strconv.Itoa(pid), "{calls}", strconv.Itoa(n)).Replace(line))
	return exec.Command(args[0], args[1:]...)
}

func callgrindControl(r *benchkit.Runner, op string, pid int) {
	out, err := exec.Command("callgrind_control", op, strconv.Itoa(pid)).CombinedOutput()
	if err != nil {
		r.Fatalf("callgrind_control %s %d: %v\n%s", op, pid, err, out)
	}
}

// stop ends the proxy with SIGTERM, so that a tool around it writes its
// output, and waits for it.
func stop(c *exec.Cmd) {
	if c.ProcessState != nil {
		return
	}
	if kill {
		_ = c.Process.Kill()
	} else {
		_ = c.Process.Signal(syscall.SIGTERM)
	}
	done := make(chan struct{})
	go func() { _ = c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Minute):
		_ = c.Process.Kill()
		<-done
	}
}

// drive makes n GetObject 1 KiB calls, split over the clients, each in its
// own goroutine.
func drive(ctx context.Context, clients []*s3.Client, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(clients))
	for i, c := range clients {
		k := n / len(clients)
		if i < n%len(clients) {
			k++
		}
		wg.Go(func() {
			for range k {
				out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(fmt.Sprintf("small/%d", i))})
				if err != nil {
					errs <- err
					return
				}
				m, err := io.Copy(io.Discard, out.Body)
				out.Body.Close()
				if err == nil && m != 1024 {
					err = fmt.Errorf("read %d bytes", m)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// newClient is s3bench's client: path-style, retries off, its own
// keep-alive pool.
func newClient(endpoint, region, key, secret, token string) *s3.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, MaxIdleConns: 4, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second, DisableCompression: true}
	return s3.New(s3.Options{
		Region: region, BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(key, secret, token),
		Retryer:     aws.NopRetryer{}, HTTPClient: &http.Client{Transport: tr, Timeout: 10 * time.Minute},
		DisableLogOutputChecksumValidationSkipped: true,
	})
}
