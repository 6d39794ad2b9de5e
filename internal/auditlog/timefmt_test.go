package auditlog

import (
	"testing"
	"time"
)

// appendTimeMatches fails t unless appendTime writes what
// AppendFormat(RFC3339Nano) writes for tm, in UTC (as entries hold it) and
// in its own location, after the bytes before.
func appendTimeMatches(t *testing.T, tm time.Time) {
	t.Helper()
	prefix := []byte(`,"time":"`)
	for _, tm := range []time.Time{tm.UTC(), tm} {
		got := appendTime(append([]byte(nil), prefix...), tm)
		want := tm.AppendFormat(append([]byte(nil), prefix...), time.RFC3339Nano)
		if string(got) != string(want) {
			t.Fatalf("appendTime(%d s, %d ns, %s) = %q, AppendFormat %q", tm.Unix(), tm.Nanosecond(), tm.Location(), got, want)
		}
	}
}

// TestAppendTime: the entry's time as AppendFormat(RFC3339Nano) writes
// it, at the fraction's and the calendar's edges, and for the years
// AppendFormat writes its own way.
func TestAppendTime(t *testing.T) {
	for _, tm := range []time.Time{
		{},
		time.Unix(0, 0),
		time.Date(2026, 12, 7, 9, 5, 3, 0, time.UTC),
		time.Date(2026, 12, 7, 9, 5, 3, 1, time.UTC),
		time.Date(2026, 12, 7, 9, 5, 3, 10, time.UTC),
		time.Date(2026, 12, 7, 9, 5, 3, 100000000, time.UTC),
		time.Date(2026, 12, 7, 9, 5, 3, 120000000, time.UTC),
		time.Date(2026, 12, 7, 9, 5, 3, 123456789, time.UTC),
		time.Date(2026, 12, 7, 9, 5, 3, 999999999, time.UTC),
		time.Date(2026, 12, 7, 9, 5, 3, 500, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 999000000, time.UTC),
		time.Date(2000, 2, 29, 0, 0, 0, 1000, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 1, 12, 0, 0, 5, time.UTC),
		time.Date(-10000, 6, 1, 12, 0, 0, 5, time.UTC),
		time.Date(2026, 3, 29, 1, 30, 0, 7, time.FixedZone("CEST", 2*3600)),
	} {
		appendTimeMatches(t, tm)
	}
	for s := int64(-1 << 39); s < 1<<39; s += 1<<29 + 12345 { // a sweep past both year 0 and year 9999
		appendTimeMatches(t, time.Unix(s, s%1_000_000_000))
	}
}

func FuzzAppendTime(f *testing.F) {
	f.Add(int64(1796634303), int64(123456789))
	f.Add(int64(0), int64(0))
	f.Add(int64(253402300799), int64(999999999))
	f.Add(int64(-62135596801), int64(10))
	f.Fuzz(func(t *testing.T, sec, nsec int64) {
		appendTimeMatches(t, time.Unix(sec, nsec))
	})
}

// rawData is event data that appends fixed JSON, as a gateway call's
// Appender does.
type rawData string

func (d rawData) AppendJSON(b []byte) ([]byte, error) { return append(b, d...), nil }

// BenchmarkEncodeEvent encodes a gateway call's request entry (its time,
// type, ids and data), its buffer put back after each as the indexer does.
func BenchmarkEncodeEvent(b *testing.B) {
	ev := Event{
		Type: "session.call", GrantID: "g_gvo4c7s5qcfuhn62e5xc", SessionID: "s_01JSESSION000000000000000",
		Data: rawData(`{"kind":"request","service":"s3","action":"s3:GetObject","resource":"arn:aws:s3:::bench/small/3","allowed":true,"params":{"bucket":"bench","key":"small/3","operation":"GetObject","request_id":"A1B2C3D4E5F60001"}}`),
	}
	now := time.Date(2026, 12, 7, 9, 5, 3, 123456789, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		e, err := encodeEvent(ev, now)
		if err != nil {
			b.Fatal(err)
		}
		if p, ok := entryBufOf(e.buf).(*[entryBufSize]byte); ok {
			entryBufs.Put(p)
		}
	}
}
