package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestCrashRecovery kills airlock serve (SIGKILL) right after a burst of
// gateway calls, while the newest records may still be only in the log's
// journal, and checks that nothing acknowledged is lost: audit verify
// --data-dir replays the journal and verifies it, and after a restart the
// recording holds every call and the log verifies online too.
func TestCrashRecovery(t *testing.T) {
	cli := testenv.AWSCLI(t)
	up := testenv.Versity(t)
	root := []string{"AWS_ACCESS_KEY_ID=" + up.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + up.SecretAccessKey, "AWS_DEFAULT_REGION=us-east-1"}
	seed := filepath.Join(t.TempDir(), "seed")
	write(t, seed, "GET /checkout 500\n")
	mustOK(t, awsRun(t, cli, root, "--endpoint-url", up.URL, "s3", "mb", "s3://logs"), "make bucket")
	mustOK(t, awsRun(t, cli, root, "--endpoint-url", up.URL, "s3", "cp", seed, "s3://logs/app/api.log"), "seed")

	e := writeSetupWith(t, setup{awsListen: testenv.FreeAddr(t), awsEndpoint: up.URL, awsKey: up.AccessKeyID, awsSecret: up.SecretAccessKey})
	e.start(t)
	out := mustOK(t, airlock(t, e.addr, e.bot.Key, "request", "aws-prod", "--allow", "s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*",
		"--for", "10m", "--reason", "crash test"), "request")
	id := grantID(t, out)
	creds := credsEnv(t, mustOK(t, airlock(t, e.addr, e.bot.Key, "credentials", id), "credentials"))
	client := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(envValue(creds, "AWS_ENDPOINT_URL")), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(envValue(creds, "AWS_ACCESS_KEY_ID"),
			envValue(creds, "AWS_SECRET_ACCESS_KEY"), envValue(creds, "AWS_SESSION_TOKEN")),
	})

	// A burst from 8 clients; every call that succeeds was recorded
	// durably before the gateway forwarded it.
	const calls = 400
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ok int
	)
	next := make(chan int, calls)
	for i := range calls {
		next <- i
	}
	close(next)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for range 8 {
		wg.Go(func() {
			for range next {
				o, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/api.log")})
				if err != nil {
					t.Errorf("GetObject: %v", err)
					return
				}
				b, _ := io.ReadAll(o.Body)
				o.Body.Close()
				if string(b) == "GET /checkout 500\n" {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if ok != calls {
		t.Fatalf("%d of %d calls succeeded", ok, calls)
	}
	if err := e.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	e.cmd.Wait()

	data := filepath.Join(e.dir, "airlock-data")
	countRequests := func() int {
		db, err := sql.Open("sqlite", filepath.Join(data, "airlock.db")+"?_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM log_entries WHERE type = 'session.call' AND grant_id = ?`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	segs, _ := filepath.Glob(filepath.Join(data, "journal", "*.seg"))
	if len(segs) == 0 {
		t.Fatal("the killed server left no journal segment: its last records would be lost")
	}
	before := countRequests()
	if before < calls {
		t.Logf("at the kill, the database held %d of the %d requests; the rest were only in the journal", before, calls)
	}

	// Offline verification checks the journal's records in memory and
	// writes nothing: the database is as the crash left it.
	r := runCmd(t, os.Environ(), airlockBin, "audit", "verify", "--data-dir", data)
	if r.code != 0 || !strings.Contains(r.stdout, "OK") {
		t.Fatalf("audit verify --data-dir after the crash: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n := countRequests(); n != before {
		t.Fatalf("offline verify changed the database: %d requests, %d before", n, before)
	}

	// A restart ends the session left open, at its last event, and its
	// recording has every call.
	e.start(t)
	if n := countRequests(); n != calls {
		t.Fatalf("after the restart's replay the database holds %d requests, want %d", n, calls)
	}
	rec := mustOK(t, airlock(t, e.addr, e.alice.Key, "session", "show", id), "session show after the crash")
	if n := strings.Count(rec, "allowed s3:GetObject") + strings.Count(rec, "✓ s3:GetObject"); n != calls {
		t.Fatalf("the recording after the crash shows %d GetObject calls, want %d:\n%s", n, calls, firstLines(rec, 20))
	}
	if !strings.Contains(rec, "recovered") && !bytes.Contains([]byte(rec), []byte("session.ended")) {
		t.Errorf("the session left open by the crash was not ended at restart:\n%s", lastLines(rec, 5))
	}
	if out := mustOK(t, airlock(t, e.addr, e.alice.Key, "audit", "verify"), "verify after restart"); !strings.Contains(out, "OK") {
		t.Fatal(out)
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
