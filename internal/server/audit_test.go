package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/evidence"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

const auditTestConfig = `data_dir: ./data
listen:
  api: 127.0.0.1:0
identities:
  - name: log-triage-bot
    kind: agent
    owner: sre-team
    key_sha256: "%s"
  - name: alice
    kind: human
    groups: [sre-leads]
    key_sha256: "%s"
targets:
  - name: aws-prod
    kind: aws
    account: "111122223333"
    region: us-east-1
    endpoint: http://127.0.0.1:7070
    credentials:
      access_key_id_env: AWS_PROD_ACCESS_KEY_ID
      secret_access_key_env: AWS_PROD_SECRET_ACCESS_KEY
policies: ./policies
`

const auditTestPolicies = `@id("triage-reads-app-logs")
@approval("auto")
permit (principal in Group::"sre-team", action in [Action::"s3:GetObject", Action::"s3:ListBucket"], resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/app/*" && context.duration_seconds <= 900 };

@id("leads-approve-sre-agents")
permit (principal in Group::"sre-leads", action == Action::"approve", resource == Target::"aws-prod");
`

var (
	bot   = model.Identity{Name: "log-triage-bot", Kind: model.Agent, Owner: "sre-team"}
	alice = model.Identity{Name: "alice", Kind: model.Human, Groups: []string{"sre-leads"}}
)

// auditEnv is a data directory with one grant of the bot (reason "billing
// errors too") holding one ended session of two allowed calls and one
// refused, recorded by a server that has been closed.
type auditEnv struct {
	cfg     *config.Config
	dataDir string
	grantID string
	session string
}

func openServer(t *testing.T, cfg *config.Config) *Server {
	t.Helper()
	s, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// auditConfig writes auditTestConfig, with extra appended (more YAML
// keys), and its policies to a fresh directory, and loads it.
func auditConfig(t *testing.T, extra string) *config.Config {
	t.Helper()
	cfg, _, _ := auditConfigKeys(t, extra)
	return cfg
}

// auditConfigKeys is auditConfig, with the bot's and alice's API keys.
func auditConfigKeys(t *testing.T, extra string) (cfg *config.Config, botKey, aliceKey string) {
	t.Helper()
	dir := t.TempDir()
	botKey, botSHA := authn.NewKey()
	aliceKey, aliceSHA := authn.NewKey()
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policies", "aws-prod.cedar"), []byte(auditTestPolicies), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "airlock.yaml")
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, auditTestConfig+extra, botSHA, aliceSHA), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, botKey, aliceKey
}

func newAuditEnv(t *testing.T) *auditEnv {
	t.Helper()
	return newAuditEnvWith(t, "")
}

// newAuditEnvWith is newAuditEnv with extra configuration keys (a store).
func newAuditEnvWith(t *testing.T, extra string) *auditEnv {
	t.Helper()
	cfg := auditConfig(t, extra)
	ctx := context.Background()
	s := openServer(t, cfg)
	defer s.Close()
	g, ses := activeSession(t, s)
	for _, c := range []gateway.Call{
		{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a.log", Allowed: true, BytesOut: 100},
		{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/b.log", Allowed: true, BytesOut: 20},
		{Kind: "request", Action: "s3:DeleteObject", Resource: "arn:aws:s3:::logs/app/b.log", Allowed: false},
		{Kind: "result", Action: "s3:GetObject", BytesIn: 7},
	} {
		if err := gatewaytest.Record(ctx, ses, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := ses.End(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify(ctx)
	if err != nil || !rep.OK || !rep.Rows {
		t.Fatalf("verify before any forgery: %+v, %v", rep, err)
	}
	got, err := s.Service.Get(ctx, alice, g.ID)
	if err != nil || len(got.LogMismatch) != 0 || got.Usage.Calls != 2 || got.Usage.DeniedCalls != 1 {
		t.Fatalf("grant before any forgery: %+v, %v", got, err)
	}
	return &auditEnv{cfg: cfg, dataDir: cfg.DataDir, grantID: g.ID, session: ses.ID}
}

// exec runs SQL on the closed server's database, as an operator with disk
// access would.
func (e *auditEnv) exec(t *testing.T, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(e.dataDir, DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		res, err := db.Exec(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			t.Fatalf("%s: changed nothing", q)
		}
	}
}

func (e *auditEnv) forge(t *testing.T) {
	e.exec(t,
		`UPDATE grants SET record = replace(replace(record, '"reason":"billing errors too"', '"reason":"routine"'), '"status":"active"', '"status":"ended"'), status = 'ended'`,
		`UPDATE sessions SET calls = 0, record = replace(record, '"calls":2', '"calls":0')`,
	)
}

func pinnedKey(t *testing.T, dataDir string) note.Verifier {
	t.Helper()
	v, err := auditlog.LoadVerifier(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func problems(rep auditlog.Report) string {
	var b strings.Builder
	for _, p := range rep.Problems {
		b.WriteString(p.String() + "\n")
	}
	return b.String()
}

func wantProblems(t *testing.T, what string, rep auditlog.Report, want ...string) {
	t.Helper()
	if rep.OK {
		t.Fatalf("%s: OK, want problems", what)
	}
	got := problems(rep)
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("%s: no problem containing %q in:\n%s", what, w, got)
		}
	}
}

// checksums maps every file under dir to its SHA-256 and mode.
func checksums(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			out[path] = fi.Mode().String()
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out[path] = fmt.Sprintf("%s %x %s", fi.Mode(), sha256.Sum256(b), fi.ModTime())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameFiles(t *testing.T, before, after map[string]string) {
	t.Helper()
	for p, v := range before {
		if after[p] != v {
			t.Errorf("%s changed: %q → %q", p, v, after[p])
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s was created", p)
		}
	}
}

// TestForgedRowsCaught is the forgery: the grant's reason and
// status and the session's call count edited in the database. audit verify
// (offline and online) names each row and answer, and the review marks the
// rows instead of showing them as proven.
func TestForgedRowsCaught(t *testing.T) {
	e := newAuditEnv(t)
	e.forge(t)
	wantRows := []string{
		fmt.Sprintf(`grant %s: reason is "routine", log says "billing errors too"`, e.grantID),
		fmt.Sprintf(`grant %s: status is "ended", log says "active"`, e.grantID),
		fmt.Sprintf(`grant %s: calls is 0, log says 2`, e.grantID),
		fmt.Sprintf(`session %s: calls is 0, log says 2`, e.session),
	}

	before := checksums(t, e.dataDir)
	rep, err := VerifyOffline(context.Background(), e.dataDir, OfflineInput{Key: pinnedKey(t, e.dataDir)})
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, before, checksums(t, e.dataDir))
	wantProblems(t, "offline", rep, wantRows...)
	if rep.ProblemCount != int64(len(rep.Problems)) {
		t.Errorf("problem count %d, listed %d", rep.ProblemCount, len(rep.Problems))
	}
	for _, p := range rep.Problems {
		if p.Kind != auditlog.KindRowMismatch {
			t.Errorf("unexpected problem (the log itself is intact): %s", p)
		}
	}

	s := openServer(t, e.cfg)
	defer s.Close()
	ctx := context.Background()
	rep, err = s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, "online", rep, wantRows...)

	g, err := s.Service.Get(ctx, alice, e.grantID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(g.LogMismatch, "\n"), `reason is "routine", log says "billing errors too"`) {
		t.Errorf("grant show: the forged record is not marked: %q", g.LogMismatch)
	}
	page, err := s.Service.List(ctx, alice, grants.GrantsQuery{})
	list := page.Grants
	if err != nil || len(list) != 1 || len(list[0].LogMismatch) == 0 {
		t.Fatalf("grants: the forged row is not marked: %+v, %v", list, err)
	}
	spage, err := s.Service.GrantSessions(ctx, alice, e.grantID, grants.SessionsQuery{})
	ss := spage.Sessions
	if err != nil || len(ss) != 1 || !strings.Contains(strings.Join(ss[0].LogMismatch, "\n"), "calls is 0, log says 2") {
		t.Fatalf("grant show sessions: the forged session is not marked: %+v, %v", ss, err)
	}
}

// TestVerifyOfflinePinnedKey: a log whose checkpoints are all re-signed
// with another key (log-signing.pub replaced too) passes against the
// directory's own key but fails against the pinned one.
func TestVerifyOfflinePinnedKey(t *testing.T) {
	e := newAuditEnv(t)
	pinned := pinnedKey(t, e.dataDir)
	ctx := context.Background()

	// The attacker makes a new key and re-signs every checkpoint with it,
	// for the log the new key names (airlock serve's origin, LogOrigin).
	skey, vkey, err := note.GenerateKey(rand.Reader, "airlock")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(e.dataDir, DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query("SELECT id, note FROM log_checkpoints")
	if err != nil {
		t.Fatal(err)
	}
	notes := map[int64][]byte{}
	for rows.Next() {
		var id int64
		var msg []byte
		if err := rows.Scan(&id, &msg); err != nil {
			t.Fatal(err)
		}
		i := strings.LastIndex(string(msg), "\n\n")
		_, rest, _ := strings.Cut(string(msg[:i+1]), "\n")
		re, err := note.Sign(&note.Note{Text: LogOrigin(verifier) + "\n" + rest}, signer)
		if err != nil {
			t.Fatal(err)
		}
		notes[id] = re
	}
	rows.Close()
	for id, msg := range notes {
		if _, err := db.Exec("UPDATE log_checkpoints SET note = ? WHERE id = ?", msg, id); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	if err := os.WriteFile(filepath.Join(e.dataDir, auditlog.VerifierKeyFile), []byte(vkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(e.dataDir, WitnessFile)) // signed by the old key

	rep, err := VerifyOffline(ctx, e.dataDir, OfflineInput{})
	if err != nil || !rep.OK {
		t.Fatalf("against the directory's own (replaced) key the forgery passes, as expected without a pin: %+v, %v", rep, err)
	}
	rep, err = VerifyOffline(ctx, e.dataDir, OfflineInput{Key: pinned})
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, "pinned key", rep, "bad-signature")
}

// TestVerifyOfflineWitness: the newest entries, their checkpoints and the
// directory's witness deleted; a witness kept elsewhere catches it.
func TestVerifyOfflineWitness(t *testing.T) {
	e := newAuditEnv(t)
	ctx := context.Background()
	witness, err := os.ReadFile(filepath.Join(e.dataDir, WitnessFile))
	if err != nil {
		t.Fatal(err)
	}
	size, _, err := auditlog.OpenCheckpoint(witness, pinnedKey(t, e.dataDir))
	if err != nil || size < 4 {
		t.Fatalf("witness: size %d, %v", size, err)
	}
	// Cut at an older checkpoint, so that what remains is self-consistent.
	db, err := sql.Open("sqlite", filepath.Join(e.dataDir, DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	var cut int64
	err = db.QueryRow("SELECT max(size) FROM log_checkpoints WHERE size < ?", size).Scan(&cut)
	db.Close()
	if err != nil || cut == 0 {
		t.Fatalf("no older checkpoint: %d, %v", cut, err)
	}
	e.exec(t,
		fmt.Sprintf("DELETE FROM log_entries WHERE seq >= %d", cut),
		fmt.Sprintf("DELETE FROM log_checkpoints WHERE size > %d", cut),
	)
	os.Remove(filepath.Join(e.dataDir, WitnessFile))
	os.RemoveAll(filepath.Join(e.dataDir, JournalDir))

	rep, err := VerifyOffline(ctx, e.dataDir, OfflineInput{Key: pinnedKey(t, e.dataDir)})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		if p.Kind != auditlog.KindRowMismatch && p.Kind != auditlog.KindDeleted && p.Kind != auditlog.KindCheckpointMismatch {
			t.Errorf("unexpected problem without the witness: %s", p)
		}
	}
	before := checksums(t, e.dataDir)
	rep, err = VerifyOffline(ctx, e.dataDir, OfflineInput{Key: pinnedKey(t, e.dataDir), Witness: witness})
	if err != nil {
		t.Fatal(err)
	}
	sameFiles(t, before, checksums(t, e.dataDir))
	wantProblems(t, "witness", rep, "truncated")
}

// TestVerifyOfflineWritesNothing: verifying a directory a crashed server
// left (a WAL, no clean close) changes no file and creates none, and
// creates no key where there is none.
func TestVerifyOfflineWritesNothing(t *testing.T) {
	e := newAuditEnv(t)
	ctx := context.Background()
	pinned := pinnedKey(t, e.dataDir)
	// A crash image: the files of a running server copied mid-flight, with
	// its write-ahead log and journal segments.
	image := crashImage(t, e)
	if _, err := os.Stat(filepath.Join(image, DatabaseFile+"-wal")); err != nil {
		t.Fatalf("the crash image has no WAL: %v", err)
	}
	before := checksums(t, image)
	rep, err := VerifyOffline(ctx, image, OfflineInput{Key: pinned})
	if err != nil || !rep.OK || !rep.Rows {
		t.Fatalf("verify of a crash image: %+v, %v", rep, err)
	}
	sameFiles(t, before, checksums(t, image))

	// No key files (in the cleanly closed directory, which has no journal):
	// verification with a pinned key creates none.
	for _, f := range []string{auditlog.SignerKeyFile, auditlog.VerifierKeyFile, CredentialKeyFile} {
		os.Remove(filepath.Join(e.dataDir, f))
	}
	before = checksums(t, e.dataDir)
	rep, err = VerifyOffline(ctx, e.dataDir, OfflineInput{Key: pinned})
	if err != nil || !rep.OK {
		t.Fatalf("verify without key files: %+v, %v", rep, err)
	}
	sameFiles(t, before, checksums(t, e.dataDir))
}

// TestEvidenceBundle exports a bundle, checks it offline with the pinned
// key alone, and flips bytes at many positions: every flip must fail.
func TestEvidenceBundle(t *testing.T) {
	checkBundle(t, newAuditEnv(t), time.Now().UTC().Format("2006-01-02"))
}

// TestEvidenceBundleAtMidnight: a grant requested at 23:55 for 10 minutes
// is live on its day and the next; its bundle names one of them, and a
// bundle whose day is changed to the other fails (the day is in the signed
// statement), as does every other byte flipped.
func TestEvidenceBundleAtMidnight(t *testing.T) {
	at := time.Date(2026, 6, 28, 23, 55, 0, 0, time.UTC) // a flip of the day's last bit makes the 29th
	start := time.Now()
	testNow = func() time.Time { return at.Add(time.Since(start)) }
	defer func() { testNow = nil }()
	e := newAuditEnv(t)
	b := checkBundle(t, e, "2026-06-28")
	moved := bytes.Replace(b, []byte(`"day":"2026-06-28"`), []byte(`"day":"2026-06-29"`), 1)
	if bytes.Equal(moved, b) {
		t.Fatal("no day in the bundle")
	}
	if _, err := evidence.Verify(moved, pinnedKey(t, e.dataDir), LogOrigin(pinnedKey(t, e.dataDir))); err == nil {
		t.Fatal("the bundle of the 28th verifies as the 29th's")
	}
}

// checkBundle exports e's account on day, checks the bundle and that no
// flipped byte of it verifies, and returns it.
func checkBundle(t *testing.T, e *auditEnv, day string) []byte {
	t.Helper()
	ctx := context.Background()
	s := openServer(t, e.cfg)
	defer s.Close()
	pinned := pinnedKey(t, e.dataDir)
	b, warnings, err := s.Export(ctx, "111122223333", day)
	if err != nil || len(warnings) > 0 {
		t.Fatalf("export: %v %q", err, warnings)
	}
	res, err := evidence.Verify(b, pinned, LogOrigin(pinned))
	if err != nil {
		t.Fatalf("verify-bundle: %v", err)
	}
	if len(res.Rows) != 1 || res.Rows[0].Reason != "billing errors too" || res.Rows[0].Calls != 2 || res.Rows[0].DeniedCalls != 1 || res.Entries < 8 {
		t.Fatalf("bundle content: %+v", res)
	}
	if _, err := evidence.Verify(b, mustOtherKey(t), LogOrigin(pinned)); err == nil {
		t.Error("a bundle verified with another key")
	}
	step := max(1, len(b)/1500)
	n := 0
	for i := 0; i < len(b); i += step {
		for _, x := range []byte{0x01, 0x20} {
			c := append([]byte(nil), b...)
			c[i] ^= x
			if _, err := evidence.Verify(c, pinned, LogOrigin(pinned)); err == nil {
				t.Fatalf("flipping byte %d (%q → %q) still verifies", i, b[i], c[i])
			}
			n++
		}
	}
	t.Logf("%d flips of a %d-byte bundle all failed", n, len(b))
	return b
}

func mustOtherKey(t *testing.T) note.Verifier {
	_, vkey, err := note.GenerateKey(rand.Reader, "airlock")
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestVerifyOfflineKeysElsewhere: a server whose credential key comes from
// keys.credential_key_file (not data_dir) seals its journal with it;
// offline verification of its crash image reads the journal with the key
// from the same place (OfflineInput.CredentialKeyFile, or the environment),
// as the server does.
func TestVerifyOfflineKeysElsewhere(t *testing.T) {
	e := newAuditEnv(t)
	ctx := context.Background()
	pinned := pinnedKey(t, e.dataDir)
	keyFile := filepath.Join(t.TempDir(), "credential.key")
	if err := os.Rename(filepath.Join(e.dataDir, CredentialKeyFile), keyFile); err != nil {
		t.Fatal(err)
	}
	e.cfg.Keys.CredentialKeyFile = keyFile
	image := crashImage(t, e)
	if _, err := os.Stat(filepath.Join(image, CredentialKeyFile)); err == nil {
		t.Fatal("the server wrote a credential key into data_dir")
	}
	rep, err := VerifyOffline(ctx, image, OfflineInput{Key: pinned, CredentialKeyFile: keyFile})
	if err != nil || !rep.OK || !rep.Rows {
		t.Fatalf("verify with keys.credential_key_file: %+v, %v", rep, err)
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AIRLOCK_CREDENTIAL_KEY", base64.StdEncoding.EncodeToString(key))
	rep, err = VerifyOffline(ctx, image, OfflineInput{Key: pinned})
	if err != nil || !rep.OK || !rep.Rows {
		t.Fatalf("verify with the key in the environment: %+v, %v", rep, err)
	}
}

// crashImage opens a server on e, requests a grant, and returns a copy of
// its data directory taken while it runs (with its write-ahead log and
// journal segments), as a crash would leave it.
func crashImage(t *testing.T, e *auditEnv) string {
	t.Helper()
	ctx := context.Background()
	s := openServer(t, e.cfg)
	defer s.Close()
	if _, err := s.Service.Request(ctx, bot, grants.RequestInput{Target: "aws-prod",
		Scope: []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, Duration: "5m", Reason: "second"}); err != nil {
		t.Fatal(err)
	}
	if err := s.log.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	image := filepath.Join(t.TempDir(), "data")
	if err := os.CopyFS(image, os.DirFS(e.dataDir)); err != nil {
		t.Fatal(err)
	}
	return image
}
