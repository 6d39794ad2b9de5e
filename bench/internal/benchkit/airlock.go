package benchkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/internal/procpolicy"
)

// BuildAirlock compiles cmd/airlock into dir, unless bin names a binary
// already built. It must run from the repository root.
func BuildAirlock(r *Runner, bin, dir string) string {
	if bin != "" {
		return bin
	}
	out := filepath.Join(dir, "airlock")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/airlock")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		r.Fatalf("building airlock (run from the repository root): %v", err)
	}
	return out
}

// Server is the real `airlock serve`, with one agent identity whose key
// the benchmark holds, driven through the CLI as that agent.
type Server struct {
	// Bin is the airlock binary; Dir the server's directory (its
	// configuration, data and policies/); API its API address.
	Bin, Dir, API string
	// BotKey is the agent's API key; BotSHA its hash for the configuration.
	BotKey, BotSHA string
	// OpsKey is a person's API key (the configuration names OpsIdentity),
	// which reads the server's /metrics.
	OpsKey, OpsSHA string
	// KeepLog, if set before Start, is where the server's log is copied
	// once it has stopped: the runtime policies' lines (gomaxprocs) say
	// what the server ran with.
	KeepLog string
	name    string
	cmd     *exec.Cmd
	logPath string
}

// NewServer makes the agent's key and picks the API address; the caller
// writes policies (WritePolicy) and then calls Start with a configuration
// naming API and BotSHA.
func NewServer(r *Runner, bin string) *Server {
	s := &Server{Bin: bin, Dir: r.TempDir(), name: r.Name()}
	var key struct {
		Key string `json:"key"`
		SHA string `json:"key_sha256"`
	}
	if err := json.Unmarshal([]byte(s.CLI(r, "keygen", "-o", "json")), &key); err != nil {
		r.Fatalf("keygen output: %v", err)
	}
	s.BotKey, s.BotSHA = key.Key, key.SHA
	if err := json.Unmarshal([]byte(s.CLI(r, "keygen", "-o", "json")), &key); err != nil {
		r.Fatalf("keygen output: %v", err)
	}
	s.OpsKey, s.OpsSHA = key.Key, key.SHA
	s.API = FreeAddr(r)
	if err := os.MkdirAll(filepath.Join(s.Dir, "policies"), 0o755); err != nil {
		r.Fatal(err)
	}
	return s
}

// OpsIdentity is the configuration's entry for the person whose key
// (OpsKey) reads /metrics, to put under identities:.
func (s *Server) OpsIdentity() string {
	return fmt.Sprintf("  - name: bench-ops\n    kind: human\n    key_sha256: %q\n", s.OpsSHA)
}

// WritePolicy writes a Cedar file into the server's policies/ directory.
func (s *Server) WritePolicy(r *Runner, name, cedar string) {
	Write(r, filepath.Join(s.Dir, "policies", name), cedar)
}

// Start writes config as airlock.yaml, starts `airlock serve` with env
// added to this process's environment, and waits for its API.
func (s *Server) Start(r *Runner, config string, env []string) {
	cfg := filepath.Join(s.Dir, "airlock.yaml")
	Write(r, cfg, config)
	s.logPath = filepath.Join(s.Dir, "serve.log")
	logf, err := os.Create(s.logPath)
	if err != nil {
		r.Fatal(err)
	}
	s.cmd = exec.Command(s.Bin, "serve", "--config", cfg)
	s.cmd.Dir = s.Dir
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := startWithSlack(s.cmd, procpolicy.TimerSlack); err != nil {
		logf.Close()
		r.Fatalf("starting airlock serve: %v", err)
	}
	if keep := s.KeepLog; keep != "" {
		// Registered first, so run last: after the stop's lines.
		r.Cleanup(func() {
			b, err := os.ReadFile(s.logPath)
			if err == nil {
				err = os.WriteFile(keep, b, 0o644)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s: keeping the server's log: %v\n", s.name, err)
			}
		})
	}
	r.Cleanup(func() { s.Stop(); logf.Close() })
	// 90 s: under valgrind (pgbench -cgdump, s3prof -wrap) on a busy
	// host the server takes longer than 20 s to answer its first request.
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + s.API + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Fatalf("airlock serve did not come up:\n%s", s.LogTail())
}

// Stop ends the server with SIGTERM, as an operator would, and kills it if
// it has not stopped in 15 s.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
		fmt.Fprintf(os.Stderr, "%s: airlock serve did not stop on SIGTERM; killed it\n", s.name)
	}
}

// PID is the server's process ID.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// LogTail is the end of the server's log, for failure messages.
func (s *Server) LogTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// CLI runs the airlock CLI as the benchmark's agent and returns stdout.
func (s *Server) CLI(r *Runner, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Bin, args...)
	cmd.Env = append(os.Environ(), "AIRLOCK_ADDR=http://"+s.API, "AIRLOCK_TOKEN="+s.BotKey)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		r.Fatalf("airlock %s: %v\n%s", args[0], err, errb.String())
	}
	return out.String()
}

// Request asks for a grant (the benchmark's policy auto-approves it) and
// returns its ID, ending the run unless the grant is active.
func (s *Server) Request(r *Runner, target, allow, dur, reason string) string {
	out := s.CLI(r, "request", target, "--allow", allow, "--for", dur, "--reason", reason)
	f := strings.Fields(out)
	if len(f) < 2 || !strings.HasPrefix(f[0], "g_") || !strings.Contains(out, "active") {
		r.Fatalf("request did not make an active grant: %q", out)
	}
	return f[0]
}

// RecordedCalls is the number of calls the review query counts for the
// grant: proof that the gateway recorded what it forwarded.
func (s *Server) RecordedCalls(r *Runner, grantID string) (float64, bool) {
	var rows []map[string]any
	if err := json.Unmarshal([]byte(s.CLI(r, "grants", "-o", "json")), &rows); err != nil {
		return 0, false
	}
	for _, row := range rows {
		if row["grant"] == grantID {
			n, ok := row["calls"].(float64)
			return n, ok
		}
	}
	return 0, false
}

// CheckRecording compares the calls the review counts for the grant with
// the calls the benchmark made through the gateway (at least sent): the
// figures are only honest if the gateway recorded what it forwarded.
// Results may be recorded after the response, so it waits up to 10 s for
// the count to settle. ok is whether the review counts at least sent.
func (s *Server) CheckRecording(r *Runner, grantID string, sent int64) (n float64, ok bool, msg string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var found bool
		n, found = s.RecordedCalls(r, grantID)
		if !found {
			return 0, false, "could not read the grant's call count from `airlock grants`"
		}
		if n >= float64(sent) || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if n < float64(sent) {
		return n, false, fmt.Sprintf("only %.0f of the %d gateway calls are in the review (recording lost calls?)", n, sent)
	}
	return n, true, fmt.Sprintf("the review counts %.0f calls for grant %s; the benchmark made %d through the gateway", n, grantID, sent)
}
