package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

// nginxBin is Debian's nginx (apt-get install nginx-light).
const nginxBin = "/usr/sbin/nginx"

// nginxProxy is a running nginx forwarding to the upstream and nothing
// else: the peer that shows what one more HTTP hop costs on this machine,
// whatever the proxy, beside what the gateway costs.
type nginxProxy struct {
	// URL is nginx's endpoint; Version what `nginx -v` says.
	URL, Version string
	// Workers is the number of worker processes it started with.
	Workers int
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
}

// nginxConfig is a plain HTTP/1.1 reverse proxy. The arguments are, in
// order: the user line (empty unless root), the temporary directory, the
// listen address and the upstream address.
const nginxConfig = `# Written by s3bench: nginx forwarding to versitygw, and nothing else.
%[1]s
daemon off;
master_process on;
# One worker per core: the same 2 cores (here) that the clients, versitygw
# and airlock serve share, so nginx competes for them as the gateway does.
worker_processes auto;
error_log %[2]s/error.log warn;
pid %[2]s/nginx.pid;
lock_file %[2]s/nginx.lock;

events {
    worker_connections 4096;
}

http {
    access_log off;
    # Every path nginx may write under, away from /var/lib/nginx.
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;

    # The clients keep their connections for the whole run, as they do to
    # the gateway; nginx's default (close after 1000 requests) would make
    # this side pay for TCP set-up the others do not.
    keepalive_timeout 600s;
    keepalive_requests 1000000;

    upstream versitygw {
        server %[4]s;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 600s;
    }

    server {
        listen %[3]s;
        client_header_timeout 60s;
        location / {
            proxy_pass http://versitygw;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # The SDK signs the Host header and versitygw checks the
            # signature against it: it must arrive as the client sent it.
            proxy_set_header Host $http_host;
            # Bodies stream through in both directions, neither held in
            # memory nor spooled to disk, as the gateway streams them.
            client_max_body_size 0;
            proxy_request_buffering off;
            proxy_buffering off;
            # Unbuffered, these are the most nginx moves per read; 256 KiB
            # is the gateway's copy buffer, so neither side is held to
            # page-sized system calls the other does not make.
            client_body_buffer_size 256k;
            proxy_buffer_size 256k;
            proxy_buffers 4 256k;
            proxy_busy_buffers_size 256k;
            proxy_connect_timeout 10s;
            proxy_send_timeout 600s;
            proxy_read_timeout 600s;
            send_timeout 600s;
            client_body_timeout 600s;
        }
    }
}
`

// startNginx starts nginx in front of upstreamURL on a free loopback port
// and waits until it answers. It returns nil, with the reason, when nginx
// is not installed: the other sides run without it.
func startNginx(r *benchkit.Runner, upstreamURL string) (*nginxProxy, string) {
	if _, err := os.Stat(nginxBin); err != nil {
		return nil, fmt.Sprintf("%s not found, so no nginx side; apt-get install nginx-light enables it", nginxBin)
	}
	dir := r.TempDir()
	// As root, nginx's workers run as nobody (the user line): they must be
	// able to reach the temporary paths the master creates here for them.
	_ = os.Chmod(dir, 0o755)
	addr := benchkit.FreeAddr(r)
	upAddr := strings.TrimPrefix(upstreamURL, "http://")
	conf := filepath.Join(dir, "nginx.conf")
	benchkit.Write(r, conf, fmt.Sprintf(nginxConfig, nginxUser(), dir, addr, upAddr))
	n := &nginxProxy{URL: "http://" + addr, logPath: filepath.Join(dir, "error.log"), done: make(chan struct{})}
	if out, err := exec.Command(nginxBin, "-v").CombinedOutput(); err == nil {
		n.Version = strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: ")
	}
	// nginx's own messages and anything it writes on stderr before it has
	// read the configuration (-e) go to the one file, appended.
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		r.Fatal(err)
	}
	n.cmd = exec.Command(nginxBin, "-p", dir, "-e", n.logPath, "-c", conf)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	// Its own process group, so that a master that will not stop can be
	// killed together with its workers.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := benchkit.StartPeer(n.cmd); err != nil {
		logf.Close()
		r.Fatalf("starting nginx: %v", err)
	}
	go func() { _ = n.cmd.Wait(); close(n.done) }()
	r.Cleanup(func() { n.stop(); logf.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-n.done:
			r.Fatalf("nginx exited at start-up (%v):\n%s", n.cmd.ProcessState, n.logTail())
		default:
		}
		// Any answer from versitygw through nginx (403 without a
		// signature) means both are up; 502 is nginx alone.
		if resp, err := http.Get(n.URL + "/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadGateway {
				n.Workers = len(n.workers())
				return n, ""
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Fatalf("nginx did not answer on %s within 10 s:\n%s", addr, n.logTail())
	return nil, ""
}

// nginxUser is the configuration's user line: nginx started as root
// needs one for its workers, and refuses a group that does not exist.
func nginxUser() string {
	if os.Geteuid() != 0 {
		return ""
	}
	if _, err := user.Lookup("nobody"); err == nil {
		for _, g := range []string{"nogroup", "nobody"} {
			if _, err := user.LookupGroup(g); err == nil {
				return "user nobody " + g + ";"
			}
		}
	}
	return "user root root;"
}

// pid is the master's process ID.
func (n *nginxProxy) pid() int { return n.cmd.Process.Pid }

// workers are the master's children, read from /proc each time so that a
// worker the master replaced is counted too.
func (n *nginxProxy) workers() []int {
	master := strconv.Itoa(n.pid())
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		end := strings.LastIndexByte(s, ')')
		if end < 0 {
			continue
		}
		// After the command name: state, then the parent's ID.
		if f := strings.Fields(s[end+1:]); len(f) > 1 && f[1] == master {
			if pid, err := strconv.Atoi(strings.Fields(s)[0]); err == nil {
				out = append(out, pid)
			}
		}
	}
	return out
}

// cpuTime is the CPU time nginx has used so far: the master's and its
// current workers', where the traffic is handled.
func (n *nginxProxy) cpuTime() time.Duration {
	t, _ := benchkit.CPUTime(n.pid())
	for _, w := range n.workers() {
		if c, err := benchkit.CPUTime(w); err == nil {
			t += c
		}
	}
	return t
}

// stop ends nginx with SIGTERM (its fast shutdown: the run is over) and
// kills its process group if it has not stopped in 5 s.
func (n *nginxProxy) stop() {
	select {
	case <-n.done:
		return
	default:
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(5 * time.Second):
		if err := syscall.Kill(-n.pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			_ = n.cmd.Process.Kill()
		}
		<-n.done
		fmt.Fprintln(os.Stderr, "s3bench: nginx did not stop on SIGTERM; killed it")
	}
}

// logTail is the end of nginx's error log, for failure messages.
func (n *nginxProxy) logTail() string {
	b, _ := os.ReadFile(n.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
