package auditlog

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/scope"
	"github.com/airlock-dev/airlock/internal/store"
)

// refusedStateLog writes a grant and its session with rows as the service
// and the recorder leave them, where one call's entry (seq returned) was
// committed in a batch whose callers were told it failed: the recorder
// did not count it. names gives the ranges of the log.refused entry
// appended after it (nil: the call's own entry).
func refusedStateLog(t *testing.T, names func(call int64) [][2]int64) (store.Store, func() Report) {
	t.Helper()
	ctx := context.Background()
	st := openSQLite(t, filepath.Join(t.TempDir(), "airlock.db"))
	s, v := fixedKey(t)
	l, err := Open(ctx, st, s, Options{Origin: "airlock/test", Rows: review.StoreRows})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	sc, err := scope.Parse([]string{"s3:GetObject arn:aws:s3:::logs/app/*"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	id, sid := "g_refused", "s_refused"
	dec := model.PolicyDecision{Outcome: "auto", PolicySetHash: "sha256:x", PolicyIDs: []string{"triage"}, Explanation: "permitted", At: at}
	g := model.Grant{ID: id, Identity: "bot", IdentityKind: model.Agent, Owner: "sre", Target: "aws-prod", TargetKind: "aws",
		Account: "111122223333", RequestedScope: sc, GrantedScope: sc, Reason: "test", Duration: 10 * time.Minute,
		Status: model.Active, RequestedAt: at, DecideBy: at.Add(time.Hour), DecidedAt: at, StartedAt: at, ExpiresAt: at.Add(10 * time.Minute),
		Decision: dec, CredentialID: "AKIA1", CredentialFingerprint: "sha256:1"}
	err = l.Do(ctx, func(ctx context.Context, tx store.Tx) ([]Event, error) {
		return stateGrantStart(g, sid, "test"), tx.CreateGrant(ctx, g)
	})
	if err != nil {
		t.Fatal(err)
	}
	c := gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/1.log", Allowed: true, BytesOut: 100}
	if err := l.Append(ctx, Event{Type: "session.call", GrantID: id, SessionID: sid, Actor: g.Identity, Data: c}); err != nil {
		t.Fatal(err)
	}
	call := l.Size() - 1
	// As learn appends it in the next batch.
	if err := l.Append(ctx, Event{Type: RefusedType, Time: at, Actor: "airlock", Data: map[string]any{"entries": names(call), "reason": "test"}}); err != nil {
		t.Fatal(err)
	}
	// The recorder's row: the refused call is not counted.
	ses := model.Session{ID: sid, GrantID: id, Identity: g.Identity, Target: g.Target, Client: "test", StartedAt: at, EndedAt: at.Add(time.Minute)}
	g.Status, g.EndedAt, g.EndReason, g.EndedBy, g.EndComment = model.Expired, g.ExpiresAt, "expired", "airlock", "reached its expiry time"
	err = l.Do(ctx, func(ctx context.Context, tx store.Tx) ([]Event, error) {
		if err := tx.PutSession(ctx, ses); err != nil {
			return nil, err
		}
		return stateGrantEnd(g, ses), tx.UpdateGrant(ctx, g)
	})
	if err != nil {
		t.Fatal(err)
	}
	return st, func() Report {
		rep, err := VerifyWith(ctx, st, v, VerifyOptions{State: review.NewChecker(st)})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
}

// TestVerifyStateRefusedCall: `audit verify`'s state check does not count
// a call a log.refused entry names, as the recorder did not: the rows
// agree with the log.
func TestVerifyStateRefusedCall(t *testing.T) {
	_, verify := refusedStateLog(t, func(call int64) [][2]int64 { return [][2]int64{{call, call + 1}} })
	if rep := verify(); !rep.OK || !rep.Rows {
		t.Fatalf("report %+v, want the rows to agree with the log that refuses the call", rep.Problems)
	}
}

// TestVerifyStateRefusedBeyond: a log.refused entry naming entries at or
// after itself (none of which can have been refused before it) is a
// problem.
func TestVerifyStateRefusedBeyond(t *testing.T) {
	for name, names := range map[string]func(int64) [][2]int64{
		"itself":     func(call int64) [][2]int64 { return [][2]int64{{call, call + 2}} },
		"beyond":     func(call int64) [][2]int64 { return [][2]int64{{call + 10, call + 11}} },
		"before log": func(int64) [][2]int64 { return [][2]int64{{-2, -1}} },
	} {
		t.Run(name, func(t *testing.T) {
			_, verify := refusedStateLog(t, names)
			rep := verify()
			found := false
			for _, p := range rep.Problems {
				found = found || strings.Contains(p.Detail, "not all entries before it")
			}
			if rep.OK || !found {
				t.Fatalf("problems %+v, want the log.refused entry reported", rep.Problems)
			}
		})
	}
}
