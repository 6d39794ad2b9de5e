package review

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// voidLog is a log held as entries, which LoadVoid reads by type.
type voidLog struct{ es []store.LogEntry }

func (l *voidLog) LogEntries(_ context.Context, f store.LogFilter) ([]store.LogEntry, error) {
	var out []store.LogEntry
	for _, e := range l.es {
		if (f.Type == "" || e.Type == f.Type) && e.Seq > f.After {
			out = append(out, e)
		}
	}
	return out, nil
}

func (l *voidLog) add(seq int64, typ, rest string) {
	l.es = append(l.es, store.LogEntry{Seq: seq, Type: typ, Data: fmt.Appendf(nil, `{"seq":%d,"time":"2026-12-06T01:00:00.%03dZ","type":%q,%s}`, seq, seq, typ, rest)})
}

// refusedCallLog is a grant, its session s_1, one call of it (entry 2)
// whose batch's commit outcome was unknown, and the log.refused entry the
// next batch appended naming it (entry 3).
func refusedCallLog() *voidLog {
	l := &voidLog{}
	l.add(0, "grant.requested", `"grant":"g_1","actor":"bot","data":{"identity":"bot","target":"orders-db","scope":["pg:select orders.public.customers"],"duration":"10m","reason":"count"}`)
	l.add(1, "session.started", `"grant":"g_1","session":"s_1","actor":"bot","data":{"client":"psql","target":"orders-db"}`)
	l.add(2, "session.call", `"grant":"g_1","session":"s_1","actor":"bot","data":{"kind":"request","action":"pg:select","resource":"orders","allowed":true}`)
	l.add(3, RefusedType, `"actor":"airlock","data":{"entries":[[2,3]],"reason":"the outcome of their batch's commit was unknown"}`)
	return l
}

func derive(t *testing.T, l *voidLog, load bool) (*Deriver, []error) {
	t.Helper()
	d := NewDeriver()
	if load {
		v, by, err := LoadVoid(context.Background(), l, 0)
		if err != nil {
			t.Fatal(err)
		}
		d.SetVoid(v, by)
	}
	var errs []error
	for _, e := range l.es {
		if err := d.Add(e.Data); err != nil {
			errs = append(errs, err)
		}
	}
	return d, errs
}

// TestRefusedCallNotCounted: the recorder does not count a call whose log
// write failed (its caller was refused), so its session's row holds no
// call; the log holds the call and, after it, the log.refused entry that
// names it. The state check must not count it either.
func TestRefusedCallNotCounted(t *testing.T) {
	d, errs := derive(t, refusedCallLog(), true)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	s, _, ok := d.Session("s_1")
	if !ok {
		t.Fatal("no session s_1")
	}
	// The row as the recorder leaves it: started, no call counted.
	row := s
	row.Calls, row.Used, row.BytesIn, row.BytesOut = 0, nil, 0, 0
	if ds := SessionDiffs(d, row); len(ds) > 0 {
		t.Fatalf("the session's row, which does not count the refused call, is reported: %q", ds)
	}
	if s.Calls != 0 || len(s.Used) != 0 {
		t.Fatalf("derived %d calls, used %q; want the refused call left out", s.Calls, s.Used)
	}
	g, _, _ := d.Grant("g_1")
	if g.Usage.Calls != 0 || len(g.Usage.ScopeUsed) != 0 {
		t.Fatalf("grant usage %+v counts the refused call", g.Usage)
	}
}

// TestRefusedGrantEntriesVoid: any entry a log.refused names is void, a
// grant's lifecycle entry too (its caller was told the change failed).
func TestRefusedGrantEntriesVoid(t *testing.T) {
	l := &voidLog{}
	l.add(0, "grant.requested", `"grant":"g_1","actor":"bot","data":{"identity":"bot","target":"orders-db","scope":["pg:select orders.public.customers"],"duration":"10m","reason":"count"}`)
	l.add(1, "grant.denied", `"grant":"g_1","actor":"alice","data":{"status":"denied","reason":"no"}`)
	l.add(2, RefusedType, `"actor":"airlock","data":{"entries":[[1,2]],"reason":"unknown"}`)
	d, errs := derive(t, l, true)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if g, _, _ := d.Grant("g_1"); g.Status != model.Pending {
		t.Fatalf("status %q, want pending: the refused denial is void", g.Status)
	}
}

// TestRefusedEntryChecked: a log.refused entry that names entries at or
// after itself, or that the type column hides from LoadVoid, is an error
// (a problem of the state check).
func TestRefusedEntryChecked(t *testing.T) {
	for _, tc := range []struct{ name, ranges, want string }{
		{"itself", `[[2,4]]`, "not all entries before it"},
		{"beyond", `[[5,9]]`, "not all entries before it"},
		{"negative", `[[-3,1]]`, "not all entries before it"},
		{"empty range", `[[2,2]]`, "not all entries before it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := refusedCallLog()
			l.es = l.es[:3]
			l.add(3, RefusedType, `"actor":"airlock","data":{"entries":`+tc.ranges+`}`)
			_, errs := derive(t, l, true)
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want) {
				t.Fatalf("errors %v, want one saying %q", errs, tc.want)
			}
		})
	}
	t.Run("hidden by its type column", func(t *testing.T) {
		l := refusedCallLog()
		l.es[3].Type = "policy.loaded"
		_, errs := derive(t, l, true)
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), "type column does not show") {
			t.Fatalf("errors %v, want the hidden log.refused reported", errs)
		}
	})
	t.Run("unconfirmed", func(t *testing.T) {
		l := refusedCallLog()
		d := NewDeriver()
		v, by, err := LoadVoid(context.Background(), l, 0)
		if err != nil {
			t.Fatal(err)
		}
		d.SetVoid(v, by)
		for _, e := range l.es[:3] {
			if err := d.Add(e.Data); err != nil {
				t.Fatal(err)
			}
		}
		if got := d.UnconfirmedVoid(); len(got) != 1 || got[0] != 3 {
			t.Fatalf("unconfirmed %v, want [3]", got)
		}
	})
}

func TestVoidContains(t *testing.T) {
	var v Void
	v.Add([][2]int64{{10, 12}, {3, 5}, {4, 7}, {12, 13}})
	want := map[int64]bool{2: false, 3: true, 6: true, 7: false, 9: false, 10: true, 12: true, 13: false}
	for seq, in := range want {
		if v.Contains(seq) != in {
			t.Errorf("Contains(%d) = %v, want %v (ranges %v)", seq, !in, in, v.r)
		}
	}
}

// TestVoidReaderMore: a VoidReader reads only the log.refused entries
// after its cursor, then on each More those appended since, returning
// the ranges they add; one whose bytes do not hash to its leaf hash (a
// row changed in the store, which no walk confirms here) voids nothing.
func TestVoidReaderMore(t *testing.T) {
	ctx := context.Background()
	l := &voidLog{}
	hashed := func(seq int64, rest string) {
		l.add(seq, RefusedType, rest)
		h := tlog.RecordHash(l.es[len(l.es)-1].Data)
		l.es[len(l.es)-1].LeafHash = h[:]
	}
	hashed(5, `"actor":"airlock","data":{"entries":[[1,2]]}`)
	r := NewVoidReader(3)
	got, err := r.More(ctx, l)
	if err != nil || !slices.Equal(got, [][2]int64{{1, 2}}) || !r.Void().Contains(1) {
		t.Fatalf("first More: %v %v", got, err)
	}
	if got, err := r.More(ctx, l); err != nil || len(got) != 0 {
		t.Fatalf("More with nothing appended: %v %v", got, err)
	}
	hashed(9, `"actor":"airlock","data":{"entries":[[7,8]]}`)
	l.add(10, RefusedType, `"actor":"airlock","data":{"entries":[[6,7]]}`) // its leaf hash is not its bytes'
	got, err = r.More(ctx, l)
	if err != nil || !slices.Equal(got, [][2]int64{{7, 8}}) {
		t.Fatalf("More after two appended: %v %v", got, err)
	}
	if !r.Void().Contains(7) || !r.Void().Contains(1) || r.Void().Contains(6) {
		t.Errorf("void %v: want 1 and 7, not 6 (named by an entry that does not hash to its leaf hash)", r.Void().r)
	}
	// Entries before the cursor are not read: a reader from seq 6 on.
	if got, err := NewVoidReader(5).More(ctx, l); err != nil || !slices.Equal(got, [][2]int64{{7, 8}}) {
		t.Errorf("a reader after 5: %v %v", got, err)
	}
}
