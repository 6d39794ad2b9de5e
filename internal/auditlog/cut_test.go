package auditlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// cutProxy relays PostgreSQL connections and cuts them on demand: all at
// once (a process or network dying before its COMMIT is sent), or the
// connection that sends the next COMMIT, once the server answers it, so
// that the server commits but the client never hears of it.
type cutProxy struct {
	ln          net.Listener
	target      string
	cutOnCommit atomic.Bool
	cuts        atomic.Int32
	mu          sync.Mutex
	conns       map[net.Conn]bool
}

// startCutProxy relays to the server of dsn and returns the proxy and a
// DSN that goes through it.
func startCutProxy(t *testing.T, dsn string) (*cutProxy, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: u.Host, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.cutAll() })
	go p.serve()
	u.Host = ln.Addr().String()
	// The relay parses messages in clear: without this, a client that
	// tries TLS first (pgx's default, sslmode=prefer) stalls each new
	// connection until its context gives up.
	q := u.Query()
	q.Set("sslmode", "disable")
	u.RawQuery = q.Encode()
	return p, u.String()
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = true, true
		p.mu.Unlock()
		drop := new(atomic.Bool)
		go downstream(c, s, drop)
		go p.upstream(c, s, drop)
	}
}

// upstream relays the client's messages (sslmode=disable: the startup
// message, then typed messages), watching for a COMMIT: a simple query, or
// a prepared statement bound in a pipeline.
func (p *cutProxy) upstream(c, s net.Conn, drop *atomic.Bool) {
	cut := false
	defer func() {
		if !cut { // else downstream closes both
			c.Close()
			s.Close()
		}
	}()
	var n [4]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return
	}
	start := make([]byte, binary.BigEndian.Uint32(n[:]))
	copy(start, n[:])
	if _, err := io.ReadFull(c, start[4:]); err != nil {
		return
	}
	if _, err := s.Write(start); err != nil {
		return
	}
	stmts := map[string]bool{} // prepared statement name: is a COMMIT
	commitSent := false        // since the last Sync
	for {
		head := make([]byte, 5)
		if _, err := io.ReadFull(c, head); err != nil {
			return
		}
		msg := make([]byte, 1+binary.BigEndian.Uint32(head[1:]))
		copy(msg, head)
		if _, err := io.ReadFull(c, msg[5:]); err != nil {
			return
		}
		if _, err := s.Write(msg); err != nil {
			return
		}
		switch msg[0] {
		case 'P': // Parse: statement name, query
			name, rest, _ := bytes.Cut(msg[5:], []byte{0})
			query, _, _ := bytes.Cut(rest, []byte{0})
			stmts[string(name)] = isCommit(query)
		case 'B': // Bind: portal name, statement name
			_, rest, _ := bytes.Cut(msg[5:], []byte{0})
			name, _, _ := bytes.Cut(rest, []byte{0})
			commitSent = commitSent || stmts[string(name)]
		}
		// A COMMIT in the simple protocol, or a pipeline holding one
		// (extended protocol) once its Sync is relayed.
		commit := (msg[0] == 'Q' && isCommit(msg[5:])) || (msg[0] == 'S' && commitSent)
		if msg[0] == 'S' {
			commitSent = false
		}
		if commit && p.cutOnCommit.CompareAndSwap(true, false) {
			// The server has the COMMIT; the client loses the answer.
			// The connection is cut when the answer arrives, not now:
			// a client whose connection breaks cancels the statement
			// in flight (pgconn does), which would abort a pipeline
			// the server has not finished, COMMIT included.
			p.cuts.Add(1)
			cut = true
			drop.Store(true)
			return
		}
	}
}

// downstream relays the server's answers to the client until drop is set;
// then it drops the next answer and closes both sides.
func downstream(c, s net.Conn, drop *atomic.Bool) {
	defer c.Close()
	defer s.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if drop.Load() {
			return
		}
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func isCommit(query []byte) bool {
	return bytes.HasPrefix(bytes.ToLower(bytes.TrimSpace(query)), []byte("commit"))
}

func (p *cutProxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	p.cuts.Add(1)
}

// TestSharedLogCommitCut: a batch whose connection is cut before its COMMIT
// fails and none of its events ever appear; a batch whose COMMIT reached
// the server but whose answer was lost is acknowledged (the store asks the
// server for the transaction's outcome) and all its events are in the log.
// Either way the batch is wholly in or wholly out, the Log carries on, and
// the log verifies. (A process killed mid-batch is the first case, or the
// second with no one left to acknowledge; the cluster tests kill -9 real
// processes.)
func TestSharedLogCommitCut(t *testing.T) {
	dsn := pgDatabase(t)
	px, viaProxy := startCutProxy(t, dsn)
	signer, v := testKey(t)
	ctx := context.Background()
	var mode atomic.Int32 // 1: cut before the commit, 2: lose the commit's answer
	opts := replicaOptions(t.TempDir(), v, 0)
	opts.beforeCommit = func() {
		switch mode.Swap(0) {
		case 1:
			px.cutAll()
		case 2:
			px.cutOnCommit.Store(true)
		}
	}
	l := openLog(t, openPG(t, viaProxy), signer, opts)
	batch := func(tag string) []Event {
		evs := make([]Event, 40)
		for i := range evs {
			evs[i] = Event{Type: "test.append", Data: map[string]string{"id": fmt.Sprintf("%s/%d", tag, i)}}
		}
		return evs
	}
	out := &outcomes{acked: map[string]bool{}, failed: map[string]bool{}}
	appendBatch := func(tag string) error {
		evs := batch(tag)
		err := l.Append(ctx, evs...)
		for _, e := range evs {
			out.add(e.Data.(map[string]string)["id"], err)
		}
		return err
	}

	if err := appendBatch("before"); err != nil {
		t.Fatal(err)
	}
	mode.Store(1)
	if err := appendBatch("cut"); err == nil {
		t.Fatal("a batch whose connection was cut before its commit was acknowledged")
	}
	if l.Err() == nil {
		t.Error("Err is nil after a failed batch")
	}
	mode.Store(2)
	if err := appendBatch("answer-lost"); err != nil {
		t.Fatalf("a committed batch whose answer was lost: %v", err)
	}
	if px.cuts.Load() != 2 {
		t.Fatalf("the proxy cut %d times, want 2", px.cuts.Load())
	}
	if err := appendBatch("after"); err != nil {
		t.Fatal(err)
	}
	if err := l.Err(); err != nil {
		t.Errorf("Err after recovery: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	direct := openPG(t, dsn)
	out.checkLog(t, direct)
	if rep, err := Verify(ctx, direct, v, nil); err != nil || !rep.OK || rep.Size != 120 {
		t.Fatalf("verify: %+v, %v", rep, err)
	}
	// Another replica continues from where this one left off.
	l2 := openLog(t, direct, signer, replicaOptions(t.TempDir(), v, 1))
	if l2.Size() != 120 {
		t.Fatalf("another replica opens the log at size %d, want 120", l2.Size())
	}
}
