package pggw

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

func (x *sessCtx) heldDone() chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.done
}

func TestSessCtx(t *testing.T) {
	var x sessCtx
	var sides uint8 // conn.parkedSides
	if x.Err() != nil {
		t.Fatal("a new sessCtx is cancelled")
	}
	d := x.Done()
	if x.Done() != d {
		t.Fatal("Done changed without a parking")
	}
	// One loop parked: the other may be waiting on d.
	x.parked(&sides, clientSide)
	if x.heldDone() != d {
		t.Fatal("the Done channel was let go while the upstream loop was awake")
	}
	x.parked(&sides, upstreamSide)
	if x.heldDone() != nil {
		t.Fatal("the Done channel is kept while both loops are parked")
	}
	// The client loop wakes and waits on a new channel; the upstream
	// loop, parked, must not let it go.
	x.woke(&sides, clientSide)
	d = x.Done()
	x.parked(&sides, upstreamSide)
	if x.heldDone() != d {
		t.Fatal("the channel handed out after a wake-up was let go")
	}
	x.cancel()
	select {
	case <-d:
	default:
		t.Fatal("cancel did not close the channel a call waits on")
	}
	if !errors.Is(x.Err(), context.Canceled) {
		t.Fatalf("Err after cancel: %v", x.Err())
	}
	x.parked(&sides, clientSide)
	x.cancel()
	select {
	case <-x.Done():
	default:
		t.Fatal("a cancelled sessCtx's Done is open after both loops parked")
	}
	// A cancelled sessCtx cancels its children.
	child, stop := context.WithTimeout(&x, time.Hour)
	defer stop()
	select {
	case <-child.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a child of a cancelled sessCtx is not cancelled")
	}
	var y sessCtx
	child, stop = context.WithTimeout(&y, time.Hour)
	defer stop()
	y.cancel()
	select {
	case <-child.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("cancelling a sessCtx did not cancel its child")
	}
}

// A session whose statement's record was waited on (as the log's durable
// wait does, on the session's context) holds no Done channel once both
// its loops are parked, and is still cut off when its grant ends.
func TestParkedSessionLetsGoOfDone(t *testing.T) {
	e := newParkEnv(t)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	st := e.auth.Stall() // its wait selects on the session's context
	go func() {
		<-st.Held()
		st.Release(nil)
	}()
	pc, ctx := e.rawSession(g, nil)
	e.auth.Unstall()
	e.waitParked(2)
	e.gw.mu.Lock()
	var c *conn
	for c = range e.gw.conns {
	}
	e.gw.mu.Unlock()
	if d := c.cx.heldDone(); d != nil {
		t.Fatal("a parked session holds its context's Done channel")
	}
	// Woken, it records and parks again.
	if _, err := pc.Exec(ctx, "select 2").ReadAll(); err != nil {
		t.Fatal(err)
	}
	e.waitParked(2)
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Conn.Close()
	e.auth.End(g, "revoked")
	_ = hc.Conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	msg, err := hc.Frontend.Receive()
	if err != nil {
		t.Fatalf("the idle client read %v, want the FATAL", err)
	}
	if er, ok := msg.(*pgproto3.ErrorResponse); !ok || er.Code != codeAdminShutdown || !strings.Contains(er.Message, "revoked") {
		t.Fatalf("the idle client read %#v, want FATAL %s", msg, codeAdminShutdown)
	}
	e.waitSessionsEnded(g)
	if !errors.Is(c.ctx().Err(), context.Canceled) {
		t.Fatal("the killed session's context is not cancelled")
	}
}
