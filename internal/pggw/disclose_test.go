package pggw

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/scope"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// stallAuth is the fake authority with a recorder that stalls on demand:
// while stalled, every request's record (Request and RequestAsync) waits
// until release, and then succeeds or fails as release says.
type stallAuth struct {
	*gatewaytest.Authority
	mu      sync.Mutex
	g       *stallGate
	entered chan struct{} // a record waits on the gate (buffered)
}

type stallGate struct {
	ch   chan struct{}
	fail bool
}

var errStalledRecord = errors.New("stalled record failed")

func newStallAuth(a *gatewaytest.Authority) *stallAuth {
	return &stallAuth{Authority: a, entered: make(chan struct{}, 64)}
}

func (s *stallAuth) stall() {
	s.mu.Lock()
	s.g = &stallGate{ch: make(chan struct{})}
	s.mu.Unlock()
}

// release lets the stalled records end (failing if fail) and returns the
// time just before they can.
func (s *stallAuth) release(fail bool) time.Time {
	s.mu.Lock()
	g := s.g
	s.g = nil
	s.mu.Unlock()
	g.fail = fail
	at := time.Now()
	close(g.ch)
	return at
}

func (s *stallAuth) gate() *stallGate {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.g
}

func (s *stallAuth) wait(ctx context.Context, g *stallGate) error {
	if g == nil {
		return nil
	}
	s.entered <- struct{}{}
	select {
	case <-g.ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	if g.fail {
		return errStalledRecord
	}
	return nil
}

func (s *stallAuth) StartSession(ctx context.Context, g *gateway.Grant, client string) (*gateway.Session, error) {
	in, err := s.Authority.StartSession(ctx, g, client)
	if err != nil {
		return nil, err
	}
	request := func(ctx context.Context, c gateway.Call) error {
		if err := s.wait(ctx, s.gate()); err != nil {
			return err
		}
		return in.Request(ctx, c)
	}
	async := func(ctx context.Context, c gateway.Call) func(context.Context) error {
		done := make(chan error, 1)
		gt := s.gate()
		if gt == nil {
			done <- in.Request(ctx, c)
		} else {
			go func() { done <- request(ctx, c) }()
		}
		return func(wctx context.Context) error {
			select {
			case err := <-done:
				return err
			case <-wctx.Done():
				return wctx.Err()
			}
		}
	}
	return gateway.NewSession(in.ID, g, gateway.Recorder{Request: request, RequestAsync: async, Result: in.Result, End: in.End}), nil
}

// tap records what a client reads from the gateway from the moment it is
// armed: the bytes and when the first of them arrived.
type tap struct {
	mu    sync.Mutex
	armed bool
	buf   []byte
	first time.Time
}

func (t *tap) arm() {
	t.mu.Lock()
	t.armed, t.buf, t.first = true, nil, time.Time{}
	t.mu.Unlock()
}

func (t *tap) got() ([]byte, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.buf...), t.first
}

type tapConn struct {
	net.Conn
	t *tap
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.t.mu.Lock()
		if c.t.armed {
			if c.t.buf == nil {
				c.t.first = time.Now()
			}
			c.t.buf = append(c.t.buf, p[:n]...)
		}
		c.t.mu.Unlock()
	}
	return n, err
}

// msgTypes lists the backend message types in b (whole messages only).
func msgTypes(b []byte) string {
	var out []byte
	for len(b) >= 5 {
		n := int(binary.BigEndian.Uint32(b[1:5]))
		out = append(out, b[0])
		if n+1 > len(b) {
			break
		}
		b = b[n+1:]
	}
	return string(out)
}

func newStallEnv(t *testing.T) (*env, *stallAuth) {
	var sa *stallAuth
	e := newEnv(t, func(o *Options) {
		sa = newStallAuth(o.Authority.(*gatewaytest.Authority))
		o.Authority = sa
	})
	return e, sa
}

func (e *env) tapConnect(g *gateway.Grant) (*pgx.Conn, *tap) {
	e.t.Helper()
	cfg, err := pgx.ParseConfig(e.url(g, ""))
	if err != nil {
		e.t.Fatal(err)
	}
	tp := &tap{}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &tapConn{Conn: nc, t: tp}, nil
	}
	c, err := pgx.ConnectConfig(ctxT(e.t, 15*time.Second), cfg)
	if err != nil {
		e.t.Fatalf("connect through the gateway: %v", err)
	}
	e.t.Cleanup(func() { c.Close(context.Background()) })
	return c, tp
}

// ranUpstream waits until the grant's backend has run a statement
// containing mark and is idle again: its answer has left PostgreSQL.
func (e *env) ranUpstream(g *gateway.Grant, mark string) {
	e.t.Helper()
	admin := e.admin()
	ctx := ctxT(e.t, 15*time.Second)
	for {
		var n int
		err := admin.QueryRow(ctx, `select count(*) from pg_stat_activity
			where usename = $1 and state = 'idle' and strpos(query, $2) > 0`, "airlock_"+g.ID, mark).Scan(&n)
		if err != nil {
			e.t.Fatalf("pg_stat_activity: %v", err)
		}
		if n > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReadAnswerHeldUntilDurable: on a read-only session a SELECT reaches
// PostgreSQL while its record is stalled, and no byte of its answer
// reaches the client until the record is durable; simple protocol,
// extended in one batch, and a prepared statement.
func TestReadAnswerHeldUntilDurable(t *testing.T) {
	e, sa := newStallEnv(t)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	c, tp := e.tapConnect(g)
	ctx := ctxT(t, 30*time.Second)
	if _, err := c.Prepare(ctx, "byid", "select name, 'mark_prepared' from customers where id = $1"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, mark string
		run        func() (string, error)
	}{
		{"simple", "mark_simple", func() (string, error) {
			var s string
			err := c.QueryRow(ctx, "select name || 'mark_simple' from customers where id = 3", pgxSimple).Scan(&s)
			return s, err
		}},
		{"extended", "mark_extended", func() (string, error) {
			res := c.PgConn().ExecParams(ctx, "select name || 'mark_extended' from customers where id = $1", [][]byte{[]byte("3")}, nil, nil, nil).Read()
			if res.Err != nil {
				return "", res.Err
			}
			return string(res.Rows[0][0]), nil
		}},
		{"prepared", "mark_prepared", func() (string, error) {
			res := c.PgConn().ExecPrepared(ctx, "byid", [][]byte{[]byte("3")}, nil, nil).Read()
			if res.Err != nil {
				return "", res.Err
			}
			return string(res.Rows[0][0]), nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sa.stall()
			tp.arm()
			type answer struct {
				s   string
				err error
			}
			done := make(chan answer, 1)
			go func() { s, err := tc.run(); done <- answer{s, err} }()
			<-sa.entered
			e.ranUpstream(g, tc.mark)
			if b, _ := tp.got(); len(b) > 0 {
				t.Fatalf("the client read %q before the record was durable", msgTypes(b))
			}
			select {
			case a := <-done:
				t.Fatalf("the client had its answer before the record was durable: %+v", a)
			default:
			}
			at := sa.release(false)
			a := <-done
			if a.err != nil || !strings.HasPrefix(a.s, "customer 3") {
				t.Fatalf("answer %q, %v", a.s, a.err)
			}
			if _, first := tp.got(); first.Before(at) {
				t.Fatalf("first byte at %v, before the record was durable at %v", first, at)
			}
		})
	}
	e.settle(g)
	var marks int
	for _, r := range e.requests(g) {
		if strings.Contains(r.Params["statement"], "mark_") {
			marks++
		}
	}
	if marks != 3 {
		t.Fatalf("%d of the 3 statements recorded", marks)
	}
}

// TestReadRecordFailureWithholdsAnswer: a SELECT that ran while its
// record was written, whose record then fails: no row reaches the client,
// which gets FATAL 58000, and the session ends.
func TestReadRecordFailureWithholdsAnswer(t *testing.T) {
	e, sa := newStallEnv(t)
	g := e.grant(time.Hour, "pg:select %s.public.secrets")
	for _, mode := range []string{"simple", "extended"} {
		t.Run(mode, func(t *testing.T) {
			c, tp := e.tapConnect(g)
			ctx := ctxT(t, 30*time.Second)
			mark := "mark_fail_" + mode
			sa.stall()
			tp.arm()
			errc := make(chan error, 1)
			go func() {
				var v string
				var err error
				if mode == "simple" {
					err = c.QueryRow(ctx, "select v || '"+mark+"' from secrets", pgxSimple).Scan(&v)
				} else {
					res := c.PgConn().ExecParams(ctx, "select v || '"+mark+"' from secrets where id = $1", [][]byte{[]byte("1")}, nil, nil, nil).Read()
					err = res.Err
				}
				errc <- err
			}()
			<-sa.entered
			e.ranUpstream(g, mark)
			sa.release(true)
			err := <-errc
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Severity != "FATAL" || pe.Code != "58000" || !strings.Contains(pe.Message, "withheld") {
				t.Fatalf("err = %v, want FATAL 58000 … withheld", err)
			}
			b, _ := tp.got()
			if types := msgTypes(b); types != "E" || bytes.Contains(b, []byte("crown jewels")) {
				t.Fatalf("the client read %q (%q), want only the error", types, b)
			}
			if !c.IsClosed() {
				if err := c.Ping(ctx); err == nil {
					t.Fatal("the session survived its failed record")
				}
			}
		})
	}
	// No result without its request: the failed statements' results are
	// not recorded.
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range e.auth.Sessions() {
		for !s.Ended() {
			if time.Now().After(deadline) {
				t.Fatal("a session did not end")
			}
			time.Sleep(5 * time.Millisecond)
		}
		reqs := map[string]bool{}
		for _, c := range s.Calls() {
			if c.Kind == "request" {
				reqs[c.Params["n"]] = true
			}
		}
		for _, c := range s.Calls() {
			if c.Kind == "result" && c.Action != "pg:connect" && !reqs[c.Params["n"]] {
				t.Errorf("session %s: a result for statement %s, whose request was never recorded: %+v", s.ID, c.Params["n"], c)
			}
		}
	}
}

// TestPsqlReadHeldUntilDurable: the same with psql, for the answer and for
// a failed record.
func TestPsqlReadHeldUntilDurable(t *testing.T) {
	psql := needBinary(t, "psql")
	e, sa := newStallEnv(t)
	g := e.grant(time.Hour, "pg:select %s.public.secrets")
	for _, fail := range []bool{false, true} {
		mark := "mark_psql_ok"
		if fail {
			mark = "mark_psql_fail"
		}
		sa.stall()
		var out lockedBuffer
		cmd := exec.Command(psql, "-X", "-At", "-c", "select v || '"+mark+"' from secrets")
		cmd.Env = e.clientEnv(g, "disable")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waited := make(chan error, 1)
		go func() { waited <- cmd.Wait() }()
		<-sa.entered
		e.ranUpstream(g, mark)
		select {
		case err := <-waited:
			t.Fatalf("psql ended before the record was durable: %v %q", err, out.String())
		default:
		}
		if s := out.String(); s != "" {
			t.Fatalf("psql printed %q before the record was durable", s)
		}
		sa.release(fail)
		err := <-waited
		s := out.String()
		switch {
		case !fail && (err != nil || !strings.Contains(s, "the crown jewels"+mark)):
			t.Fatalf("psql: %v %q", err, s)
		case fail && (err == nil || strings.Contains(s, "crown jewels") || !strings.Contains(s, "withheld")):
			t.Fatalf("psql after a failed record: %v %q", err, s)
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestWritesStillDurableBeforeForward: a grant that can write keeps
// durable-before-forward, and so does a statement that is not a read on a
// read-only session.
func TestWritesStillDurableBeforeForward(t *testing.T) {
	e, sa := newStallEnv(t)
	admin := e.admin()
	ctx := ctxT(t, 30*time.Second)
	for _, tc := range []struct {
		name, scope, sql string
		mode             pgx.QueryExecMode
	}{
		{"write grant", "pg:insert,pg:select %s.public.side_effects", "select 'mark_w1' from side_effects", 0},
		{"read grant, not a read", "pg:select %s.public.customers", "set application_name = 'mark_w2'", 0},
		{"read grant, a read and not a read in one query", "pg:select %s.public.customers", "select 1; set application_name = 'mark_w3'", 0},
		{"read grant, not a read behind a nested comment", "pg:select %s.public.customers", "/* /* */ select */ set application_name = 'mark_w4'", 0},
		{"read grant, not a read behind a comment ended by CR", "pg:select %s.public.customers", "--\rcreate temp table mark_w5 as --\nselect 1 as x", 0},
		// SELECT … INTO creates a table (CREATE TABLE AS).
		{"read grant, SELECT INTO", "pg:select %s.public.customers", "select 'mark_w6' as x into temp t6", 0},
		{"read grant, SELECT INTO, extended", "pg:select %s.public.customers", "select 'mark_w7' as x into temp t7", pgx.QueryExecModeExec},
		{"read grant, SELECT INTO in a multi-statement query", "pg:select %s.public.customers", "select 1; select 'mark_w8' as x into temp t8", 0},
		// Functions granted to PUBLIC that change state others see.
		{"read grant, SELECT pg_notify", "pg:select %s.public.customers", "select pg_notify('mark_w9', 'x')", 0},
		{"read grant, SELECT lo_from_bytea, extended", "pg:select %s.public.customers", "select lo_from_bytea(0, 'mark_w10')", pgx.QueryExecModeExec},
		{"read grant, SELECT pg_advisory_lock", "pg:select %s.public.customers", "select pg_catalog.pg_advisory_xact_lock(7) /* mark_w11 */", 0},
		{"read grant, SELECT a quoted function name", "pg:select %s.public.customers", `select "pg_notify"('mark_w12', 'x')`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := e.grant(time.Hour, tc.scope)
			c := e.connect(g, "")
			sa.stall()
			errc := make(chan error, 1)
			mode := pgxSimple
			if tc.mode != 0 {
				mode = tc.mode
			}
			go func() { _, err := c.Exec(ctx, tc.sql, mode); errc <- err }()
			<-sa.entered
			// The client loop is inside the durable write: nothing forwarded,
			// however long the record takes (a statement forwarded while
			// its record is written would reach PostgreSQL within this).
			for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				var n int
				if err := admin.QueryRow(ctx, "select count(*) from pg_stat_activity where usename = $1 and strpos(query, 'mark_w') > 0",
					"airlock_"+g.ID).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					sa.release(false)
					t.Fatal("the statement reached PostgreSQL before its record was durable")
				}
			}
			sa.release(false)
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestReadOnlyScope(t *testing.T) {
	for _, tc := range []struct {
		scope []string
		want  bool
	}{
		{[]string{"pg:select db.public.*"}, true},
		{[]string{"pg:select db.public.a", "pg:select db.public.b"}, true},
		{[]string{"pg:select db.public.a", "pg:insert db.public.b"}, false},
		{[]string{"pg:select,pg:update db.public.a"}, false},
		{nil, false},
	} {
		var sc scope.Scope
		if tc.scope != nil {
			var err error
			if sc, err = scope.Parse(tc.scope); err != nil {
				t.Fatal(err)
			}
		}
		if got := readOnlyScope(sc); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.scope, got, tc.want)
		}
	}
}

// TestReadSplitWithEitherBackslashReading: the gateway learns that
// standard_conforming_strings changed only when the upstream reports it
// (ParameterStatus, at the end of the query that changed it). A query the
// client pipelines behind that one is split with the old reading: with
// the new one, "select '\” ; set … --'" is a SELECT and then a SET, not
// one SELECT, and the SET must not run before its record is durable.
func TestReadSplitWithEitherBackslashReading(t *testing.T) {
	e, sa := newStallEnv(t)
	admin := e.admin()
	ctx := ctxT(t, 30*time.Second)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	pc, err := pgconn.Connect(ctx, e.url(g, ""))
	if err != nil {
		t.Fatal(err)
	}
	hc, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Conn.Close()
	send := func(sql string) {
		t.Helper()
		hc.Frontend.Send(&pgproto3.Query{String: sql})
		if err := hc.Frontend.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// The server reports the new setting only when this query ends.
	send("set standard_conforming_strings = off; select pg_sleep(1.5) as mark_scs")
	for {
		var n int
		if err := admin.QueryRow(ctx, "select count(*) from pg_stat_activity where usename = $1 and state = 'active' and strpos(query, 'mark_scs') > 0",
			"airlock_"+g.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	sa.stall()
	send(`select '\'' ; set application_name = 'mark_scs_w' --'`)
	<-sa.entered
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		var n int
		if err := admin.QueryRow(ctx, "select count(*) from pg_stat_activity where application_name = 'mark_scs_w'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			sa.release(false)
			t.Fatal("a SET ran upstream before its record was durable")
		}
	}
	sa.release(false)
}

// TestReadOfOwnObjectsWaits: PUBLIC may create temporary views, functions
// and types, which a later SELECT reaches without naming a function (and a
// temporary relation hides a table of the same name). Once a read-only
// session has run a statement that can define such objects, its reads
// wait for their records like writes.
func TestReadOfOwnObjectsWaits(t *testing.T) {
	e, sa := newStallEnv(t)
	admin := e.admin()
	ctx := ctxT(t, 30*time.Second)
	for _, tc := range []struct {
		name, setup, sql string
		mode             pgx.QueryExecMode
	}{
		{"temp view", "create temp view v as select pg_try_advisory_lock(%d) as l", "select * from v", pgxSimple},
		{"temp view, extended", "create temp view v as select pg_try_advisory_lock(%d) as l", "select l from v", pgx.QueryExecModeExec},
		{"temp view in a DO block", "do $$ begin execute 'create temp view v as select pg_try_advisory_lock(%d) as l'; end $$", "table v", pgxSimple},
		{"temp view hiding a table", "create temp view customers as select pg_try_advisory_lock(%d) as l", "select * from customers", pgxSimple},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := 5150 + len(tc.name)
			g := e.grant(time.Hour, "pg:select %s.public.customers")
			c := e.connect(g, "")
			if _, err := c.Exec(ctx, fmt.Sprintf(tc.setup, key), pgxSimple); err != nil {
				t.Fatal(err)
			}
			sa.stall()
			errc := make(chan error, 1)
			go func() { _, err := c.Exec(ctx, tc.sql, tc.mode); errc <- err }()
			<-sa.entered
			for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				var n int
				if err := admin.QueryRow(ctx, "select count(*) from pg_locks where locktype = 'advisory' and objid = $1", key).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					sa.release(false)
					t.Fatal("a read of the session's own view took a lock before its record was durable")
				}
			}
			sa.release(false)
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			c.Close(ctx)
		})
	}
}

// TestReadCallOfKeywordNamedFunctionWaits: "over", "json", "rows" and
// other keywords that "(" follows in some clauses also name functions
// (the DBA's, or those of any role with CREATE on a schema of the path),
// and "select over(1)" calls one: such a read waits for its record like
// any call of a function that is not a pure built-in.
func TestReadCallOfKeywordNamedFunctionWaits(t *testing.T) {
	e, sa := newStallEnv(t)
	admin := e.admin()
	ctx := ctxT(t, 30*time.Second)
	for _, name := range []string{"over", "json", "rows", "is"} {
		if _, err := admin.Exec(ctx, fmt.Sprintf(`create function public.%q(k int) returns int language sql
			as 'select 1 from pg_catalog.pg_advisory_lock(k)'`, name)); err != nil {
			t.Fatal(err)
		}
	}
	for i, tc := range []struct {
		name, sql string
		mode      pgx.QueryExecMode
	}{
		{"over", "select over(%d)", pgxSimple},
		{"json, extended", "select json(%d)", pgx.QueryExecModeExec},
		{"rows in WHERE", "select name from customers where id = 1 and rows(%d) = 1", pgxSimple},
		{"is after a window", "select count(*) over (), is(%d) from customers", pgxSimple},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := 6160 + i
			g := e.grant(time.Hour, "pg:select %s.public.customers")
			c := e.connect(g, "")
			sa.stall()
			errc := make(chan error, 1)
			go func() { _, err := c.Exec(ctx, fmt.Sprintf(tc.sql, key), tc.mode); errc <- err }()
			<-sa.entered
			for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				var n int
				if err := admin.QueryRow(ctx, "select count(*) from pg_locks where locktype = 'advisory' and objid = $1", key).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					sa.release(false)
					t.Fatal("a read calling a function named like a keyword took a lock before its record was durable")
				}
			}
			sa.release(false)
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			c.Close(ctx)
		})
	}
}

// TestReadOfObjectsDefinedInEarlierSessionWaits: where PUBLIC may CREATE
// in public (a database upgraded from PostgreSQL 14 or older), a grant
// role's view or function outlives the session that defined it, and a
// later session reads it without naming a function; one grant's
// function named like a built-in also catches another grant's call of it
// (lower(varchar) is a closer match than pg_catalog.lower(text)). In such
// a database every read of a read-only session waits for its record.
func TestReadOfObjectsDefinedInEarlierSessionWaits(t *testing.T) {
	e, sa := newStallEnv(t)
	admin := e.admin()
	ctx := ctxT(t, 30*time.Second)
	if _, err := admin.Exec(ctx, "GRANT CREATE ON SCHEMA public TO PUBLIC"); err != nil {
		t.Fatal(err)
	}
	const viewKey, funcKey = 7170, 7171
	planter := e.grant(time.Hour, "pg:select %s.public.customers")
	c := e.connect(planter, "")
	for _, sql := range []string{
		fmt.Sprintf("create view public.v as select pg_try_advisory_lock(%d) as l", viewKey),
		fmt.Sprintf(`create function public.lower(varchar) returns text language sql
			as 'select pg_catalog.lower($1::text) from pg_catalog.pg_advisory_lock(%d)'`, funcKey),
	} {
		if _, err := c.Exec(ctx, sql, pgxSimple); err != nil {
			t.Fatal(err)
		}
	}
	c.Close(ctx)
	for _, tc := range []struct {
		name string
		g    *gateway.Grant
		sql  string
		key  int
	}{
		{"own view, a later session", planter, "select * from v", viewKey},
		{"another grant's function", e.grant(time.Hour, "pg:select %s.public.customers"), "select lower(name::varchar) from customers", funcKey},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.connect(tc.g, "")
			sa.stall()
			errc := make(chan error, 1)
			go func() { _, err := c.Exec(ctx, tc.sql, pgxSimple); errc <- err }()
			<-sa.entered
			for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				var n int
				if err := admin.QueryRow(ctx, "select count(*) from pg_locks where locktype = 'advisory' and objid = $1", tc.key).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					sa.release(false)
					t.Fatal("a read ran a grant role's object before its record was durable")
				}
			}
			sa.release(false)
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			c.Close(ctx)
		})
	}
}

// TestReadCallByAttributeNotationWaits: PostgreSQL calls f(c) for "c.f"
// when f takes c's row type, so "select c.touch from customers c" runs the
// database's function touch(customers) with no "(" in the text. Where the
// grant's role may call such a function (Role.RowFunctions), a read-only
// session's reads wait for their records; it took the lock here before
// its record was durable.
func TestReadCallByAttributeNotationWaits(t *testing.T) {
	e, sa := newStallEnv(t)
	admin := e.admin()
	ctx := ctxT(t, 30*time.Second)
	// Before the grants: their roles are checked when they are made.
	if _, err := admin.Exec(ctx, `create function public.touch(c customers) returns int language sql
		as 'select 1 from pg_catalog.pg_advisory_lock(7270 + c.id)'`); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name, sql string
		mode      pgx.QueryExecMode
	}{
		{"alias", "select c.touch from customers c where id = %d", pgxSimple},
		{"parenthesized, extended", "select (c).touch from customers c where id = %d", pgx.QueryExecModeExec},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := i + 1
			g := e.grant(time.Hour, "pg:select %s.public.customers")
			c := e.connect(g, "")
			sa.stall()
			errc := make(chan error, 1)
			go func() { _, err := c.Exec(ctx, fmt.Sprintf(tc.sql, id), tc.mode); errc <- err }()
			<-sa.entered
			for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				var n int
				if err := admin.QueryRow(ctx, "select count(*) from pg_locks where locktype = 'advisory' and objid = $1", 7270+id).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					sa.release(false)
					t.Fatal("a read calling a function by attribute notation took a lock before its record was durable")
				}
			}
			sa.release(false)
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			c.Close(ctx)
		})
	}
}

// TestReadCallOfShadowedBuiltinWaits: the database's public.lower(varchar)
// matches lower(name) over a varchar column better than pg_catalog's
// lower(text), so that "pure" call ran it. Where the grant's role may call
// a function named like a built-in (Role.ShadowsBuiltins), a read-only
// session's reads wait for their records; it took the lock here before
// its record was durable.
func TestReadCallOfShadowedBuiltinWaits(t *testing.T) {
	e, sa := newStallEnv(t)
	admin := e.admin()
	ctx := ctxT(t, 30*time.Second)
	const key = 7280
	// Before the grant: its role is checked when it is made.
	if _, err := admin.Exec(ctx, fmt.Sprintf(`create function public.lower(varchar) returns text language sql
		as 'select pg_catalog.lower($1::text) from pg_catalog.pg_advisory_lock(%d)'`, key)); err != nil {
		t.Fatal(err)
	}
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	c := e.connect(g, "")
	sa.stall()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, "select lower(name::varchar) from customers where id = 1", pgxSimple)
		errc <- err
	}()
	<-sa.entered
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		var n int
		if err := admin.QueryRow(ctx, "select count(*) from pg_locks where locktype = 'advisory' and objid = $1", key).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			sa.release(false)
			t.Fatal("a read calling a built-in's name ran the database's function of that name before its record was durable")
		}
	}
	sa.release(false)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestBindWithoutExecuteRecordedFirst: PostgreSQL plans a statement at its
// Bind, evaluating a function declared IMMUTABLE over constant arguments
// there, so a batch of Parse, Bind and Sync with no Execute runs code (the
// session's own temporary function here, which takes a lock and could as
// well write through a volatile one). Such a Bind is recorded durably
// before its batch is forwarded, and not forwarded if it cannot be.
func TestBindWithoutExecuteRecordedFirst(t *testing.T) {
	e, sa := newStallEnv(t)
	admin := e.admin()
	ctx := ctxT(t, 30*time.Second)
	for i, tc := range []struct {
		name, scope string
		fail        bool
	}{
		{"write grant", "pg:insert,pg:select %s.public.events", false},
		{"read grant", "pg:select %s.public.customers", false},
		{"record fails", "pg:insert,pg:select %s.public.events", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := 8180 + i
			g := e.grant(time.Hour, tc.scope)
			c := e.connect(g, "")
			if _, err := c.Exec(ctx, `create function pg_temp.f(int) returns int immutable language sql
				as 'select 1 from pg_catalog.pg_advisory_lock($1)'`, pgxSimple); err != nil {
				t.Fatal(err)
			}
			locks := func() int {
				var n int
				if err := admin.QueryRow(ctx, "select count(*) from pg_locks where locktype = 'advisory' and objid = $1", key).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			fe := c.PgConn().Frontend()
			fe.Send(&pgproto3.Parse{Query: "select pg_temp.f($1)", ParameterOIDs: []uint32{23}})
			fe.Send(&pgproto3.Bind{Parameters: [][]byte{[]byte(fmt.Sprint(key))}})
			fe.Send(&pgproto3.Sync{})
			sa.stall()
			if err := fe.Flush(); err != nil {
				t.Fatal(err)
			}
			select {
			case <-sa.entered:
			case <-time.After(5 * time.Second):
				sa.release(false)
				t.Fatalf("the batch was not recorded (%d locks taken)", locks())
			}
			for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				if locks() != 0 {
					sa.release(false)
					t.Fatal("a Bind ran the statement's code before its record was durable")
				}
			}
			sa.release(tc.fail)
			var types []string
			for {
				m, err := fe.Receive()
				if err != nil {
					t.Fatal(err)
				}
				types = append(types, fmt.Sprintf("%T", m))
				if _, ok := m.(*pgproto3.ReadyForQuery); ok {
					break
				}
			}
			got := locks()
			switch {
			case tc.fail && (got != 0 || !strings.Contains(types[0], "ErrorResponse")):
				t.Fatalf("record failed, yet %d locks taken; answers %v", got, types)
			case !tc.fail && got != 1:
				t.Fatalf("%d locks taken after the record; answers %v", got, types)
			}
			if !tc.fail {
				var found bool
				for _, r := range e.requests(g) {
					found = found || (r.Params["bind"] != "" && r.Params["statement"] == "select pg_temp.f($1)" && r.Params["parameters"] != "")
				}
				if !found {
					t.Fatalf("no record of the Bind: %+v", e.requests(g))
				}
			}
			c.Close(ctx)
		})
	}
}
