package witness_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	_ "modernc.org/sqlite"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
	"github.com/airlock-dev/airlock/internal/witness"
	"github.com/airlock-dev/airlock/internal/witness/cosig"
	"github.com/airlock-dev/airlock/internal/witness/witnesstest"
)

const origin = "airlock/test"

type logKey struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string
}

func newLogKey(t testing.TB) logKey {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "airlock")
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
	return logKey{s, v, vkey}
}

// startWitness runs a witnesstest witness on loopback that trusts key for
// origin.
func startWitness(t testing.TB, name string, key logKey) (*witnesstest.Witness, string) {
	t.Helper()
	w, err := witnesstest.New(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddLog(origin, key.vkey); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	return w, srv.URL
}

// logBuf collects the publisher's slog output for assertions.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// instance is a log on SQLite with a journal (as airlock serve runs it) and
// a publisher fed by its OnCheckpoint hook.
type instance struct {
	dir  string
	st   *sqlitestore.Store
	log  *auditlog.Log
	pub  *witness.Publisher
	logs *logBuf
}

func open(t testing.TB, dir string, key logKey, targets ...witness.Target) *instance {
	t.Helper()
	return openAt(t, dir, key, nil, targets...)
}

// openAt is open with the publisher's clock (clock.Real if nil).
func openAt(t testing.TB, dir string, key logKey, clk clock.Clock, targets ...witness.Target) *instance {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(dir, "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	lb := &logBuf{}
	pub, err := witness.New(witness.Options{
		Store: st, Verifier: key.verifier, Targets: targets, CosignedPath: filepath.Join(dir, "checkpoint.cosigned"),
		TimesPath: filepath.Join(dir, "witness-times.json"), Logger: slog.New(slog.NewTextHandler(lb, nil)),
		MinInterval: time.Millisecond, MaxBackoff: 20 * time.Millisecond, Clock: clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := auditlog.Open(ctx, st, key.signer, auditlog.Options{
		Origin: origin, OnCheckpoint: pub.Offer, WitnessPath: filepath.Join(dir, "checkpoint"),
		JournalDir: filepath.Join(dir, "journal"), JournalKey: bytes.Repeat([]byte{7}, 32),
	})
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{dir: dir, st: st, log: l, pub: pub, logs: lb}
	t.Cleanup(in.close)
	return in
}

func (in *instance) close() {
	if in.log != nil {
		in.log.Close()
		in.pub.Close()
		in.st.Close()
		in.log = nil
	}
}

func (in *instance) append(t testing.TB, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		if err := in.log.Append(ctx, auditlog.Event{Type: "session.call", Actor: "agent", Data: map[string]int{"i": i}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := in.log.Sync(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitFor waits (up to 10 s, a bound for a stuck test rather than a timing
// claim) until cond holds for the publisher's statuses.
func (in *instance) waitFor(t testing.TB, what string, cond func([]witness.Status) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.pub.WaitUntil(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v; status %+v; log:\n%s", what, err, in.pub.Status(), in.logs.String())
	}
}

func (in *instance) waitPublished(t testing.TB) {
	t.Helper()
	size := in.log.Latest().Size
	in.waitFor(t, fmt.Sprintf("every target to take size %d", size), func(ss []witness.Status) bool {
		for _, s := range ss {
			if s.Published < size {
				return false
			}
		}
		return true
	})
}

// failedWith waits until target i has failed with an error containing msg.
func (in *instance) failedWith(t testing.TB, i int, msg string) {
	t.Helper()
	in.waitFor(t, "a failure: "+msg, func(ss []witness.Status) bool {
		return strings.Contains(ss[i].LastError, msg)
	})
}

// TestPublishesToTlogWitnesses: the real log publishes each checkpoint to
// two witnesses over loopback HTTP; each step's consistency proof is
// checked by them; the cosigned checkpoint carries both cosignatures and
// is kept on disk.
func TestPublishesToTlogWitnesses(t *testing.T) {
	key := newLogKey(t)
	w1, u1 := startWitness(t, "w1.test/witness", key)
	w2, u2 := startWitness(t, "w2.test/witness", key)
	in := open(t, t.TempDir(), key,
		witness.Target{Kind: witness.KindTlogWitness, URL: u1, Key: w1.VerifierKey()},
		witness.Target{Kind: witness.KindTlogWitness, URL: u2 + "/", Key: w2.VerifierKey()},
	)
	for round, n := range []int{1, 3, 8, 1, 20} {
		in.append(t, n)
		in.waitPublished(t)
		latest := in.log.Latest()
		for _, w := range []*witnesstest.Witness{w1, w2} {
			st, ok := w.State(origin)
			if !ok || st.Size != latest.Size || !bytes.Equal(st.Root[:], latest.Root) {
				t.Fatalf("round %d: witness holds %+v, log is at %d", round, st, latest.Size)
			}
		}
		c, err := cosig.VerifyCosigned(in.pub.Cosigned(), key.verifier, origin, []string{w1.VerifierKey(), w2.VerifierKey()}, time.Now())
		if err != nil {
			t.Fatalf("round %d: %v\n%s", round, err, in.pub.Cosigned())
		}
		if c.Size != latest.Size {
			t.Fatalf("round %d: cosigned size %d, log %d", round, c.Size, latest.Size)
		}
		onDisk, err := os.ReadFile(filepath.Join(in.dir, "checkpoint.cosigned"))
		if err != nil || !bytes.Equal(onDisk, in.pub.Cosigned()) {
			t.Fatalf("round %d: checkpoint.cosigned differs from Cosigned(): %v", round, err)
		}
	}
	for i, s := range in.pub.Status() {
		if s.Failures != 0 {
			t.Errorf("target %d failed: %+v", i, s)
		}
	}
}

// TestRecoversFrom409: after a restart the publisher does not know the
// witness's size; the witness answers 409 with it and the publisher
// resends with a proof from that size, rebuilt from the entries.
func TestRecoversFrom409(t *testing.T) {
	key := newLogKey(t)
	w, u := startWitness(t, "w.test/witness", key)
	dir := t.TempDir()
	target := witness.Target{Kind: witness.KindTlogWitness, URL: u, Key: w.VerifierKey()}
	in := open(t, dir, key, target)
	in.append(t, 13)
	in.waitPublished(t)
	in.close()

	in = open(t, dir, key, target)
	before, conflicts := w.Requests(), w.Conflicts()
	in.append(t, 6)
	in.waitPublished(t)
	st, _ := w.State(origin)
	if st.Size != 19 {
		t.Fatalf("witness holds size %d, want 19", st.Size)
	}
	// At Open the log offers its size-13 checkpoint: old 0 → 409 (13) →
	// old 13, same size → 200. Then size 19: old 13 with a proof → 200.
	// Under load the size-19 checkpoint can replace the size-13 one before
	// the first request (the publisher sends the newest): old 0 → 409 (13)
	// → old 13 with a proof → 200. Either way, one 409 and a request after.
	if got := w.Conflicts() - conflicts; got != 1 {
		t.Errorf("%d answers 409 after the restart, want 1 (the publisher's first request, from size 0)", got)
	}
	if got := w.Requests() - before; got < 2 {
		t.Errorf("%d requests after the restart; the round trip after the 409 is missing", got)
	}
	if s := in.pub.Status()[0]; s.Failures != 0 {
		t.Errorf("a 409 was reported as a failure: %+v", s)
	}
}

// witnessedLog starts a witness and a log of n entries published to it.
func witnessedLog(t *testing.T, n int) (logKey, *witnesstest.Witness, witness.Target, *instance) {
	t.Helper()
	key := newLogKey(t)
	w, u := startWitness(t, "w.test/witness", key)
	target := witness.Target{Kind: witness.KindTlogWitness, URL: u, Key: w.VerifierKey()}
	in := open(t, t.TempDir(), key, target)
	in.append(t, n)
	in.waitPublished(t)
	return key, w, target, in
}

// TestWitnessRefusesRewrittenLog: a log rewritten under the same key and
// origin (another history) is refused by the witness, which keeps its
// state, and the publisher logs it as evidence (level ERROR).
func TestWitnessRefusesRewrittenLog(t *testing.T) {
	key, w, target, _ := witnessedLog(t, 10)
	held, _ := w.State(origin)

	// A longer rewritten history: the proof from 10 does not verify.
	forged := open(t, t.TempDir(), key, target)
	ctx := context.Background()
	for i := range 15 {
		if err := forged.log.Append(ctx, auditlog.Event{Type: "session.call", Actor: "someone-else", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	forged.log.Sync(ctx)
	forged.failedWith(t, 0, "refused the consistency proof from 10 to 15")
	if st, _ := w.State(origin); st != held {
		t.Fatalf("the witness moved to %+v", st)
	}
	if !strings.Contains(forged.logs.String(), "level=ERROR") {
		t.Errorf("the refusal was not logged as an error:\n%s", forged.logs.String())
	}
	forged.close()

	// The same size with another root: 409 at our own size.
	same := open(t, t.TempDir(), key, target)
	same.append(t, 10)
	same.failedWith(t, 0, "different tree of 10 entries")
	same.close()

	// A shorter history: the witness holds more than the log has.
	short := open(t, t.TempDir(), key, target)
	short.append(t, 4)
	short.failedWith(t, 0, "holds a tree of 10 entries but the log has only 4")
	if st, _ := w.State(origin); st != held {
		t.Fatalf("the witness moved to %+v", st)
	}
}

// TestWitnessRefusesOtherKey: a checkpoint for the same origin signed by
// another key gets 403, an unknown origin 404; the witness keeps its state.
func TestWitnessRefusesOtherKey(t *testing.T) {
	key := newLogKey(t)
	w, u := startWitness(t, "w.test/witness", key)
	w.SetState(origin, witnesstest.State{Size: 0})
	target := witness.Target{Kind: witness.KindTlogWitness, URL: u, Key: w.VerifierKey()}
	other := open(t, t.TempDir(), newLogKey(t), target)
	other.append(t, 3)
	other.failedWith(t, 0, "403")
	if st, _ := w.State(origin); st.Size != 0 {
		t.Fatalf("the witness took a checkpoint signed by another key: %+v", st)
	}

	w2, err := witnesstest.New("w2.test/witness", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w2) // trusts no log
	defer srv.Close()
	in := open(t, t.TempDir(), key, witness.Target{Kind: witness.KindTlogWitness, URL: srv.URL, Key: w2.VerifierKey()})
	in.append(t, 1)
	in.failedWith(t, 0, "404")
}

// TestWrongWitnessKey: cosignatures by a key other than the configured one
// are not taken, and nothing is written as cosigned.
func TestWrongWitnessKey(t *testing.T) {
	key := newLogKey(t)
	_, u := startWitness(t, "w.test/witness", key)
	impostor, _ := witnesstest.New("w.test/witness", nil)
	in := open(t, t.TempDir(), key, witness.Target{Kind: witness.KindTlogWitness, URL: u, Key: impostor.VerifierKey()})
	in.append(t, 2)
	in.failedWith(t, 0, "no cosignature by its key")
	if c := in.pub.Cosigned(); c != nil {
		t.Fatalf("a cosigned checkpoint was kept: %s", c)
	}
}

// TestCommandAndPost: the command hook gets the signed checkpoint on stdin
// and the POST target in its body; a failing hook is logged and retried,
// and a hook that hangs never holds up appends.
func TestCommandAndPost(t *testing.T) {
	key := newLogKey(t)
	var mu sync.Mutex
	var posted [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posted = append(posted, b)
		mu.Unlock()
	}))
	defer srv.Close()
	dir := t.TempDir()
	out := filepath.Join(dir, "hook-out")
	failing := filepath.Join(dir, "fail-once")
	if err := os.WriteFile(failing, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	in := open(t, dir, key,
		witness.Target{Kind: witness.KindCommand, Command: []string{"/bin/sh", "-c", `cat > "$1.tmp" && mv "$1.tmp" "$1"`, "hook", out}},
		witness.Target{Kind: witness.KindPost, URL: srv.URL + "/checkpoints?token=secret-token"},
		// Fails while the file exists, which it removes: one failure, then success.
		witness.Target{Name: "flaky", Kind: witness.KindCommand, Command: []string{"/bin/sh", "-c", `if [ -e "$1" ]; then rm "$1"; echo boom >&2; exit 3; fi; cat >/dev/null`, "flaky", failing}},
		// Never answers within its timeout.
		witness.Target{Name: "hung", Kind: witness.KindCommand, Command: []string{"/bin/sh", "-c", "exec sleep 30"}, Timeout: 100 * time.Millisecond},
	)
	in.append(t, 5)
	in.waitFor(t, "the first three targets to publish", func(ss []witness.Status) bool {
		size := in.log.Latest().Size
		return ss[0].Published == size && ss[1].Published == size && ss[2].Published == size && ss[3].Failures > 0
	})
	latest := in.log.Latest().Note
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, latest) {
		t.Fatalf("the hook got %q (%v), want the signed checkpoint %q", got, err, latest)
	}
	mu.Lock()
	last := posted[len(posted)-1]
	mu.Unlock()
	if !bytes.Equal(last, latest) {
		t.Fatalf("POST body %q, want %q", last, latest)
	}
	ss := in.pub.Status()
	if ss[2].Failures != 1 {
		t.Errorf("flaky hook: %+v, want exactly one failure then success", ss[2])
	}
	if !strings.Contains(ss[3].LastError, "no answer within 100ms") {
		t.Errorf("hung hook: %+v", ss[3])
	}
	logs := in.logs.String()
	if !strings.Contains(logs, "boom") || !strings.Contains(logs, "witness=flaky") {
		t.Errorf("the failure is not in the log:\n%s", logs)
	}
	if strings.Contains(logs, "secret-token") {
		t.Errorf("the POST URL's query leaked into the log:\n%s", logs)
	}
	// Appends go on while the hung hook is retried.
	in.append(t, 50)
}

// TestTruncationCaughtByWitness is the crash scenario: the newest entries
// are deleted from the database together with their checkpoints, the
// journal and data_dir/checkpoint. The log starts again without complaint
// (nothing on its disk remembers), but the witness still holds the bigger
// tree and refuses to go back, and the cosigned checkpoint kept elsewhere
// makes verification fail.
func TestTruncationCaughtByWitness(t *testing.T) {
	key := newLogKey(t)
	w, u := startWitness(t, "w.test/witness", key)
	target := witness.Target{Kind: witness.KindTlogWitness, URL: u, Key: w.VerifierKey()}
	dir := t.TempDir()
	in := open(t, dir, key, target)
	in.append(t, 12) // Sync: a checkpoint at 12
	in.append(t, 8)
	in.waitPublished(t)
	kept := in.pub.Cosigned() // the copy an auditor keeps elsewhere
	in.close()

	// Delete the tail and every trace of it on the machine.
	truncate(t, dir, 12)
	var sizes []int64
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.ScanCheckpoints(context.Background(), func(c store.Checkpoint) error { sizes = append(sizes, c.Size); return nil })
	st.Close()
	if len(sizes) == 0 || sizes[len(sizes)-1] != 12 {
		// The test needs a stored checkpoint at exactly 12 to resume from.
		t.Fatalf("checkpoint sizes %v: none at 12", sizes)
	}

	in = open(t, dir, key, target) // starts: nothing local contradicts it
	in.failedWith(t, 0, "holds a tree of 20 entries but the log has only 12")
	if st, _ := w.State(origin); st.Size != 20 {
		t.Fatalf("the witness holds %d, want 20", st.Size)
	}
	// The log grows past 20 again: a proof from 20 does not exist.
	in.append(t, 10)
	in.failedWith(t, 0, "refused the consistency proof from 20 to 22")
	if st, _ := w.State(origin); st.Size != 20 {
		t.Fatalf("the witness moved to %d", st.Size)
	}

	// The cosigned checkpoint kept elsewhere: still valid, and verification
	// of the rewritten log against it fails.
	if _, err := cosig.VerifyCosigned(kept, key.verifier, origin, []string{w.VerifierKey()}, time.Now()); err != nil {
		t.Fatal(err)
	}
	rep, err := auditlog.Verify(context.Background(), in.st, key.verifier, kept)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK {
		t.Fatalf("verification against the witnessed checkpoint passed: %+v", rep)
	}
}

// TestCosignatureOverOtherText: the witness's answer is appended to the
// signed checkpoint to check its cosignature, so an answer that starts
// with an empty line moved the note's text/signature split: a
// cosignature over the checkpoint and the log's signature line together
// verified, was kept, and made the cosigned checkpoint unverifiable for
// every witness on it. Only signature lines are taken.
func TestCosignatureOverOtherText(t *testing.T) {
	key := newLogKey(t)
	ws, err := cosig.GenerateSigner("w.test/witness", rand.Reader, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, _, msg, err := witness.ParseAddCheckpoint(body)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		// The whole signed note as the text: the log's signature line
		// becomes part of what is cosigned.
		signed, err := note.Sign(&note.Note{Text: string(msg)}, ws)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusInternalServerError)
			return
		}
		rw.Write(append([]byte("\n"), signed[len(msg)+1:]...))
	}))
	defer srv.Close()
	in := open(t, t.TempDir(), key, witness.Target{Kind: witness.KindTlogWitness, URL: srv.URL, Key: ws.VerifierKey()})
	in.append(t, 2)
	in.failedWith(t, 0, "not signature lines")
	if c := in.pub.Cosigned(); c != nil {
		_, err := cosig.VerifyCosigned(c, key.verifier, origin, []string{ws.VerifierKey()}, time.Now())
		t.Fatalf("a cosignature over another text was kept (VerifyCosigned: %v):\n%s", err, c)
	}
}

// forgedHeadStore answers LatestCheckpoint with a checkpoint row someone
// with write access to the database added: bigger than the log, and not
// signed by its key.
type forgedHeadStore struct {
	store.Store
	head store.Checkpoint
}

func (f forgedHeadStore) LatestCheckpoint(ctx context.Context) (store.Checkpoint, error) {
	return f.head, nil
}

// TestPublisherIgnoresUnsignedStoreHead: the publisher prefers the store's
// newest checkpoint when it is bigger than the one offered (another
// replica's), and when a witness holds more than the log it takes the
// store's word that the log is bigger. A row added to the database,
// signed by no one, turned the evidence of a truncated log (an ERROR) into
// the witness's refusal of a bad signature (a WARN), and was sent to the
// witnesses instead of the log's own checkpoints. Only checkpoints the
// log's key signed count.
func TestPublisherIgnoresUnsignedStoreHead(t *testing.T) {
	key, w, target, in := witnessedLog(t, 12)
	cp := in.log.Latest()
	in.close()
	w.SetState(origin, witnesstest.State{Size: 20}) // it saw a longer log

	bogus := []byte(origin + "\n25\n" + strings.Repeat("A", 43) + "=\n\n— airlock AAAAAAAA\n")
	st, err := sqlitestore.Open(context.Background(), filepath.Join(in.dir, "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	lb := &logBuf{}
	pub, err := witness.New(witness.Options{
		Store:    forgedHeadStore{st, store.Checkpoint{ID: 1 << 40, Size: 25, Root: make([]byte, 32), Note: bogus}},
		Verifier: key.verifier, Targets: []witness.Target{target},
		Logger: slog.New(slog.NewTextHandler(lb, nil)), MinInterval: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	pub.Offer(cp)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pub.WaitUntil(ctx, func(ss []witness.Status) bool { return ss[0].Failures > 0 }); err != nil {
		t.Fatal(err)
	}
	if s := pub.Status()[0]; !strings.Contains(s.LastError, "holds a tree of 20 entries but the log has only 12") {
		t.Fatalf("the witness's bigger tree was not reported as evidence: %+v\n%s", s, lb.String())
	}
	if !strings.Contains(lb.String(), "level=ERROR") {
		t.Fatalf("not logged as an error:\n%s", lb.String())
	}
}

// replayer stands in front of a witness: it passes requests on and keeps
// the last cosignature answered, until replay is set; then it answers
// every request with that old cosignature, as someone between the log and
// the witness (or a witness restored from an old copy) could. Once frozen
// is set, it keeps the cosignature it has and passes the next ones on
// without keeping them.
type replayer struct {
	next           http.Handler
	mu             sync.Mutex
	replay, frozen bool
	last           []byte
}

func (r *replayer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	replay, last := r.replay, r.last
	r.mu.Unlock()
	if replay {
		w.Write(last)
		return
	}
	rec := httptest.NewRecorder()
	r.next.ServeHTTP(rec, req)
	r.mu.Lock()
	if rec.Code == http.StatusOK && !r.frozen {
		r.last = rec.Body.Bytes()
	}
	r.mu.Unlock()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// replayedWitness runs a witnesstest witness that trusts key, on a fake
// clock (from 2026-12-05 12:00 UTC), behind a replayer on loopback; the
// target names it.
func replayedWitness(t *testing.T, key logKey) (*clock.Fake, *replayer, witness.Target) {
	t.Helper()
	clk := clock.NewFake(time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC))
	w, err := witnesstest.New("w.test/witness", clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddLog(origin, key.vkey); err != nil {
		t.Fatal(err)
	}
	rp := &replayer{next: w}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return clk, rp, witness.Target{Kind: witness.KindTlogWitness, URL: srv.URL, Key: w.VerifierKey()}
}

// TestPublisherRefusesReplayedCosignature: after a restart the publisher
// sends the witness the same checkpoint again. An answer carrying the
// witness's cosignature of that checkpoint from an hour before (a replay:
// the witness was not asked, or is not what answered) is refused: the
// target fails, publishes nothing and keeps no cosigned checkpoint of it.
// Before, it counted as the witness taking the checkpoint, which also
// clears a witness's evidence that the log was cut short.
func TestPublisherRefusesReplayedCosignature(t *testing.T) {
	key := newLogKey(t)
	clk, rp, target := replayedWitness(t, key)
	dir := t.TempDir()

	in := openAt(t, dir, key, clk, target)
	in.append(t, 3)
	in.waitPublished(t)
	in.close()
	if err := os.Remove(filepath.Join(dir, "checkpoint.cosigned")); err != nil {
		t.Fatal(err)
	}

	rp.mu.Lock()
	rp.replay = true
	rp.mu.Unlock()
	clk.Advance(time.Hour)
	in = openAt(t, dir, key, clk, target)
	in.pub.Offer(in.log.Latest())
	in.failedWith(t, 0, "more than 5m0s before the request was sent")
	if st := in.pub.Status()[0]; st.Published != 0 {
		t.Errorf("the replayed cosignature was taken: %+v", st)
	}
	if c := in.pub.Cosigned(); c != nil {
		t.Errorf("a cosigned checkpoint was kept from the replayed answer:\n%s", c)
	}

	// Within the allowed skew of the request, the witness's own answer is
	// taken again.
	rp.mu.Lock()
	rp.replay = false
	rp.mu.Unlock()
	in.append(t, 1)
	in.waitPublished(t)
}

// TestReplayRefusedAfterRestart: the rule that a witness's cosignature may
// not be dated before its previous one holds across a restart. The log is
// cut back to a checkpoint the witness cosigned a minute before it
// cosigned the longer log, every trace on the machine of the longer log
// deleted, and the publisher restarted; whatever answers in the witness's
// place replays the witness's cosignature of the shorter checkpoint, which
// is within cosig.MaxSkew of the request. Before, the publisher kept the
// witness's newest cosignature time only in memory: after the restart it
// took the replay, as if the witness had taken the shorter log (Published
// 12, the witness's evidence of the truncation never raised). Now the time
// is kept in Options.TimesPath and the replay is refused.
func TestReplayRefusedAfterRestart(t *testing.T) {
	key := newLogKey(t)
	clk, rp, target := replayedWitness(t, key)
	dir := t.TempDir()

	in := openAt(t, dir, key, clk, target)
	in.append(t, 12) // Sync: a checkpoint at 12, cosigned at 12:00
	in.waitPublished(t)
	rp.mu.Lock()
	rp.frozen = true
	rp.mu.Unlock()
	clk.Advance(time.Minute)
	in.append(t, 8) // cosigned at 12:01
	in.waitPublished(t)
	in.close()
	truncate(t, dir, 12)

	rp.mu.Lock()
	rp.replay = true
	rp.mu.Unlock()
	clk.Advance(time.Minute) // 12:02: the replay is within MaxSkew of the request
	in = openAt(t, dir, key, clk, target)
	in.pub.Offer(in.log.Latest())
	in.failedWith(t, 0, "before its previous one (2026-12-05T12:01:00Z)")
	if st := in.pub.Status()[0]; st.Published != 0 {
		t.Errorf("the replayed cosignature was taken after the restart: %+v", st)
	}
}

// truncate deletes the log's entries from size on with their checkpoints,
// and every file of data_dir that remembers them (the journal,
// data_dir/checkpoint, the cosigned checkpoint), as the crash or the
// attacker of TestTruncationCaughtByWitness does.
func truncate(t *testing.T, dir string, size int64) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "airlock.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{`DELETE FROM log_entries WHERE seq >= ?`, `DELETE FROM log_checkpoints WHERE size > ?`} {
		if _, err := db.Exec(q, size); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"checkpoint", "checkpoint.cosigned", "journal"} {
		if err := os.RemoveAll(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUnreadableTimesFile: a times file that exists but cannot be read
// fails the publisher's start, naming the file, rather than starting
// without the times (which would take a replayed older cosignature).
func TestUnreadableTimesFile(t *testing.T) {
	key := newLogKey(t)
	w, u := startWitness(t, "w.test/witness", key)
	dir := t.TempDir()
	path := filepath.Join(dir, "witness-times.json")
	st, err := sqlitestore.Open(context.Background(), filepath.Join(dir, "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, content := range []string{"{", `{"` + w.VerifierKey() + `":"yesterday"}`, "[]"} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := witness.New(witness.Options{
			Store: st, Verifier: key.verifier, TimesPath: path,
			Targets: []witness.Target{{Kind: witness.KindTlogWitness, URL: u, Key: w.VerifierKey()}},
		})
		if err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("times file %q: err = %v, want a refusal naming the file", content, err)
		}
	}
}

// TestTimesFileNotWritten: a cosignature whose time cannot be kept is not
// taken (the target fails, publishes nothing), since after a restart an
// older one replayed in the witness's place would be.
func TestTimesFileNotWritten(t *testing.T) {
	key := newLogKey(t)
	w, u := startWitness(t, "w.test/witness", key)
	in := open(t, t.TempDir(), key)
	pub, err := witness.New(witness.Options{
		Store: in.st, Verifier: key.verifier, TimesPath: filepath.Join(in.dir, "missing", "witness-times.json"),
		Targets:     []witness.Target{{Kind: witness.KindTlogWitness, URL: u, Key: w.VerifierKey()}},
		MinInterval: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	in.append(t, 3)
	pub.Offer(in.log.Latest())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pub.WaitUntil(ctx, func(ss []witness.Status) bool { return ss[0].Failures > 0 }); err != nil {
		t.Fatal(err)
	}
	if s := pub.Status()[0]; s.Published != 0 || !strings.Contains(s.LastError, "keeping its time failed") || pub.Cosigned() != nil {
		t.Fatalf("status %+v", s)
	}
}
