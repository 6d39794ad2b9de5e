package replicas

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// balancer is a round-robin TCP load balancer on loopback: each accepted
// connection goes to the next backend that backends returns.
type balancer struct {
	ln       net.Listener
	backends func() []string
	next     atomic.Int64
	mu       sync.Mutex
	used     map[string]int // backend → connections sent to it
}

func newBalancer(t *testing.T, backends func() []string) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{ln: ln, backends: backends, used: map[string]int{}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.relay(c)
		}
	}()
	return b
}

func (b *balancer) relay(c net.Conn) {
	defer c.Close()
	all := b.backends()
	if len(all) == 0 {
		return
	}
	to := all[int(b.next.Add(1)-1)%len(all)]
	b.mu.Lock()
	b.used[to]++
	b.mu.Unlock()
	u, err := net.Dial("tcp", to)
	if err != nil {
		return
	}
	defer u.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(u, c); done <- struct{}{} }()
	go func() { io.Copy(c, u); done <- struct{}{} }()
	<-done
}

func (b *balancer) spread() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int{}
	for k, v := range b.used {
		out[k] = v
	}
	return out
}

// TestBehindBalancer: three replicas behind a round-robin balancer, named
// in listen.public. Credentials from any replica name the balancer, and
// S3 calls and PostgreSQL sessions made with them go through it to every
// replica.
func TestBehindBalancer(t *testing.T) {
	var c *cluster
	var ready atomic.Bool
	backends := func(pick func(*replica) string) func() []string {
		return func() []string {
			if !ready.Load() {
				return nil
			}
			var out []string
			for _, r := range c.replicas {
				out = append(out, pick(r))
			}
			return out
		}
	}
	lbAWS := newBalancer(t, backends(func(r *replica) string { return r.aws }))
	lbPG := newBalancer(t, backends(func(r *replica) string { return r.pg }))
	c = newClusterListen(t, testenv.PostgresDSN(t), 3, fmt.Sprintf("  public:\n    aws: http://%s\n    postgres: %s\n", lbAWS.ln.Addr(), lbPG.ln.Addr()))
	ready.Store(true)
	c.seedS3(t, map[string][]byte{"burst/seed.txt": []byte("seed")})
	ctx := context.Background()

	id := grantID(t, mustOK(t, c.cli(t, c.replicas[0], c.bot, "request", "aws-prod", "--allow", "s3:PutObject,s3:GetObject arn:aws:s3:::logs/burst/*",
		"--for", "10m", "--reason", "through the balancer"), "request s3"))
	insID := grantID(t, mustOK(t, c.cli(t, c.replicas[0], c.bot, "request", "orders-db", "--allow", "pg:insert "+c.ordersDB+".public.events",
		"--for", "10m", "--reason", "through the balancer"), "request pg"))
	for _, r := range c.replicas {
		m := c.creds(t, r, id)
		if m["AWS_ENDPOINT_URL"] != "http://"+lbAWS.ln.Addr().String() {
			t.Fatalf("credentials from %s name %q, want the balancer http://%s", r.name, m["AWS_ENDPOINT_URL"], lbAWS.ln.Addr())
		}
		p := c.creds(t, r, insID)
		if net.JoinHostPort(p["PGHOST"], p["PGPORT"]) != lbPG.ln.Addr().String() {
			t.Fatalf("pg credentials from %s name %s:%s, want the balancer %s", r.name, p["PGHOST"], p["PGPORT"], lbPG.ln.Addr())
		}
	}
	// Each call on a new connection (the clients share the default
	// transport's pool): the balancer spreads them.
	for i := range 6 {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		cl := grantS3(c.creds(t, c.replicas[i%3], id))
		key := fmt.Sprintf("burst/lb-%d.txt", i)
		if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String(key), Body: bytes.NewReader([]byte(key))}); err != nil {
			t.Fatalf("PUT %d through the balancer: %v", i, err)
		}
	}
	pgCreds := c.creds(t, c.replicas[2], insID)
	for i := range 3 {
		conn, err := grantPG(ctx, pgCreds)
		if err != nil {
			t.Fatalf("PostgreSQL session %d through the balancer: %v", i, err)
		}
		if _, err := conn.Exec(ctx, fmt.Sprintf("insert into events values (%d, 'lb')", 7000+i)); err != nil {
			t.Fatalf("INSERT %d through the balancer: %v", i, err)
		}
		conn.Close(ctx)
	}
	for _, lb := range []*balancer{lbAWS, lbPG} {
		if got := lb.spread(); len(got) != 3 {
			t.Errorf("the balancer sent connections to %v, want all three replicas", got)
		}
	}
	out := mustOK(t, c.cli(t, c.replicas[0], c.alice, "audit", "verify"), "audit verify")
	if !strings.Contains(out, "OK") {
		t.Fatalf("audit verify: %s", out)
	}
}
