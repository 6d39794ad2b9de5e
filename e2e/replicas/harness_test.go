// Package replicas drives several real `airlock serve` processes sharing
// one PostgreSQL store, as an operator runs them behind a load balancer:
// one configuration file, each replica told its own addresses and data
// directory with --listen-api, --listen-aws, --listen-postgres and
// --data-dir, the shared keys provisioned from files (`airlock
// server-keys`). Each test gets its own store database (created and
// dropped), versitygw as the S3 upstream and a database of its own as the
// PostgreSQL upstream, all on loopback.
package replicas

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/testenv"
)

var airlockBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "airlock-replicas-bin-")
	if err != nil {
		panic(err)
	}
	airlockBin = filepath.Join(dir, "airlock")
	build := exec.Command("go", "build", "-o", airlockBin, "../../cmd/airlock")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building airlock:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one CLI invocation's outcome.
type result struct {
	stdout, stderr string
	code           int
}

// run runs the airlock CLI with env added to this process's environment.
func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, airlockBin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running airlock %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

func mustOK(t *testing.T, r result, what string) string {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", what, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// keypair is an identity's API key and its hash.
type keypair struct{ Key, SHA string }

func keygen(t *testing.T) keypair {
	t.Helper()
	var k struct {
		Key string `json:"key"`
		SHA string `json:"key_sha256"`
	}
	if err := json.Unmarshal([]byte(mustOK(t, run(t, nil, "keygen", "-o", "json"), "keygen")), &k); err != nil {
		t.Fatal(err)
	}
	return keypair{k.Key, k.SHA}
}

// database creates a database named cluster_<what>_<random> on the server
// at adminDSN, dropped when t ends with the grant roles made for it, and
// returns its DSN (as adminDSN's user) and name.
func database(t *testing.T, adminDSN, what string) (dsn, name string) {
	t.Helper()
	ctx := context.Background()
	name = "cluster_" + what + "_" + randHex(4)
	su, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		t.Fatalf("connecting to %s: %v", adminDSN, err)
	}
	defer su.Close(ctx)
	if _, err := su.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		su, err := pgx.Connect(ctx, adminDSN)
		if err != nil {
			return // a private cluster already stopped takes its databases with it
		}
		defer su.Close(ctx)
		if _, err := su.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("dropping %s: %v", name, err)
			return
		}
		// The replicas' grant roles for it are the cluster's, not the
		// database's: a grant still active when the replicas stopped
		// leaves its role behind.
		if err := testenv.DropGrantRolesOfDatabase(ctx, adminDSN, name); err != nil {
			t.Errorf("dropping the grant roles of %s: %v", name, err)
		}
	})
	u, err := url.Parse(adminDSN)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String(), name
}

// syncBuffer collects a subprocess's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cluster is one configuration file, its store database and upstreams, and
// the replicas started from it.
type cluster struct {
	t       *testing.T
	dir     string
	cfg     string
	storeDB string // the store database's name
	s3      *testenv.S3
	// orders is the PostgreSQL target's upstream database and its admin
	// role (the superuser's DSN for it: the gateway needs CREATEROLE).
	ordersDSN, ordersDB string
	bot, alice, bob     keypair
	replicas            []*replica
	serveEnv            []string
}

// replica is one `airlock serve` process.
type replica struct {
	name         string
	api, aws, pg string // host:port each
	dataDir      string
	cmd          *exec.Cmd
	stderr       *syncBuffer
	done         chan struct{}
}

// URL is the replica's API for AIRLOCK_ADDR.
func (r *replica) URL() string { return "http://" + r.api }

const policy = `@id("sre-s3-with-approval")
@approval("human")
permit (principal in Group::"sre-team", action in [Action::"s3:GetObject", Action::"s3:ListBucket", Action::"s3:PutObject"], resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/app/*" && context.duration_seconds <= 3600 };

@id("sre-orders-reads-with-approval")
@approval("human")
permit (principal in Group::"sre-team", action == Action::"pg:select", resource == Target::"orders-db")
when { context.duration_seconds <= 3600 };

@id("sre-orders-inserts-auto")
@approval("auto")
permit (principal in Group::"sre-team", action == Action::"pg:insert", resource == Target::"orders-db")
when { context.duration_seconds <= 3600 };

@id("sre-s3-auto-uploads")
@approval("auto")
permit (principal in Group::"sre-team", action in [Action::"s3:PutObject", Action::"s3:GetObject"], resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/burst/*" && context.duration_seconds <= 3600 };

@id("leads-approve-s3")
permit (principal in Group::"sre-leads", action == Action::"approve", resource == Target::"aws-prod");

@id("leads-approve-orders")
permit (principal in Group::"sre-leads", action == Action::"approve", resource == Target::"orders-db");
`

// newCluster writes the shared configuration (store on storeAdminDSN's
// server, a fresh database), generates the shared keys once with `airlock
// server-keys`, and starts n replicas, with env added to their environment.
func newCluster(t *testing.T, storeAdminDSN string, n int, env ...string) *cluster {
	t.Helper()
	return newClusterListen(t, storeAdminDSN, n, "", env...)
}

// newClusterListen is newCluster with keys added under the file's listen
// (indented by two spaces, e.g. "  public:\n    aws: …\n").
func newClusterListen(t *testing.T, storeAdminDSN string, n int, listen string, env ...string) *cluster {
	t.Helper()
	pgAdmin := testenv.PostgresDSN(t)
	c := &cluster{t: t, dir: t.TempDir(), s3: testenv.Versity(t), bot: keygen(t), alice: keygen(t), bob: keygen(t)}
	var storeDSN string
	storeDSN, c.storeDB = database(t, storeAdminDSN, "store")
	c.ordersDSN, c.ordersDB = database(t, pgAdmin, "orders")
	c.seedOrders(t)
	// A sweep every second, and a replica gone for 5 s is dead: its
	// sessions end within about 6 s (the defaults are 15 s and 30 s).
	c.serveEnv = []string{"AWS_PROD_ACCESS_KEY_ID=" + c.s3.AccessKeyID, "AWS_PROD_SECRET_ACCESS_KEY=" + c.s3.SecretAccessKey,
		"AIRLOCK_SESSION_SWEEP=1s", "AIRLOCK_REPLICA_GRACE=5s"}
	c.serveEnv = append(c.serveEnv, env...) // the last of a duplicate wins
	if err := os.MkdirAll(filepath.Join(c.dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, "policies", "all.cedar"), []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	// The keys every replica shares, made once (docs/replicas.md).
	mustOK(t, run(t, nil, "server-keys", filepath.Join(c.dir, "keys")), "server-keys")
	c.cfg = filepath.Join(c.dir, "airlock.yaml")
	yaml := fmt.Sprintf(`data_dir: ./airlock-data
store: %s
keys:
  credential_key_file: ./keys/credential.key
  log_signing_key_file: ./keys/log-signing.key
listen:
  api: 127.0.0.1:8700
  aws: 127.0.0.1:8701
  postgres: 127.0.0.1:8702
%sidentities:
  - name: log-triage-bot
    kind: agent
    owner: sre-team
    key_sha256: "%s"
  - name: alice
    kind: human
    groups: [sre-leads]
    key_sha256: "%s"
  - name: bob
    kind: human
    groups: [sre-leads]
    key_sha256: "%s"
targets:
  - name: aws-prod
    kind: aws
    account: "111122223333"
    region: us-east-1
    endpoint: %s
    credentials:
      access_key_id_env: AWS_PROD_ACCESS_KEY_ID
      secret_access_key_env: AWS_PROD_SECRET_ACCESS_KEY
  - name: orders-db
    kind: postgres
    account: "111122223333"
    upstream: %s
policies: ./policies
`, storeDSN, listen, c.bot.SHA, c.alice.SHA, c.bob.SHA, c.s3.URL, c.ordersDSN)
	if err := os.WriteFile(c.cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		c.start(t, fmt.Sprintf("r%d", i))
	}
	return c
}

// seedOrders makes the PostgreSQL target's tables.
func (c *cluster) seedOrders(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.ordersDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []string{
		"CREATE TABLE customers (id int PRIMARY KEY, name text)",
		"INSERT INTO customers VALUES (1, 'ada'), (2, 'grace'), (3, 'edsger')",
		"CREATE TABLE events (n int PRIMARY KEY, note text)",
		"GRANT ALL ON ALL TABLES IN SCHEMA public TO PUBLIC",
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// start starts a replica on fresh loopback ports with its own data_dir, and
// waits until it reports ready.
func (c *cluster) start(t *testing.T, name string) *replica {
	t.Helper()
	r := &replica{name: name, api: testenv.FreeAddr(t), aws: testenv.FreeAddr(t), pg: testenv.FreeAddr(t),
		dataDir: filepath.Join(c.dir, "data-"+name), stderr: &syncBuffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(airlockBin, "serve", "--config", c.cfg,
		"--listen-api", r.api, "--listen-aws", r.aws, "--listen-postgres", r.pg, "--data-dir", r.dataDir)
	r.cmd.Dir = c.dir
	r.cmd.Env = append(os.Environ(), c.serveEnv...)
	r.cmd.Stderr = r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() { r.stop(t) })
	c.replicas = append(c.replicas, r)
	if !r.waitReady(20 * time.Second) {
		t.Fatalf("replica %s did not become ready; stderr:\n%s", name, r.stderr)
	}
	return r
}

// ready probes /readyz once.
func (r *replica) ready() (int, string) {
	cl := http.Client{Timeout: 3 * time.Second}
	resp, err := cl.Get(r.URL() + "/readyz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, strings.TrimSpace(b.String())
}

// waitReady polls /readyz until 200, the process exits, or max passes.
func (r *replica) waitReady(max time.Duration) bool {
	for deadline := time.Now().Add(max); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-r.done:
			return false
		default:
		}
		if code, _ := r.ready(); code == 200 {
			return true
		}
	}
	return false
}

// kill is kill -9.
func (r *replica) kill() {
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

func (r *replica) stop(t *testing.T) {
	select {
	case <-r.done:
		return
	default:
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(15 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
		t.Errorf("replica %s did not stop on SIGTERM", r.name)
	}
}

// cli runs the airlock CLI against replica r as the identity with key.
func (c *cluster) cli(t *testing.T, r *replica, key keypair, args ...string) result {
	t.Helper()
	return run(t, []string{"AIRLOCK_ADDR=" + r.URL(), "AIRLOCK_TOKEN=" + key.Key}, args...)
}

// grantID is the first field of `airlock request`'s output.
func grantID(t *testing.T, out string) string {
	t.Helper()
	f := strings.Fields(out)
	if len(f) < 2 || !strings.HasPrefix(f[0], "g_") {
		t.Fatalf("no grant id in %q", out)
	}
	return f[0]
}

// creds is `airlock credentials --format env` parsed.
func (c *cluster) creds(t *testing.T, r *replica, id string) map[string]string {
	t.Helper()
	out := mustOK(t, c.cli(t, r, c.bot, "credentials", id, "--format", "env"), "credentials")
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if kv, ok := strings.CutPrefix(line, "export "); ok {
			k, v, _ := strings.Cut(kv, "=")
			if uq, err := unquote(v); err == nil {
				v = uq
			}
			m[k] = v
		}
	}
	return m
}

// unquote undoes the shell quoting of `credentials --format env`.
func unquote(v string) (string, error) {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return strings.ReplaceAll(v[1:len(v)-1], `'\''`, `'`), nil
	}
	return v, nil
}

// s3Client is an S3 client of endpoint with the given keys, path-style, no
// retries (a refused call must show as refused).
func s3Client(endpoint, key, secret, token string) *s3.Client {
	return s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(key, secret, token),
		Retryer:     aws.NopRetryer{},
		HTTPClient:  &http.Client{Timeout: 30 * time.Second},
		DisableLogOutputChecksumValidationSkipped: true,
	})
}

// grantS3 is an S3 client with a grant's credentials, on the endpoint they
// name.
func grantS3(m map[string]string) *s3.Client {
	return s3Client(m["AWS_ENDPOINT_URL"], m["AWS_ACCESS_KEY_ID"], m["AWS_SECRET_ACCESS_KEY"], m["AWS_SESSION_TOKEN"])
}

// grantPG connects to the PostgreSQL gateway with a grant's credentials.
func grantPG(ctx context.Context, m map[string]string) (*pgx.Conn, error) {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(m["PGUSER"], m["PGPASSWORD"]),
		Host: net.JoinHostPort(m["PGHOST"], m["PGPORT"]), Path: "/" + m["PGDATABASE"], RawQuery: "sslmode=" + m["PGSSLMODE"]}
	return pgx.Connect(ctx, u.String())
}

// seedS3 makes bucket logs with objects through the upstream's root keys.
func (c *cluster) seedS3(t *testing.T, objects map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	root := s3Client(c.s3.URL, c.s3.AccessKeyID, c.s3.SecretAccessKey, "")
	if _, err := root.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("logs")}); err != nil {
		t.Fatal(err)
	}
	for k, b := range objects {
		if _, err := root.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String(k), Body: bytes.NewReader(b)}); err != nil {
			t.Fatal(err)
		}
	}
}
