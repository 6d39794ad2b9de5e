package replicas

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestGrantAcrossReplicas: three replicas on one database. A grant
// requested on the first is approved on the second and used through the
// third's gateways (S3 and PostgreSQL); revoking it on the first cuts the
// third's open S3 transfer and open PostgreSQL session within a second.
// The review query and audit verify answer the same on every replica.
func TestGrantAcrossReplicas(t *testing.T) {
	c := newCluster(t, testenv.PostgresDSN(t), 3)
	r0, r1, r2 := c.replicas[0], c.replicas[1], c.replicas[2]
	big := make([]byte, 48<<20)
	rand.Read(big)
	c.seedS3(t, map[string][]byte{"app/a.log": []byte("GET /checkout 500\n"), "app/big.bin": big})
	ctx := context.Background()

	// S3: requested on r0, approved on r1, used through r2.
	s3ID := grantID(t, mustOK(t, c.cli(t, r0, c.bot, "request", "aws-prod", "--allow", "s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*",
		"--for", "10m", "--reason", "triage across replicas"), "request on r0"))
	if out := mustOK(t, c.cli(t, r1, c.alice, "approve", s3ID), "approve on r1"); !strings.Contains(out, "active") {
		t.Fatalf("approve on r1: %s", out)
	}
	s3Creds := c.creds(t, r2, s3ID)
	if s3Creds["AWS_ENDPOINT_URL"] != "http://"+r2.aws {
		t.Fatalf("credentials from r2 name endpoint %q, want r2's %s", s3Creds["AWS_ENDPOINT_URL"], r2.aws)
	}
	cl := grantS3(s3Creds)
	got, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a.log")})
	if err != nil {
		t.Fatalf("GET through r2: %v\nr2: %s", err, r2.stderr)
	}
	if b, _ := io.ReadAll(got.Body); string(b) != "GET /checkout 500\n" {
		t.Fatalf("GET through r2: %q", b)
	}
	got.Body.Close()

	// PostgreSQL: requested on r0, approved on r1, a session through r2.
	pgID := grantID(t, mustOK(t, c.cli(t, r0, c.bot, "request", "orders-db", "--allow", "pg:select "+c.ordersDB+".public.customers",
		"--for", "10m", "--reason", "count customers across replicas"), "request pg on r0"))
	mustOK(t, c.cli(t, r1, c.bob, "approve", pgID), "approve pg on r1")
	pgCreds := c.creds(t, r2, pgID)
	if pgCreds["PGPORT"] != strings.Split(r2.pg, ":")[1] {
		t.Fatalf("pg credentials from r2 name port %s, want r2's %s", pgCreds["PGPORT"], r2.pg)
	}
	conn, err := grantPG(ctx, pgCreds)
	if err != nil {
		t.Fatalf("connecting through r2: %v\nr2: %s", err, r2.stderr)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "select count(*) from customers").Scan(&n); err != nil || n != 3 {
		t.Fatalf("select through r2: %d, %v", n, err)
	}

	// And with psql itself.
	psql := exec.Command(testenv.Tool(t, "psql", "install it with: apt-get install postgresql-client"), "-X", "-A", "-t", "-c", "select count(*) from customers")
	psql.Env = os.Environ()
	for k, v := range pgCreds {
		psql.Env = append(psql.Env, k+"="+v)
	}
	if out, err := psql.Output(); err != nil || strings.TrimSpace(string(out)) != "3" {
		t.Fatalf("psql through r2: %q, %v", out, err)
	}

	// Open work on r2: a 48 MiB download read slowly, and a statement that
	// would run 30 s.
	transfer, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/big.bin")})
	if err != nil {
		t.Fatal(err)
	}
	defer transfer.Body.Close()
	if _, err := io.ReadFull(transfer.Body, make([]byte, 1<<20)); err != nil {
		t.Fatalf("reading the transfer's first MiB: %v", err)
	}
	sleepDone := make(chan error, 1)
	go func() {
		_, err := conn.Exec(ctx, "select pg_sleep(30)")
		sleepDone <- err
	}()
	time.Sleep(200 * time.Millisecond) // let the statement reach the upstream

	// Revoke both on r0.
	mustOK(t, c.cli(t, r0, c.alice, "revoke", pgID, "--reason", "incident over"), "revoke pg on r0")
	revoked := time.Now()
	select {
	case err := <-sleepDone:
		if err == nil {
			t.Fatal("the statement on r2 finished normally after the revoke")
		}
		d := time.Since(revoked)
		if d > time.Second {
			t.Errorf("r2's PostgreSQL session was cut %v after the revoke on r0, want within 1s", d)
		}
		t.Logf("r2's PostgreSQL session cut %v after the revoke on r0 returned (%v)", d.Round(time.Millisecond), err)
	case <-time.After(5 * time.Second):
		t.Fatalf("r2's PostgreSQL session still running 5s after the revoke on r0\nr2: %s", r2.stderr)
	}

	mustOK(t, c.cli(t, r0, c.alice, "revoke", s3ID, "--reason", "incident over"), "revoke s3 on r0")
	// Within a second of the revoke r2 must have cut the transfer: what the
	// socket buffers still hold drains, then the body ends short.
	time.Sleep(time.Second)
	rest, err := io.Copy(io.Discard, transfer.Body)
	if err == nil && 1<<20+rest == int64(len(big)) {
		t.Fatalf("the open transfer on r2 completed after the revoke on r0")
	}
	if err == nil {
		err = errors.New("short body")
	}
	t.Logf("transfer cut after %d of %d bytes (%v)", 1<<20+rest, len(big), err)
	if _, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a.log")}); err == nil {
		t.Fatal("a new GET through r2 worked after the revoke on r0")
	}
	if c2, err := grantPG(ctx, pgCreds); err == nil {
		c2.Close(ctx)
		t.Fatal("a new PostgreSQL session through r2 opened after the revoke on r0")
	}

	// The review query and the log's verification from every replica.
	day := time.Now().UTC().Format("2006-01-02")
	var first, firstVerify string
	for _, r := range c.replicas {
		rows := mustOK(t, c.cli(t, r, c.alice, "grants", "--account", "111122223333", "--day", day, "-o", "json"), "grants on "+r.name)
		if !strings.Contains(rows, s3ID) || !strings.Contains(rows, pgID) {
			t.Fatalf("the review on %s lacks the grants:\n%s", r.name, rows)
		}
		// The same answer but for how long it took.
		v := checkedIn.ReplaceAllString(mustOK(t, c.cli(t, r, c.alice, "audit", "verify"), "audit verify on "+r.name), "")
		if first == "" {
			first, firstVerify = rows, v
			continue
		}
		if !bytes.Equal([]byte(rows), []byte(first)) {
			t.Errorf("the review on %s differs from r0's:\n%s\nvs\n%s", r.name, rows, first)
		}
		if v != firstVerify {
			t.Errorf("audit verify on %s differs from r0's:\n%s\nvs\n%s", r.name, v, firstVerify)
		}
	}
}

var checkedIn = regexp.MustCompile(`, checked in [0-9.]+[µnm]?s`)
