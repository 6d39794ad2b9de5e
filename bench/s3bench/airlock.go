package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// server is a running `airlock serve` with the AWS gateway on, in front of
// the benchmark's versitygw.
type server struct {
	bin, dir, api string
	botKey        string
	cmd           *exec.Cmd
	logPath       string
}

// grantCreds is the part of `airlock credentials --format json` the
// benchmark needs.
type grantCreds struct {
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	SessionToken    string `json:"session_token"`
	Endpoint        *struct {
		URL    string `json:"url"`
		Region string `json:"region"`
	} `json:"endpoint"`
}

const benchPolicy = `@id("s3bench")
@approval("auto")
permit (principal in Group::"bench-team", action in [Action::"s3:GetObject", Action::"s3:PutObject", Action::"s3:ListBucket"], resource == Target::"aws-bench")
when { context.resource like "arn:aws:s3:::bench/*" };
`

// buildAirlock compiles cmd/airlock into dir, unless bin names a binary
// already built.
func buildAirlock(r *runner, bin, dir string) string {
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

// startServer writes a configuration with one agent, one aws target whose
// endpoint is s3, and a policy auto-approving the benchmark's scope; then
// starts `airlock serve` and waits for its API.
func startServer(r *runner, bin string, s3 *testenv.S3) *server {
	s := &server{bin: bin, dir: r.TempDir()}
	var key struct {
		Key string `json:"key"`
		SHA string `json:"key_sha256"`
	}
	if err := json.Unmarshal([]byte(s.cli(r, "keygen", "-o", "json")), &key); err != nil {
		r.Fatalf("keygen output: %v", err)
	}
	s.botKey = key.Key
	s.api = freeAddr(r)
	gw := freeAddr(r)
	if err := os.MkdirAll(filepath.Join(s.dir, "policies"), 0o755); err != nil {
		r.Fatal(err)
	}
	write(r, filepath.Join(s.dir, "policies", "bench.cedar"), benchPolicy)
	cfg := filepath.Join(s.dir, "airlock.yaml")
	write(r, cfg, fmt.Sprintf(`data_dir: ./data
listen:
  api: %s
  aws: %s
identities:
  - name: bench-bot
    kind: agent
    owner: bench-team
    key_sha256: "%s"
targets:
  - name: aws-bench
    kind: aws
    account: "111122223333"
    region: us-east-1
    endpoint: %s
    credentials:
      access_key_id_env: AWS_BENCH_ACCESS_KEY_ID
      secret_access_key_env: AWS_BENCH_SECRET_ACCESS_KEY
policies: ./policies
`, s.api, gw, key.SHA, s3.URL))

	s.logPath = filepath.Join(s.dir, "serve.log")
	logf, err := os.Create(s.logPath)
	if err != nil {
		r.Fatal(err)
	}
	s.cmd = exec.Command(bin, "serve", "--config", cfg)
	s.cmd.Dir = s.dir
	s.cmd.Env = append(os.Environ(), "AWS_BENCH_ACCESS_KEY_ID="+s3.AccessKeyID, "AWS_BENCH_SECRET_ACCESS_KEY="+s3.SecretAccessKey)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		r.Fatalf("starting airlock serve: %v", err)
	}
	r.Cleanup(func() { s.stop(); logf.Close() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + s.api + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Fatalf("airlock serve did not come up:\n%s", s.logTail())
	return nil
}

// stop ends the server with SIGTERM, as an operator would, and kills it if
// it has not stopped in 15 s.
func (s *server) stop() {
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
		fmt.Fprintln(os.Stderr, "s3bench: airlock serve did not stop on SIGTERM; killed it")
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// logTail is the end of the server's log, for failure messages.
func (s *server) logTail() string {
	b, _ := os.ReadFile(s.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// cli runs the airlock CLI as the benchmark's agent and returns stdout.
func (s *server) cli(r *runner, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Env = append(os.Environ(), "AIRLOCK_ADDR=http://"+s.api, "AIRLOCK_TOKEN="+s.botKey)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		r.Fatalf("airlock %s: %v\n%s", args[0], err, errb.String())
	}
	return out.String()
}

// grant requests the benchmark's scope (auto-approved by policy) and
// returns the grant's ID and credentials.
func (s *server) grant(r *runner) (string, grantCreds) {
	out := s.cli(r, "request", "aws-bench", "--allow", "s3:GetObject,s3:PutObject,s3:ListBucket arn:aws:s3:::bench/*",
		"--for", "1h", "--reason", "s3bench: gateway throughput against the same upstream")
	f := strings.Fields(out)
	if len(f) < 2 || !strings.HasPrefix(f[0], "g_") || !strings.Contains(out, "active") {
		r.Fatalf("request did not make an active grant: %q", out)
	}
	var cr grantCreds
	if err := json.Unmarshal([]byte(s.cli(r, "credentials", f[0], "--format", "json")), &cr); err != nil {
		r.Fatalf("credentials output: %v", err)
	}
	if cr.Endpoint == nil || cr.Endpoint.URL == "" {
		r.Fatalf("credentials name no gateway endpoint; is the AWS gateway on?\n%s", s.logTail())
	}
	return f[0], cr
}

// recordedCalls is the number of calls the review query counts for the
// grant: proof that the gateway recorded what it forwarded.
func (s *server) recordedCalls(r *runner, grantID string) (float64, bool) {
	var rows []map[string]any
	if err := json.Unmarshal([]byte(s.cli(r, "grants", "-o", "json")), &rows); err != nil {
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

func freeAddr(r *runner) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func write(r *runner, path, s string) {
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		r.Fatal(err)
	}
}
