package auditlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/scope"
	"github.com/airlock-dev/airlock/internal/store"
)

// replicaOptions are the options of replica i of a log shared through one
// PostgreSQL database, as airlock serve sets them: the same origin and key
// everywhere, a witness file of its own.
func replicaOptions(dir string, v note.Verifier, i int) Options {
	return Options{Origin: "airlock/test", Shared: true, Verifier: v, WitnessPath: filepath.Join(dir, fmt.Sprintf("checkpoint-%d", i))}
}

// testGrant is a pending grant as its grant.requested event describes it.
func testGrant(id string, at time.Time) (model.Grant, Event) {
	stmts := []string{"s3:GetObject arn:aws:s3:::logs/*"}
	sc, err := scope.Parse(stmts)
	if err != nil {
		panic(err)
	}
	g := model.Grant{RequestedScope: sc, ID: id, Identity: "bot", IdentityKind: model.Agent, Owner: "alice", Target: "aws-prod",
		TargetKind: "aws", Account: "123456789012", Reason: "replicas", Duration: 10 * time.Minute,
		Status: model.Pending, RequestedAt: at, DecideBy: at.Add(time.Hour)}
	ev := Event{Type: "grant.requested", Time: at, GrantID: id, Actor: "bot", Data: map[string]any{
		"identity": g.Identity, "identity_kind": g.IdentityKind, "owner": g.Owner, "target": g.Target,
		"target_kind": g.TargetKind, "account": g.Account, "scope": stmts, "duration": g.Duration.String(),
		"reason": g.Reason, "decide_by": g.DecideBy}}
	return g, ev
}

// requestAndCancel records a grant's request and, in a second Do, its
// cancellation, each with the row change it describes.
func requestAndCancel(ctx context.Context, l *Log, id string) error {
	at := time.Now().UTC()
	g, ev := testGrant(id, at)
	if err := l.Do(ctx, func(ctx context.Context, tx store.Tx) ([]Event, error) {
		return []Event{ev}, tx.CreateGrant(ctx, g)
	}); err != nil {
		return fmt.Errorf("request %s: %w", id, err)
	}
	return l.Do(ctx, func(ctx context.Context, tx store.Tx) ([]Event, error) {
		g, err := tx.Grant(ctx, id)
		if err != nil {
			return nil, err
		}
		end := time.Now().UTC()
		g.Status, g.EndedAt, g.EndReason, g.EndedBy, g.EndComment = model.Cancelled, end, "cancelled", "bot", "done"
		if err := tx.UpdateGrant(ctx, g); err != nil {
			return nil, err
		}
		return []Event{{Type: "grant.cancelled", Time: end, GrantID: id, Actor: "bot",
			Data: map[string]any{"at": end, "by": "bot", "reason": "done", "status": model.Cancelled}}}, nil
	})
}

// TestSharedLogThreeReplicas: three Logs on three stores opened on one
// PostgreSQL database (three replicas) append concurrently and run Do
// operations; the result is one log that Verify accepts against every
// replica's witness file, holding every acknowledged event exactly once,
// whose derived review equals the stored rows.
func TestSharedLogThreeReplicas(t *testing.T) {
	dsn := pgDatabase(t)
	signer, v := testKey(t)
	dir := t.TempDir()
	ctx := context.Background()
	const replicas, writers, perWriter, grantsPer = 3, 6, 60, 8
	stores := make([]store.Store, replicas)
	logs := make([]*Log, replicas)
	for i := range replicas {
		stores[i] = openPG(t, dsn)
		logs[i] = openLog(t, stores[i], signer, replicaOptions(dir, v, i))
	}
	var wg sync.WaitGroup
	for r, l := range logs {
		for w := range writers {
			wg.Go(func() {
				for i := range perWriter {
					ev := Event{Type: "test.append", Actor: fmt.Sprintf("r%d", r), Data: map[string]string{"id": fmt.Sprintf("%d/%d/%d", r, w, i)}}
					if err := l.Append(ctx, ev); err != nil {
						t.Errorf("replica %d: %v", r, err)
						return
					}
				}
			})
		}
		wg.Go(func() {
			for k := range grantsPer {
				if err := requestAndCancel(ctx, l, fmt.Sprintf("g_r%d_%02d", r, k)); err != nil {
					t.Errorf("replica %d: %v", r, err)
					return
				}
			}
		})
		wg.Go(func() {
			// A Do that fails leaves no trace, on any replica.
			refused := errors.New("refused")
			err := l.Do(ctx, func(ctx context.Context, tx store.Tx) ([]Event, error) {
				g, ev := testGrant(fmt.Sprintf("g_fail_r%d", r), time.Now().UTC())
				if err := tx.CreateGrant(ctx, g); err != nil {
					return nil, err
				}
				return []Event{ev}, refused
			})
			if !errors.Is(err, refused) {
				t.Errorf("replica %d: failing Do returned %v", r, err)
			}
		})
	}
	wg.Wait()
	for _, l := range logs {
		if err := l.Err(); err != nil {
			t.Errorf("Err after a successful run: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	st := stores[0]
	seen := map[string]int{}
	var n int64
	if err := st.ScanLog(ctx, 0, 1<<62, func(e store.LogEntry) error {
		n++
		if e.Type != "test.append" {
			return nil
		}
		var x struct {
			Data struct{ ID string } `json:"data"`
		}
		if err := json.Unmarshal(e.Data, &x); err != nil {
			return err
		}
		seen[x.Data.ID]++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := replicas * writers * perWriter; len(seen) != want {
		t.Errorf("%d distinct appended events in the log, want %d", len(seen), want)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("event %s is in the log %d times", id, c)
		}
	}
	if want := int64(replicas * (writers*perWriter + 2*grantsPer)); n != want {
		t.Errorf("the log holds %d entries, want %d", n, want)
	}
	gs, err := st.Grants(ctx, store.GrantFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != replicas*grantsPer {
		t.Errorf("%d grants stored, want %d", len(gs), replicas*grantsPer)
	}
	for i := range replicas {
		witness, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("checkpoint-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		// Every replica's store sees the same log and rows.
		rep, err := VerifyWith(ctx, stores[i], v, VerifyOptions{Witness: witness, State: review.NewChecker(stores[i])})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK || !rep.Rows || rep.Size != n {
			t.Fatalf("replica %d: verify: OK %v, rows %v, size %d of %d: %v", i, rep.OK, rep.Rows, rep.Size, n, rep.Problems)
		}
	}
	// Evidence bundles' proofs (audit export) come from the one tree.
	tree, err := BuildProofTree(ctx, st, v)
	if err != nil || tree.Size() != n {
		t.Fatalf("proof tree: %v (size %v of %d)", err, tree, n)
	}
	if _, err := tree.Inclusion(n / 2); err != nil {
		t.Fatal(err)
	}
	// A replica reopened later resumes from the shared head.
	l := openLog(t, openPG(t, dsn), signer, replicaOptions(dir, v, 0))
	if l.Size() != n {
		t.Fatalf("reopened replica at size %d, want %d", l.Size(), n)
	}
}

// TestSharedLogRefusesForeignHead: a replica does not continue a log from a
// checkpoint it cannot authenticate (another signing key, as a forged head
// written into the database would be): its batch fails and Err says so,
// while the replica holding the key carries on.
func TestSharedLogRefusesForeignHead(t *testing.T) {
	dsn := pgDatabase(t)
	dir := t.TempDir()
	ctx := context.Background()
	sa, va := testKey(t)
	sb, vb := testKey(t)
	a := openLog(t, openPG(t, dsn), sa, replicaOptions(dir, va, 0))
	b := openLog(t, openPG(t, dsn), sb, replicaOptions(dir, vb, 1))
	if err := a.Append(ctx, Event{Type: "test.append"}); err != nil {
		t.Fatal(err)
	}
	err := b.Append(ctx, Event{Type: "test.append"})
	if err == nil || !strings.Contains(err.Error(), "not validly signed") {
		t.Fatalf("append over a head signed by another key: %v", err)
	}
	if b.Err() == nil {
		t.Error("Err is nil after the refused batch")
	}
	if err := a.Append(ctx, Event{Type: "test.append"}); err != nil {
		t.Fatal(err)
	}
	if a.Size() != 2 {
		t.Fatalf("size %d, want 2", a.Size())
	}
}
