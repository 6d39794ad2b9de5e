package pggw

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
)

// TestUpstreamLoginMessageBounded: a message of the upstream's login
// (pgconn's, through the gateway's pooled Frontend) is bounded before its
// body is allocated. pgproto3's default bound is PostgreSQL's own 1 GiB,
// and its reader allocates the declared length at once: an upstream (or
// whatever answers at its address) that declared a 256 MiB message made
// each login allocate 256 MiB, and then hold it while waiting for the
// body, until StartupTimeout.
func TestUpstreamLoginMessageBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		if skipStartupMessage(nc) != nil {
			return
		}
		// An authentication request declaring 256 MiB, 8 bytes of which
		// come.
		msg := binary.BigEndian.AppendUint32([]byte{'R'}, 4+256<<20)
		_, _ = nc.Write(append(msg, 0, 0, 0, 10, 'S', 'C', 'R', 'A'))
		_, _ = io.Copy(io.Discard, nc) // held until the gateway gives up
	}()
	gw, err := New(Options{
		Authority:      gatewaytest.New(),
		Targets:        []Target{{Name: "db", Upstream: "postgres://nobody@" + ln.Addr().String() + "/orders?sslmode=disable", Roles: failingRoles{}}},
		StartupTimeout: 5 * time.Second,
		Logger:         slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	gwc, cl := net.Pipe()
	defer cl.Close()
	c := newConn(gw, gwc)
	c.t = gw.targets["db"]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.su.ctx = ctx

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	hc, err := c.connectUpstream(Role{Name: "r", Password: "p"}, map[string]string{})
	runtime.ReadMemStats(&after)
	if err == nil {
		hc.Conn.Close()
		t.Fatal("the login succeeded")
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Fatalf("the login allocated %d bytes for a message the upstream declared of 256 MiB (%v)", got, err)
	}
}
