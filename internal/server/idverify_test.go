package server

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/authn"
)

// samePrefixHash returns a key hash that shares h's first 8 hex digits and
// differs after them: what a forger gets by trying about 2^32 keys, and
// what a check of the logged prefix alone lets through.
func samePrefixHash(h string) string {
	_, sha := authn.NewKey()
	return h[:8] + sha[8:]
}

// addDisabledAgent adds agent "stale-bot" through the API (alice, in group
// sre-leads) and disables it, as `airlock agent add` and `agent disable` do.
func addDisabledAgent(t *testing.T, s *Server) (keySHA string) {
	t.Helper()
	ctx := context.Background()
	id, _, err := s.Service.AddAgent(ctx, alice, "stale-bot", "sre-leads", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Service.DisableAgent(ctx, alice, "stale-bot", "retired"); err != nil {
		t.Fatal(err)
	}
	return id.KeySHA256
}

func wantOnlyRowMismatches(t *testing.T, what string, rep auditlog.Report, want ...string) {
	t.Helper()
	wantProblems(t, what, rep, want...)
	for _, p := range rep.Problems {
		if p.Kind != auditlog.KindRowMismatch {
			t.Errorf("%s: unexpected problem (the log itself is intact): %s", what, p)
		}
	}
	if rep.ProblemCount != int64(len(want)) {
		t.Errorf("%s: %d problems, want %d:\n%s", what, rep.ProblemCount, len(want), problems(rep))
	}
}

// TestForgedIdentityRowsCaught: identity rows changed in the database (a
// disabled agent re-enabled, a group added, an owner and a key hash
// swapped, a row deleted, one added) are each named by audit verify,
// offline and online; before, only grants and sessions were compared and
// verify said OK.
func TestForgedIdentityRowsCaught(t *testing.T) {
	e := newAuditEnv(t)
	s := openServer(t, e.cfg)
	addDisabledAgent(t, s)
	ctx := context.Background()
	if rep, err := s.Verify(ctx); err != nil || !rep.OK {
		t.Fatalf("verify before any forgery: %+v, %v", rep, err)
	}
	var aliceSHA string
	for _, id := range e.cfg.Identities {
		if id.Name == "alice" {
			aliceSHA = id.KeySHA256
		}
	}
	s.Close()
	if rep, err := VerifyOffline(ctx, e.dataDir, OfflineInput{Key: pinnedKey(t, e.dataDir)}); err != nil || !rep.OK {
		t.Fatalf("offline verify before any forgery: %+v, %v", rep, err)
	}

	forged := samePrefixHash(aliceSHA)
	e.exec(t,
		`UPDATE identities SET disabled = 0, groups_json = '["sre-leads","admins"]' WHERE name = 'stale-bot'`,
		`UPDATE identities SET owner = 'payments' WHERE name = 'log-triage-bot'`,
		`UPDATE identities SET key_sha256 = '`+forged+`' WHERE name = 'alice'`,
		`INSERT INTO identities (name, kind, owner, key_sha256, source, created_by) VALUES ('ghost', 'agent', 'sre-team', 'abc', 'api', 'alice')`,
	)
	want := []string{
		`identity stale-bot: groups is "[\"sre-leads\",\"admins\"]", log says "[]"`,
		`identity stale-bot: disabled is false, log says true`,
		`identity log-triage-bot: owner is "payments", log says "sre-team"`,
		`identity alice: key_sha256 differs from the log's after their first 8 hex digits`,
		`identity ghost: the database has it but the log never recorded it`,
	}
	rep, err := VerifyOffline(ctx, e.dataDir, OfflineInput{Key: pinnedKey(t, e.dataDir)})
	if err != nil {
		t.Fatal(err)
	}
	wantOnlyRowMismatches(t, "offline", rep, want...)
	if strings.Contains(problems(rep), forged) || strings.Contains(problems(rep), aliceSHA) {
		t.Errorf("a whole key hash is shown in the findings:\n%s", problems(rep))
	}

	e.exec(t, `DELETE FROM identities WHERE name = 'stale-bot'`)
	rep, err = VerifyOffline(ctx, e.dataDir, OfflineInput{Key: pinnedKey(t, e.dataDir)})
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, "offline, row deleted", rep, `identity stale-bot: the log records it but the database has no row for it`)

	// A start makes the configured identities match airlock.yaml again
	// (and logs that); the API's agents and rows the log never had are
	// left as they are, and still reported.
	e.exec(t, `INSERT INTO identities (name, kind, owner, key_sha256, source, disabled, created_by) VALUES ('stale-bot', 'agent', 'sre-leads', 'feed', 'api', 0, 'alice')`)
	s = openServer(t, e.cfg)
	defer s.Close()
	rep, err = s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantOnlyRowMismatches(t, "online", rep,
		`identity stale-bot: disabled is false, log says true`,
		`identity stale-bot: key_sha256 is "feed", log says`,
		`identity ghost: the database has it but the log never recorded it`,
	)
}

// TestForgedIdentityRowCaughtPostgres: on PostgreSQL, a disabled agent
// re-enabled with SQL while the server runs is reported by the next
// verify.
func TestForgedIdentityRowCaughtPostgres(t *testing.T) {
	dsn := pgDatabase(t)
	cfg := pgConfig(t, dsn)
	ctx := context.Background()
	s := openServer(t, cfg)
	defer s.Close()
	addDisabledAgent(t, s)
	if rep, err := s.Verify(ctx); err != nil || !rep.OK || !rep.Rows {
		t.Fatalf("verify before any forgery: %+v, %v", rep, err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE identities SET disabled = false, groups_json = '["admins"]' WHERE name = 'stale-bot'`); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantOnlyRowMismatches(t, "postgres", rep,
		`identity stale-bot: groups is "[\"admins\"]", log says "[]"`,
		`identity stale-bot: disabled is false, log says true`,
	)
}

// TestReenableLaunderedByAStartCaught: a configured agent disabled through
// the API, its row re-enabled in the database together with a change that
// airlock.yaml undoes at the next start. The start logs identity.updated
// from the row, disabled flag included, so the row matches the log again;
// the entry that enables a disabled identity (which no operation does) is
// reported instead.
func TestReenableLaunderedByAStartCaught(t *testing.T) {
	e := newAuditEnv(t)
	ctx := context.Background()
	s := openServer(t, e.cfg)
	if _, err := s.Service.DisableAgent(ctx, alice, "log-triage-bot", "compromised"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	e.exec(t, `UPDATE identities SET disabled = 0, owner = 'payments' WHERE name = 'log-triage-bot'`)
	s = openServer(t, e.cfg)
	defer s.Close()
	rep, err := s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantOnlyRowMismatches(t, "online", rep, `identity log-triage-bot: entry `)
	if !strings.Contains(problems(rep), "enables it again after entry") {
		t.Errorf("the re-enabling entry is not named:\n%s", problems(rep))
	}
}
