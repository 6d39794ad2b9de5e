package witness_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/pgstore"
	"github.com/airlock-dev/airlock/internal/testenv"
	"github.com/airlock-dev/airlock/internal/witness"
)

// replica is one of several Logs sharing a PostgreSQL database, with its
// own publisher to the same tlog-witness, as replicas of airlock serve run.
type replica struct {
	st   *pgstore.Store
	log  *auditlog.Log
	pub  *witness.Publisher
	logs *logBuf
}

func openReplica(t *testing.T, dsn, dir string, key logKey, target witness.Target) *replica {
	t.Helper()
	ctx := context.Background()
	st, err := pgstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{st: st, logs: &logBuf{}}
	r.pub, err = witness.New(witness.Options{Store: st, Verifier: key.verifier, Targets: []witness.Target{target},
		Logger: slog.New(slog.NewTextHandler(r.logs, nil)), MinInterval: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r.log, err = auditlog.Open(ctx, st, key.signer, auditlog.Options{Origin: origin, Shared: true, Verifier: key.verifier,
		OnCheckpoint: r.pub.Offer, WitnessPath: filepath.Join(dir, "checkpoint")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.log.Close(); r.pub.Close(); r.st.Close() })
	return r
}

func (r *replica) append(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		if err := r.log.Append(context.Background(), auditlog.Event{Type: "session.call", Actor: "agent", Data: map[string]int{"i": i}}); err != nil {
			t.Fatal(err)
		}
	}
}

// published waits until the replica's publisher reports size at least n
// published, failing on any failure (a false alarm of truncation included).
func (r *replica) published(t *testing.T, n int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.pub.WaitUntil(ctx, func(ss []witness.Status) bool { return ss[0].Published >= n || ss[0].Failures > 0 }); err != nil {
		t.Fatalf("waiting for size %d: %v; status %+v", n, err, r.pub.Status())
	}
	if s := r.pub.Status()[0]; s.Failures > 0 {
		t.Fatalf("publishing failed: %+v; log:\n%s", s, r.logs.String())
	}
}

// TestReplicasPublishOneLog: checkpoints of one log signed by several
// replicas reach one tlog-witness. A witness that cosigned replica A's size
// N is then offered B's checkpoints, and a checkpoint older than what it
// holds (a replica that has not appended since): consistency proofs come
// from the stored log, never a replica's memory, and nothing is reported as
// the log having been cut short.
func TestReplicasPublishOneLog(t *testing.T) {
	dsn := testenv.PostgresDatabase(t, testenv.PostgresDSN(t), "replog_witness")
	key := newLogKey(t)
	w, u := startWitness(t, "w.test/witness", key)
	target := witness.Target{Kind: witness.KindTlogWitness, URL: u, Key: w.VerifierKey()}
	a := openReplica(t, dsn, t.TempDir(), key, target)
	b := openReplica(t, dsn, t.TempDir(), key, target)

	a.append(t, 13)
	a.published(t, 13)
	b.append(t, 6) // B continues A's tree: 19, proved from the witness's 13
	b.published(t, 19)
	a.append(t, 5) // 24, A's publisher last knew 13
	a.published(t, 24)
	b.append(t, 1)
	b.published(t, 25)
	st, _ := w.State(origin)
	if st.Size != 25 {
		t.Fatalf("witness holds size %d, want 25", st.Size)
	}

	// A third replica that only offers an older checkpoint (as at Open,
	// or when another replica's checkpoint got there first) publishes
	// the store's newest rather than claiming the log was cut short.
	// (Its publisher alone: a Log offers the store's newest at Open.)
	cst, err := pgstore.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer cst.Close()
	c := &replica{st: cst, logs: &logBuf{}}
	if c.pub, err = witness.New(witness.Options{Store: cst, Verifier: key.verifier, Targets: []witness.Target{target},
		Logger: slog.New(slog.NewTextHandler(c.logs, nil)), MinInterval: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	defer c.pub.Close()
	c.pub.Offer(findCheckpoint(t, cst, 19))
	c.published(t, 25)
	if st, _ := w.State(origin); st.Size != 25 {
		t.Fatalf("witness holds size %d after the stale offer, want 25", st.Size)
	}
	for _, r := range []*replica{a, b, c} {
		if s := r.pub.Status()[0]; s.Failures != 0 {
			t.Errorf("failures: %+v; log:\n%s", s, r.logs.String())
		}
	}
}

func findCheckpoint(t *testing.T, st *pgstore.Store, size int64) store.Checkpoint {
	t.Helper()
	cp, err := st.CheckpointOfSize(context.Background(), size)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}
