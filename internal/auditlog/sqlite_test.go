package auditlog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
	"golang.org/x/mod/sumdb/note"
	_ "modernc.org/sqlite"
)

func openSQLite(t testing.TB, path string) *sqlitestore.Store {
	t.Helper()
	st, err := sqlitestore.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// rawDB opens the database file directly, bypassing the store, as an
// attacker with access to the file would.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestSQLiteConcurrentAppendAndDo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "airlock.db")
	st := openSQLite(t, path)
	s, v := testKey(t)
	l := openLog(t, st, s, Options{})
	const G, N = 32, 40
	var wg sync.WaitGroup
	for g := range G {
		wg.Go(func() {
			ctx := context.Background()
			for i := range N {
				ev := Event{Type: "test.event", Actor: fmt.Sprintf("g%d", g), Data: map[string]int{"g": g, "i": i}}
				var err error
				if (g+i)%3 == 0 {
					err = l.Do(ctx, func(ctx context.Context, tx store.Tx) ([]Event, error) {
						if err := tx.PutIdentity(ctx, model.Identity{Name: fmt.Sprintf("agent-%d-%d", g, i), Kind: model.Agent, Owner: "sre", Source: "api"}); err != nil {
							return nil, err
						}
						return []Event{ev}, nil
					})
				} else {
					err = l.Append(ctx, ev)
				}
				if err != nil {
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
	ids, err := st.Identities(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for g := range G {
		for i := range N {
			if (g+i)%3 == 0 {
				want++
			}
		}
	}
	if len(ids) != want {
		t.Errorf("%d identities, want %d", len(ids), want)
	}
	rep := mustVerifyOK(t, st, v, nil)
	t.Logf("%d entries, %d checkpoints (batches)", rep.Entries, rep.Checkpoints)
}

func TestSQLiteDoFailureLeavesNoTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "airlock.db")
	st := openSQLite(t, path)
	s, v := testKey(t)
	var sizes []int64
	var mu sync.Mutex
	l := openLog(t, st, s, Options{OnCommit: func(n int64) { mu.Lock(); sizes = append(sizes, n); mu.Unlock() }})
	ctx := context.Background()

	release := blockWriter(t, l)
	errBoom := errors.New("boom")
	names := []string{"ok-a", "bad-b", "ok-c", "bad-d", "ok-e"}
	errs := make([]chan error, len(names))
	for k, name := range names {
		errs[k] = make(chan error, 1)
		go func() {
			errs[k] <- l.Do(ctx, func(ctx context.Context, tx store.Tx) ([]Event, error) {
				if err := tx.PutIdentity(ctx, model.Identity{Name: name, Kind: model.Agent, Owner: "sre", Source: "api"}); err != nil {
					return nil, err
				}
				if strings.HasPrefix(name, "bad") {
					return []Event{{Type: "identity.added", Data: name}}, errBoom
				}
				return []Event{{Type: "identity.added", Actor: "test", Data: map[string]string{"name": name}}}, nil
			})
		}()
		waitQueued(t, l, k+1)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	for k, name := range names {
		err := <-errs[k]
		if strings.HasPrefix(name, "bad") != errors.Is(err, errBoom) {
			t.Errorf("%s: %v", name, err)
		}
		_, ierr := st.Identity(ctx, name)
		if stored := ierr == nil; stored != strings.HasPrefix(name, "ok") {
			t.Errorf("%s: stored=%v (%v)", name, stored, ierr)
		}
	}
	es := scanAll(t, st)
	if len(es) != 4 {
		t.Fatalf("%d entries, want 4", len(es))
	}
	for _, e := range es[1:] {
		if !strings.Contains(string(e.Data), `"name":"ok-`) {
			t.Errorf("unexpected entry %s", e.Data)
		}
	}
	mu.Lock()
	if len(sizes) != 1 || sizes[0] != 4 {
		t.Errorf("batches ended at %v, want [4] (one batch)", sizes)
	}
	mu.Unlock()
	mustVerifyOK(t, st, v, nil)
}

func TestSQLiteRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "airlock.db")
	wpath := filepath.Join(dir, "checkpoint.witness")
	s, v := testKey(t)
	ctx := context.Background()

	st, err := sqlitestore.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Open(ctx, st, s, Options{Origin: "airlock/test", WitnessPath: wpath})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := l.Append(ctx, Event{Type: "before", Data: i}, Event{Type: "before2", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	first := l.Latest()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st2 := openSQLite(t, path)
	l2 := openLog(t, st2, s, Options{WitnessPath: wpath})
	if l2.Size() != 20 || string(l2.Latest().Root) != string(first.Root) {
		t.Fatalf("reopened at %d", l2.Size())
	}
	for i := range 13 {
		if err := l2.Append(ctx, Event{Type: "after", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	w, err := os.ReadFile(wpath)
	if err != nil {
		t.Fatal(err)
	}
	rep := mustVerifyOK(t, st2, v, w)
	if rep.Size != 33 || rep.Entries != 33 || rep.Checkpoints != 23 {
		t.Errorf("report %+v", rep)
	}
	// The old checkpoint is consistent with the new tree.
	mustVerifyOK(t, st2, v, first.Note)
}

type sqlTamperer struct{ db *sql.DB }

func (q sqlTamperer) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	res, err := q.db.Exec(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatalf("%s: no rows affected", query)
	}
}

func (q sqlTamperer) entry(t *testing.T, seq int64) (data, leaf []byte) {
	if err := q.db.QueryRow(`SELECT data, leaf_hash FROM log_entries WHERE seq = ?`, seq).Scan(&data, &leaf); err != nil {
		t.Fatal(err)
	}
	return data, leaf
}

func (q sqlTamperer) setEntry(t *testing.T, seq int64, data, leaf []byte) {
	q.exec(t, `UPDATE log_entries SET data = ?, leaf_hash = ? WHERE seq = ?`, data, leaf, seq)
}

func (q sqlTamperer) insertEntry(t *testing.T, seq int64, data, leaf []byte) {
	q.exec(t, `INSERT INTO log_entries (seq, time, type, grant_id, session_id, data, leaf_hash)
		VALUES (?, 1735689600000000000, 'grant.approved', 'g_1', NULL, ?, ?)`, seq, data, leaf)
}

func (q sqlTamperer) deleteEntries(t *testing.T, from, to int64) {
	q.exec(t, `DELETE FROM log_entries WHERE seq >= ? AND seq < ?`, from, to)
}

func (q sqlTamperer) deleteCheckpointsAbove(t *testing.T, size int64) {
	q.exec(t, `DELETE FROM log_checkpoints WHERE size > ?`, size)
}

func (q sqlTamperer) copyCheckpoint(t *testing.T, id int64) {
	q.exec(t, `INSERT INTO log_checkpoints (size, root, note, frontier, created_at)
		SELECT size, root, note, frontier, created_at FROM log_checkpoints WHERE id = ?`, id)
}

func (q sqlTamperer) checkpointNote(t *testing.T, id int64) (n []byte) {
	if err := q.db.QueryRow(`SELECT note FROM log_checkpoints WHERE id = ?`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (q sqlTamperer) setCheckpointNote(t *testing.T, id int64, n []byte) {
	q.exec(t, `UPDATE log_checkpoints SET note = ? WHERE id = ?`, n, id)
}

func (q sqlTamperer) setCheckpointSize(t *testing.T, id, size int64) {
	q.exec(t, `UPDATE log_checkpoints SET size = ? WHERE id = ?`, size, id)
}

func (q sqlTamperer) setCheckpointFrontier(t *testing.T, id int64, f []byte) {
	q.exec(t, `UPDATE log_checkpoints SET frontier = ? WHERE id = ?`, f, id)
}

// sqliteFixture writes the fixture log to a new database and closes the Log
// and the store, returning the database path and the witness file path.
func sqliteFixture(t *testing.T) (path, wpath string) {
	s, _ := sharedKey(t)
	dir := t.TempDir()
	path = filepath.Join(dir, "airlock.db")
	wpath = filepath.Join(dir, "witness")
	st, err := sqlitestore.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, err := Open(context.Background(), st, s, Options{Origin: "airlock/test", WitnessPath: wpath})
	if err != nil {
		t.Fatal(err)
	}
	appendFixture(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path, wpath
}

var sharedKeyOnce struct {
	sync.Once
	s note.Signer
	v note.Verifier
}

// sharedKey is one test key for the whole package run.
func sharedKey(t testing.TB) (note.Signer, note.Verifier) {
	sharedKeyOnce.Do(func() { sharedKeyOnce.s, sharedKeyOnce.v = testKey(t) })
	return sharedKeyOnce.s, sharedKeyOnce.v
}

func TestSQLiteVerifyDetectsTampering(t *testing.T) {
	_, v := sharedKey(t)
	runTamperCases(t, v, func(t *testing.T) (func() store.Store, tamperer, string) {
		path, wpath := sqliteFixture(t)
		return func() store.Store { return openSQLite(t, path) }, sqlTamperer{rawDB(t, path)}, wpath
	})
}

func TestSQLiteOpenRefusesTamperedLog(t *testing.T) {
	s, _ := sharedKey(t)
	ctx := context.Background()
	refuse := func(t *testing.T, path, want string) {
		t.Helper()
		st := openSQLite(t, path)
		l, err := Open(ctx, st, s, Options{Origin: "airlock/test"})
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
		path, _ := sqliteFixture(t)
		db := rawDB(t, path)
		// Flip one bit of the newest checkpoint's frontier.
		var f []byte
		if err := db.QueryRow(`SELECT frontier FROM log_checkpoints ORDER BY id DESC LIMIT 1`).Scan(&f); err != nil {
			t.Fatal(err)
		}
		f[0] ^= 0x80
		sqlTamperer{db}.exec(t, `UPDATE log_checkpoints SET frontier = ? WHERE id = (SELECT MAX(id) FROM log_checkpoints)`, f)
		refuse(t, path, "frontier")
	})
	t.Run("entries-past-checkpoint", func(t *testing.T) {
		path, _ := sqliteFixture(t)
		db := rawDB(t, path)
		sqlTamperer{db}.exec(t, `INSERT INTO log_entries (seq, time, type, data, leaf_hash) VALUES (55, 0, 'x', X'7B7D', X'00')`)
		refuse(t, path, "holds 56 entries but the newest checkpoint 10 covers only 55")
	})
	t.Run("checkpoint-deleted", func(t *testing.T) {
		path, _ := sqliteFixture(t)
		db := rawDB(t, path)
		sqlTamperer{db}.exec(t, `DELETE FROM log_checkpoints WHERE id = (SELECT MAX(id) FROM log_checkpoints)`)
		refuse(t, path, "not written by airlock")
	})
	t.Run("truncated-with-witness", func(t *testing.T) {
		path, wpath := sqliteFixture(t)
		db := rawDB(t, path)
		sqlTamperer{db}.exec(t, `DELETE FROM log_entries WHERE seq >= 45`)
		sqlTamperer{db}.exec(t, `DELETE FROM log_checkpoints WHERE size > 45`)
		st := openSQLite(t, path)
		if l, err := Open(ctx, st, s, Options{Origin: "airlock/test"}); err != nil {
			t.Fatalf("without the witness: %v", err)
		} else {
			l.Close()
		}
		l, err := Open(ctx, st, s, Options{Origin: "airlock/test", WitnessPath: wpath})
		if err == nil {
			l.Close()
			t.Fatal("Open accepted a truncated log")
		}
		if !strings.Contains(err.Error(), "truncated") {
			t.Fatal(err)
		}
	})
}

// TestSQLiteCancelledCallsAreNotLogged checks the acknowledgement contract
// under cancellation races: every Append that returned nil is in the log
// exactly once, and every one that returned an error is not in it.
func TestSQLiteCancelledCallsAreNotLogged(t *testing.T) {
	st := openSQLite(t, filepath.Join(t.TempDir(), "airlock.db"))
	s, v := testKey(t)
	l := openLog(t, st, s, Options{})
	const G, N = 32, 30
	ok := make([][]bool, G)
	var wg sync.WaitGroup
	for g := range G {
		ok[g] = make([]bool, N)
		wg.Go(func() {
			for i := range N {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration((g*N+i)%7)*300*time.Microsecond)
				err := l.Append(ctx, Event{Type: "test.event", Data: map[string]int{"g": g, "i": i}})
				cancel()
				switch {
				case err == nil:
					ok[g][i] = true
				case !errors.Is(err, context.DeadlineExceeded):
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	logged := map[[2]int]int{}
	for _, e := range scanAll(t, st) {
		var x struct{ Data struct{ G, I int } }
		if err := json.Unmarshal(e.Data, &x); err != nil {
			t.Fatal(err)
		}
		logged[[2]int{x.Data.G, x.Data.I}]++
	}
	acked, refused := 0, 0
	for g := range G {
		for i := range N {
			n := logged[[2]int{g, i}]
			if ok[g][i] {
				acked++
				if n != 1 {
					t.Errorf("acknowledged event %d/%d logged %d times", g, i, n)
				}
			} else {
				refused++
				if n != 0 {
					t.Errorf("refused event %d/%d logged %d times", g, i, n)
				}
			}
		}
	}
	t.Logf("%d acknowledged, %d refused", acked, refused)
	mustVerifyOK(t, st, v, nil)
}

// TestSQLiteVerifyWhileAppending checks that verifying a live log reports no
// false problems (entries committed during the scan are not "uncovered").
func TestSQLiteVerifyWhileAppending(t *testing.T) {
	st := openSQLite(t, filepath.Join(t.TempDir(), "airlock.db"))
	s, v := testKey(t)
	l := openLog(t, st, s, Options{})
	appendConcurrently(t, l, 8, 500)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := l.Append(context.Background(), benchEvent(g, i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for range 5 {
		mustVerifyOK(t, st, v, nil)
	}
	close(stop)
	wg.Wait()
	rep := mustVerifyOK(t, st, v, nil)
	if rep.Size != l.Size() {
		t.Errorf("verified size %d, log size %d", rep.Size, l.Size())
	}
}
