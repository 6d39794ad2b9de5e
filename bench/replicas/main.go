// Command replicas measures what a second `airlock serve` replica buys: the
// same load (S3 GetObject of 1 KiB from 8 AWS SDK clients, and `pgbench -S`
// with 8 clients) sent through one replica, and split evenly over two
// replicas of one PostgreSQL store, phases alternating. It prints each
// path's throughput, the two/one ratio, and the replicas' CPU per call (the
// airlock processes' user+system time over the calls they served).
//
// Both replicas run on this machine, so on a small machine they share its
// cores with the clients, versitygw and PostgreSQL: the ratio shows what the
// replicas' own coordination costs (shared log, shared store) more than
// what a second machine would add. Quote it with the load average.
//
//	go run ./bench/replicas [-phase 5s] [-rounds 3] [-clients 8]
//
// Needs versitygw, pgbench and PostgreSQL (AIRLOCK_TEST_PG_DSN, default
// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
	"github.com/airlock-dev/airlock/internal/testenv"
)

type options struct {
	phase   time.Duration
	rounds  int
	clients int
	airlock string
}

func main() {
	var o options
	flag.DurationVar(&o.phase, "phase", 5*time.Second, "length of one measured phase")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of (one replica, two replicas) per workload")
	flag.IntVar(&o.clients, "clients", 8, "concurrent clients in every phase")
	flag.StringVar(&o.airlock, "airlock", "", "a built airlock binary (default: build ./cmd/airlock)")
	flag.Parse()
	os.Exit(benchkit.Main("replicas", func(ctx context.Context, r *benchkit.Runner) { bench(ctx, r, o) }))
}

// replica is one `airlock serve` process.
type replica struct {
	api, aws, pg string
	cmd          *exec.Cmd
}

func bench(ctx context.Context, r *benchkit.Runner, o options) {
	os.Setenv("VGW_KEEP_ALIVE", "true")
	up := testenv.Versity(r)
	bin := benchkit.BuildAirlock(r, o.airlock, r.TempDir())
	dbs := benchkit.NewPGDatabases(ctx, r, "cluster_bench_")
	pgcfg, pgDB, admin := dbs.Config, dbs.Upstream, dbs.Admin
	initdb := exec.CommandContext(ctx, "pgbench", "-i", "-q", "-I", "dtGvp", "-s", "2", "-h", pgcfg.Host, "-p", strconv.Itoa(int(pgcfg.Port)), "-U", admin, pgDB)
	if out, err := initdb.CombinedOutput(); err != nil {
		r.Fatalf("pgbench -i: %v\n%s", err, out)
	}

	s := benchkit.NewServer(r, bin)
	s.WritePolicy(r, "bench.cedar", `@id("bench-s3")
@approval("auto")
permit (principal in Group::"bench-team", action == Action::"s3:GetObject", resource == Target::"aws-bench");
@id("bench-pg")
@approval("auto")
permit (principal in Group::"bench-team", action == Action::"pg:select", resource == Target::"pg-bench");
`)
	storeDSN, upstream := dbs.StoreDSN(), dbs.UpstreamDSN()
	cfg := filepath.Join(s.Dir, "airlock.yaml")
	benchkit.Write(r, cfg, fmt.Sprintf(`data_dir: ./data
store: %s
keys:
  credential_key_file: ./keys/credential.key
  log_signing_key_file: ./keys/log-signing.key
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
  - name: pg-bench
    kind: postgres
    account: "111122223333"
    upstream: %s
    max_sessions_per_grant: none   # every client and idle connection is one grant's
policies: ./policies
`, storeDSN, s.BotSHA, up.URL, upstream))
	s.CLI(r, "server-keys", filepath.Join(s.Dir, "keys"))
	env := append(os.Environ(), "AWS_BENCH_ACCESS_KEY_ID="+up.AccessKeyID, "AWS_BENCH_SECRET_ACCESS_KEY="+up.SecretAccessKey)
	var reps []*replica
	for i := range 2 {
		rp := &replica{api: benchkit.FreeAddr(r), aws: benchkit.FreeAddr(r), pg: benchkit.FreeAddr(r)}
		if i == 0 {
			rp.api = s.API // the CLI's
		}
		logf, err := os.Create(filepath.Join(s.Dir, fmt.Sprintf("serve-%d.log", i)))
		if err != nil {
			r.Fatal(err)
		}
		rp.cmd = exec.Command(bin, "serve", "--config", cfg, "--listen-api", rp.api, "--listen-aws", rp.aws, "--listen-postgres", rp.pg,
			"--data-dir", filepath.Join(s.Dir, fmt.Sprintf("data-%d", i)))
		rp.cmd.Dir, rp.cmd.Env, rp.cmd.Stdout, rp.cmd.Stderr = s.Dir, env, logf, logf
		if err := rp.cmd.Start(); err != nil {
			r.Fatal(err)
		}
		r.Cleanup(func() {
			rp.cmd.Process.Signal(syscall.SIGTERM)
			rp.cmd.Wait()
			logf.Close()
		})
		waitReady(r, rp.api)
		reps = append(reps, rp)
	}
	benchkit.Progress("two replicas ready on one PostgreSQL store")

	// S3: a 1 KiB object per client.
	root := s3Client(up.URL, up.AccessKeyID, up.SecretAccessKey, "")
	if _, err := root.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bench")}); err != nil {
		r.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 1024)
	for c := range o.clients {
		if _, err := root.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bench"), Key: aws.String(fmt.Sprintf("k/%d", c)), Body: bytes.NewReader(body)}); err != nil {
			r.Fatal(err)
		}
	}
	s3ID := s.Request(r, "aws-bench", "s3:GetObject arn:aws:s3:::bench/*", "1h", "bench/replicas")
	var cr struct {
		AccessKeyID     string `json:"access_key_id"`
		SecretAccessKey string `json:"secret_access_key"`
		SessionToken    string `json:"session_token"`
	}
	if err := json.Unmarshal([]byte(s.CLI(r, "credentials", s3ID, "--format", "json")), &cr); err != nil {
		r.Fatal(err)
	}
	clients := make([][]*s3.Client, 2) // per replica
	for i, rp := range reps {
		for range o.clients {
			clients[i] = append(clients[i], s3Client("http://"+rp.aws, cr.AccessKeyID, cr.SecretAccessKey, cr.SessionToken))
		}
	}
	get := func(n int) (float64, float64) {
		var calls atomic.Int64
		cpu0 := cpu(r, reps)
		pctx, cancel := context.WithTimeout(ctx, o.phase)
		defer cancel()
		var wg sync.WaitGroup
		for c := range o.clients {
			cl := clients[c%n][c]
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := aws.String(fmt.Sprintf("k/%d", c))
				buf := make([]byte, 2048)
				for pctx.Err() == nil {
					out, err := cl.GetObject(pctx, &s3.GetObjectInput{Bucket: aws.String("bench"), Key: key})
					if err != nil {
						if pctx.Err() == nil {
							r.Fatalf("GET through the gateway: %v", err)
						}
						return
					}
					for {
						if _, err := out.Body.Read(buf); err != nil {
							break
						}
					}
					out.Body.Close()
					calls.Add(1)
				}
			}()
		}
		wg.Wait()
		return float64(calls.Load()) / o.phase.Seconds(), float64(cpu(r, reps)-cpu0) / float64(calls.Load()) / 1e3
	}

	// pgbench -S with the grant's credentials, the clients split over the
	// replicas' gateways.
	pgID := s.Request(r, "pg-bench", "pg:select "+pgDB+".public.*", "1h", "bench/replicas")
	var pc struct {
		AccessKeyID     string `json:"access_key_id"`
		SecretAccessKey string `json:"secret_access_key"`
	}
	if err := json.Unmarshal([]byte(s.CLI(r, "credentials", pgID, "--format", "json")), &pc); err != nil {
		r.Fatal(err)
	}
	tpsRe := regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)
	pgb := func(n int) (float64, float64) {
		cpu0 := cpu(r, reps)
		var wg sync.WaitGroup
		tps := make([]float64, n)
		for i := range n {
			host, port, _ := strings.Cut(reps[i].pg, ":")
			c := o.clients / n
			cmd := exec.CommandContext(ctx, "pgbench", "-n", "-S", "-M", "prepared", "-c", strconv.Itoa(c), "-j", strconv.Itoa(max(1, c/4)),
				"-T", strconv.Itoa(int(o.phase.Seconds())), "-h", host, "-p", port, "-U", pc.AccessKeyID, pgDB)
			cmd.Env = append(os.Environ(), "PGPASSWORD="+pc.SecretAccessKey, "PGSSLMODE=disable")
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, err := cmd.CombinedOutput()
				m := tpsRe.FindSubmatch(out)
				if err != nil || m == nil {
					r.Fatalf("pgbench through replica %d: %v\n%s", i, err, out)
				}
				tps[i], _ = strconv.ParseFloat(string(m[1]), 64)
			}()
		}
		wg.Wait()
		var sum float64
		for _, t := range tps {
			sum += t
		}
		return sum, float64(cpu(r, reps)-cpu0) / (sum * o.phase.Seconds()) / 1e3
	}

	type row struct{ one, two, cpuOne, cpuTwo []float64 }
	results := map[string]*row{"S3 GET 1 KiB (req/s)": {}, "pgbench -S prepared (tps)": {}}
	order := []string{"S3 GET 1 KiB (req/s)", "pgbench -S prepared (tps)"}
	for round := range o.rounds {
		for _, w := range order {
			f := get
			if strings.HasPrefix(w, "pgbench") {
				f = pgb
			}
			rw := results[w]
			a, ca := f(1)
			b, cb := f(2)
			rw.one, rw.cpuOne = append(rw.one, a), append(rw.cpuOne, ca)
			rw.two, rw.cpuTwo = append(rw.two, b), append(rw.cpuTwo, cb)
			benchkit.Progress("round %d %s: one replica %.0f (%.0f µs CPU/call), two %.0f (%.0f µs CPU/call)", round+1, w, a, ca, b, cb)
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\nbench/replicas: %d clients, %d rounds of %v, load average %s", o.clients, o.rounds, o.phase, load)
	fmt.Printf("%-28s %12s %12s %8s %16s %16s\n", "workload (median)", "one replica", "two", "two/one", "CPU/call one", "CPU/call two")
	for _, w := range order {
		rw := results[w]
		one, two := benchkit.Median(rw.one), benchkit.Median(rw.two)
		fmt.Printf("%-28s %12.0f %12.0f %8.2f %14.0fµs %14.0fµs\n", w, one, two, two/one, benchkit.Median(rw.cpuOne), benchkit.Median(rw.cpuTwo))
	}
}

// cpu is the replicas' user+system CPU so far.
func cpu(r *benchkit.Runner, reps []*replica) time.Duration {
	var d time.Duration
	for _, rp := range reps {
		t, err := benchkit.CPUTime(rp.cmd.Process.Pid)
		if err != nil {
			r.Fatalf("CPU time of a replica: %v", err)
		}
		d += t
	}
	return d
}

func waitReady(r *benchkit.Runner, api string) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + api + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
	}
	r.Fatalf("replica on %s not ready", api)
}

func s3Client(endpoint, key, secret, token string) *s3.Client {
	return s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(key, secret, token),
		Retryer:     aws.NopRetryer{},
		HTTPClient:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}},
		DisableLogOutputChecksumValidationSkipped: true,
	})
}
