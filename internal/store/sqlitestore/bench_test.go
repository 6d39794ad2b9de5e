package sqlitestore

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/scope"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/storetest"
)

const (
	benchAccounts = 100
	benchDays     = 365
)

var benchStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// benchGrant returns the i-th of n generated grants: a realistic record (two
// scope statements, a policy decision, an approval) for one of 100 accounts,
// living minutes to hours and, for one grant in 10,000, 40 days.
func benchGrant(rng *rand.Rand, i, n int) model.Grant {
	account := fmt.Sprintf("%012d", 100000000000+rng.IntN(benchAccounts))
	ident := fmt.Sprintf("agent-%03d", rng.IntN(300))
	// Grants arrive in time order, as they do in production, spread evenly
	// over the year.
	req := benchStart.Add(time.Duration(float64(i)/float64(n)*float64(benchDays*24*time.Hour)) +
		time.Duration(rng.Int64N(int64(time.Second))))
	dur := 5*time.Minute + time.Duration(rng.Int64N(int64(4*time.Hour)))
	if rng.IntN(10000) == 0 {
		dur = 40 * 24 * time.Hour
	}
	decided := req.Add(time.Duration(rng.Int64N(int64(30 * time.Minute))))
	g := model.Grant{
		ID:           fmt.Sprintf("g_%016x", rng.Uint64()),
		Identity:     ident,
		IdentityKind: model.Agent,
		Owner:        "team-" + strconv.Itoa(rng.IntN(20)),
		Target:       "aws-" + account[9:],
		TargetKind:   "aws",
		Account:      account,
		RequestedScope: scope.Scope{
			{Actions: []string{"s3:GetObject", "s3:ListBucket"}, Resource: "arn:aws:s3:::logs-" + account + "/app/*"},
			{Actions: []string{"s3:GetObject"}, Resource: "arn:aws:s3:::config-" + account + "/app.yaml"},
		},
		Reason:      "triage incident INC-" + strconv.Itoa(i) + ": elevated 5xx on checkout",
		Duration:    dur,
		RequestedAt: req,
		DecideBy:    req.Add(time.Hour),
		Decision: model.PolicyDecision{
			Outcome:       "human",
			PolicySetHash: "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			PolicyIDs:     []string{"triage-reads-app-logs"},
			Explanation:   "s3:GetObject and s3:ListBucket on the app log prefix need a person",
			Pairs: []model.PairDecision{
				{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs-" + account + "/app/*", Allowed: true, Approval: "human", Policies: []string{"triage-reads-app-logs"}},
				{Action: "s3:ListBucket", Resource: "arn:aws:s3:::logs-" + account + "/app/*", Allowed: true, Approval: "human", Policies: []string{"triage-reads-app-logs"}},
			},
			At: req,
		},
	}
	switch r := rng.IntN(100); {
	case r < 2:
		g.Status = model.Pending
	case r < 5:
		g.Status = model.Denied
		g.DecidedAt, g.EndedAt, g.EndReason, g.EndedBy = decided, decided, "denied", "alice"
	case r < 8:
		g.Status = model.Cancelled
		g.EndedAt, g.EndReason, g.EndedBy = g.DecideBy, "cancelled", "airlock"
	default:
		g.GrantedScope = g.RequestedScope[:1]
		g.DecidedAt, g.StartedAt, g.ExpiresAt = decided, decided, decided.Add(dur)
		g.Approvals = []model.Approval{{Approver: "alice", Decision: "approved", Comment: "ok", At: decided,
			Policies: []string{"leads-approve-sre-agents"}, PolicySetHash: g.Decision.PolicySetHash}}
		g.CredentialID = fmt.Sprintf("AKIA%016X", rng.Uint64())
		g.CredentialFingerprint = "sha256:" + g.CredentialID
		switch r2 := rng.IntN(10); {
		case r2 < 6:
			g.Status, g.EndedAt, g.EndReason, g.EndedBy = model.Expired, g.ExpiresAt, "expired", "airlock"
		case r2 < 9:
			g.Status, g.EndedAt, g.EndReason, g.EndedBy = model.Ended, decided.Add(dur/2), "ended", ident
		default:
			g.Status, g.EndedAt, g.EndReason, g.EndedBy, g.EndComment = model.Revoked, decided.Add(dur/3), "revoked", "bob", "scope too wide"
		}
	}
	return g
}

// benchDB returns the path of a database holding n generated grants (and a
// session for every active-then-final one), building it on first use and
// caching it under os.TempDir().
func benchDB(b *testing.B, n int) string {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("airlock-bench-%s-grants-%d.db", benchSchemaKey(), n))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	ctx := context.Background()
	tmp := path + ".building"
	for _, p := range []string{tmp, tmp + "-wal", tmp + "-shm"} {
		os.Remove(p)
	}
	start := time.Now()
	s, err := Open(ctx, tmp)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(42, uint64(n)))
	const batch = 50_000
	for i := 0; i < n; {
		tx, err := s.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for j := 0; j < batch && i < n; j, i = j+1, i+1 {
			g := benchGrant(rng, i, n)
			if err := tx.CreateGrant(ctx, g); err != nil {
				b.Fatal(err)
			}
			if !g.StartedAt.IsZero() {
				ss := model.Session{
					ID: "s_" + g.ID[2:], GrantID: g.ID, Identity: g.Identity, Target: g.Target, Client: "aws-cli/2.15",
					StartedAt: g.StartedAt, EndedAt: g.EndedAt, Calls: rng.Int64N(200), Denied: rng.Int64N(3),
					BytesIn: rng.Int64N(1 << 16), BytesOut: rng.Int64N(1 << 24),
					Used: []string{"s3:GetObject " + g.RequestedScope[0].Resource, "s3:ListBucket " + g.RequestedScope[0].Resource},
				}
				if err := tx.PutSession(ctx, ss); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	if fi, err := os.Stat(tmp + "-wal"); err == nil && fi.Size() > 0 {
		b.Fatalf("WAL not checkpointed after close (%d bytes)", fi.Size())
	}
	os.Remove(tmp + "-wal")
	os.Remove(tmp + "-shm")
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(path)
	b.Logf("built %s: %d grants, %d MB, in %s", path, n, fi.Size()>>20, time.Since(start).Round(time.Second))
	return path
}

// benchSchemaKey names the schema and the generator in cached file names, so
// that a changed schema never reuses a stale database.
func benchSchemaKey() string {
	h := fnv.New32a()
	h.Write([]byte(benchGenerator))
	for _, m := range migrations {
		h.Write([]byte(m))
	}
	return fmt.Sprintf("v%d-%08x", SchemaVersion(), h.Sum32())
}

// benchGenerator changes whenever benchGrant or the bulk load changes.
const benchGenerator = "2"

func benchGrantCount(b *testing.B) int {
	n := 1_000_000
	if v := os.Getenv("AIRLOCK_BENCH_GRANTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("AIRLOCK_BENCH_GRANTS=%q: want a positive integer", v)
		}
	}
	return n
}

// BenchmarkReviewQuery times `airlock grants --account A --day D`: the grants
// of one account whose lifetime overlaps one day, with Usage, among
// AIRLOCK_BENCH_GRANTS (default 1,000,000) grants over 100 accounts and 365
// days. The requirement is under 100 ms per query.
//
//	go test -run '^$' -bench BenchmarkReviewQuery -benchtime 2000x ./internal/store/sqlitestore
func BenchmarkReviewQuery(b *testing.B) {
	n := benchGrantCount(b)
	path := benchDB(b, n)
	ctx := context.Background()
	s, err := Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	query := func(i int) (int, time.Duration) {
		account := fmt.Sprintf("%012d", 100000000000+(i*37)%benchAccounts)
		day := benchStart.Add(time.Duration((i*101)%benchDays) * 24 * time.Hour)
		t := time.Now()
		gs, err := s.Grants(ctx, store.GrantFilter{Account: account, Since: day, Until: day.Add(24 * time.Hour)})
		if err != nil {
			b.Fatal(err)
		}
		return len(gs), time.Since(t)
	}
	query(-1) // open a reader connection and load the schema
	var (
		iters, rows int
		times       []time.Duration
	)
	for b.Loop() {
		n, d := query(iters)
		rows += n
		times = append(times, d)
		iters++
	}
	if rows == 0 {
		b.Fatal("no query returned a grant")
	}
	slices.Sort(times)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(iters), "ms/op")
	b.ReportMetric(ms(times[len(times)/2]), "p50-ms")
	b.ReportMetric(ms(times[len(times)*99/100]), "p99-ms")
	b.ReportMetric(ms(times[len(times)-1]), "max-ms")
	b.ReportMetric(float64(rows)/float64(iters), "rows/op")
}

// BenchmarkScanLog measures ScanLog throughput (entries per second) over a
// log of 500,000 entries of 300 bytes.
func BenchmarkScanLog(b *testing.B) {
	const n = 500_000
	ctx := context.Background()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("airlock-bench-%s-log-%d.db", benchSchemaKey(), n))
	if _, err := os.Stat(path); err != nil {
		tmp := path + ".building"
		os.Remove(tmp)
		s, err := Open(ctx, tmp)
		if err != nil {
			b.Fatal(err)
		}
		data := make([]byte, 300)
		for i := range data {
			data[i] = byte('a' + i%26)
		}
		leaf := make([]byte, 32)
		for i := 0; i < n; {
			tx, err := s.Begin(ctx)
			if err != nil {
				b.Fatal(err)
			}
			es := make([]store.LogEntry, 0, 1000)
			for j := 0; j < 1000 && i < n; j, i = j+1, i+1 {
				es = append(es, store.LogEntry{Seq: int64(i), Time: benchStart.Add(time.Duration(i) * time.Millisecond),
					Type: "session.call", GrantID: fmt.Sprintf("g_%d", i/100), SessionID: fmt.Sprintf("s_%d", i/10), Data: data, LeafHash: leaf})
			}
			if err := tx.AppendLog(ctx, es); err != nil {
				b.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		s.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
		s.Close()
		os.Remove(tmp + "-wal")
		os.Remove(tmp + "-shm")
		if err := os.Rename(tmp, path); err != nil {
			b.Fatal(err)
		}
	}
	s, err := Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	total := 0
	for b.Loop() {
		if err := s.ScanLog(ctx, 0, n, func(e store.LogEntry) error {
			total++
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkCommit measures a small group-commit batch: a savepoint, a grant
// update and two log entries, committed with an fsync.
func BenchmarkCommit(b *testing.B) {
	ctx := context.Background()
	s, _ := openTemp(b)
	defer s.Close()
	g := model.Grant{ID: "g_1", Identity: "bot", Target: "t", Account: "A", Status: model.Active,
		RequestedAt: benchStart, ExpiresAt: benchStart.Add(time.Hour)}
	tx, _ := s.Begin(ctx)
	if err := tx.CreateGrant(ctx, g); err != nil {
		b.Fatal(err)
	}
	tx.Commit()
	seq := int64(0)
	for b.Loop() {
		tx, err := s.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		tx.Savepoint(ctx, "c")
		if err := tx.UpdateGrant(ctx, g); err != nil {
			b.Fatal(err)
		}
		if err := tx.AppendLog(ctx, []store.LogEntry{{Seq: seq, Data: []byte("x")}, {Seq: seq + 1, Data: []byte("y")}}); err != nil {
			b.Fatal(err)
		}
		seq += 2
		tx.Release(ctx, "c")
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendLog measures what the auditlog's indexer spends per entry
// storing a transaction of rows session.call entries (about 450 bytes each,
// with their grant, session and leaf hash): about 100 ms of calls at 80,
// 570 and 3,000 calls/s. Only AppendLog is timed; the commit and its fsync
// are not. cpu-ns/entry is the process's CPU over the same spans, the
// figure to compare on a busy machine.
func BenchmarkAppendLog(b *testing.B) {
	for _, rows := range []int{8, 31, 32, 57, 64, 300} {
		b.Run("rows="+strconv.Itoa(rows), func(b *testing.B) {
			ctx := context.Background()
			s, _ := openTemp(b)
			defer s.Close()
			data := make([]byte, benchDataLen(b))
			for i := range data {
				data[i] = 'a' + byte(i%26)
			}
			leaf := make([]byte, 32)
			es := make([]store.LogEntry, rows)
			seq := int64(0)
			var cpu time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for i := range es {
					es[i] = store.LogEntry{Seq: seq + int64(i), Time: benchStart.Add(time.Duration(seq + int64(i))),
						Type: "session.call", GrantID: "g_01JTRIAGE0000000000000000", SessionID: "s_01JSESSION000000000000000",
						Data: data, LeafHash: leaf}
				}
				tx, err := s.Begin(ctx)
				if err != nil {
					b.Fatal(err)
				}
				c0 := cpuTime()
				if err := tx.AppendLog(ctx, es); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - c0
				b.StopTimer()
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				seq += int64(rows)
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/entry")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*rows), "cpu-ns/entry")
		})
	}
}

// BenchmarkIndexBatch is the auditlog indexer's whole transaction as it
// runs under a gateway's load: 300 session.call entries (about 450 bytes
// each; 100 ms of calls at 3,000 calls/s) from 1 or 8 sessions
// interleaved, then a checkpoint and the commit (its WAL writes, its fsync,
// and SQLite's checkpoints of the WAL into the database as they fall due),
// all timed. cpu-ns/entry is the process's CPU per entry; for a figure
// that holds on a busy machine, count instructions under callgrind at two
// -benchtime values and divide the difference by the entries between them.
func BenchmarkIndexBatch(b *testing.B) {
	for _, sessions := range []int{1, 8} {
		b.Run("sessions="+strconv.Itoa(sessions), func(b *testing.B) {
			const rows = 300
			ctx := context.Background()
			s, _ := openTemp(b)
			defer s.Close()
			data := make([]byte, benchDataLen(b))
			for i := range data {
				data[i] = 'a' + byte(i%26)
			}
			leaf := make([]byte, 32)
			note := make([]byte, 200)
			sids := make([]string, sessions)
			for i := range sids {
				// Random-looking, as session ids are.
				sids[i] = fmt.Sprintf("s_%08x0000000000000000", uint32(i+1)*2654435761)
			}
			es := make([]store.LogEntry, rows)
			seq := int64(0)
			var cpu time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for i := range es {
					es[i] = store.LogEntry{Seq: seq + int64(i), Time: benchStart.Add(time.Duration(seq + int64(i))),
						Type: "session.call", GrantID: "g_01JTRIAGE0000000000000000", SessionID: sids[i%sessions],
						Data: data, LeafHash: leaf}
				}
				c0 := cpuTime()
				tx, err := s.Begin(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if err := tx.AppendLog(ctx, es); err != nil {
					b.Fatal(err)
				}
				if err := tx.PutCheckpoint(ctx, store.Checkpoint{Size: seq + rows, Root: leaf, Note: note, Frontier: leaf, CreatedAt: benchStart}); err != nil {
					b.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				cpu += cpuTime() - c0
				seq += rows
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/entry")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*rows), "cpu-ns/entry")
		})
	}
}

// cpuTime is the CPU the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkFindings lists the findings (store.IndexedLogTypes) of a log of
// AIRLOCK_BENCH_LOG_ENTRIES entries (default 200,000), one in 20,000 of them
// a finding: through their partial index (migration 4), then with the index
// dropped, as before it, in the same run.
func BenchmarkFindings(b *testing.B) {
	n := 200_000
	if v := os.Getenv("AIRLOCK_BENCH_LOG_ENTRIES"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 20_000 {
			b.Fatalf("AIRLOCK_BENCH_LOG_ENTRIES=%q: want a number of at least 20000", v)
		}
	}
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "findings.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	data := make([]byte, 450)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	leaf := make([]byte, 32)
	for i := 0; i < n; {
		tx, err := s.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		es := make([]store.LogEntry, 0, 1000)
		for j := 0; j < 1000 && i < n; j, i = j+1, i+1 {
			typ := "session.call"
			if i%20_000 == 19_999 {
				typ = "finding"
			}
			es = append(es, store.LogEntry{Seq: int64(i), Time: benchStart.Add(time.Duration(i) * time.Millisecond),
				Type: typ, GrantID: fmt.Sprintf("g_%d", i/100), SessionID: fmt.Sprintf("s_%d", i/10), Data: data, LeafHash: leaf})
		}
		if err := tx.AppendLog(ctx, es); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	list := func(b *testing.B) {
		for b.Loop() {
			es, err := s.LogEntries(ctx, store.LogFilter{Type: "finding"})
			if err != nil {
				b.Fatal(err)
			}
			if len(es) != n/20_000 {
				b.Fatalf("%d findings, want %d", len(es), n/20_000)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/list")
	}
	b.Run("index", list)
	if _, err := s.w.ExecContext(ctx, "DROP INDEX log_entries_findings"); err != nil {
		b.Fatal(err)
	}
	b.Run("scan", list)
	// What migration 4 costs an existing log at its first start.
	start := time.Now()
	if _, err := s.w.ExecContext(ctx, "CREATE INDEX log_entries_findings ON log_entries(seq) WHERE type = 'finding'"); err != nil {
		b.Fatal(err)
	}
	b.Logf("the index built over %d entries in %v", n, time.Since(start).Round(time.Millisecond))
}

// benchDataLen is the size of each entry's bytes in BenchmarkIndexBatch
// and BenchmarkAppendLog:
// 450, about a session.call's, unless AIRLOCK_BENCH_ENTRY_BYTES says
// otherwise. Running it with a few bytes as well tells what the entries'
// bytes cost the copy apart from the rows and their indexes (what keeping
// the entries in files of their own, a tile-based log, would save it).
func benchDataLen(b *testing.B) int {
	v := os.Getenv("AIRLOCK_BENCH_ENTRY_BYTES")
	if v == "" {
		return 450
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		b.Fatalf("AIRLOCK_BENCH_ENTRY_BYTES=%q: want a size in bytes", v)
	}
	return n
}

// BenchmarkOpenGrantsListing: storetest.BenchOpenGrantsListing, 500 active
// grants of 40 sessions each, with and without their usage.
func BenchmarkOpenGrantsListing(b *testing.B) {
	s, _ := openTemp(b)
	defer s.Close()
	storetest.BenchOpenGrantsListing(b, s, 500, 40)
}
