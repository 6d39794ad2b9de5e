package sessions

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/airlock-dev/airlock/internal/gateway"
)

func TestResultsDataAppendJSONMatchesEncodingJSON(t *testing.T) {
	for _, d := range []Results{
		{},
		{Results: []gateway.Call{}},
		{Results: []gateway.Call{{Kind: "result", Action: "pg:select", Params: map[string]string{"n": "1"}, Rows: 3, Duration: time.Millisecond}}, Dropped: 2},
		{Results: []gateway.Call{{Kind: "result"}, {Kind: "result", Error: "<x>"}}},
	} {
		want, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.AppendJSON(nil)
		if err != nil || string(got) != string(want) {
			t.Errorf("AppendJSON(%+v)\n got %s (%v)\nwant %s", d, got, err, want)
		}
	}
}

// TestResultsDataGrowsOnce: a batch of similar results is encoded with one
// growth of the buffer, not a doubling per few results.
func TestResultsDataGrowsOnce(t *testing.T) {
	d := Results{}
	for i := range 64 {
		d.Results = append(d.Results, gateway.Call{Kind: "result", Action: "s3:GetObject", Resource: "arn:aws:s3:::bucket/app/object-" + strconv.Itoa(i),
			Allowed: true, Params: map[string]string{"request_id": strconv.Itoa(i)}, Status: "200", BytesOut: 1024, Duration: time.Duration(i) * time.Microsecond})
	}
	n := testing.AllocsPerRun(20, func() {
		if _, err := d.AppendJSON(make([]byte, 0, 512)); err != nil {
			t.Fatal(err)
		}
	})
	if n > 2 {
		t.Errorf("encoding 64 results: %v allocations, want at most 2", n)
	}
}

// TestStateSize holds a session's running summary, with the gateway's
// Session inside it, to the size class an idle session's share was brought
// into (bench/HISTORY.md, "An idle session's recorder in one object"): 384,
// where the state alone was 352 (the review's Tally fitted in by making
// dropped an int32 and active a Unix time) and the Session 80 more; then
// 448 with the 64 bytes that hold the session's id and client, which were
// two small objects apart (state.strs).
func TestStateSize(t *testing.T) {
	if n := unsafe.Sizeof(state{}); n > 448 {
		t.Errorf("state is %d bytes, more than its 448-byte size class", n)
	}
	if d := addDropped(math.MaxInt32-1, 5); d != math.MaxInt32 {
		t.Errorf("dropped past 2³¹−1 is %d, want it to stay at %d", d, math.MaxInt32)
	}
}

// stateOf is the recorder's state behind s, read through the Session's
// layout (ID, Grant, then the recorder).
func stateOf(t *testing.T, s *gateway.Session) *state {
	t.Helper()
	st, ok := (*struct {
		ID    string
		Grant *gateway.Grant
		rec   gateway.SessionRecorder
	})(unsafe.Pointer(s)).rec.(*state)
	if !ok {
		t.Fatal("the session's recorder is not the recorder's state")
	}
	return st
}

// TestStartHoldsOneObject: the Session that Start returns is its state's
// own (gateway.InitSession), not an object apart: an idle session holds
// one object of the recorder's, 384 bytes, where it held two, 352 and 80
// (bench/HISTORY.md, "An idle session's recorder in one object"). And the
// Session records through that state.
func TestStartHoldsOneObject(t *testing.T) {
	e := newEnv(t, Options{})
	g := grant("g_one")
	s, err := e.rec.Start(e.ctx, g, "s_one", "10.0.0.7:5432")
	if err != nil {
		t.Fatal(err)
	}
	st := stateOf(t, s)
	if s != &st.sess {
		t.Errorf("the session is at %p, apart from its state's (%p): two objects per session", s, &st.sess)
	}
	if s.ID != "s_one" || s.Grant != g || st.rec.Client != "10.0.0.7:5432" || st.rec.ID != "s_one" {
		t.Errorf("session %q of %p, state's summary %+v", s.ID, s.Grant, st.rec)
	}
	if err := s.Request(e.ctx, gateway.Call{Kind: "request", Action: "pg:select", Resource: "db.t", Allowed: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.End(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got := types(e.entries("s_one")); got != "session.started session.call session.ended" {
		t.Errorf("entries %s", got)
	}
}

// TestResultsSpareArrays: a logged batch's array is kept for the next batch
// with none of its calls left in it (their strings and pairs would stay
// reachable), and a results flush with nothing to log lets it go, so that
// an idle server keeps no such arrays.
func TestResultsSpareArrays(t *testing.T) {
	e := newEnv(t, Options{})
	g := grant("g_spare")
	g.TargetKind = "postgres"
	sess, err := e.rec.Start(e.ctx, g, "s_spare", "127.0.0.1:50000")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		res := gateway.Call{Kind: "result", Action: "pg:select", Resource: "pgbench", Allowed: true, Rows: int64(i + 1),
			Pairs: []gateway.Param{{Key: "n", Value: strconv.Itoa(i + 1)}}}
		if err := sess.Result(e.ctx, res); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.rec.flushAllResults(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.rec.spareMu.Lock()
	spare := slices.Clone(e.rec.spare)
	e.rec.spareMu.Unlock()
	if len(spare) != 1 || cap(spare[0]) < 5 {
		t.Fatalf("after a logged batch of 5 the recorder keeps %d arrays (capacity %d), want one of 5 or more", len(spare), cap(spare[0]))
	}
	for i, c := range spare[0][:cap(spare[0])] {
		if c.Kind != "" || c.Pairs != nil || c.Rows != 0 {
			t.Fatalf("the kept array still holds call %d: %+v", i, c)
		}
	}
	if err := e.rec.flushAllResults(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.rec.spareMu.Lock()
	n := len(e.rec.spare)
	e.rec.spareMu.Unlock()
	if n != 0 {
		t.Fatalf("after a flush with nothing to log the recorder keeps %d arrays, want 0", n)
	}
}

// TestStartKeepsStringsInState: the session's id and its client's address
// live in the state's own allocation (state.strs), not in two small
// objects of their own that each pinned a span of a login's freed garbage
// for as long as the session lasted (bench/HISTORY.md, "What separates an
// idle session's live heap from its RssAnon"); a client name too long for
// it is kept as given.
// And the records carry both.
func TestStartKeepsStringsInState(t *testing.T) {
	e := newEnv(t, Options{})
	long := strings.Repeat("x", 70) + ":5432"
	for _, c := range []struct{ sid, client string }{
		{"s_abcdefghijklmnopqrst", "10.0.0.7:54321"},
		{"s_bcdefghijklmnopqrstu", "[2001:db8::7]:54321"},
		{"s_cdefghijklmnopqrstuv", long},
	} {
		s, err := e.rec.Start(e.ctx, grant("g_strs"), strings.Clone(c.sid), strings.Clone(c.client))
		if err != nil {
			t.Fatal(err)
		}
		st := stateOf(t, s)
		inside := func(v string) bool {
			p := uintptr(unsafe.Pointer(unsafe.StringData(v)))
			base := uintptr(unsafe.Pointer(st))
			return p >= base && p+uintptr(len(v)) <= base+unsafe.Sizeof(*st)
		}
		if s.ID != c.sid || st.rec.ID != c.sid || st.rec.Client != c.client {
			t.Errorf("session %q, summary %q from %q; want %q from %q", s.ID, st.rec.ID, st.rec.Client, c.sid, c.client)
		}
		if !inside(s.ID) || !inside(st.rec.ID) {
			t.Errorf("session %s: its id is an object apart from its state", c.sid)
		}
		if fits := len(c.client) <= len(st.strs)-len(c.sid); inside(st.rec.Client) != fits {
			t.Errorf("session %s: client %q in the state %v, want %v", c.sid, c.client, inside(st.rec.Client), fits)
		}
		if err := s.End(e.ctx); err != nil {
			t.Fatal(err)
		}
		if got := types(e.entries(c.sid)); got != "session.started session.ended" {
			t.Errorf("session %s: entries %s", c.sid, got)
		}
	}
}

// TestResultsGrowIntoLogBuffer: a batch of results that outgrows the
// event's buffer grows into one of the log's (auditlog.GrowEntry, 16 KiB),
// which the log takes back once the store holds the entry, not into an
// array of its own made for every batch (slices.Grow: 167 bytes a pgbench
// statement in BenchmarkRecorderStatement).
func TestResultsGrowIntoLogBuffer(t *testing.T) {
	res := make([]gateway.Call, resultsBatch)
	for i := range res {
		res[i] = gateway.Call{Kind: "result", Action: "pg:select", Resource: "pgbench", Allowed: true, Rows: 1,
			Duration: 150 * time.Microsecond, Pairs: []gateway.Param{{Key: "n", Value: strconv.Itoa(i + 1)}}}
	}
	b, err := Results{Results: res}.AppendJSON(make([]byte, 0, 512)) // as an event's buffer (newEntryBuf)
	if err != nil {
		t.Fatal(err)
	}
	if cap(b) != 16<<10 {
		t.Errorf("a batch of %d results (%d bytes) is in a buffer of %d bytes, want the log's of %d", len(res), len(b), cap(b), 16<<10)
	}
	var back Results
	if err := json.Unmarshal(b, &back); err != nil || len(back.Results) != len(res) {
		t.Errorf("the batch does not decode as its %d results: %v", len(res), err)
	}
}
