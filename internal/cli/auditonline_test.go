package cli

import (
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/serverkeys"
	"github.com/airlock-dev/airlock/internal/witness/cosig"
)

// TestAuditVerifyOnlinePinnedKeyDamagedLog: `airlock audit verify --key`
// against a server whose stored log was changed behind its back lists the
// problems the server's check found, and that no consistency proof could
// be had, and exits 1. It printed only "internal error": the proof request
// that follows the check failed, and that failure hid the report.
func TestAuditVerifyOnlinePinnedKeyDamagedLog(t *testing.T) {
	l := startServer(t, nil)
	pub := filepath.Join(l.dataDir, "log-signing.pub")
	witness := l.checkpoint()
	wpath := filepath.Join(t.TempDir(), "checkpoint.copy")
	if err := os.WriteFile(wpath, witness, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := l.as(l.aliceKey, "audit", "verify", "--key", pub, "--witness", wpath); code != 0 {
		t.Fatalf("before any change: exit %d\n%s%s", code, out, errOut)
	}
	// Without --key it says the server's own key was trusted; -o json
	// prints the report alone, as before.
	if code, out, errOut := l.as(l.aliceKey, "audit", "verify"); code != 0 || !strings.Contains(out, "NOTE no --key: the checkpoints were verified with the server's own key") {
		t.Fatalf("without --key: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := l.as(l.aliceKey, "-o", "json", "audit", "verify"); code != 0 || strings.Contains(out, "NOTE") || !json.Valid([]byte(out)) {
		t.Fatalf("-o json without --key: exit %d\n%s%s", code, out, errOut)
	}

	// Someone with write access to the database changes an entry.
	db, err := sql.Open("sqlite", filepath.Join(l.dataDir, server.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE log_entries SET data = replace(data, '"actor":"config"', '"actor":"mallory"') WHERE seq = 0`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("changed %d entries", n)
	}

	for _, args := range [][]string{
		{"audit", "verify", "--key", pub},
		{"audit", "verify", "--key", pub, "--witness", wpath},
	} {
		code, out, errOut := l.as(l.aliceKey, args...)
		t.Logf("%v: exit %d\n%s%s", args, code, out, errOut)
		if code != 1 {
			t.Errorf("%v: exit %d, want 1", args, code)
		}
		for _, want := range []string{
			"PROBLEM modified entry 0: entry 0 does not hash to the leaf hash stored with it",
			"PROBLEM checkpoint-mismatch: the server did not prove that",
			"no proof can be built from the log",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: output lacks %q", args, want)
			}
		}
		if strings.Contains(out+errOut, "internal error") {
			t.Errorf("%v: output says internal error", args)
		}
	}
}

// TestAuditVerifyWitnessSavedAsAPIAnswer: the README has the reviewer keep
// a copy of GET /v1/audit/checkpoint as a witness. Saved whole, that answer
// is JSON around the note, and `audit verify --witness` reported
// "PROBLEM bad-signature: witness checkpoint: malformed note" and exit 1,
// which reads as a tampered log. It is now a usage error naming the field
// to keep; the field itself verifies.
func TestAuditVerifyWitnessSavedAsAPIAnswer(t *testing.T) {
	l := startServer(t, nil)
	pub := filepath.Join(l.dataDir, "log-signing.pub")
	req, err := http.NewRequest("GET", "http://"+l.apiAddr+"/v1/audit/checkpoint", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+l.aliceKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/audit/checkpoint: %d %v\n%s", resp.StatusCode, err, answer)
	}
	dir := t.TempDir()
	whole := filepath.Join(dir, "checkpoint.json")
	if err := os.WriteFile(whole, answer, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := l.as(l.aliceKey, "audit", "verify", "--key", pub, "--witness", whole)
	if code != 2 || strings.Contains(out, "bad-signature") || !strings.Contains(errOut, `save its "checkpoint" field`) {
		t.Errorf("whole answer as --witness: exit %d, want 2 and a hint\n%s%s", code, out, errOut)
	}

	var r struct {
		Checkpoint string `json:"checkpoint"`
	}
	if err := json.Unmarshal(answer, &r); err != nil {
		t.Fatal(err)
	}
	field := filepath.Join(dir, "checkpoint.copy")
	if err := os.WriteFile(field, []byte(r.Checkpoint), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := l.as(l.aliceKey, "audit", "verify", "--key", pub, "--witness", field); code != 0 || !strings.Contains(out, "the log extends it") {
		t.Errorf("its checkpoint field as --witness: exit %d\n%s%s", code, out, errOut)
	}
}

// TestAuditVerifyWitnessOfAnotherLog: a checkpoint the log's key signed
// for another log (another origin: a staging copy run with the same key),
// of the very size and root of this log's, passed as --witness, is
// refused online and offline: it says nothing about this log, and any
// cosignature on it is a witness's statement about the other one. Both
// verifications passed it before the origin was compared.
func TestAuditVerifyWitnessOfAnotherLog(t *testing.T) {
	l := startServer(t, nil)
	pub := filepath.Join(l.dataDir, "log-signing.pub")
	own := l.checkpoint()
	signer, _, _, err := serverkeys.LoadJournalSigner(serverkeys.Sources{DataDir: l.dataDir, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	text, _, ok := strings.Cut(string(own), "\n\n")
	origin, rest, _ := strings.Cut(text, "\n")
	if !ok || origin != server.LogOrigin(mustVerifierFile(t, pub)) {
		t.Fatalf("the server's checkpoint: %q", own)
	}
	other, err := note.Sign(&note.Note{Text: "airlock/staging\n" + rest + "\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	wpath := filepath.Join(t.TempDir(), "staging.note")
	if err := os.WriteFile(wpath, other, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := l.as(l.aliceKey, "audit", "verify", "--key", pub, "--witness", wpath)
	if code != 1 || !strings.Contains(out, `PROBLEM bad-signature: witness checkpoint: it is of the log "airlock/staging", not "`+origin+`"`) {
		t.Errorf("online: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = run(t, nil, "audit", "verify", "--data-dir", l.dataDir, "--key", pub, "--witness", wpath)
	if code != 1 || !strings.Contains(out, `PROBLEM bad-signature: witness checkpoint: it is of the log "airlock/staging", not "`+origin+`"`) {
		t.Errorf("offline: exit %d\n%s%s", code, out, errOut)
	}
}

func mustVerifierFile(t *testing.T, path string) note.Verifier {
	t.Helper()
	v, err := loadVerifierKey(path)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestPrintAnchorsCosignatureTimes: after a verification with
// --witness-key, each witness's cosignature time is printed: an old one is
// still taken (the log was at least that big then), and how old is the
// reader's to judge.
func TestPrintAnchorsCosignatureTimes(t *testing.T) {
	var out strings.Builder
	a := &app{out: &out}
	at := time.Date(2026, 11, 5, 9, 30, 0, 0, time.UTC)
	a.printAnchors(mustVerifierFile(t, writeVerifierKey(t)), []byte("a witness checkpoint"), &cosig.Cosigned{Cosignatures: []cosig.Cosignature{{Witness: "w1.example/w", Time: at}}}, false)
	if !strings.Contains(out.String(), "cosigned by witness w1.example/w at 2026-11-05T09:30:00Z\n") {
		t.Fatalf("output:\n%s", out.String())
	}
}

func writeVerifierKey(t *testing.T) string {
	t.Helper()
	_, vkey, err := note.GenerateKey(rand.Reader, "airlock")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "log-signing.pub")
	if err := os.WriteFile(path, []byte(vkey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
