package pggw

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestServeContextEndCutsAStatement: a statement in flight when the context
// given to Serve ends (airlock serve stopping its gateways) is recorded as
// cut off by the gateway's shutdown, as the client is told (57P01 "the
// gateway is shutting down"), not as a connection that merely closed: the
// context's sweep ends the session before, or without, Close marking the
// gateway closed.
func TestServeContextEndCutsAStatement(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	dsn, cancel, served := e.serveAgain(g)
	cctx := ctxT(t, 20*time.Second)
	pc, err := pgconn.Connect(cctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close(context.Background()) })
	done := make(chan error, 1)
	go func() {
		_, err := pc.Exec(cctx, "select pg_sleep(30)").ReadAll()
		done <- err
	}()
	testenv.WaitGrantQuery(t, testenv.PostgresDSN(t), g.ID, "select pg_sleep(30)")
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "the gateway is shutting down") {
			t.Fatalf("the client's error: %v, want the gateway's shutdown", err)
		}
	case <-time.After(15 * time.Second): // pg_sleep(30) would still run
		t.Fatal("the statement was not cut off")
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	ss := e.auth.Sessions()
	for deadline := time.Now().Add(5 * time.Second); !ss[0].Ended(); {
		if time.Now().After(deadline) {
			t.Fatal("session not ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	const cut = "airlock: cut off: the gateway shut down before the statement completed"
	var errs []string
	for _, call := range e.auth.Calls(g.ID) {
		if call.Kind == "result" {
			errs = append(errs, call.Error)
		}
	}
	if len(errs) != 1 || errs[0] != cut {
		t.Errorf("the results' errors %q, want one, %q", errs, cut)
	}
}

// serveAgain has the gateway serve on a listener of its own too, under a
// context of its own: it returns the DSN of g's sessions through it, the
// context's cancel and what Serve returns.
func (e *env) serveAgain(g *gateway.Grant) (string, context.CancelFunc, chan error) {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	served := make(chan error, 1)
	go func() { served <- e.gw.Serve(ctx, ln) }()
	dsn := strings.Replace(e.url(g, ""), fmt.Sprintf(":%d/", e.addr.Port), fmt.Sprintf(":%d/", ln.Addr().(*net.TCPAddr).Port), 1)
	return dsn, cancel, served
}
