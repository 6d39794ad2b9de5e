package replicas

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestVerifyWhileBusyElsewhere: sessions open and busy on r1 and r2 (S3
// PUTs and SQL inserts through each). A session's stored summary is
// written lazily by the replica serving it, so a read on r0 must have r1
// and r2 write theirs first: `audit verify` passes on every replica while
// the calls go on, and once they pause (the sessions still open) the review
// query and `audit verify` answer the same on r0, r1 and r2, and the review
// counts every call a client saw succeed.
func TestVerifyWhileBusyElsewhere(t *testing.T) {
	c := newCluster(t, testenv.PostgresDSN(t), 3)
	r0 := c.replicas[0]
	c.seedS3(t, map[string][]byte{"burst/seed.txt": []byte("seed")})
	ctx := context.Background()

	putID := grantID(t, mustOK(t, c.cli(t, r0, c.bot, "request", "aws-prod", "--allow", "s3:PutObject,s3:GetObject arn:aws:s3:::logs/burst/*",
		"--for", "10m", "--reason", "uploads through two replicas"), "request s3"))
	insID := grantID(t, mustOK(t, c.cli(t, r0, c.bot, "request", "orders-db", "--allow", "pg:insert "+c.ordersDB+".public.events",
		"--for", "10m", "--reason", "inserts through two replicas"), "request pg"))

	// One S3 client and one SQL session on each of r1 and r2, calling until
	// told to pause; the sessions stay open after.
	var pause atomic.Bool
	var calls atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i, r := range c.replicas[1:] {
		cl := grantS3(c.creds(t, r, putID))
		conn, err := grantPG(ctx, c.creds(t, r, insID))
		if err != nil {
			t.Fatalf("connecting through %s: %v", r.name, err)
		}
		defer conn.Close(ctx)
		wg.Add(2)
		go func() {
			defer wg.Done()
			for n := 0; !pause.Load(); n++ {
				key := fmt.Sprintf("burst/%s-%d.txt", r.name, n)
				if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String(key), Body: bytes.NewReader([]byte(key))}); err != nil {
					errs <- fmt.Errorf("PUT through %s: %w", r.name, err)
					return
				}
				calls.Add(1)
			}
		}()
		go func(conn *pgx.Conn) {
			defer wg.Done()
			for n := 0; !pause.Load(); n++ {
				v := 1000000*(i+1) + n
				if _, err := conn.Exec(ctx, fmt.Sprintf("insert into events values (%d, 'v-%d')", v, v)); err != nil {
					errs <- fmt.Errorf("INSERT through %s: %w", r.name, err)
					return
				}
				calls.Add(1)
			}
		}(conn)
	}
	checkErrs := func() {
		t.Helper()
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
	}

	// While busy: audit verify passes on every replica, twice around.
	for round := range 2 {
		for _, r := range c.replicas {
			time.Sleep(300 * time.Millisecond) // calls in flight on r1 and r2
			if calls.Load() == 0 {
				t.Fatal("no call went through yet")
			}
			out := c.cli(t, r, c.alice, "audit", "verify")
			if out.code != 0 {
				t.Errorf("round %d: audit verify on %s while r1 and r2 are busy: exit %d\n%s%s", round, r.name, out.code, out.stdout, out.stderr)
			}
		}
	}
	checkErrs()

	// Pause: the sessions stay open, their last calls not yet in the rows
	// r1 and r2 write lazily. Every call a client saw succeed was counted
	// before it was answered: the review on r0, at once, counts them all.
	pause.Store(true)
	wg.Wait()
	checkErrs()
	want := calls.Load()
	day := time.Now().UTC().Format("2006-01-02")
	review := func(r *replica) string {
		t.Helper()
		rows := mustOK(t, c.cli(t, r, c.alice, "grants", "--account", "111122223333", "--day", day, "-o", "json"), "grants on "+r.name)
		var gs []struct {
			ID          string   `json:"grant"`
			Calls       int64    `json:"calls"`
			LogMismatch []string `json:"log_mismatch"`
		}
		if err := json.Unmarshal([]byte(rows), &gs); err != nil {
			t.Fatalf("the review on %s: %v\n%s", r.name, err, rows)
		}
		var got int64
		for _, g := range gs {
			if g.ID == putID || g.ID == insID {
				got += g.Calls
			}
			if len(g.LogMismatch) > 0 {
				t.Errorf("the review on %s: grant %s differs from its log: %s", r.name, g.ID, strings.Join(g.LogMismatch, "; "))
			}
		}
		if got != want {
			t.Errorf("the review on %s counts %d calls; clients saw %d succeed", r.name, got, want)
		}
		return rows
	}
	review(r0)

	// A call's result (bytes, status) is recorded as its response goes
	// out, so the last ones may land just after the client saw it; once
	// they have, every replica answers exactly the same.
	time.Sleep(200 * time.Millisecond)
	var first, firstVerify string
	for _, r := range c.replicas {
		rows := review(r)
		v := checkedIn.ReplaceAllString(mustOK(t, c.cli(t, r, c.alice, "audit", "verify"), "audit verify on "+r.name), "")
		if first == "" {
			first, firstVerify = rows, v
			continue
		}
		if rows != first {
			t.Errorf("the review on %s differs from r0's:\n%s\nvs\n%s", r.name, rows, first)
		}
		if v != firstVerify {
			t.Errorf("audit verify on %s differs from r0's:\n%s\nvs\n%s", r.name, v, firstVerify)
		}
	}
	t.Logf("%d calls through r1 and r2", want)
}
