package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/mcpserver"
)

// withMCP serves the MCP server (streamable HTTP) at /mcp beside the API;
// it calls the API in process with each request's bearer token, and runs
// sql_query through this process's own PostgreSQL gateway on the agent's
// behalf (pgRelay).
func withMCP(api http.Handler, relay *pgRelay, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/mcp", mcpserver.Handler(api, mcpserver.HTTPOptions{Logger: logger, DialPostgres: relay.dial}))
	mux.Handle("/", api)
	return mux
}

// pgRelay connects the control plane to its own PostgreSQL gateway for a
// remote agent (sql_query over /mcp) and names the agent to the gateway
// (gateway.Relays), so that the session is the agent's: recorded with its
// address, and not read as the grant's credential used from another
// instance. It dials this process's listener, not the advertised endpoint,
// which behind a load balancer may reach another replica that cannot know
// the connection's agent.
type pgRelay struct {
	relays gateway.Relays
	addr   atomic.Pointer[string] // the PostgreSQL gateway's listener, once started
}

// listening records the gateway's listener address (set to a loopback
// address when it listens on every interface).
func (r *pgRelay) listening(a net.Addr) {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	s := net.JoinHostPort(host, port)
	r.addr.Store(&s)
}

func (r *pgRelay) stopped() { r.addr.Store(nil) }

// dial connects to the local gateway for client (the agent's address as
// the API saw it) presenting the certificate of fingerprint tlsClient to
// /mcp. The entry naming them lives as long as the connection.
func (r *pgRelay) dial(ctx context.Context, client, tlsClient string) (net.Conn, error) {
	addr := r.addr.Load()
	if addr == nil {
		return nil, mcpserver.ErrNotRelayed
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", *addr)
	if err != nil {
		return nil, err
	}
	return &relayedConn{Conn: nc, remove: r.relays.Add(nc.LocalAddr().String(), gateway.Relayed{Client: client, TLSClient: tlsClient})}, nil
}

// relayedConn removes its Relays entry when closed.
type relayedConn struct {
	net.Conn
	remove func()
}

func (c *relayedConn) Close() error {
	err := c.Conn.Close()
	c.remove()
	return err
}
