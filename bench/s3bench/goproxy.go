package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
	"github.com/airlock-dev/airlock/internal/awsgw"
	"github.com/airlock-dev/airlock/internal/tlscert"
)

// The hidden mode in which s3bench's own binary serves as the Go proxy:
// main checks these before anything else. Re-executing itself gives the
// proxy a process of its own (its own CPU reading, its own scheduler and
// GC, as airlock serve has) without a second program to build or install.
const (
	envGoproxyUpstream = "S3BENCH_GOPROXY_UPSTREAM"
	envGoproxyListen   = "S3BENCH_GOPROXY_LISTEN"
	// envGoproxyProfile, if set, makes the proxy write a CPU profile there.
	envGoproxyProfile = "S3BENCH_GOPROXY_CPUPROFILE"
	// envGoproxyTLS, if set, is a directory whose CA issues the proxy a
	// certificate for 127.0.0.1 (internal/tlscert): it serves TLS.
	envGoproxyTLS = "S3BENCH_GOPROXY_TLS"
)

// goProxy is a running child serving net/http/httputil.ReverseProxy in
// front of the upstream and doing nothing else: the floor of Go's HTTP
// stack (server and Transport, as the gateway uses them) for one hop.
type goProxy struct {
	// URL is the proxy's endpoint; Procs its GOMAXPROCS.
	URL     string
	Procs   int
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
	// parent is the write end of the child's stdin, never written: the
	// child exits when it reads EOF, which is also what happens if this
	// process dies, however it dies.
	parent *os.File
}

// copyPool hands ReverseProxy 256 KiB buffers, the gateway's copy buffer
// (internal/awsgw copyBufSize): ReverseProxy's default is 32 KiB, and a
// 1 MiB response would then take eight times the reads and writes it
// takes through the gateway.
type copyPool struct{ p sync.Pool }

const goproxyBufSize = 256 << 10

func (c *copyPool) Get() []byte {
	if b, ok := c.p.Get().([]byte); ok {
		return b
	}
	return make([]byte, goproxyBufSize)
}

// Put boxes the slice header (an allocation of 24 bytes, beside a buffer
// of 256 KiB): the interface hands back a []byte, not the pointer.
func (c *copyPool) Put(b []byte) { c.p.Put(b) }

// serveGoproxy is the child's whole life: listen, say where on stdout,
// forward to upstream until SIGTERM (graceful) or until stdin reaches EOF
// (the parent is gone; exit at once). It returns the exit code.
func serveGoproxy(upstream, listen string) int {
	logger := log.New(os.Stderr, "goproxy: ", log.LstdFlags|log.Lmicroseconds)
	target, err := url.Parse(upstream)
	if err != nil || target.Scheme == "" || target.Host == "" {
		logger.Printf("%s=%q: want an absolute URL", envGoproxyUpstream, upstream)
		return 2
	}
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		logger.Print(err)
		return 1
	}
	if dir := os.Getenv(envGoproxyTLS); dir != "" {
		// The gateway's listener serves TLS with a config from the same
		// package (internal/server: tlscert.Ensure).
		cfg, _, err := tlscert.Ensure(dir, []string{"127.0.0.1"})
		if err != nil {
			logger.Print(err)
			return 1
		}
		ln = tls.NewListener(ln, cfg)
	}
	if path := os.Getenv(envGoproxyProfile); path != "" {
		// A CPU profile of the proxy, to set beside airlock serve's
		// (AIRLOCK_CPUPROFILE): written when it stops on SIGTERM.
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			logger.Printf("%s: %v", envGoproxyProfile, err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			// SetURL would send the upstream's host; the SDK signed the
			// Host it sent here, and versitygw checks SigV4 against it.
			r.Out.Host = r.In.Host
		},
		Transport:  awsgw.UpstreamTransport(), // the settings of the gateway's net/http Transport (which it wraps with its own client for bodiless GET and HEAD)
		BufferPool: new(copyPool),
		ErrorLog:   logger,
	}
	// The gateway's listener's timeouts (internal/server/gateways.go):
	// none on whole requests, which would cut long streams, a bound on
	// headers, and idle connections kept for two minutes.
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: logger}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		logger.Print("stdin closed: s3bench is gone, exiting")
		os.Exit(1)
	}()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	// The parent reads this line to learn the address (the port is the
	// kernel's choice, so no other process can take it in between) and
	// that the proxy is listening.
	fmt.Printf("%s %d\n", ln.Addr(), runtime.GOMAXPROCS(0))
	select {
	case err := <-errc:
		logger.Print(err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Printf("shutdown: %v", err)
	}
	return 0
}

// startGoproxy re-executes this binary as the Go proxy in front of
// upstreamURL, and waits until it forwards. If tlsDir is not empty it
// serves TLS with a certificate from that directory's CA.
func startGoproxy(r *benchkit.Runner, upstreamURL, tlsDir string) *goProxy {
	exe, err := os.Executable()
	if err != nil {
		r.Fatalf("goproxy: finding s3bench's own binary: %v", err)
	}
	dir := r.TempDir()
	g := &goProxy{logPath: filepath.Join(dir, "goproxy.log"), done: make(chan struct{})}
	logf, err := os.OpenFile(g.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		r.Fatal(err)
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		r.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		r.Fatal(err)
	}
	g.parent = inW
	g.cmd = exec.Command(exe)
	g.cmd.Env = append(os.Environ(), envGoproxyUpstream+"="+upstreamURL, envGoproxyListen+"=127.0.0.1:0", envGoproxyTLS+"="+tlsDir)
	// *os.File on all three: the child holds them directly, with no
	// copying goroutine here between it and the pipes.
	g.cmd.Stdin, g.cmd.Stdout, g.cmd.Stderr = inR, outW, logf
	// Its own process group, so that a Ctrl-C at the terminal reaches
	// only s3bench, which then stops the proxy in order instead of seeing
	// it die mid-phase. The parent's death is caught by the stdin pipe,
	// not Pdeathsig, which follows the forking OS thread rather than the
	// process (and is Linux-only).
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = benchkit.StartPeer(g.cmd)
	inR.Close()
	outW.Close()
	if err != nil {
		outR.Close()
		inW.Close()
		logf.Close()
		r.Fatalf("starting goproxy: %v", err)
	}
	go func() { _ = g.cmd.Wait(); close(g.done) }()
	r.Cleanup(func() { g.stop(); logf.Close() })

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(outR).ReadString('\n')
		outR.Close()
		line <- s
	}()
	var addr string
	select {
	case s := <-line:
		f := strings.Fields(s)
		if len(f) != 2 {
			r.Fatalf("goproxy did not start (%q):\n%s", s, g.logTail())
		}
		addr = f[0]
		g.Procs, _ = strconv.Atoi(f[1])
	case <-time.After(10 * time.Second):
		r.Fatalf("goproxy did not say where it listens within 10 s:\n%s", g.logTail())
	}
	g.URL = "http://" + addr
	probe := http.DefaultClient
	if tlsDir != "" {
		g.URL = "https://" + addr
		roots := x509.NewCertPool()
		pem, err := os.ReadFile(filepath.Join(tlsDir, tlscert.CAFile))
		if err != nil || !roots.AppendCertsFromPEM(pem) {
			r.Fatalf("goproxy's CA: %v", err)
		}
		probe = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-g.done:
			r.Fatalf("goproxy exited at start-up (%v):\n%s", g.cmd.ProcessState, g.logTail())
		default:
		}
		// Any answer from versitygw (403 without a signature) means the
		// hop works; 502 is ReverseProxy failing to reach it.
		if resp, err := probe.Get(g.URL + "/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadGateway {
				return g
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Fatalf("goproxy did not forward to versitygw within 10 s:\n%s", g.logTail())
	return nil
}

// pid is the child's process ID.
func (g *goProxy) pid() int { return g.cmd.Process.Pid }

// cpuTime is the CPU time the child has used so far, all its threads.
func (g *goProxy) cpuTime() time.Duration {
	t, _ := benchkit.CPUTime(g.pid())
	return t
}

// stop ends the child with SIGTERM (it shuts its server down within 3 s)
// and kills it if it has not exited in 5 s.
func (g *goProxy) stop() {
	defer g.parent.Close()
	select {
	case <-g.done:
		return
	default:
	}
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(5 * time.Second):
		if err := syscall.Kill(-g.pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			_ = g.cmd.Process.Kill()
		}
		<-g.done
		fmt.Fprintln(os.Stderr, "s3bench: goproxy did not stop on SIGTERM; killed it")
	}
}

// logTail is the end of the child's log (its stderr), for failure messages.
func (g *goProxy) logTail() string {
	b, _ := os.ReadFile(g.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
