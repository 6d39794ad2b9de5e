package cli

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/demo"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/serverkeys"
)

// TestAuditVerifyOfflineKeysFromConfig: a SQLite server whose keys are
// under keys: (outside data_dir) seals its journal with that credential
// key. `airlock audit verify --config FILE` checks its crash image with the
// key where the configuration says it is; `--data-dir` alone cannot (the
// directory holds no credential key) and says so.
func TestAuditVerifyOfflineKeysFromConfig(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if _, err := serverkeys.Generate(keys); err != nil {
		t.Fatal(err)
	}
	_, botSHA := authn.NewKey()
	_, aliceSHA := authn.NewKey()
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policies", "aws-prod.cedar"), []byte(demo.Policies), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_PROD_ACCESS_KEY_ID", "AKIAUPSTREAMTEST0001")
	t.Setenv("AWS_PROD_SECRET_ACCESS_KEY", "upstream-secret-for-tests-only-0123456789")
	cfgPath := filepath.Join(dir, "airlock.yaml")
	yaml := demo.Config(botSHA, aliceSHA, "http://127.0.0.1:9") +
		"keys:\n  credential_key_file: ./keys/credential.key\n  log_signing_key_file: ./keys/log-signing.key\n"
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	srv, err := server.Open(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	bot := model.Identity{Name: "log-triage-bot", Kind: model.Agent, Owner: "sre-team", Groups: []string{"sre-team"}}
	if _, err := srv.Service.Request(ctx, bot, grants.RequestInput{Target: "aws-prod",
		Scope: []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, Duration: "5m", Reason: "journal"}); err != nil {
		t.Fatal(err)
	}
	// A crash image: the data directory copied while the server runs.
	image := filepath.Join(dir, "image")
	if err := os.CopyFS(image, os.DirFS(cfg.DataDir)); err != nil {
		t.Fatal(err)
	}
	srv.Close()

	code, out, errOut := run(t, nil, "audit", "verify", "--config", cfgPath, "--data-dir", image)
	if code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("audit verify --config: exit %d\n%s%s", code, out, errOut)
	}
	// Without --key it says which key it trusted: the directory's own
	// (before, a bare OK left that to the absence of an anchor line).
	if !strings.Contains(out, "NOTE no --key: the checkpoints were verified with the data directory's own key (log-signing.pub)") || strings.Contains(out, "pinned key") {
		t.Errorf("audit verify without --key:\n%s", out)
	}
	code, out, errOut = run(t, nil, "audit", "verify", "--data-dir", image)
	if code == 0 || !strings.Contains(out+errOut, "journal") {
		t.Fatalf("audit verify --data-dir without the keys: exit %d\n%s%s", code, out, errOut)
	}

	// With a pinned key and a witness checkpoint the output says so: it
	// read as a plain verify's before, which trusts the directory's own.
	witness := filepath.Join(dir, "checkpoint.copy")
	cp, err := os.ReadFile(filepath.Join(cfg.DataDir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(witness, cp, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(t, nil, "audit", "verify", "--config", cfgPath, "--key", filepath.Join(cfg.DataDir, "log-signing.pub"), "--witness", witness)
	if code != 0 || !strings.Contains(out, "pinned key airlock") || !strings.Contains(out, "witness checkpoint (tree size ") || strings.Contains(out, "NOTE no --key") {
		t.Fatalf("audit verify --key --witness: exit %d\n%s%s", code, out, errOut)
	}
}

// TestAuditVerifyJournalNote: entries only in the journal are vouched for
// by its seal, which is derived from the log signing key (an earlier
// release derived it from the credential key, and the note still said
// that alone).
func TestAuditVerifyJournalNote(t *testing.T) {
	var out strings.Builder
	a := &app{out: &out, errOut: io.Discard}
	if err := a.printReport(auditlog.Report{OK: true, Journaled: 2}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "NOTE 2 entries") || !strings.Contains(out.String(), "derived from the log signing key") {
		t.Fatalf("journal note:\n%s", out.String())
	}
}
