package pggw

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// FuzzUpstreamLogin answers the gateway's upstream login (connectUpstream:
// pgconn, through the gateway's pooled Frontend) with arbitrary bytes,
// then closes. pgconn parses what the server sends; the gateway bounds
// its messages (maxLoginMessage) and keeps what the login reports. The
// login must fail or succeed, not panic or hang, and allocate no more
// than the bound however large a length the server declares.
func FuzzUpstreamLogin(f *testing.F) {
	gw, _ := fuzzGateway(f)
	var mu sync.Mutex
	var answer []byte
	tg := gw.targets["db"]
	tg.cfg.DialFunc = func(context.Context, string, string) (net.Conn, error) {
		mu.Lock()
		data := answer
		mu.Unlock()
		gwEnd, srv := net.Pipe()
		go func() {
			defer srv.Close()
			// The startup message, then the answer, then the end.
			if skipStartupMessage(srv) != nil {
				return
			}
			go io.Copy(io.Discard, srv) // whatever the login sends next
			_, _ = srv.Write(data)
		}()
		return gwEnd, nil
	}
	enc := func(ms ...pgproto3.BackendMessage) []byte {
		var b []byte
		for _, m := range ms {
			b, _ = m.Encode(b)
		}
		return b
	}
	ok := enc(&pgproto3.AuthenticationOk{},
		&pgproto3.ParameterStatus{Name: "client_encoding", Value: "UTF8"},
		&pgproto3.ParameterStatus{Name: "standard_conforming_strings", Value: "on"},
		&pgproto3.BackendKeyData{ProcessID: 42, SecretKey: []byte{1, 2, 3, 4}},
		&pgproto3.ReadyForQuery{TxStatus: 'I'})
	f.Add(ok)
	f.Add(append(ok, 'N', 0, 0, 0, 4)) // read ahead of the relay
	f.Add(enc(&pgproto3.AuthenticationOk{}, &pgproto3.BackendKeyData{ProcessID: 42, SecretKey: make([]byte, 256)}, &pgproto3.ReadyForQuery{TxStatus: 'T'}))
	f.Add(enc(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256"}},
		&pgproto3.AuthenticationSASLContinue{Data: []byte("r=abc,s=c2FsdA==,i=4096")}))
	f.Add(enc(&pgproto3.AuthenticationCleartextPassword{}, &pgproto3.AuthenticationMD5Password{Salt: [4]byte{1, 2, 3, 4}}))
	f.Add(enc(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "53300", Message: "too many connections", Detail: "d"}))
	f.Add(enc(&pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: []string{"_pq_.x"}}))
	f.Add(binary.BigEndian.AppendUint32([]byte{'R'}, 4+256<<20)) // declares 256 MiB
	f.Add(binary.BigEndian.AppendUint32([]byte{'S'}, 4+maxLoginMessage))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		mu.Lock()
		answer = data
		mu.Unlock()
		gwc, cl := net.Pipe()
		defer cl.Close()
		c := newConn(gw, gwc)
		c.t = tg
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.su.ctx = ctx
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		done := make(chan struct{})
		go func() {
			defer close(done)
			if hc, err := c.connectUpstream(Role{Name: "r", Password: "p"}, map[string]string{}); err == nil {
				hc.Conn.Close()
			}
		}()
		select {
		case <-done:
		case <-time.After(8 * time.Second):
			t.Fatal("the login neither failed nor succeeded")
		}
		runtime.ReadMemStats(&after)
		// pgconn's own buffers and structs, and one message of up to the
		// bound.
		bound := uint64(4<<20) + 4*uint64(len(data))
		if raceOn {
			bound *= 4
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > bound {
			t.Fatalf("the login allocated %d bytes, more than %d for %d bytes from the server", got, bound, len(data))
		}
	})
}

// skipStartupMessage reads a client's startup message (length, then the
// rest) and drops it, as a fake server's first step.
func skipStartupMessage(r io.Reader) error {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return err
	}
	_, err := io.CopyN(io.Discard, r, int64(binary.BigEndian.Uint32(n[:]))-4)
	return err
}
