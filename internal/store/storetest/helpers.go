package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/scope"
	"github.com/airlock-dev/airlock/internal/store"
)

// t0 is the suite's reference instant: midnight UTC of a review day.
var t0 = time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)

// zone is a non-UTC zone, to check that instants survive a round trip
// whatever zone they were written in.
var zone = time.FixedZone("IST", 5*3600+1800)

// write runs fn in a transaction and commits it.
func write(t *testing.T, s store.Store, fn func(ctx context.Context, tx store.Tx)) {
	t.Helper()
	ctx := t.Context()
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	done := false
	defer func() {
		if !done {
			tx.Rollback()
		}
	}()
	fn(ctx, tx)
	done = true
	if err := tx.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantErr(t *testing.T, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// grant returns a minimal valid grant.
func grant(id string, status model.GrantStatus, requested time.Time) model.Grant {
	return model.Grant{
		ID:             id,
		Identity:       "log-triage-bot",
		IdentityKind:   model.Agent,
		Owner:          "sre-team",
		Target:         "aws-prod",
		TargetKind:     "aws",
		Account:        "111122223333",
		RequestedScope: scope.Scope{{Actions: []string{"s3:GetObject"}, Resource: "arn:aws:s3:::logs/app/*"}},
		Reason:         "triage",
		Duration:       10 * time.Minute,
		Status:         status,
		RequestedAt:    requested,
	}
}

// withLife sets the times that make up the grant's lifetime: it is requested
// at from and its Deadline() is to (through DecideBy, ExpiresAt or EndedAt
// according to its status).
func withLife(g model.Grant, from, to time.Time) model.Grant {
	g.RequestedAt = from
	switch {
	case g.Status.Final():
		g.EndedAt = to
	case g.Status == model.Active:
		g.ExpiresAt = to
	default:
		g.DecideBy = to
	}
	return g
}

// fullGrant returns a grant with every field set (Usage aside, which the
// store derives), with nanosecond times in a non-UTC zone.
func fullGrant(id string, at time.Time) model.Grant {
	at = at.In(zone)
	return model.Grant{
		ID:           id,
		Identity:     "log-triage-bot",
		IdentityKind: model.Agent,
		Owner:        "sre-team",
		Target:       "aws-prod",
		TargetKind:   "aws",
		Account:      "111122223333",
		RequestedScope: scope.Scope{
			{Actions: []string{"s3:GetObject", "s3:ListBucket"}, Resource: "arn:aws:s3:::logs/app/*"},
			{Actions: []string{"s3:GetObject"}, Resource: "arn:aws:s3:::logs/web/index.html"},
		},
		GrantedScope: scope.Scope{
			{Actions: []string{"s3:GetObject"}, Resource: "arn:aws:s3:::logs/app/*"},
		},
		Reason:      "triage INC-42: \"5xx\" spike — ünïcødé ✓\nsecond line",
		Duration:    10*time.Minute + 1,
		Extends:     "g_previous",
		Status:      model.Revoked,
		RequestedAt: at.Add(123456789),
		DecideBy:    at.Add(time.Hour + 1),
		DecidedAt:   at.Add(2*time.Minute + 3),
		StartedAt:   at.Add(2*time.Minute + 5),
		ExpiresAt:   at.Add(12*time.Minute + 5),
		EndedAt:     at.Add(5*time.Minute + 7),
		EndReason:   "revoked",
		EndedBy:     "alice",
		EndComment:  "enough",
		// Every field of a SignIn is set, though a real one has either a
		// key id or an issuer and subject, so the round trip covers all.
		EndedAuth: &model.SignIn{Method: model.SignInSSO, KeyID: "k_0123456789abcdef", Issuer: "https://login.example.com", Subject: "carol"},
		Decision: model.PolicyDecision{
			Outcome:       "human",
			PolicySetHash: "sha256:0123abcd",
			PolicyIDs:     []string{"triage-reads-app-logs", "other"},
			Explanation:   "s3:GetObject on arn:aws:s3:::logs/app/* needs a person",
			Pairs: []model.PairDecision{{
				Action:   "s3:GetObject",
				Resource: "arn:aws:s3:::logs/app/*",
				Allowed:  true,
				Approval: "human",
				Policies: []string{"triage-reads-app-logs"},
				Errors:   []string{"policy x: attribute missing"},
			}},
			At: at.Add(11),
		},
		Approvals: []model.Approval{
			{Approver: "alice", Decision: "approved", Comment: "ok", At: at.Add(2*time.Minute + 3),
				Policies: []string{"leads-approve-sre-agents"}, PolicySetHash: "sha256:0123abcd", Via: "slack", SlackUser: "U0ALICE",
				Auth: &model.SignIn{Method: model.SignInAPIKey, KeyID: "k_fedcba9876543210", Issuer: "https://login.example.com", Subject: "alice"}},
			{Approver: "bob", Decision: "denied", Comment: "no", At: at.Add(2*time.Minute + 4),
				Policies: []string{"leads-approve-sre-agents"}, PolicySetHash: "sha256:0123abcd", Via: "slack", SlackUser: "U024BE7LH",
				Auth: &model.SignIn{Method: model.SignInSSO, KeyID: "k_0011223344556677", Issuer: "https://login.example.com", Subject: "bob"}},
		},
		CredentialID:          "AKIA" + strings.ToUpper(id),
		CredentialFingerprint: "sha256:fp-" + id,
		// Usage is derived by the store and must be ignored on write.
		Usage:         model.Usage{Sessions: 99, Calls: 99, DeniedCalls: 9, BytesIn: 9, BytesOut: 9, ScopeUsed: []string{"bogus x"}},
		Auth:          "oidc:https://token.actions.githubusercontent.com repo:acme/triage:ref:refs/heads/main",
		RequestedFrom: &model.Instance{IP: "127.0.0.1", UserAgent: "airlock-cli", TLSClient: "sha256:ab", Claims: map[string]string{"run_id": "42"}},
		Findings: []model.Finding{{Kind: model.FindingCredentialMoved, At: at.Add(time.Minute), Identity: "log-triage-bot",
			Grant: "g_roundtrip", Session: "s_1", Instance: "127.0.0.2", Others: []string{"127.0.0.1"}, Refused: true, Detail: "moved"}},
		// LogMismatch is set by readers' checks against the log, never stored.
		LogMismatch: []string{"bogus"},
	}
}

// assertAllSet fails if a field of v (recursively, skipping the named
// top-level fields) is zero, so that a round-trip test keeps covering fields
// added to the model later.
func assertAllSet(t *testing.T, v any, skip ...string) {
	t.Helper()
	var walk func(path string, rv reflect.Value)
	walk = func(path string, rv reflect.Value) {
		if rv.IsZero() {
			t.Errorf("fixture field %s is zero; set it so the round trip covers it", path)
			return
		}
		switch rv.Kind() {
		case reflect.Struct:
			if rv.Type() == reflect.TypeFor[time.Time]() {
				return
			}
			for i := range rv.NumField() {
				name := rv.Type().Field(i).Name
				if path == "" && slices.Contains(skip, name) {
					continue
				}
				walk(strings.TrimPrefix(path+"."+name, "."), rv.Field(i))
			}
		case reflect.Slice:
			if rv.Len() == 0 {
				t.Errorf("fixture field %s is empty", path)
			}
			for i := range rv.Len() {
				walk(path+"[]", rv.Index(i))
			}
		}
	}
	walk("", reflect.ValueOf(v))
}

// norm returns a deep copy of v in which every time is in UTC without a
// monotonic reading and every empty slice is nil, so that reflect.DeepEqual
// compares instants and contents rather than representations.
func norm[T any](v T) T {
	src := reflect.ValueOf(&v).Elem()
	dst := reflect.New(src.Type()).Elem()
	normValue(dst, src)
	return dst.Interface().(T)
}

func normValue(dst, src reflect.Value) {
	if src.Type() == reflect.TypeFor[time.Time]() {
		dst.Set(reflect.ValueOf(src.Interface().(time.Time).UTC().Round(0)))
		return
	}
	switch src.Kind() {
	case reflect.Struct:
		for i := range src.NumField() {
			if dst.Field(i).CanSet() {
				normValue(dst.Field(i), src.Field(i))
			}
		}
	case reflect.Slice:
		if src.Len() == 0 {
			return
		}
		s := reflect.MakeSlice(src.Type(), src.Len(), src.Len())
		for i := range src.Len() {
			normValue(s.Index(i), src.Index(i))
		}
		dst.Set(s)
	case reflect.Map:
		if src.Len() == 0 {
			return
		}
		m := reflect.MakeMapWithSize(src.Type(), src.Len())
		for it := src.MapRange(); it.Next(); {
			e := reflect.New(src.Type().Elem()).Elem()
			normValue(e, it.Value())
			m.SetMapIndex(it.Key(), e)
		}
		dst.Set(m)
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		p := reflect.New(src.Type().Elem())
		normValue(p.Elem(), src.Elem())
		dst.Set(p)
	default:
		dst.Set(src)
	}
}

// same fails unless got and want are equal after norm.
func same[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	g, w := norm(got), norm(want)
	if !reflect.DeepEqual(g, w) {
		gj, _ := json.MarshalIndent(g, "", "  ")
		wj, _ := json.MarshalIndent(w, "", "  ")
		t.Fatalf("%s differs\n got: %s\nwant: %s\n(raw got %+v)", what, gj, wj, got)
	}
}

// stored is what a store returns for a grant written as g: the same record
// with the given usage.
func stored(g model.Grant, u model.Usage) model.Grant {
	g.Usage = u
	g.LogMismatch = nil
	return g
}

func ids(gs []model.Grant) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.ID
	}
	return out
}

func sameIDs(t *testing.T, what string, got []model.Grant, want ...string) {
	t.Helper()
	if g := ids(got); !slices.Equal(g, want) {
		t.Fatalf("%s: got grants %q, want %q", what, g, want)
	}
}

func seqs(es []store.LogEntry) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

// entries returns n log entries continuing from seq from.
func entries(from int64, n int) []store.LogEntry {
	out := make([]store.LogEntry, n)
	for i := range out {
		seq := from + int64(i)
		out[i] = store.LogEntry{
			Seq:       seq,
			Time:      t0.Add(time.Duration(seq)*time.Second + 7).In(zone),
			Type:      "test.event",
			GrantID:   "g_1",
			SessionID: "",
			Data:      []byte(`{"seq":` + string(rune('0'+seq%10)) + `}`),
			LeafHash:  []byte{byte(seq), 1, 2, 3},
		}
	}
	return out
}

// CheckLogOrderPages stores session s_c of grantID, started at start,
// from a session.started entry at sequence 7 (store.SessionStartTx), then
// reads the grant's sessions from st a page of one at a time through the
// cursor (store.SessionLogOrder), as GrantSessions pages them, and fails
// t unless they come as wantIDs with start sequences wantSeqs.
func CheckLogOrderPages(t *testing.T, st store.Store, start time.Time, grantID string, wantIDs []string, wantSeqs []int64) {
	t.Helper()
	tx, err := st.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.(store.SessionStartTx).InsertSessionFrom(t.Context(), model.Session{ID: "s_c", GrantID: grantID, StartedAt: start, EndedAt: start.Add(time.Hour)}, 7); err != nil {
		tx.Rollback()
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	lo := st.(store.SessionLogOrder)
	var ids []string
	var seqs []int64
	var afterSeq int64
	afterID := ""
	for range len(wantIDs) + 2 {
		ss, sq, err := lo.SessionsInLogOrder(t.Context(), grantID, afterSeq, afterID, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(ss) == 0 {
			break
		}
		ids, seqs = append(ids, ss[0].ID), append(seqs, sq[0])
		afterSeq, afterID = sq[0], ss[0].ID
	}
	if !slices.Equal(ids, wantIDs) || !slices.Equal(seqs, wantSeqs) {
		t.Errorf("sessions in log order, a page of one at a time: %v (start sequences %v), want %v (%v)", ids, seqs, wantIDs, wantSeqs)
	}
}

// IndexChecker is review.IndexChecker (storetest cannot import review).
type IndexChecker interface {
	IndexDiffs(ctx context.Context) ([]string, error)
}

// SessionDiffs is c's IndexDiffs' descriptions of sessions.
func SessionDiffs(t *testing.T, c IndexChecker) []string {
	t.Helper()
	diffs, err := c.IndexDiffs(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range diffs {
		if strings.HasPrefix(d, "session ") {
			out = append(out, d)
		}
	}
	return out
}

// CheckStartSeqDiffs follows CheckLogOrderPages' sessions of g_1 (s_b's
// start stored at sequence 3, s_c's at 7, whose entry the log lacks):
// once exec has stored s_c's entry IndexDiffs says nothing of sessions,
// and once exec has changed s_b's start_seq behind the store's back it
// says so.
func CheckStartSeqDiffs(t *testing.T, c IndexChecker, exec func(query string) error) {
	t.Helper()
	if err := exec(`INSERT INTO log_entries (seq, type, grant_id, session_id) VALUES (7, 'session.started', 'g_1', 's_c')`); err != nil {
		t.Fatal(err)
	}
	if diffs := SessionDiffs(t, c); len(diffs) != 0 {
		t.Fatalf("IndexDiffs: %v", diffs)
	}
	if err := exec("UPDATE sessions SET start_seq = 9 WHERE id = 's_b'"); err != nil {
		t.Fatal(err)
	}
	if diffs := SessionDiffs(t, c); len(diffs) != 1 || !strings.Contains(diffs[0], "s_b") || !strings.Contains(diffs[0], "start_seq") {
		t.Fatalf("IndexDiffs after s_b's start_seq was changed: %v", diffs)
	}
}

// CheckOwnEntries checks that st answers grant's own entries (of no
// session: LogFilter.NoSession) as want, all at once and batch at a time
// after a cursor, as a read of the grant's record reads them.
func CheckOwnEntries(t *testing.T, st store.Store, name, grant string, want []int64, batch int) {
	t.Helper()
	ctx := t.Context()
	got, err := st.LogEntries(ctx, store.LogFilter{GrantID: grant, NoSession: true})
	if err != nil {
		t.Fatal(err)
	}
	if g := seqs(got); !slices.Equal(g, want) {
		t.Errorf("%s: own entries %v, want %v", name, g, want)
	}
	var paged []int64
	for after := int64(0); ; {
		page, err := st.LogEntries(ctx, store.LogFilter{GrantID: grant, NoSession: true, After: after, Limit: batch})
		if err != nil {
			t.Fatal(err)
		}
		paged = append(paged, seqs(page)...)
		if len(page) < batch {
			break
		}
		after = page[len(page)-1].Seq
	}
	if !slices.Equal(paged, want) {
		t.Errorf("%s: own entries %d at a time %v, want %v", name, batch, paged, want)
	}
}

// CheckTypeEntries checks that st lists exactly the entries want (their
// sequence numbers) of type typ, all at once and one page of one at a
// time (review.LoadVoid's reads of the log.refused entries).
func CheckTypeEntries(t *testing.T, st store.Store, name, typ string, want []int64) {
	t.Helper()
	ctx := t.Context()
	got, err := st.LogEntries(ctx, store.LogFilter{Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	if g := seqs(got); !slices.Equal(g, want) {
		t.Errorf("%s: %s entries %v, want %v", name, typ, g, want)
	}
	var paged []int64
	for after := int64(0); ; {
		page, err := st.LogEntries(ctx, store.LogFilter{Type: typ, After: after, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		paged, after = append(paged, page[0].Seq), page[0].Seq
	}
	if !slices.Equal(paged, want) {
		t.Errorf("%s: %s entries one at a time %v, want %v", name, typ, paged, want)
	}
}
