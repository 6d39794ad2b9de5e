package pggw

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// readErrors reads backend messages until the connection closes and
// returns the ErrorResponses seen.
func readErrors(t *testing.T, nc net.Conn, within time.Duration) []pgproto3.ErrorResponse {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(within))
	r := bufio.NewReader(nc)
	var errs []pgproto3.ErrorResponse
	for {
		hdr := make([]byte, 5)
		if _, err := io.ReadFull(r, hdr[:1]); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("connection not closed within %v", within)
			}
			return errs
		}
		if hdr[0] == 'N' || hdr[0] == 'S' {
			// A one-byte SSL answer, or a message: peek decides.
			if b, err := r.Peek(4); err != nil || binary.BigEndian.Uint32(b) > 1<<20 {
				continue
			}
		}
		if _, err := io.ReadFull(r, hdr[1:]); err != nil {
			return errs
		}
		body := make([]byte, int(binary.BigEndian.Uint32(hdr[1:]))-4)
		if _, err := io.ReadFull(r, body); err != nil {
			return errs
		}
		if hdr[0] == 'E' {
			var er pgproto3.ErrorResponse
			if err := er.Decode(body); err != nil {
				t.Fatalf("bad ErrorResponse: %v", err)
			}
			errs = append(errs, er)
		}
	}
}

func startupPacket(params ...string) []byte {
	b := []byte{0, 0, 0, 0, 0, 3, 0, 0}
	for _, p := range params {
		b = append(b, p...)
		b = append(b, 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

func TestBadStartupInput(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.StartupTimeout = 300 * time.Millisecond })
	tests := []struct {
		name   string
		send   []byte
		code   string
		reason string
	}{
		{"stall mid-packet", []byte{0, 0, 0, 40, 0, 3, 0, 0, 'u', 's'}, "08P01", "timed out"},
		{"stall before anything", nil, "08P01", "timed out"},
		{"oversized startup packet", []byte{0, 1, 0, 0, 0, 3, 0, 0}, "08P01", "length"},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "08P01", "startup"},
		{"bad protocol", []byte{0, 0, 0, 8, 0, 9, 0, 0}, "0A000", "protocol"},
		{"no user", startupPacket("database", "x"), "28000", "user"},
		{"replication", startupPacket("user", "AKALX", "replication", "database"), "0A000", "replication"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.auth.Rejections())
			nc, err := net.Dial("tcp", e.addr.String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if _, err := nc.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			errs := readErrors(t, nc, 5*time.Second)
			if len(errs) != 1 || errs[0].Code != tc.code || errs[0].Severity != "FATAL" {
				t.Fatalf("errors = %+v, want one FATAL %s", errs, tc.code)
			}
			rej := e.auth.Rejections()
			if len(rej) != before+1 || !strings.Contains(strings.ToLower(rej[before].Reason+errs[0].Message), tc.reason) {
				t.Fatalf("rejections = %+v, want one about %q", rej[before:], tc.reason)
			}
		})
	}
}

func TestRequireTLSRefusesPlaintext(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.RequireTLS = true })
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	_, err := pgconn.Connect(ctxT(t, 10*time.Second), e.url(g, ""))
	if pgCode(err) != "28000" || !strings.Contains(err.Error(), "requires TLS") {
		t.Fatalf("err = %v, want 28000 requires TLS", err)
	}
}

// After authentication: an oversized message or an unknown message type is
// a FATAL error, recorded in the session, and the upstream backend goes.
func TestBadMessagesAfterStartup(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxMessageBytes = 4096 })
	tests := []struct {
		name string
		msg  []byte
		code string
	}{
		{"oversized query", append([]byte{'Q', 0, 0, 0x20, 0}, make([]byte, 100)...), "54000"},
		{"unknown type", []byte{'!', 0, 0, 0, 4}, "08P01"},
		{"bad length", []byte{'Q', 0, 0, 0, 2}, "08P01"},
		{"query without terminator", []byte{'Q', 0, 0, 0, 7, 'a', 'b', 'c'}, "08P01"},
		{"malformed bind", []byte{'B', 0, 0, 0, 6, 'x', 'y'}, "08P01"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := e.grant(time.Hour, "pg:select %s.public.customers")
			ctx := ctxT(t, 10*time.Second)
			pc, err := pgconn.Connect(ctx, e.url(g, ""))
			if err != nil {
				t.Fatal(err)
			}
			hc, err := pc.Hijack()
			if err != nil {
				t.Fatal(err)
			}
			defer hc.Conn.Close()
			if _, err := hc.Conn.Write(tc.msg); err != nil {
				t.Fatal(err)
			}
			errs := readErrors(t, hc.Conn, 5*time.Second)
			if len(errs) != 1 || errs[0].Code != tc.code || errs[0].Severity != "FATAL" {
				t.Fatalf("errors = %+v, want one FATAL %s", errs, tc.code)
			}
			var refused bool
			for _, c := range e.auth.Calls(g.ID) {
				refused = refused || (c.Kind == "request" && !c.Allowed && c.Error != "")
			}
			if !refused {
				t.Fatalf("not recorded: %+v", e.auth.Calls(g.ID))
			}
			deadline := time.Now().Add(5 * time.Second)
			for e.backendsOf(g.ID) != 0 {
				if time.Now().After(deadline) {
					t.Fatal("upstream backend left behind")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	_ = context.Background
}

// rawStartup is a StartupMessage of protocol 3.0 with body as its
// parameters, exactly as given.
func rawStartup(body string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
	b = binary.BigEndian.AppendUint32(b, 3<<16)
	return append(b, body...)
}

// A startup packet PostgreSQL refuses, the gateway refuses with the same
// code: the same bytes are sent to both. pgproto3's decoder, which the
// gateway used, took an empty name mid-packet for a parameter's.
func TestStartupLayoutAsPostgres(t *testing.T) {
	cfg, err := pgconn.ParseConfig(adminDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	pgAddr := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	e := newEnv(t, nil)
	for _, tc := range []struct{ name, body, code string }{
		{"no terminator", "user\x00u\x00", "08P01"},
		{"an empty name mid-packet", "user\x00u\x00\x00foo\x00\x00", "08P01"},
		{"bytes after the terminator", "user\x00u\x00\x00junk", "08P01"},
		{"a name without a value", "user\x00u\x00database\x00\x00", "08P01"},
		{"nothing at all", "", "08P01"},
		{"no parameters", "\x00", "28000"},
		{"an empty user", "user\x00\x00\x00", "28000"},
	} {
		got := map[string]string{}
		for who, addr := range map[string]string{"PostgreSQL": pgAddr, "the gateway": e.addr.String()} {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := nc.Write(rawStartup(tc.body)); err != nil {
				t.Fatal(err)
			}
			errs := readErrors(t, nc, 5*time.Second)
			nc.Close()
			if len(errs) != 1 || errs[0].Severity != "FATAL" {
				t.Fatalf("%s: %s answered %+v, want one FATAL", tc.name, who, errs)
			}
			got[who] = errs[0].Code + " " + errs[0].Message
			if errs[0].Code != tc.code {
				t.Errorf("%s: %s answered %s, want %s", tc.name, who, got[who], tc.code)
			}
		}
		t.Logf("%s: %v", tc.name, got)
	}
}
