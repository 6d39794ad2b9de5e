package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/demo"
	"github.com/airlock-dev/airlock/internal/s3mem"
	"github.com/airlock-dev/airlock/internal/server"
)

// liveServer is a real Airlock (API, policies, log, AWS gateway) over a
// fresh data directory, with an in-process S3 upstream holding bucket
// logs, driven through the CLI's own Main.
type liveServer struct {
	t        *testing.T
	srv      *server.Server
	dataDir  string
	apiAddr  string // host:port
	awsAddr  string
	botKey   string
	aliceKey string
}

// startServer starts it. configure, if not nil, runs after Open and before
// the API serves (tests set APIPlaintext there).
func startServer(t *testing.T, configure func(*server.Server)) *liveServer {
	t.Helper()
	dir := t.TempDir()
	upKey, upSecret := "AKIAUPSTREAMTEST0001", "upstream-secret-for-tests-only-0123456789"
	up := s3mem.New(upKey, upSecret)
	up.CreateBucket("logs")
	up.Put("logs", "app/harmless.log", []byte("nothing to see\n"))
	up.Put("logs", "secret.txt", []byte("the secret\n"))
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upSrv := &http.Server{Handler: up, ReadHeaderTimeout: 10 * time.Second}
	go upSrv.Serve(upLn)
	t.Cleanup(func() { upSrv.Close() })
	t.Setenv("AWS_PROD_ACCESS_KEY_ID", upKey)
	t.Setenv("AWS_PROD_SECRET_ACCESS_KEY", upSecret)

	botKey, botSHA := authn.NewKey()
	aliceKey, aliceSHA := authn.NewKey()
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policies", "aws-prod.cedar"), []byte(demo.Policies), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "airlock.yaml")
	if err := os.WriteFile(cfgPath, []byte(demo.Config(botSHA, aliceSHA, "http://"+upLn.Addr().String())), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.Open(context.Background(), cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	gws, err := srv.StartGateways(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gws.Close)
	if configure != nil {
		configure(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return &liveServer{t: t, srv: srv, dataDir: cfg.DataDir, apiAddr: ln.Addr().String(), awsAddr: gws.Addr("aws"), botKey: botKey, aliceKey: aliceKey}
}

// run runs the CLI with env (NAME=value pairs) and returns its exit code,
// stdout and stderr.
func run(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	var out, errOut bytes.Buffer
	code := Main(context.Background(), args, &out, &errOut, func(k string) string { return vars[k] })
	return code, out.String(), errOut.String()
}

// as runs the CLI over loopback plaintext as the holder of key.
func (l *liveServer) as(key string, args ...string) (int, string, string) {
	l.t.Helper()
	return run(l.t, []string{EnvAddr + "=http://" + l.apiAddr, EnvToken + "=" + key}, args...)
}

// activeGrant has the bot request a grant its policies approve at once
// (5 minutes of reading logs/app/*) and returns its id.
func (l *liveServer) activeGrant(reason string) string {
	l.t.Helper()
	code, out, errOut := l.as(l.botKey, "request", "aws-prod", "--allow", "s3:GetObject arn:aws:s3:::logs/app/*", "--for", "5m", "--reason", reason)
	id := grantIDRE.FindString(out)
	if code != 0 || id == "" {
		l.t.Fatalf("request: exit %d: %s %s", code, out, errOut)
	}
	return id
}

// checkpoint returns the server's witness file (data_dir/checkpoint),
// waiting for it: the log writes it in the background after the first
// batch, so a test that reads it right after start could find none yet
// (TestAuditVerifyWitnessOfAnotherLog failed so once under load).
func (l *liveServer) checkpoint() []byte {
	l.t.Helper()
	path := filepath.Join(l.dataDir, server.WitnessFile)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile(path)
		if err == nil && len(b) > 0 {
			return b
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("no checkpoint in %s after 15 s: %v", l.dataDir, err)
		}
	}
}
