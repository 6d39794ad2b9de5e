package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
)

// env is a Recorder over a real store and log, as airlock serve runs
// them: appends durable in the journal, copied into SQLite behind.
type env struct {
	t   testing.TB
	ctx context.Context
	st  *sqlitestore.Store
	log *auditlog.Log
	rec *Recorder
}

func newEnv(t testing.TB, o Options) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	signer, _, err := auditlog.LoadOrCreateKey(dir, "airlock")
	if err != nil {
		t.Fatal(err)
	}
	var logStore store.Store = st
	lo := auditlog.Options{Origin: "airlock/sessions-test", Rows: review.StoreRows,
		JournalDir: filepath.Join(dir, "journal"), JournalKey: []byte("sessions-test-journal-key-32byte")}
	l, err := auditlog.Open(ctx, logStore, signer, lo)
	if err != nil {
		t.Fatal(err)
	}
	o.Log, o.Store = l, st
	if o.Now == nil {
		o.Now = func() time.Time { return time.Now().UTC() }
	}
	rec, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, st: st, log: l, rec: rec}
	t.Cleanup(func() {
		rec.Close()
		l.Close()
		st.Close()
	})
	return e
}

func grant(id string) *gateway.Grant {
	return gateway.NewGrant(gateway.Info{ID: id, Identity: "log-triage-bot", Target: "aws-prod", ExpiresAt: time.Now().Add(time.Hour)})
}

// entries returns the types of session sid's entries, in log order, once
// the store holds every entry committed so far.
func (e *env) entries(sid string) []store.LogEntry {
	e.t.Helper()
	if err := e.log.Sync(e.ctx); err != nil {
		e.t.Fatal(err)
	}
	es, err := e.st.LogEntries(e.ctx, store.LogFilter{SessionID: sid})
	if err != nil {
		e.t.Fatal(err)
	}
	return es
}

func types(es []store.LogEntry) string {
	var ts []string
	for _, e := range es {
		ts = append(ts, e.Type)
	}
	return strings.Join(ts, " ")
}

func TestRecorderRecordsASession(t *testing.T) {
	e := newEnv(t, Options{Replica: "r_test"})
	g := grant("g_1")
	ses, err := e.rec.Start(e.ctx, g, "s_1", "127.0.0.1:5000 aws-cli/2")
	if err != nil {
		t.Fatal(err)
	}
	put := gateway.Call{Action: "s3:PutObject", Resource: "arn:aws:s3:::logs/app/a", Allowed: true, BytesIn: 10}
	if err := ses.Request(e.ctx, put); err != nil {
		t.Fatal(err)
	}
	get := gateway.Call{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/b", Allowed: true}
	if err := ses.RequestAsync(e.ctx, get).Wait(e.ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []gateway.Call{put, get} {
		c.Status, c.BytesIn, c.BytesOut = "200", 0, 7
		if err := ses.Result(e.ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := ses.End(e.ctx); err != nil {
		t.Fatal(err)
	}

	es := e.entries("s_1")
	if got, want := types(es), "session.started session.call session.call session.results session.ended"; got != want {
		t.Fatalf("entries %q, want %q", got, want)
	}
	var started struct {
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal(es[0].Data, &started); err != nil || started.Data["replica"] != "r_test" || started.Data["client"] != "127.0.0.1:5000 aws-cli/2" {
		t.Fatalf("session.started data %s (%v)", es[0].Data, err)
	}
	var results struct {
		Data Results `json:"data"`
	}
	if err := json.Unmarshal(es[3].Data, &results); err != nil || len(results.Data.Results) != 2 {
		t.Fatalf("session.results %s (%v)", es[3].Data, err)
	}
	row, err := e.st.Session(e.ctx, "s_1")
	if err != nil {
		t.Fatal(err)
	}
	if row.Calls != 2 || row.BytesIn != 10 || row.BytesOut != 14 || !row.EndedAt.Equal(es[4].Time) || row.GrantID != "g_1" {
		t.Fatalf("row %+v, want 2 calls, 10 bytes in, 14 out, ended at %v", row, es[4].Time)
	}
}

// TestRecorderFlushMakesRowsCurrent: without the flusher running, a
// session's row lags its logged calls until Flush, after which it counts
// every call recorded before.
func TestRecorderFlushMakesRowsCurrent(t *testing.T) {
	e := newEnv(t, Options{})
	ses, err := e.rec.Start(e.ctx, grant("g_2"), "s_2", "127.0.0.1:5001")
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := ses.Request(e.ctx, gateway.Call{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/x", Allowed: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ses.Result(e.ctx, gateway.Call{Action: "s3:GetObject", BytesOut: 3}); err != nil {
		t.Fatal(err)
	}
	if err := e.log.Sync(e.ctx); err != nil {
		t.Fatal(err)
	}
	if row, err := e.st.Session(e.ctx, "s_2"); err != nil || row.Calls != 0 {
		t.Fatalf("before Flush: %+v (%v); want the row as started, 0 calls (the test does not test the flush)", row, err)
	}
	if err := e.rec.Flush(e.ctx); err != nil {
		t.Fatal(err)
	}
	row, err := e.st.Session(e.ctx, "s_2")
	if err != nil || row.Calls != 5 || row.BytesOut != 3 || !row.EndedAt.IsZero() {
		t.Fatalf("after Flush: %+v (%v); want 5 calls, 3 bytes out, open", row, err)
	}
	if got := types(e.entries("s_2")); got != "session.started session.call session.call session.call session.call session.call session.results" {
		t.Fatalf("entries %q", got)
	}
}

// TestRecorderFlushWaitsForAFlushInProgress: a Flush that finds nothing
// queued, because the flusher has just taken the queue and is still
// writing it, must not return before those writes: a read after it would
// miss what they record. (Under load this showed as grants'
// TestSessionResultsBatched reading a summary of 0 calls.) For the
// summary rows and for the batched results alike.
func TestRecorderFlushWaitsForAFlushInProgress(t *testing.T) {
	for _, tc := range []struct {
		name string
		// prepare leaves only the one kind of work queued; taken tells
		// when the flush in progress has taken it; flush is that flush;
		// check reads what it wrote.
		prepare func(e *env)
		taken   func(r *Recorder) bool
		flush   func(r *Recorder, ctx context.Context) error
		check   func(e *env) string
	}{
		{
			name: "rows",
			taken: func(r *Recorder) bool {
				r.dirtyMu.Lock()
				defer r.dirtyMu.Unlock()
				return len(r.dirty) == 0
			},
			flush: (*Recorder).flushRows,
			check: func(e *env) string {
				if row, err := e.st.Session(e.ctx, "s_4"); err != nil || row.Calls != 3 {
					return fmt.Sprintf("row %+v (%v); want 3 calls", row, err)
				}
				return ""
			},
		},
		{
			name: "results",
			// The rows first, so that a Flush that skipped the results
			// would not be held by a row write of its own.
			prepare: func(e *env) {
				if err := e.rec.flushRows(e.ctx); err != nil {
					e.t.Fatal(err)
				}
			},
			taken: func(r *Recorder) bool {
				r.resultsMu.Lock()
				defer r.resultsMu.Unlock()
				return len(r.withResults) == 0
			},
			flush: (*Recorder).flushAllResults,
			check: func(e *env) string {
				if got := types(e.entries("s_4")); !strings.HasSuffix(got, "session.results") {
					return fmt.Sprintf("entries %q; want the results logged", got)
				}
				return ""
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			ses, err := e.rec.Start(e.ctx, grant("g_4"), "s_4", "127.0.0.1:5004")
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if err := ses.Request(e.ctx, gateway.Call{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/x", Allowed: true}); err != nil {
					t.Fatal(err)
				}
			}
			if err := ses.Result(e.ctx, gateway.Call{Action: "s3:GetObject", BytesOut: 3}); err != nil {
				t.Fatal(err)
			}
			if tc.prepare != nil {
				tc.prepare(e)
			}
			if err := e.log.Sync(e.ctx); err != nil {
				t.Fatal(err)
			}
			// Hold the log's writer, then let a flush (the flusher's, as
			// it runs in the background) take the queue and wait on it.
			release, holding := make(chan struct{}), make(chan struct{})
			go e.log.Do(e.ctx, func(context.Context, store.Tx) ([]auditlog.Event, error) {
				close(holding)
				<-release
				return nil, nil
			})
			<-holding
			background := make(chan error, 1)
			go func() { background <- tc.flush(e.rec, e.ctx) }()
			for deadline := time.Now().Add(5 * time.Second); !tc.taken(e.rec); time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the background flush never took the queue")
				}
			}
			flushed := make(chan error, 1)
			go func() { flushed <- e.rec.Flush(e.ctx) }()
			select {
			case err := <-flushed:
				// Returned while the other flush is held: only right if
				// what it writes is already there, which it cannot be.
				close(release)
				<-background
				t.Fatalf("Flush returned (%v) while another flush was still writing", err)
			case <-time.After(200 * time.Millisecond):
				// Still waiting, as it should: let the held flush finish.
				close(release)
			}
			if err := <-flushed; err != nil {
				t.Fatal(err)
			}
			if err := <-background; err != nil {
				t.Fatal(err)
			}
			if msg := tc.check(e); msg != "" {
				t.Fatal(msg)
			}
		})
	}
}

// TestRecorderFlushWaitsForAnEndBeingWritten: a session whose end is
// being written when a read flushes is the end's to store, so Flush waits
// for that end before the read goes on. It did not: a review read right
// after psql exited (the session's end still on its way into the log)
// found the row as it was before its last flush, without the session's
// calls, about 2 runs in 5 of the PostgreSQL e2e test.
func TestRecorderFlushWaitsForAnEndBeingWritten(t *testing.T) {
	e := newEnv(t, Options{})
	ses, err := e.rec.Start(e.ctx, grant("g_5"), "s_5", "127.0.0.1:5005")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := ses.Request(e.ctx, gateway.Call{Action: "pg:select", Resource: "orders", Allowed: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.log.Sync(e.ctx); err != nil {
		t.Fatal(err)
	}
	// Hold the log's writer, then end the session: its end waits there.
	release, holding := make(chan struct{}), make(chan struct{})
	go e.log.Do(e.ctx, func(context.Context, store.Tx) ([]auditlog.Event, error) {
		close(holding)
		<-release
		return nil, nil
	})
	<-holding
	ended := make(chan error, 1)
	go func() { ended <- ses.End(e.ctx) }()
	for deadline := time.Now().Add(5 * time.Second); !endingNow(e.rec); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			close(release)
			t.Fatal("the session's end was never being written")
		}
	}
	flushed := make(chan error, 1)
	go func() { flushed <- e.rec.Flush(e.ctx) }()
	select {
	case err := <-flushed:
		close(release)
		<-ended
		t.Fatalf("Flush returned (%v) while the session's end, which stores its calls, was still being written", err)
	case <-time.After(200 * time.Millisecond):
		close(release)
	}
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if err := <-ended; err != nil {
		t.Fatal(err)
	}
	// What a read does next (grants.freshSessions): wait for the store.
	if err := e.log.Sync(e.ctx); err != nil {
		t.Fatal(err)
	}
	if row, err := e.st.Session(e.ctx, "s_5"); err != nil || row.Calls != 3 || row.EndedAt.IsZero() {
		t.Fatalf("row %+v (%v); want 3 calls and the end", row, err)
	}
}

// TestRecorderCloseLogsQueuedResults: results still batched when the
// recorder closes are logged, not lost.
func TestRecorderCloseLogsQueuedResults(t *testing.T) {
	e := newEnv(t, Options{})
	e.rec.Run()
	ses, err := e.rec.Start(e.ctx, grant("g_3"), "s_3", "127.0.0.1:5002")
	if err != nil {
		t.Fatal(err)
	}
	if err := ses.Request(e.ctx, gateway.Call{Action: "pg:select", Allowed: true}); err != nil {
		t.Fatal(err)
	}
	if err := ses.Result(e.ctx, gateway.Call{Action: "pg:select", Rows: 4}); err != nil {
		t.Fatal(err)
	}
	e.rec.Close()
	if got := types(e.entries("s_3")); got != "session.started session.call session.results" {
		t.Fatalf("entries after Close %q", got)
	}
	row, err := e.st.Session(e.ctx, "s_3")
	if err != nil || row.Calls != 1 || !row.EndedAt.IsZero() {
		t.Fatalf("row after Close: %+v (%v); want 1 call, still open (recovery ends it)", row, err)
	}
}

// TestRecorderRefusesWhatItCannotRecord: a call whose record the log does
// not take is refused with the Options' Refuse error, and is not counted.
func TestRecorderRefusesWhatItCannotRecord(t *testing.T) {
	refusal := errors.New("could not record durably")
	var refused atomic.Int32
	e := newEnv(t, Options{Refuse: func(what string, err error) error {
		refused.Add(1)
		return refusal
	}})
	ses, err := e.rec.Start(e.ctx, grant("g_4"), "s_4", "127.0.0.1:5003")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.log.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ses.Request(e.ctx, gateway.Call{Action: "s3:PutObject", Allowed: true}); !errors.Is(err, refusal) {
		t.Fatalf("Request on a closed log: %v, want the refusal", err)
	}
	if err := ses.RequestAsync(e.ctx, gateway.Call{Action: "s3:GetObject", Allowed: true}).Wait(e.ctx); !errors.Is(err, refusal) {
		t.Fatalf("RequestAsync on a closed log: %v, want the refusal", err)
	}
	if refused.Load() != 2 {
		t.Fatalf("Refuse called %d times, want 2", refused.Load())
	}
	if _, err := e.rec.Start(e.ctx, grant("g_4"), "s_5", "127.0.0.1:5004"); !errors.Is(err, refusal) {
		t.Fatalf("Start on a closed log: %v, want the refusal", err)
	}
}

// TestRecorderRejectsAreBounded: refused attempts beyond the policy's
// bounds are counted, not written one by one, and Close writes their
// summary.
func TestRecorderRejectsAreBounded(t *testing.T) {
	e := newEnv(t, Options{Rejections: gateway.RejectPolicy{PerKey: 2}})
	rj := gateway.Rejection{Gateway: "aws", Client: "127.0.0.2", CredentialID: "AKNOSUCH", Reason: "InvalidAccessKeyId"}
	for range 5 {
		if err := e.rec.Reject(e.ctx, rj); err != nil {
			t.Fatal(err)
		}
	}
	count := func(typ string) int {
		if err := e.log.Sync(e.ctx); err != nil {
			t.Fatal(err)
		}
		es, err := e.st.LogEntries(e.ctx, store.LogFilter{Type: typ})
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	if n := count("gateway.rejected"); n != 2 {
		t.Fatalf("%d attempts written one by one, want the policy's 2", n)
	}
	e.rec.Close()
	if err := e.log.Sync(e.ctx); err != nil {
		t.Fatal(err)
	}
	es, err := e.st.LogEntries(e.ctx, store.LogFilter{Type: "gateway.rejected_summary"})
	if err != nil || len(es) != 1 {
		t.Fatalf("%d summaries after Close (%v), want 1", len(es), err)
	}
	var sum struct {
		Data gateway.RejectionSummary `json:"data"`
	}
	if err := json.Unmarshal(es[0].Data, &sum); err != nil || sum.Data.Count != 3 {
		t.Fatalf("summary %s (%v), want the 3 attempts counted", es[0].Data, err)
	}
}

// TestRecorderFlusherRunsOnItsClock: the flusher's rounds follow the
// Options' Clock: results wait until it has moved by resultsInterval,
// rows until it has moved by flushInterval.
func TestRecorderFlusherRunsOnItsClock(t *testing.T) {
	fake := clock.NewFake(time.Now())
	e := newEnv(t, Options{Clock: fake, Now: func() time.Time { return fake.Now().UTC() }})
	e.rec.Run()
	ses, err := e.rec.Start(e.ctx, grant("g_5"), "s_6", "127.0.0.1:5005")
	if err != nil {
		t.Fatal(err)
	}
	if err := ses.Request(e.ctx, gateway.Call{Action: "pg:select", Allowed: true}); err != nil {
		t.Fatal(err)
	}
	if err := ses.Result(e.ctx, gateway.Call{Action: "pg:select", Rows: 2}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // room for a flusher that ignored its clock to run; this one must not
	if got := types(e.entries("s_6")); got != "session.started session.call" {
		t.Fatalf("before the clock moved: %q", got)
	}
	fake.Advance(resultsInterval)
	deadline := time.Now().Add(5 * time.Second)
	for types(e.entries("s_6")) != "session.started session.call session.results" {
		if time.Now().After(deadline) {
			t.Fatalf("results not logged after the clock moved: %q", types(e.entries("s_6")))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if row, err := e.st.Session(e.ctx, "s_6"); err != nil || row.Calls != 0 {
		t.Fatalf("row written before flushInterval: %+v (%v)", row, err)
	}
	fake.Advance(flushInterval)
	for {
		row, err := e.st.Session(e.ctx, "s_6")
		if err != nil {
			t.Fatal(err)
		}
		if row.Calls == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("row not written after flushInterval: %+v", row)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRecorderFlushResultsIdleAllocatesNothing: with no session's results
// queued, a results flush (the flusher's every tick) allocates nothing; it
// used to allocate the wait group, mutex and error its goroutines share,
// though it started none.
func TestRecorderFlushResultsIdleAllocatesNothing(t *testing.T) {
	e := newEnv(t, Options{})
	var err error
	if n := testing.AllocsPerRun(100, func() { err = e.rec.flushAllResults(e.ctx) }); n != 0 || err != nil {
		t.Fatalf("an idle results flush allocated %v objects (%v), want 0", n, err)
	}
}

// TestRecorderIdleTickAllocatesNothing: the flusher ticks every
// resultsInterval for as long as the server runs; a tick with nothing to
// flush must not allocate. Each used to allocate a new timer, its
// function, and the results flush's shared state (the wait group, mutex
// and error its goroutines share, though there were none): about 1.7 KB/s
// of garbage on an idle gateway, which regrew the heap the gateway had
// given back (bench/HISTORY.md).
func TestRecorderIdleTickAllocatesNothing(t *testing.T) {
	fake := clock.NewFake(time.Now())
	e := newEnv(t, Options{Clock: fake, Now: func() time.Time { return fake.Now().UTC() }})
	e.rec.Run()
	// The flusher has armed its timer (the only one on this clock) once
	// Pending reads 1; after each tick it arms it again.
	armed := func() {
		deadline := time.Now().Add(5 * time.Second)
		for fake.Pending() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the flusher did not arm its timer")
			}
			runtime.Gosched()
		}
	}
	armed()
	tick := func() {
		fake.Advance(resultsInterval)
		armed()
	}
	// Past flushInterval too, so that rounds writing rows are counted.
	if n := testing.AllocsPerRun(int(3*flushInterval/resultsInterval), tick); n != 0 {
		t.Fatalf("an idle flusher's tick allocated %v objects, want 0", n)
	}
}

// endingNow reports whether a session with calls not yet in its row (all
// of the test's) has its end being written.
func endingNow(r *Recorder) bool {
	r.dirtyMu.Lock()
	defer r.dirtyMu.Unlock()
	for st := range r.dirty {
		st.mu.Lock()
		ending := st.ending
		st.mu.Unlock()
		if ending {
			return true
		}
	}
	return false
}
