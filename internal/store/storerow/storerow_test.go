package storerow

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
)

var t0 = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

// TestEncodeGrantColumns: the indexed columns both stores keep, from the
// record: span_end is the deadline, OpenEnded without one and one less in
// 2262; Usage and LogMismatch stay out of the record.
func TestEncodeGrantColumns(t *testing.T) {
	active := func(expires time.Time) model.Grant {
		return model.Grant{ID: "g_1", Identity: "ci", Target: "aws", Account: "123", Status: model.Active,
			RequestedAt: t0, ExpiresAt: expires, Usage: model.Usage{Calls: 7}, LogMismatch: []string{"x"}}
	}
	for _, tc := range []struct {
		name      string
		g         model.Grant
		spanEnd   int64
		span      int64
		counted   bool
		longLived bool
	}{
		{"an hour", active(t0.Add(time.Hour)), t0.Add(time.Hour).UnixNano(), int64(time.Hour), true, false},
		{"LongSpan exactly", active(t0.Add(LongSpan)), t0.Add(LongSpan).UnixNano(), int64(LongSpan), true, false},
		{"longer than LongSpan", active(t0.Add(LongSpan + 1)), t0.Add(LongSpan + 1).UnixNano(), int64(LongSpan + 1), false, true},
		{"no deadline", active(time.Time{}), OpenEnded, 0, false, true},
		{"deadline past 2262", active(time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)), OpenEnded - 1, OpenEnded - 1 - t0.UnixNano(), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := CheckGrant(tc.g); err != nil {
				t.Fatal(err)
			}
			r, err := EncodeGrant(tc.g)
			if err != nil {
				t.Fatal(err)
			}
			if r.ID != "g_1" || r.Identity != "ci" || r.Target != "aws" || r.Account != "123" || r.Status != "active" || r.RequestedAt != t0.UnixNano() {
				t.Errorf("columns %+v", r)
			}
			if r.SpanEnd != tc.spanEnd {
				t.Errorf("span_end %d, want %d", r.SpanEnd, tc.spanEnd)
			}
			if d, counted := r.Span(); d != tc.span || counted != tc.counted || r.LongLived() != tc.longLived {
				t.Errorf("Span() = %d, %t, LongLived() = %t; want %d, %t, %t", d, counted, r.LongLived(), tc.span, tc.counted, tc.longLived)
			}
			g, err := DecodeGrant(r.Record)
			if err != nil {
				t.Fatal(err)
			}
			if g.Usage.Calls != 0 || g.LogMismatch != nil || !g.ExpiresAt.Equal(tc.g.ExpiresAt) {
				t.Errorf("decoded %+v", g)
			}
			if strings.Contains(string(r.Record), `"log_mismatch"`) || strings.Contains(string(r.Record), `"calls":7`) {
				t.Errorf("record keeps what is never stored: %s", r.Record)
			}
		})
	}
}

// TestSpanOverflow: a span_end and requested_at far apart are not counted
// (their difference overflows), whatever their sign.
func TestSpanOverflow(t *testing.T) {
	r := Grant{RequestedAt: math.MinInt64, SpanEnd: math.MaxInt64 - 1}
	if d, counted := r.Span(); counted || d != 0 {
		t.Errorf("Span() = %d, %t; want 0, false", d, counted)
	}
}

// TestCheckRefuses: what no store may keep.
func TestCheckRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"grant without id", CheckGrant(model.Grant{RequestedAt: t0, Status: model.Active}), "grant has no id"},
		{"grant without RequestedAt", CheckGrant(model.Grant{ID: "g", Status: model.Active}), `grant "g" has no RequestedAt`},
		{"grant with a bad status", CheckGrant(model.Grant{ID: "g", RequestedAt: t0, Status: "nope"}), `grant "g" has invalid status "nope"`},
		{"session without id", CheckSession(model.Session{}), "session has no id"},
		{"identity without name", CheckIdentity(model.Identity{}), "identity has no name"},
	} {
		if tc.err == nil || tc.err.Error() != tc.want {
			t.Errorf("%s: %v, want %q", tc.name, tc.err, tc.want)
		}
	}
}

// TestEncodeSession: used_json is empty (NULL) for nothing used, the JSON
// of Used otherwise; LogMismatch stays out of the record.
func TestEncodeSession(t *testing.T) {
	for _, tc := range []struct {
		name string
		used []string
		want string
	}{
		{"nothing used", nil, ""},
		{"used", []string{"s3:GetObject b/k"}, `["s3:GetObject b/k"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := model.Session{ID: "s_1", GrantID: "g_1", Calls: 3, Denied: 1, BytesIn: 10, BytesOut: 20, Used: tc.used, LogMismatch: []string{"x"}}
			r, err := EncodeSession(s)
			if err != nil {
				t.Fatal(err)
			}
			if r.ID != "s_1" || r.GrantID != "g_1" || r.Calls != 3 || r.Denied != 1 || r.BytesIn != 10 || r.BytesOut != 20 || r.Used != tc.want {
				t.Errorf("columns %+v", r)
			}
			back, err := DecodeSession(r.Record)
			if err != nil {
				t.Fatal(err)
			}
			if back.LogMismatch != nil || back.ID != "s_1" || len(back.Used) != len(tc.used) {
				t.Errorf("decoded %+v", back)
			}
		})
	}
}

// TestIdentityRoundTrip: groups_json is "[]" for none and bindings_json ""
// for nil bindings, and both read back as nil.
func TestIdentityRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name             string
		id               model.Identity
		groups, bindings string
	}{
		{"bare", model.Identity{Name: "ci", Kind: "agent"}, "[]", ""},
		{"groups and bindings", model.Identity{Name: "ann", Kind: "human", Groups: []string{"ops"}, Bindings: &model.Bindings{Email: "ann@example.com"}},
			`["ops"]`, `{"email":"ann@example.com","slack_user":"","oidc":""}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := EncodeIdentity(tc.id)
			if err != nil {
				t.Fatal(err)
			}
			if r.Groups != tc.groups || r.Bindings != tc.bindings || r.Name != tc.id.Name || r.Kind != string(tc.id.Kind) {
				t.Errorf("columns %+v", r)
			}
			back := model.Identity{Name: r.Name}
			if err := DecodeIdentity(&back, r.Kind, r.Groups, r.Bindings); err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(tc.id)
			if got, _ := json.Marshal(back); string(got) != string(want) {
				t.Errorf("read back %s, want %s", got, want)
			}
		})
	}
}

// TestGrantColumnDiffs: a line for each column that is not the record's,
// the shared columns first and then the store's own in its order, and no
// more lines once n reaches max (n counts across grants).
func TestGrantColumnDiffs(t *testing.T) {
	want := Grant{ID: "g_1", Identity: "ci", Target: "aws", Account: "123", Status: "active", RequestedAt: 10, SpanEnd: 20}
	changed := want
	changed.Account, changed.SpanEnd = "999", 30
	cred := Column{Name: "credential_id", Got: "c_x", Want: "c_1"}
	for _, tc := range []struct {
		name   string
		got    Grant
		more   []Column
		n, max int
		want   []string
		wantN  int
	}{
		{"the same", want, []Column{{Name: "credential_id", Got: "c_1", Want: "c_1"}}, 0, 100, nil, 0},
		{"shared and own columns, in order", changed, []Column{cred}, 0, 100, []string{
			`grant g_1: its account column is "999", its record (and the log) says "123": the column lists filter on was changed`,
			`grant g_1: its span_end column is "30", its record (and the log) says "20": the column lists filter on was changed`,
			`grant g_1: its credential_id column is "c_x", its record (and the log) says "c_1": the column lists filter on was changed`,
		}, 3},
		{"up to max", changed, []Column{cred}, 98, 100, []string{
			`grant g_1: its account column is "999", its record (and the log) says "123": the column lists filter on was changed`,
			`grant g_1: its span_end column is "30", its record (and the log) says "20": the column lists filter on was changed`,
		}, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.n
			got := GrantColumnDiffs(nil, &n, tc.max, tc.got, want, tc.more...)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") || n != tc.wantN {
				t.Errorf("got %q (n %d), want %q (n %d)", got, n, tc.want, tc.wantN)
			}
		})
	}
}
