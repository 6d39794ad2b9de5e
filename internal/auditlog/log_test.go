package auditlog

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func testKey(t testing.TB) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "airlock-test")
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func openLog(t testing.TB, st store.Store, s note.Signer, opts Options) *Log {
	t.Helper()
	if opts.Origin == "" {
		opts.Origin = "airlock/test"
	}
	l, err := Open(context.Background(), st, s, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustVerifyOK(t testing.TB, st store.Store, v note.Verifier, witness []byte) Report {
	t.Helper()
	rep, err := Verify(context.Background(), st, v, witness)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("Verify found problems: %+v", rep.Problems)
	}
	return rep
}

func scanAll(t testing.TB, st store.Store) []store.LogEntry {
	t.Helper()
	var es []store.LogEntry
	err := st.ScanLog(context.Background(), 0, 1<<62, func(e store.LogEntry) error {
		es = append(es, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// blockWriter occupies the writer with a Do that waits until the returned
// function is called, so that further calls queue up into one batch.
func blockWriter(t testing.TB, l *Log) (release func() error) {
	t.Helper()
	started := make(chan struct{})
	unblock := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- l.Do(context.Background(), func(ctx context.Context, tx store.Tx) ([]Event, error) {
			close(started)
			<-unblock
			return []Event{{Type: "test.block", Actor: "test"}}, nil
		})
	}()
	<-started
	return func() error {
		close(unblock)
		return <-errc
	}
}

// waitQueued waits until n operations are queued behind the writer.
func waitQueued(t testing.TB, l *Log, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		q := len(l.queue)
		l.mu.Unlock()
		if q >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d operations queued", q, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestEntryFormat(t *testing.T) {
	st := newFakeStore()
	s, v := testKey(t)
	l := openLog(t, st, s, Options{})
	ts := time.Date(2025, 3, 4, 14, 2, 0, 123000000, time.FixedZone("x", 3600))
	err := l.Append(context.Background(),
		Event{Type: "grant.requested", Time: ts, GrantID: "g_1", Actor: "log-triage-bot", Data: map[string]any{"reason": "<triage>", "n": 1}},
		Event{Type: "policy.loaded", Time: ts, Actor: "airlock"},
		Event{Type: "session.call", Time: ts, GrantID: "g_1", SessionID: "s_1", Data: json.RawMessage(`{"a":[1, 2]}`)},
	)
	if err != nil {
		t.Fatal(err)
	}
	es := scanAll(t, st)
	want := []string{
		`{"seq":0,"time":"2025-03-04T13:02:00.123Z","type":"grant.requested","grant":"g_1","actor":"log-triage-bot","data":{"n":1,"reason":"\u003ctriage\u003e"}}`,
		`{"seq":1,"time":"2025-03-04T13:02:00.123Z","type":"policy.loaded","actor":"airlock"}`,
		`{"seq":2,"time":"2025-03-04T13:02:00.123Z","type":"session.call","grant":"g_1","session":"s_1","data":{"a":[1,2]}}`,
	}
	if len(es) != len(want) {
		t.Fatalf("got %d entries, want %d", len(es), len(want))
	}
	for i, e := range es {
		if string(e.Data) != want[i] {
			t.Errorf("entry %d:\n got %s\nwant %s", i, e.Data, want[i])
		}
		if !json.Valid(e.Data) {
			t.Errorf("entry %d is not valid JSON", i)
		}
		h := tlog.RecordHash(e.Data)
		if string(e.LeafHash) != string(h[:]) {
			t.Errorf("entry %d: wrong leaf hash", i)
		}
		if e.Seq != int64(i) || !e.Time.Equal(ts) || e.Time.Location() != time.UTC {
			t.Errorf("entry %d: seq %d time %v", i, e.Seq, e.Time)
		}
	}
	if es[2].GrantID != "g_1" || es[2].SessionID != "s_1" || es[2].Type != "session.call" {
		t.Errorf("entry 2 columns: %+v", es[2])
	}

	// The checkpoint note is in the C2SP format and verifies.
	cp := l.Latest()
	n, err := note.Open(cp.Note, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	root, err := tlog.TreeHash(3, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		return storedHashes(t, es, idx), nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if wantText := "airlock/test\n3\n" + root.String() + "\n"; n.Text != wantText {
		t.Errorf("checkpoint text %q, want %q", n.Text, wantText)
	}
	if cp.Size != 3 || string(cp.Root) != string(root[:]) || l.Size() != 3 {
		t.Errorf("checkpoint %+v, size %d", cp, l.Size())
	}
	mustVerifyOK(t, st, v, nil)
}

// storedHashes computes every stored hash of the tree over es the slow way
// and returns those at idx.
func storedHashes(t testing.TB, es []store.LogEntry, idx []int64) []tlog.Hash {
	var all []tlog.Hash
	r := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			out[i] = all[x]
		}
		return out, nil
	})
	for i, e := range es {
		hs, err := tlog.StoredHashes(int64(i), e.Data, r)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, hs...)
	}
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = all[x]
	}
	return out
}

func TestFrontierMatchesTlog(t *testing.T) {
	var all []tlog.Hash
	full := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			out[i] = all[x]
		}
		return out, nil
	})
	var f frontier
	for n := int64(0); n < 600; n++ {
		want, err := tlog.TreeHash(n, full)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.root()
		if err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		if got != want {
			t.Fatalf("size %d: root %v, want %v", n, got, want)
		}
		g, err := parseFrontier(n, f.marshal())
		if err != nil {
			t.Fatal(err)
		}
		if r, _ := g.root(); r != want {
			t.Fatalf("size %d: reparsed frontier root differs", n)
		}
		data := fmt.Appendf(nil, "record %d", n)
		hs, err := tlog.StoredHashes(n, data, full)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, hs...)
		if err := f.add(tlog.RecordHash(data)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := parseFrontier(5, make([]byte, 32)); err == nil {
		t.Error("parseFrontier accepted a short frontier")
	}
}

func TestEntrySeq(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{`{"seq":0,"x":1}`, 0, true},
		{`{"seq":12345}`, 12345, true},
		{`{"seq":012,"x":1}`, 0, false},
		{`{"seq":-1,"x":1}`, 0, false},
		{`{"seq":1`, 0, false},
		{`{"seq": 1,`, 0, false},
		{`{"time":"x","seq":1}`, 0, false},
		{`{"seq":99999999999999999999,`, 0, false},
	} {
		got, ok := entrySeq([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("entrySeq(%s) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestAppendValidates(t *testing.T) {
	st := newFakeStore()
	s, _ := testKey(t)
	l := openLog(t, st, s, Options{})
	ctx := context.Background()
	if err := l.Append(ctx, Event{Actor: "x"}); err == nil {
		t.Error("Append accepted an event without a type")
	}
	if err := l.Append(ctx, Event{Type: "x", Data: func() {}}); err == nil {
		t.Error("Append accepted unencodable data")
	}
	if err := l.Append(ctx); err != nil {
		t.Error(err)
	}
	if l.Size() != 0 || st.commits != 0 {
		t.Errorf("size %d, commits %d after rejected appends", l.Size(), st.commits)
	}
}

func TestConcurrentAppendFake(t *testing.T) {
	st := newFakeStore()
	s, v := testKey(t)
	var batches atomic.Int64
	l := openLog(t, st, s, Options{MaxBatch: 16, OnCommit: func(int64) { batches.Add(1) }})
	const G, N = 40, 50
	var wg sync.WaitGroup
	for g := range G {
		wg.Go(func() {
			for i := range N {
				if err := l.Append(context.Background(), Event{Type: "test.event", Actor: fmt.Sprintf("g%d", g), Data: map[string]int{"g": g, "i": i}}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if l.Size() != G*N {
		t.Fatalf("size %d, want %d", l.Size(), G*N)
	}
	checkAllOnce(t, st, G, N)
	mustVerifyOK(t, st, v, nil)
	t.Logf("%d events in %d batches", G*N, batches.Load())
}

// checkAllOnce checks that the log holds every (g, i) event exactly once with
// contiguous sequence numbers.
func checkAllOnce(t testing.TB, st store.Store, G, N int) {
	t.Helper()
	seen := map[[2]int]bool{}
	for k, e := range scanAll(t, st) {
		if e.Seq != int64(k) {
			t.Fatalf("entry %d has seq %d", k, e.Seq)
		}
		var x struct {
			Seq  int64 `json:"seq"`
			Data struct{ G, I int }
		}
		if err := json.Unmarshal(e.Data, &x); err != nil {
			t.Fatal(err)
		}
		if x.Seq != e.Seq {
			t.Fatalf("entry %d says seq %d", e.Seq, x.Seq)
		}
		key := [2]int{x.Data.G, x.Data.I}
		if seen[key] {
			t.Fatalf("event %v appears twice", key)
		}
		seen[key] = true
	}
	if len(seen) != G*N {
		t.Fatalf("%d distinct events, want %d", len(seen), G*N)
	}
}

func TestDoIsolatesFailures(t *testing.T) {
	st := newFakeStore()
	s, v := testKey(t)
	var batches []int64
	var bmu sync.Mutex
	l := openLog(t, st, s, Options{OnCommit: func(n int64) { bmu.Lock(); batches = append(batches, n); bmu.Unlock() }})
	ctx := context.Background()

	release := blockWriter(t, l)
	errBoom := errors.New("boom")
	type res struct {
		name string
		err  error
	}
	results := make(chan res, 4)
	do := func(name string, fail error, panicky bool) {
		go func() {
			err := l.Do(ctx, func(ctx context.Context, tx store.Tx) ([]Event, error) {
				if err := tx.PutIdentity(ctx, model.Identity{Name: name, Kind: model.Agent}); err != nil {
					return nil, err
				}
				if panicky {
					panic("oops")
				}
				if fail != nil {
					return nil, fail
				}
				return []Event{{Type: "identity.added", Actor: "test", Data: map[string]string{"name": name}}}, nil
			})
			results <- res{name, err}
		}()
	}
	do("ok-1", nil, false)
	waitQueued(t, l, 1)
	do("bad", errBoom, false)
	waitQueued(t, l, 2)
	do("panics", nil, true)
	waitQueued(t, l, 3)
	do("ok-2", nil, false)
	waitQueued(t, l, 4)
	if err := release(); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		r := <-results
		switch r.name {
		case "bad":
			if !errors.Is(r.err, errBoom) {
				t.Errorf("failing Do returned %v", r.err)
			}
		case "panics":
			if r.err == nil || !strings.Contains(r.err.Error(), "panicked") {
				t.Errorf("panicking Do returned %v", r.err)
			}
		default:
			if r.err != nil {
				t.Errorf("%s: %v", r.name, r.err)
			}
		}
	}
	for name, want := range map[string]bool{"ok-1": true, "ok-2": true, "bad": false, "panics": false} {
		_, err := st.Identity(ctx, name)
		if got := err == nil; got != want {
			t.Errorf("identity %s stored = %v, want %v", name, got, want)
		}
	}
	es := scanAll(t, st)
	if len(es) != 3 {
		t.Fatalf("%d entries, want 3 (block, ok-1, ok-2)", len(es))
	}
	for _, e := range es[1:] {
		if !strings.Contains(string(e.Data), `"name":"ok-`) {
			t.Errorf("unexpected entry %s", e.Data)
		}
	}
	bmu.Lock()
	// Operations queued while a batch is being built join it.
	if len(batches) != 1 || batches[0] != 3 {
		t.Errorf("batches ended at sizes %v, want [3] (one batch)", batches)
	}
	bmu.Unlock()
	mustVerifyOK(t, st, v, nil)
}

func TestCommitFailureFailsBatchAndKeepsState(t *testing.T) {
	st := newFakeStore()
	s, v := testKey(t)
	l := openLog(t, st, s, Options{})
	ctx := context.Background()
	if err := l.Append(ctx, Event{Type: "a"}); err != nil {
		t.Fatal(err)
	}
	before := l.Latest()

	// Every caller of a batch whose commit fails gets the error.
	errDisk := errors.New("disk full")
	st.mu.Lock()
	st.failCommit = func(n int) error {
		if n == 4 { // the blocking Do and the three appends that join its batch
			return errDisk
		}
		return nil
	}
	st.mu.Unlock()
	release := blockWriter(t, l)
	errc := make(chan error, 3)
	for i := range 3 {
		go func() { errc <- l.Append(ctx, Event{Type: "b", Data: i}) }()
	}
	waitQueued(t, l, 3)
	if err := release(); !errors.Is(err, errDisk) {
		t.Fatalf("blocking Do got %v", err)
	}
	for range 3 {
		if err := <-errc; !errors.Is(err, errDisk) {
			t.Errorf("caller in a failed batch got %v", err)
		}
	}
	// The in-memory tree is unchanged: the next batch continues at size 1.
	if l.Size() != 1 {
		t.Errorf("size %d after failed batch, want 1", l.Size())
	}
	st.mu.Lock()
	st.failCommit = nil
	st.mu.Unlock()
	if err := l.Append(ctx, Event{Type: "c"}, Event{Type: "c"}); err != nil {
		t.Fatal(err)
	}
	if l.Size() != 3 || l.Latest().Size != 3 || string(l.Latest().Root) == string(before.Root) {
		t.Errorf("size %d, latest %d", l.Size(), l.Latest().ID)
	}
	for _, e := range scanAll(t, st) {
		if strings.Contains(string(e.Data), `"type":"b"`) {
			t.Errorf("entry of a failed batch is in the log: %s", e.Data)
		}
	}
	mustVerifyOK(t, st, v, nil)
}

func TestCancelledWhileQueued(t *testing.T) {
	st := newFakeStore()
	s, v := testKey(t)
	l := openLog(t, st, s, Options{})
	release := blockWriter(t, l)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 2)
	ran := false
	go func() { errc <- l.Append(ctx, Event{Type: "cancelled.append"}) }()
	go func() {
		errc <- l.Do(ctx, func(ctx context.Context, tx store.Tx) ([]Event, error) {
			ran = true
			return []Event{{Type: "cancelled.do"}}, nil
		})
	}()
	waitQueued(t, l, 2)
	cancel()
	for range 2 {
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled call returned %v", err)
		}
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(context.Background(), Event{Type: "after"}); err != nil {
		t.Fatal(err)
	}
	if ran {
		t.Error("cancelled Do ran")
	}
	for _, e := range scanAll(t, st) {
		if strings.Contains(string(e.Data), "cancelled") {
			t.Errorf("cancelled event logged: %s", e.Data)
		}
	}
	if l.Size() != 2 {
		t.Errorf("size %d, want 2", l.Size())
	}
	if err := l.Append(ctx, Event{Type: "x"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Append with a cancelled context: %v", err)
	}
	mustVerifyOK(t, st, v, nil)
}

func TestCloseFinishesQueuedWork(t *testing.T) {
	st := newFakeStore()
	s, v := testKey(t)
	dir := t.TempDir()
	wpath := filepath.Join(dir, "witness")
	l := openLog(t, st, s, Options{WitnessPath: wpath})
	release := blockWriter(t, l)
	errc := make(chan error, 5)
	for i := range 5 {
		go func() { errc <- l.Append(context.Background(), Event{Type: "queued", Data: i}) }()
	}
	waitQueued(t, l, 5)
	closed := make(chan error)
	go func() { closed <- l.Close() }()
	for {
		l.mu.Lock()
		c := l.closed
		l.mu.Unlock()
		if c {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := l.Append(context.Background(), Event{Type: "late"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if err := l.Do(context.Background(), func(context.Context, store.Tx) ([]Event, error) { return nil, nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close: %v", err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if l.Size() != 6 {
		t.Errorf("size %d, want 6", l.Size())
	}
	w, err := os.ReadFile(wpath)
	if err != nil {
		t.Fatal(err)
	}
	if string(w) != string(l.Latest().Note) {
		t.Errorf("witness file holds %q, want the newest checkpoint %q", w, l.Latest().Note)
	}
	mustVerifyOK(t, st, v, w)
}

func TestRestartContinuesTree(t *testing.T) {
	st := newFakeStore()
	s, v := testKey(t)
	ctx := context.Background()
	l := openLog(t, st, s, Options{})
	for i := range 7 {
		if err := l.Append(ctx, Event{Type: "first", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, st, s, Options{})
	if l2.Size() != 7 || string(l2.Latest().Note) != string(l.Latest().Note) || l2.Latest().ID == 0 {
		t.Fatalf("reopened at size %d checkpoint %+v", l2.Size(), l2.Latest())
	}
	for i := range 9 {
		if err := l2.Append(ctx, Event{Type: "second", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	rep := mustVerifyOK(t, st, v, nil)
	if rep.Size != 16 || rep.Entries != 16 || rep.Root != tlog.Hash(l2.Latest().Root).String() {
		t.Errorf("report %+v", rep)
	}
}

func TestOpenRefusesTamperedState(t *testing.T) {
	s, _ := testKey(t)
	ctx := context.Background()
	fresh := func(t *testing.T) *fakeStore {
		st := newFakeStore()
		l := openLog(t, st, s, Options{})
		for i := range 5 {
			if err := l.Append(ctx, Event{Type: "x", Data: i}); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
		return st
	}
	expectRefusal := func(t *testing.T, st store.Store, opts Options, want string) {
		t.Helper()
		opts.Origin = "airlock/test" // openLog's, which wrote it
		l, err := Open(ctx, st, s, opts)
		if err == nil {
			l.Close()
			t.Fatal("Open accepted a tampered log")
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not mention %q", err, want)
		}
		t.Log(err)
	}
	t.Run("frontier", func(t *testing.T) {
		st := fresh(t)
		st.cps[len(st.cps)-1].Frontier[3] ^= 1
		expectRefusal(t, st, Options{}, "frontier")
	})
	t.Run("frontier-length", func(t *testing.T) {
		st := fresh(t)
		c := &st.cps[len(st.cps)-1]
		c.Frontier = c.Frontier[:32]
		expectRefusal(t, st, Options{}, "frontier")
	})
	t.Run("note", func(t *testing.T) {
		st := fresh(t)
		c := &st.cps[len(st.cps)-1]
		c.Note = []byte(strings.Replace(string(c.Note), "\n5\n", "\n4\n", 1))
		expectRefusal(t, st, Options{}, "signed note")
	})
	t.Run("entries-past-checkpoint", func(t *testing.T) {
		st := fresh(t)
		e := cloneEntry(st.entries[4])
		e.Seq = 5
		st.entries = append(st.entries, e)
		expectRefusal(t, st, Options{}, "were not written by airlock")
	})
	t.Run("entries-without-checkpoint", func(t *testing.T) {
		st := fresh(t)
		st.cps = nil
		expectRefusal(t, st, Options{}, "no checkpoint")
	})
	t.Run("entries-missing", func(t *testing.T) {
		st := fresh(t)
		st.entries = st.entries[:4]
		expectRefusal(t, st, Options{}, "deleted")
	})
	t.Run("witness-ahead", func(t *testing.T) {
		st := fresh(t)
		w := filepath.Join(t.TempDir(), "witness")
		if err := os.WriteFile(w, st.cps[len(st.cps)-1].Note, 0o644); err != nil {
			t.Fatal(err)
		}
		st.entries = st.entries[:4]
		st.cps = st.cps[:4]
		expectRefusal(t, st, Options{WitnessPath: w}, "truncated")
	})
}

// A Log opened without a Verifier (one server on SQLite) continued from
// the newest stored checkpoint after checking only that its frontier, root
// and note text agree, not its signature. Whoever could write the database
// could rewrite the entries, store a head for the new tree with a made-up
// signature line, and on the next start the log signed checkpoints over
// their history with the real key: once the forged head and the older
// checkpoints were deleted, audit verify passed. The head must now be
// signed by the log's own key.
func TestOpenRefusesUnsignedHead(t *testing.T) {
	s, v := testKey(t)
	ctx := context.Background()
	st := newFakeStore()
	l := openLog(t, st, s, Options{})
	appendFixture(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Mallory rewrites entry 20 and stores a head for the rewritten tree.
	var tree frontier
	for i := range st.entries {
		e := &st.entries[i]
		if e.Seq == 20 {
			e.Data = changeData(e.Data)
			h := tlog.RecordHash(e.Data)
			e.LeafHash = h[:]
		}
		if err := tree.add(tlog.RecordHash(e.Data)); err != nil {
			t.Fatal(err)
		}
	}
	root, err := tree.root()
	if err != nil {
		t.Fatal(err)
	}
	sig := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, s.KeyHash()))
	forged := string(formatCheckpoint(checkpoint{origin: "airlock/test", size: tree.n, root: root})) + "\n— " + s.Name() + " " + sig + "AAAA\n"
	st.cps = append(st.cps, store.Checkpoint{ID: st.nextCP, Size: tree.n, Root: root[:], Note: []byte(forged), Frontier: tree.marshal()})
	st.nextCP++

	l2, err := Open(ctx, st, s, Options{Origin: "airlock/test"})
	if err == nil {
		// What the forged head buys: the real key signs the rewrite.
		if err := l2.Append(ctx, Event{Type: "test.event"}); err != nil {
			t.Fatal(err)
		}
		l2.Close()
		st.cps = st.cps[len(st.cps)-1:]
		rep, _ := Verify(ctx, st, v, nil)
		t.Fatalf("Open continued from a head with no valid signature; audit verify then says OK=%v", rep.OK)
	}
	if !strings.Contains(err.Error(), "not signed by") {
		t.Fatalf("error %q does not say the head is not signed", err)
	}
	t.Log(err)
}

// TestOpenRefusesAnotherLogsHead: with the verifier key, Open checked the
// newest checkpoint's signature but not its origin: a store holding
// another log signed by the same key (a staging copy's) was continued
// under this log's origin. It is refused, naming both origins; without
// the verifier key, checkOwnHead re-signs for this origin and refused it
// already.
func TestOpenRefusesAnotherLogsHead(t *testing.T) {
	ctx := context.Background()
	s, v := testKey(t)
	st := newFakeStore()
	l := openLog(t, st, s, Options{Origin: "airlock/staging", Verifier: v})
	appendFixture(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []Options{{Origin: "airlock/prod", Verifier: v}, {Origin: "airlock/prod"}} {
		l2, err := Open(ctx, st, s, opts)
		if err == nil {
			l2.Close()
			t.Fatalf("Open (verifier %v) continued the log of airlock/staging as airlock/prod", opts.Verifier != nil)
		}
		if !strings.Contains(err.Error(), `"airlock/staging"`) || !strings.Contains(err.Error(), `"airlock/prod"`) {
			t.Fatalf("error %q does not name both origins", err)
		}
	}
	l3, err := Open(ctx, st, s, Options{Origin: "airlock/staging", Verifier: v})
	if err != nil {
		t.Fatalf("reopening the log under its own origin: %v", err)
	}
	l3.Close()
}

// TestOpenChecksWitnessFileSignature: the witness file (data_dir/checkpoint)
// was read at start without checking its signature or origin: one of
// another log signed by the same key, or signed by another key, was
// compared by size alone, so a smaller tree passed unchecked and a bigger
// one was reported as a truncation of this log. Each is now refused,
// naming the file and what is wrong with it, with and without the
// verifier key; the log's own file still opens.
func TestOpenChecksWitnessFileSignature(t *testing.T) {
	ctx := context.Background()
	s, v := testKey(t)
	other, _ := testKey(t)
	st := newFakeStore()
	wpath := filepath.Join(t.TempDir(), "checkpoint")
	l := openLog(t, st, s, Options{Origin: "airlock/prod", WitnessPath: wpath})
	appendFixture(t, l)
	head := l.Latest()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(wpath)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(signer note.Signer, origin string, size int64, root tlog.Hash) []byte {
		msg, err := note.Sign(&note.Note{Text: string(formatCheckpoint(checkpoint{origin: origin, size: size, root: root}))}, signer)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	var root tlog.Hash
	copy(root[:], head.Root)
	for _, c := range []struct {
		name, want string
		file       []byte
	}{
		{"another log, smaller", `"airlock/staging"`, sign(s, "airlock/staging", 3, tlog.Hash{1})},
		{"another log, same head", `"airlock/staging"`, sign(s, "airlock/staging", head.Size, root)},
		{"another key, smaller", "signed by the log's key", sign(other, "airlock/prod", 3, tlog.Hash{1})},
		{"another key, same head", "signed by the log's key", sign(other, "airlock/prod", head.Size, root)},
		{"another key, bigger", "signed by the log's key", sign(other, "airlock/prod", head.Size+5, tlog.Hash{1})},
		{"an extra line", "signed by the log's key", append([]byte("airlock/prod\n"+strconv.FormatInt(head.Size, 10)+"\n"+root.String()+"\nextra\n"), good[bytes.Index(good, []byte("\n\n")):]...)},
	} {
		if err := os.WriteFile(wpath, c.file, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, opts := range []Options{{Origin: "airlock/prod", WitnessPath: wpath}, {Origin: "airlock/prod", WitnessPath: wpath, Verifier: v}} {
			l2, err := Open(ctx, st, s, opts)
			if err == nil {
				l2.Close()
				t.Fatalf("%s (verifier %v): Open took the witness file", c.name, opts.Verifier != nil)
			}
			if !strings.Contains(err.Error(), wpath) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "truncated") {
				t.Fatalf("%s (verifier %v): %v", c.name, opts.Verifier != nil, err)
			}
		}
	}
	if err := os.WriteFile(wpath, good, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, opts := range []Options{{Origin: "airlock/prod", WitnessPath: wpath}, {Origin: "airlock/prod", WitnessPath: wpath, Verifier: v}} {
		l3, err := Open(ctx, st, s, opts)
		if err != nil {
			t.Fatalf("the log's own witness file (verifier %v): %v", opts.Verifier != nil, err)
		}
		l3.Close()
	}
}
