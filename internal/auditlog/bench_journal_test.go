package auditlog

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkJournalBatch measures a journal batch on the writer's side
// alone: one caller appending k events (a gateway call's size) in one
// Append, so each b.N is one batch of k entries: encoded, numbered and
// hashed into the tree, framed, sealed, written and fdatasynced, its
// caller woken. The copy into the store is held back (holdIndex): the
// indexer's transactions follow the wall clock (one per 100 ms), so their
// count per batch moves with the machine's load, and
// BenchmarkIndexBatch (sqlitestore) measures them. k=1 against k=8 splits
// a batch's fixed cost from an entry's. Count instructions under callgrind
// at two -benchtime values for a figure that holds on a busy machine
// (bench/HISTORY.md).
func BenchmarkJournalBatch(b *testing.B) {
	for _, k := range []int{1, 8} {
		b.Run("entries="+strconv.Itoa(k), func(b *testing.B) {
			dir := b.TempDir()
			st := openSQLite(b, filepath.Join(dir, "airlock.db"))
			s, _ := testKey(b)
			l := openLog(b, st, s, Options{JournalDir: filepath.Join(dir, "journal"), JournalKey: testJournalKey, holdIndex: true})
			ctx := context.Background()
			evs := make([]Event, k)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				for j := range evs {
					evs[j] = benchEvent(j, i)
				}
				if err := l.Append(ctx, evs...); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
