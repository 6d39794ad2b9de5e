package pggw

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestSimpleAndExtendedQueriesAreRecorded(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	c := e.connect(g, "")
	ctx := ctxT(t, 20*time.Second)

	// Simple protocol.
	var n int
	if err := c.QueryRow(ctx, "select count(*) from customers", pgxSimple).Scan(&n); err != nil {
		t.Fatalf("simple select: %v", err)
	}
	if n != 50 {
		t.Fatalf("count = %d, want 50", n)
	}
	// Extended protocol with a parameter.
	var name string
	if err := c.QueryRow(ctx, "select name from customers where id = $1", 7).Scan(&name); err != nil {
		t.Fatalf("extended select: %v", err)
	}
	if name != "customer 7" {
		t.Fatalf("name = %q", name)
	}
	// Rows and statements larger than the relay's buffers.
	var big string
	long := strings.Repeat("y", 300_000)
	if err := c.QueryRow(ctx, "select repeat('x', 200000) || $1::text", long).Scan(&big); err != nil {
		t.Fatalf("large row: %v", err)
	}
	if len(big) != 500_000 {
		t.Fatalf("large row of %d bytes", len(big))
	}
	e.settle(g)
	reqs := e.requests(g)
	var simple, ext bool
	for _, r := range reqs {
		if r.Params["statement"] == "select count(*) from customers" && r.Params["protocol"] == "simple" && r.Action == "pg:select" && r.Resource == e.db {
			simple = true
		}
		if r.Params["statement"] == "select name from customers where id = $1" && r.Params["protocol"] == "extended" && r.Params["parameters"] == "$1='\\x00000007'" {
			ext = true
		}
		if r.Params["statement"] == "select name from customers where id = $1" && strings.Contains(r.Params["parameters"], "7") {
			ext = true
		}
	}
	if !simple || !ext {
		t.Fatalf("recorded requests missing (simple %v, extended %v): %+v", simple, ext, reqs)
	}
	// Results: rows recorded, and the rows' bytes as bytes out (each
	// DataRow's payload: a column count, a length per column, the values).
	var rows50, nameOut, bigOut bool
	for _, call := range e.auth.Calls(g.ID) {
		if call.Kind == "result" && call.Rows == 1 && call.Status == "SELECT 1" && call.Error == "" {
			rows50 = true
			switch call.BytesOut {
			case 2 + 4 + int64(len("customer 7")):
				nameOut = true
			case 2 + 4 + 500_000:
				bigOut = true
			}
		}
	}
	if !rows50 || !nameOut || !bigOut {
		t.Fatalf("results without rows or their bytes (rows %v, small row's bytes %v, large row's %v): %+v", rows50, nameOut, bigOut, e.auth.Calls(g.ID))
	}
}

// TestRedactParametersPerTarget: a target with RedactParameters records
// bound values as their length only; the statement text stays.
func TestRedactParametersPerTarget(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Targets[0].RedactParameters = true })
	g := e.grant(time.Minute, "pg:select %s.public.customers")
	c := e.connect(g, "")
	ctx := ctxT(t, 15*time.Second)
	var name string
	if err := c.QueryRow(ctx, "select name from customers where name <> $1 limit 1", "hunter2-secret").Scan(&name); err != nil {
		t.Fatalf("extended select: %v", err)
	}
	e.settle(g)
	var found bool
	for _, r := range e.requests(g) {
		if strings.Contains(r.Params["parameters"], "hunter2") {
			t.Fatalf("a redacted target recorded the value: %q", r.Params["parameters"])
		}
		if r.Params["statement"] == "select name from customers where name <> $1 limit 1" {
			found = r.Params["parameters"] == "$1=<redacted 14 bytes>"
			if !found {
				t.Errorf("parameters recorded as %q", r.Params["parameters"])
			}
		}
	}
	if !found {
		t.Fatalf("the statement was not recorded: %+v", e.requests(g))
	}
}

// TestNotificationsAndNoticesPassThrough: LISTEN through the gateway
// receives a NOTIFY sent directly upstream, and a NOTICE raised by the
// server reaches the client.
func TestNotificationsAndNoticesPassThrough(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Minute, "pg:select %s.public.customers")
	ctx := ctxT(t, 20*time.Second)
	var notices []string
	var mu sync.Mutex
	cfg, err := pgx.ParseConfig(e.url(g, ""))
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		notices = append(notices, n.Message)
		mu.Unlock()
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "listen airlock_test_channel"); err != nil {
		t.Fatalf("listen: %v", err)
	}
	if _, err := e.admin().Exec(ctx, "select pg_notify('airlock_test_channel', 'hello through the gateway')"); err != nil {
		t.Fatalf("notify: %v", err)
	}
	n, err := c.WaitForNotification(ctx)
	if err != nil {
		t.Fatalf("waiting for the notification: %v", err)
	}
	if n.Channel != "airlock_test_channel" || n.Payload != "hello through the gateway" {
		t.Fatalf("notification %+v", n)
	}
	if _, err := c.Exec(ctx, "do $$ begin raise notice 'a notice from upstream'; end $$"); err != nil {
		t.Fatalf("raise notice: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notices) != 1 || notices[0] != "a notice from upstream" {
		t.Fatalf("notices %q", notices)
	}
}
