package pggw

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/tlscert"
	"github.com/jackc/pgx/v5/pgconn"
)

// tlsEnv is a gateway with a certificate from Airlock's CA, and the CA's
// path for clients (sslrootcert).
func tlsEnv(t *testing.T, tweak func(*Options)) (*env, string) {
	t.Helper()
	cfg, caPath, err := tlscert.Ensure(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) {
		o.TLS = cfg
		if tweak != nil {
			tweak(o)
		}
	})
	return e, caPath
}

// tlsURL is a client connection string for g that checks the gateway's
// certificate against caPath, with extra settings (sslnegotiation).
func (e *env) tlsURL(g *gateway.Grant, caPath, extra string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=verify-full&sslrootcert=%s&connect_timeout=10%s",
		g.CredentialID, g.Secret, e.addr.Port, e.db, caPath, extra)
}

// caPool is the CA at caPath, for a crypto/tls client.
func caPool(t *testing.T, caPath string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(caPath)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatal("no certificate in the CA file")
	}
	return p
}

// rejectionsSince waits until the gateway has recorded a rejection after
// the first before, and returns those it has: a refused connection is
// recorded before its connection closes, but the client may see the close
// of a failed TLS handshake first.
func (e *env) rejectionsSince(t *testing.T, before int) []gateway.Rejection {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if rej := e.auth.Rejections(); len(rej) > before {
			return rej[before:]
		}
		if time.Now().After(deadline) {
			t.Fatal("no rejection recorded")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDirectTLS: a client with PostgreSQL 17's sslnegotiation=direct
// (pgx's) sends its ClientHello at once; the gateway answers with TLS,
// ALPN "postgresql", then the usual startup. The session works and is
// recorded, and its CancelRequest, sent the same way on a connection of
// its own, reaches the upstream.
func TestDirectTLS(t *testing.T) {
	e, caPath := tlsEnv(t, func(o *Options) { o.RequireTLS = true })
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	ctx := ctxT(t, 30*time.Second)
	cfg, err := pgconn.ParseConfig(e.tlsURL(g, caPath, "&sslnegotiation=direct"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SSLNegotiation != "direct" || len(cfg.TLSConfig.NextProtos) != 1 || cfg.TLSConfig.NextProtos[0] != alpnPostgres {
		t.Fatalf("pgx does not negotiate direct TLS here: %q %q", cfg.SSLNegotiation, cfg.TLSConfig.NextProtos)
	}
	// pgx takes an SSLRequest's 'N' for an answer under require; only a
	// gateway that spoke TLS at once gets it further. Its first bytes:
	var first []byte
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &firstWrite{Conn: nc, first: &first}, nil
	}
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("direct TLS connect: %v", err)
	}
	defer pc.Close(context.Background())
	if len(first) == 0 || first[0] != tlsRecordHandshake {
		t.Fatalf("the client's first byte was %x, want a TLS handshake record", first)
	}
	tc, ok := pc.Conn().(*tls.Conn)
	if !ok {
		t.Fatalf("the client is on %T, want TLS", pc.Conn())
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != alpnPostgres {
		t.Fatalf("ALPN %q, want %q", p, alpnPostgres)
	}
	res, err := pc.Exec(ctx, "select count(*) from customers").ReadAll()
	if err != nil || len(res) != 1 || len(res[0].Rows) != 1 || string(res[0].Rows[0][0]) != "50" {
		t.Fatalf("select over direct TLS: %v %+v", err, res)
	}
	e.settle(g)
	reqs := e.requests(g)
	if len(reqs) != 1 || reqs[0].Params["statement"] != "select count(*) from customers" || reqs[0].Action != "pg:select" {
		t.Fatalf("recorded %+v, want the select", reqs)
	}

	// A cancel: pgx sends it over direct TLS too.
	errc := make(chan error, 1)
	go func() {
		_, err := pc.Exec(ctx, "select pg_sleep(20)").ReadAll()
		errc <- err
	}()
	admin := e.admin()
	for {
		var n int
		if err := admin.QueryRow(ctx, "select count(*) from pg_stat_activity where usename = $1 and state = 'active' and query like 'select pg_sleep%'", "airlock_"+g.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the query never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := pc.CancelRequest(ctx); err != nil {
		t.Fatalf("CancelRequest over direct TLS: %v", err)
	}
	select {
	case err := <-errc:
		if pgCode(err) != "57014" {
			t.Fatalf("err = %v, want 57014 query_canceled", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("not cancelled")
	}
	var cancelled bool
	for _, c := range e.auth.Calls(g.ID) {
		cancelled = cancelled || c.Action == "pg:cancel"
	}
	if !cancelled {
		t.Fatal("the cancel was not recorded")
	}
	if n := len(e.auth.Rejections()); n != 0 {
		t.Fatalf("%d rejections: %+v", n, e.auth.Rejections())
	}
}

// firstWrite keeps a copy of the first bytes written.
type firstWrite struct {
	net.Conn
	first *[]byte
}

func (w *firstWrite) Write(b []byte) (int, error) {
	if len(*w.first) == 0 {
		*w.first = append([]byte(nil), b...)
	}
	return w.Conn.Write(b)
}

// TestDirectTLSNeedsALPN: as PostgreSQL 17, a direct TLS connection must
// negotiate ALPN "postgresql". A client offering another protocol fails
// the handshake; one offering none completes it and is closed unanswered.
// Neither starts a session; both are recorded as refused.
func TestDirectTLSNeedsALPN(t *testing.T) {
	e, caPath := tlsEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	roots := caPool(t, caPath)
	dial := func(t *testing.T, protos []string) (*tls.Conn, error) {
		nc, err := net.Dial("tcp", e.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Client(nc, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", NextProtos: protos})
		return tc, tc.Handshake()
	}

	t.Run("wrong protocol", func(t *testing.T) {
		before := len(e.auth.Rejections())
		_, err := dial(t, []string{"h2", "http/1.1"})
		if err == nil || !strings.Contains(err.Error(), "no application protocol") {
			t.Fatalf("handshake: %v, want the no_application_protocol alert", err)
		}
		rej := e.rejectionsSince(t, before)
		if len(rej) != 1 || !strings.Contains(rej[0].Reason, "TLS handshake failed") {
			t.Fatalf("rejections %+v", rej)
		}
	})

	t.Run("none", func(t *testing.T) {
		before := len(e.auth.Rejections())
		tc, err := dial(t, nil)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "" {
			t.Fatalf("ALPN %q negotiated", p)
		}
		// A startup with the right credentials gets nothing back.
		_, _ = tc.Write(startupPacket("user", g.CredentialID, "database", e.db))
		got, err := io.ReadAll(tc)
		if len(got) != 0 {
			t.Fatalf("the gateway answered %q (%v)", got, err)
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the connection was not closed")
		}
		rej := e.rejectionsSince(t, before)
		if len(rej) != 1 || !strings.Contains(rej[0].Reason, "ALPN") {
			t.Fatalf("rejections %+v", rej)
		}
	})

	// The right protocol, for contrast, over the same raw client.
	t.Run("postgresql", func(t *testing.T) {
		tc, err := dial(t, []string{"h2", alpnPostgres})
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != alpnPostgres {
			t.Fatalf("ALPN %q", p)
		}
		_, _ = tc.Write(startupPacket("user", g.CredentialID, "database", e.db))
		b := make([]byte, 1)
		if _, err := io.ReadFull(tc, b); err != nil || b[0] != 'R' {
			t.Fatalf("first answer %q (%v), want an authentication request", b, err)
		}
	})
	if n := len(e.auth.Sessions()); n != 0 {
		t.Fatalf("%d sessions started", n)
	}
}

// TestTLSNegotiationPaths: the SSLRequest path (with and without ALPN) and
// plaintext work as before next to direct TLS, and each session is
// recorded; after a direct handshake an encryption request is a protocol
// violation (PostgreSQL accepted a GSSENCRequest there: CVE-2026-14681).
func TestTLSNegotiationPaths(t *testing.T) {
	e, caPath := tlsEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	ctx := ctxT(t, 30*time.Second)
	for _, m := range []struct {
		name, url string
		tls       bool
	}{
		{"plaintext", e.url(g, ""), false},
		{"SSLRequest", e.tlsURL(g, caPath, ""), true},
		{"SSLRequest, sslnegotiation=postgres", e.tlsURL(g, caPath, "&sslnegotiation=postgres"), true},
		{"direct", e.tlsURL(g, caPath, "&sslnegotiation=direct"), true},
	} {
		t.Run(m.name, func(t *testing.T) {
			before := len(e.requests(g))
			pc, err := pgconn.Connect(ctx, m.url)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close(context.Background())
			if _, isTLS := pc.Conn().(*tls.Conn); isTLS != m.tls {
				t.Fatalf("TLS %v, want %v", isTLS, m.tls)
			}
			stmt := "select count(*) from customers -- " + m.name
			if _, err := pc.Exec(ctx, stmt).ReadAll(); err != nil {
				t.Fatal(err)
			}
			e.settle(g)
			reqs := e.requests(g)
			if len(reqs) != before+1 || reqs[before].Params["statement"] != stmt {
				t.Fatalf("recorded %+v", reqs[before:])
			}
		})
	}

	// An SSLRequest client offering ALPN (libpq 17 does) gets it.
	t.Run("SSLRequest with ALPN", func(t *testing.T) {
		nc, err := net.Dial("tcp", e.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := nc.Write([]byte{0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f}); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := io.ReadFull(nc, b); err != nil || b[0] != 'S' {
			t.Fatalf("SSLRequest answered %q (%v)", b, err)
		}
		tc := tls.Client(nc, &tls.Config{RootCAs: caPool(t, caPath), ServerName: "127.0.0.1", NextProtos: []string{alpnPostgres}})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != alpnPostgres {
			t.Fatalf("ALPN %q", p)
		}
	})

	t.Run("GSSENCRequest after direct TLS", func(t *testing.T) {
		nc, err := net.Dial("tcp", e.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		tc := tls.Client(nc, &tls.Config{RootCAs: caPool(t, caPath), ServerName: "127.0.0.1", NextProtos: []string{alpnPostgres}})
		if _, err := tc.Write([]byte{0, 0, 0, 8, 4, 0xd2, 0x16, 0x30}); err != nil {
			t.Fatal(err)
		}
		errs := readErrors(t, tc, 5*time.Second)
		if len(errs) != 1 || errs[0].Code != codeProtocolViolation || !strings.Contains(errs[0].Message, "unexpected encryption request") {
			t.Fatalf("errors = %+v, want one FATAL 08P01", errs)
		}
	})
}

// TestDirectTLSBadInput: a first byte that is neither a TLS record nor a
// sane startup length is refused as before, with a FATAL in plaintext; a
// TLS record that is not a ClientHello fails the handshake; and a gateway
// without a certificate closes a direct TLS connection unanswered, as
// PostgreSQL does (its client speaks TLS: a plaintext FATAL would be
// noise to it). Each is recorded as refused.
func TestDirectTLSBadInput(t *testing.T) {
	withTLS, _ := tlsEnv(t, func(o *Options) { o.StartupTimeout = 2 * time.Second })
	noTLS := newEnv(t, func(o *Options) { o.StartupTimeout = 2 * time.Second })
	hello := clientHello(t)
	for _, tc := range []struct {
		name   string
		e      *env
		send   []byte
		fatal  bool // a FATAL in plaintext, else nothing
		reason string
	}{
		{"garbage byte", withTLS, []byte{0xff, 0xff, 0xff, 0xff, 0, 3, 0, 0}, true, "invalid startup"},
		{"HTTP", withTLS, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), true, "invalid startup"},
		{"truncated handshake record", withTLS, []byte{0x16, 3, 1, 0, 2, 2, 40}, false, "TLS handshake failed"},
		{"handshake record of garbage", withTLS, append([]byte{0x16, 3, 1, 0, 8}, "notahelo"...), false, "TLS handshake failed"},
		{"ClientHello, no certificate", noTLS, hello, false, "no TLS certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(tc.e.auth.Rejections())
			nc, err := net.Dial("tcp", tc.e.addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := nc.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			_ = nc.(*net.TCPConn).CloseWrite()
			got, err := io.ReadAll(nc)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the connection was not closed")
			}
			if tc.fatal {
				if len(got) == 0 || got[0] != 'E' || !strings.Contains(string(got), "FATAL") {
					t.Fatalf("answer %q, want a FATAL", got)
				}
			} else if len(got) != 0 && got[0] != 0x15 { // a TLS alert record at most
				t.Fatalf("answer %q, want none or a TLS alert", got)
			}
			rej := tc.e.rejectionsSince(t, before)
			if len(rej) != 1 || !strings.Contains(rej[0].Reason, tc.reason) {
				t.Fatalf("rejections %+v, want one about %q", rej, tc.reason)
			}
		})
	}
}

// clientHello is the first flight of a TLS client offering ALPN
// "postgresql", as a direct TLS client sends it.
func clientHello(t testing.TB) []byte {
	t.Helper()
	c, s := net.Pipe()
	defer s.Close()
	go func() {
		tc := tls.Client(c, &tls.Config{ServerName: "localhost", NextProtos: []string{alpnPostgres}})
		_ = tc.Handshake()
		c.Close()
	}()
	_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(s, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(s, body); err != nil {
		t.Fatal(err)
	}
	return append(hdr, body...)
}
