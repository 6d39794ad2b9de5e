package pggw

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/pgroles"
)

// TestCloseBoundsADropInProgress: a grant role's drop that is still
// waiting on the upstream when the gateway closes (here another admin
// session holds the database's privileges lock, so the drop waits after
// NOLOGIN) gets dropGraceAtClose on the gateway's clock, not roleTimeout
// (30 s), which held airlock serve's stop. The role left behind, unable to
// log in, is dropped by the next start's reconciliation: its grant is no
// longer active.
func TestCloseBoundsADropInProgress(t *testing.T) {
	fake := clock.NewFake(time.Now())
	e := newEnv(t, func(o *Options) { o.Clock = fake })
	ctx := context.Background()
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	e.connect(g, "").Close(ctx) // the role is made
	role := pgroles.RoleName(g.ID)

	holder := e.admin()
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", "airlock-pgroles-acl:"+e.db); err != nil {
		t.Fatal(err)
	}
	e.auth.End(g, "revoked")
	// The drop has set NOLOGIN and waits for the lock.
	admin := e.admin()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var login bool
		if err := admin.QueryRow(ctx, "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", role).Scan(&login); err != nil {
			t.Fatal(err)
		}
		if !login {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the drop did not set NOLOGIN")
		}
	}

	closed := make(chan struct{})
	t0 := time.Now()
	go func() {
		e.gw.Close()
		close(closed)
	}()
	for deadline := time.Now().Add(10 * time.Second); ; {
		fake.Advance(dropGraceAtClose)
		select {
		case <-closed:
		case <-time.After(20 * time.Millisecond):
			if time.Now().Before(deadline) {
				continue
			}
			t.Fatal("Close had not returned 10 s after the drop's grace passed")
		}
		break
	}
	t.Logf("Close returned in %v", time.Since(t0).Round(time.Millisecond))
	var left int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", role).Scan(&left); err != nil || left != 1 {
		t.Fatalf("roles left behind: %d (%v), want the one whose drop was cut", left, err)
	}
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_unlock_all()"); err != nil {
		t.Fatal(err)
	}

	// The next start: a gateway over the same target reconciles its roles.
	o := e.gw.o
	o.Clock = clock.Real
	o.Logger = slog.New(slog.DiscardHandler)
	gw, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gw.Serve(ctx, ln)
	defer gw.Close()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", role).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the next start's reconciliation did not drop the role left behind")
		}
	}
}
