package cli

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlock-dev/airlock/internal/witness/cosig"
)

// TestAuditVerifyMaxAge: `audit verify --witness FILE --witness-key W
// --max-age D` fails (exit 1) when W's cosignature on FILE is older than
// D, naming its time; a newer one passes. An auditor could not say that
// the log must have been witnessed lately: an old cosignature was taken
// however old, its time only printed. Without --witness-key there is no
// time to hold the log to (a checkpoint states none): a usage error, as is
// a duration that is not positive.
func TestAuditVerifyMaxAge(t *testing.T) {
	l := startServer(t, nil)
	pub := filepath.Join(l.dataDir, "log-signing.pub")
	dir := t.TempDir()
	head := filepath.Join(dir, "head.note")
	if code, out, errOut := l.as(l.aliceKey, "audit", "verify", "--data-dir", l.dataDir, "--key", pub, "--save-head", head); code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	signedAt := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	w, err := cosig.GenerateSigner("w.test/w", rand.Reader, func() time.Time { return signedAt })
	if err != nil {
		t.Fatal(err)
	}
	cosigned := filepath.Join(dir, "cosigned.note")
	if err := os.WriteFile(cosigned, cosign(t, head, mustVerifierFile(t, pub), w), 0o644); err != nil {
		t.Fatal(err)
	}
	verify := func(extra ...string) (int, string, string) {
		return l.as(l.aliceKey, append([]string{"audit", "verify", "--data-dir", l.dataDir, "--key", pub, "--witness", cosigned}, extra...)...)
	}

	code, out, errOut := verify("--witness-key", w.VerifierKey(), "--max-age", "1h")
	if want := "cosigned by witness w.test/w at " + signedAt.UTC().Format(time.RFC3339) + ", 2h0m"; code != 1 || !strings.Contains(errOut, want) || !strings.Contains(errOut, "more than --max-age 1h0m0s") {
		t.Errorf("a cosignature 2h old, --max-age 1h: exit %d, want 1 and %q\n%s%s", code, want, out, errOut)
	}
	if code, out, errOut := verify("--witness-key", w.VerifierKey(), "--max-age", "3h"); code != 0 || !strings.Contains(out, "cosigned by witness w.test/w at ") {
		t.Errorf("--max-age 3h: exit %d, want 0\n%s%s", code, out, errOut)
	}
	for _, args := range [][]string{{"--max-age", "3h"}, {"--witness-key", w.VerifierKey(), "--max-age", "0s"}} {
		if code, out, errOut := verify(args...); code != 2 || !strings.Contains(errOut, "--max-age needs") {
			t.Errorf("%q: exit %d, want 2\n%s%s", args, code, out, errOut)
		}
	}
}

// cosign returns the signed checkpoint file at path, verified with v,
// with w's cosignature line appended.
func cosign(t *testing.T, path string, v note.Verifier, w *cosig.Signer) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(b, note.VerifierList(v))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, w)
	if err != nil {
		t.Fatal(err)
	}
	return cosig.AppendSignatures(b, signed[bytes.Index(signed, []byte("\n\n"))+2:])
}

// TestCheckMaxAge: every named witness's cosignature must be within the
// age; the first too old is named.
func TestCheckMaxAge(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	c := &cosig.Cosigned{Checkpoint: cosig.Checkpoint{Size: 7}, Cosignatures: []cosig.Cosignature{
		{Witness: "w1", Time: now.Add(-time.Minute)}, {Witness: "w2", Time: now.Add(-25 * time.Hour)},
	}}
	if err := checkMaxAge(c, 0, now); err != nil {
		t.Errorf("no --max-age: %v", err)
	}
	if err := checkMaxAge(c, 26*time.Hour, now); err != nil {
		t.Errorf("26h: %v", err)
	}
	err := checkMaxAge(c, 24*time.Hour, now)
	if err == nil || !strings.Contains(err.Error(), "(tree size 7) was cosigned by witness w2 at 2026-12-04T11:00:00Z, 25h0m0s ago") {
		t.Errorf("24h: %v", err)
	}
}
