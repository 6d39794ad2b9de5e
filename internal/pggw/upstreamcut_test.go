package pggw

import (
	"context"
	"encoding/binary"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestUpstreamEndCutsAStatement: a statement cut off by the upstream's end
// is recorded as the upstream's doing, not as a client that left: with the
// error the upstream sent before closing (PostgreSQL's FATAL 57P01 when an
// administrator ends its server process, as the client is told), or, if it
// sent none, as the upstream's close. Against the real upstream,
// pg_sleep(30) ended by pg_terminate_backend.
func TestUpstreamEndCutsAStatement(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	cctx := ctxT(t, 20*time.Second)
	pc, err := pgconn.Connect(cctx, e.url(g, ""))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close(context.Background()) })
	done := make(chan error, 1)
	go func() {
		_, err := pc.Exec(cctx, "select pg_sleep(30)").ReadAll()
		done <- err
	}()
	admin := testenv.PostgresDSN(t)
	testenv.WaitGrantQuery(t, admin, g.ID, "select pg_sleep(30)")
	adm, err := pgx.Connect(cctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close(context.Background())
	if _, err := adm.Exec(cctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 AND query = $2",
		"airlock_"+strings.ToLower(g.ID), "select pg_sleep(30)"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if pgCode(err) != "57P01" {
			t.Fatalf("the client's error: %v, want the upstream's 57P01", err)
		}
	case <-time.After(15 * time.Second): // pg_sleep(30) would still run
		t.Fatal("the statement was not cut off")
	}
	const want = "57P01 terminating connection due to administrator command"
	if errs := cutResults(t, e.auth, g.ID); len(errs) != 1 || errs[0] != want {
		t.Errorf("the results' errors %q, want one, %q", errs, want)
	}
}

// TestUpstreamCloseCutsAStatement: the same with an upstream that closes
// the connection while a statement runs, with or without an error first,
// and the client's own leaving for comparison.
func TestUpstreamCloseCutsAStatement(t *testing.T) {
	for _, tc := range []struct {
		name string
		// upstream: what the upstream sends before closing; nil: it
		// stays, and the client leaves.
		upstream []pgproto3.BackendMessage
		want     string
	}{
		{"upstream closes", []pgproto3.BackendMessage{},
			"airlock: the upstream closed the connection before the statement completed"},
		{"upstream errs and closes", []pgproto3.BackendMessage{
			&pgproto3.ErrorResponse{Severity: "FATAL", Code: "57P02", Message: "terminating connection because of crash of another server process"}},
			"57P02 terminating connection because of crash of another server process"},
		{"client leaves", nil,
			"airlock: the connection closed before the statement completed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gw, auth := fuzzGateway(t)
			gr := auth.Add(gatewaytest.Spec{Target: "db", TargetKind: "postgres", Scope: []string{"pg:select orders.public.*"}})
			sess, err := auth.StartSession(context.Background(), gr, "test")
			if err != nil {
				t.Fatal(err)
			}
			upc, srv := tcpPair(t)
			gwc, cl := tcpPair(t)
			c := sessionConn(gw, gwc, upc, sess, gr)
			got := make(chan struct{})
			go func() {
				var hdr [5]byte
				if _, err := io.ReadFull(srv, hdr[:]); err != nil {
					return
				}
				_, _ = io.CopyN(io.Discard, srv, int64(binary.BigEndian.Uint32(hdr[1:]))-4)
				close(got)
				if tc.upstream == nil {
					return
				}
				var out []byte
				for _, m := range tc.upstream {
					out, _ = m.Encode(out)
				}
				_, _ = srv.Write(out)
				srv.Close()
			}()
			go io.Copy(io.Discard, cl)
			go c.run(upc)
			q, _ := (&pgproto3.Query{String: "select 1 from customers"}).Encode(nil)
			if _, err := cl.Write(q); err != nil {
				t.Fatal(err)
			}
			select {
			case <-got:
			case <-time.After(10 * time.Second):
				t.Fatal("the statement never reached the upstream")
			}
			if tc.upstream == nil {
				cl.Close()
			}
			if errs := cutResults(t, auth, gr.ID); len(errs) != 1 || errs[0] != tc.want {
				t.Errorf("the results' errors %q, want one, %q", errs, tc.want)
			}
		})
	}
}

// cutResults waits for grant id's one session to end and returns its
// results' errors.
func cutResults(t *testing.T, auth *gatewaytest.Authority, id string) []string {
	t.Helper()
	ss := auth.Sessions()
	for deadline := time.Now().Add(10 * time.Second); len(ss) != 1 || !ss[0].Ended(); ss = auth.Sessions() {
		if time.Now().After(deadline) {
			t.Fatal("session not ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var errs []string
	for _, call := range auth.Calls(id) {
		if call.Kind == "result" {
			errs = append(errs, call.Error)
		}
	}
	return errs
}
