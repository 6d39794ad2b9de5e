package replicas

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
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

// acked collects the calls a client saw succeed.
type acked struct {
	mu   sync.Mutex
	list []string
}

func (a *acked) add(s string) {
	a.mu.Lock()
	a.list = append(a.list, s)
	a.mu.Unlock()
}

func (a *acked) all() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.list...)
}

// TestKillReplicaMidBurst: kill -9 of a replica in the middle of a burst of
// S3 PUTs and SQL statements through it. Every call a client saw succeed is
// in the log, audit verify passes, the other replicas serve throughout, and
// the dead replica's sessions are ended at their last recorded event.
func TestKillReplicaMidBurst(t *testing.T) {
	c := newCluster(t, testenv.PostgresDSN(t), 3)
	r0, r1, victim := c.replicas[0], c.replicas[1], c.replicas[2]
	c.seedS3(t, map[string][]byte{"burst/seed.txt": []byte("seed")})
	ctx := context.Background()

	putID := grantID(t, mustOK(t, c.cli(t, r0, c.bot, "request", "aws-prod", "--allow", "s3:PutObject,s3:GetObject arn:aws:s3:::logs/burst/*",
		"--for", "10m", "--reason", "burst of uploads"), "request s3"))
	insID := grantID(t, mustOK(t, c.cli(t, r0, c.bot, "request", "orders-db", "--allow", "pg:insert "+c.ordersDB+".public.events",
		"--for", "10m", "--reason", "burst of inserts"), "request pg"))
	onVictim := grantS3(c.creds(t, victim, putID))
	pgCreds := c.creds(t, victim, insID)
	onR1 := grantS3(c.creds(t, r1, putID))

	// The others keep serving: reads through r1 and readiness of r0 and r1,
	// from before the kill until the end of the test.
	stopWatch := make(chan struct{})
	var watchErrs []string
	var watchMu sync.Mutex
	var watchCalls atomic.Int64
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-stopWatch:
				return
			default:
			}
			got, err := onR1.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("burst/seed.txt")})
			if err == nil {
				// Read and closed, so that its connection is reused: an
				// answer left open holds its connection, and past 256 of
				// them r1 refuses this source (listen's per-host cap).
				io.Copy(io.Discard, got.Body)
				got.Body.Close()
			}
			code0, _ := r0.ready()
			code1, _ := r1.ready()
			watchCalls.Add(1)
			if err != nil || code0 != 200 || code1 != 200 {
				watchMu.Lock()
				watchErrs = append(watchErrs, fmt.Sprintf("%s: GET via r1: %v, readyz r0 %d r1 %d", time.Now().Format("15:04:05.000"), err, code0, code1))
				watchMu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// The burst through the victim: 4 S3 clients and 2 SQL sessions, each
	// until its first failure.
	var puts, stmts acked
	var wg sync.WaitGroup
	var n atomic.Int64
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				key := fmt.Sprintf("burst/w%d-%d.txt", w, i)
				_, err := onVictim.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String(key), Body: bytes.NewReader([]byte(key))})
				if err != nil {
					return
				}
				puts.add(key)
				n.Add(1)
			}
		}()
	}
	for w := range 2 {
		conn, err := grantPG(ctx, pgCreds)
		if err != nil {
			t.Fatalf("connecting through the victim: %v", err)
		}
		defer conn.Close(ctx)
		wg.Add(1)
		go func(conn *pgx.Conn) {
			defer wg.Done()
			for i := 0; ; i++ {
				v := 1000000*(w+1) + i
				if _, err := conn.Exec(ctx, fmt.Sprintf("insert into events values (%d, 'b-%d')", v, v)); err != nil {
					return
				}
				stmts.add(fmt.Sprintf("'b-%d'", v))
				n.Add(1)
			}
		}(conn)
	}
	for deadline := time.Now().Add(20 * time.Second); n.Load() < 150 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	victim.kill()
	killed := time.Now()
	wg.Wait()
	t.Logf("killed the victim after %d acknowledged calls (%d PUTs, %d statements)", n.Load(), len(puts.all()), len(stmts.all()))
	if len(puts.all()) == 0 || len(stmts.all()) == 0 {
		t.Fatalf("the burst acknowledged %d PUTs and %d statements before the kill; want both", len(puts.all()), len(stmts.all()))
	}

	// Every acknowledged call is in the log, read through a survivor.
	for id, want := range map[string][]string{putID: puts.all(), insID: stmts.all()} {
		rec := mustOK(t, c.cli(t, r0, c.alice, "session", "show", id, "-o", "json"), "session show")
		missing := 0
		for _, w := range want {
			if !strings.Contains(rec, w) {
				missing++
				if missing < 5 {
					t.Errorf("acknowledged call %s is not in the log", w)
				}
			}
		}
		if missing > 0 {
			t.Errorf("grant %s: %d of %d acknowledged calls missing from the log", id, missing, len(want))
		}
	}
	// The dead replica's sessions end at their last recorded event.
	// Survivors sweep every second (AIRLOCK_SESSION_SWEEP) and end the
	// sessions of a replica gone for 5 s (AIRLOCK_REPLICA_GRACE).
	deadline := time.Now().Add(20 * time.Second)
	for _, id := range []string{putID, insID} {
		var open []string
		for ; time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
			if open = openSessions(t, c, r1, id, victim); len(open) == 0 {
				break
			}
		}
		if len(open) != 0 {
			t.Errorf("grant %s: sessions %v of the killed replica still open %v after the kill", id, open, time.Since(killed).Round(time.Second))
		}
	}
	// Then the log and every row agree (the dead replica's session rows,
	// written lazily, lagged its log entries until they were ended).
	for _, r := range []*replica{r0, r1} {
		if out := mustOK(t, c.cli(t, r, c.alice, "audit", "verify"), "audit verify on "+r.name); !strings.Contains(out, "OK") {
			t.Errorf("audit verify on %s: %s", r.name, out)
		}
	}

	// A while after the kill, still serving.
	time.Sleep(500 * time.Millisecond)
	close(stopWatch)
	<-watchDone
	if len(watchErrs) > 0 {
		t.Errorf("the surviving replicas failed %d of %d probes, first: %s", len(watchErrs), watchCalls.Load(), watchErrs[0])
	}
	if got, err := onR1.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String(puts.all()[0])}); err != nil {
		t.Errorf("an acknowledged PUT's object through r1: %v", err)
	} else {
		io.Copy(io.Discard, got.Body)
		got.Body.Close()
	}
}

// sessionView is one session of `airlock session show GRANT -o json`.
type sessionView struct {
	Session struct {
		ID      string    `json:"id"`
		EndedAt time.Time `json:"ended_at"`
	} `json:"session"`
	Events []struct {
		Time  time.Time `json:"time"`
		Type  string    `json:"type"`
		Entry struct {
			Data struct {
				Replica string `json:"replica"`
			} `json:"data"`
		} `json:"entry"`
	} `json:"events"`
}

// replica is the replica id its session.started entry names.
func (v sessionView) replica() string {
	for _, e := range v.Events {
		if e.Type == "session.started" {
			return e.Entry.Data.Replica
		}
	}
	return ""
}

// openSessions returns the sessions of grant id served by replica `of`
// that have not ended, and fails the test for an ended one whose end is
// before its last event. A replica's id is the host's name and its API
// port.
func openSessions(t *testing.T, c *cluster, r *replica, id string, of *replica) []string {
	t.Helper()
	var views []sessionView
	if err := json.Unmarshal([]byte(mustOK(t, c.cli(t, r, c.alice, "session", "show", id, "-o", "json"), "session show")), &views); err != nil {
		t.Fatal(err)
	}
	var open []string
	_, port, _ := strings.Cut(of.api, ":")
	for _, v := range views {
		if !strings.HasSuffix(v.replica(), ":"+port) {
			continue
		}
		if v.Session.EndedAt.IsZero() {
			open = append(open, v.Session.ID)
			continue
		}
		var last time.Time
		for _, e := range v.Events {
			if e.Type != "session.ended" && e.Time.After(last) {
				last = e.Time
			}
		}
		if !v.Session.EndedAt.Equal(last) && v.Session.EndedAt.Before(last) {
			t.Errorf("session %s ended at %v, before its last event at %v", v.Session.ID, v.Session.EndedAt, last)
		}
	}
	return open
}
