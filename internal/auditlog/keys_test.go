package auditlog

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func TestLoadOrCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, v, err := LoadOrCreateKey(dir, "airlock")
	if err != nil {
		t.Fatal(err)
	}
	kfi, err := os.Stat(filepath.Join(dir, SignerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if kfi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", kfi.Mode())
	}
	pfi, err := os.Stat(filepath.Join(dir, VerifierKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if pfi.Mode().Perm() != 0o644 {
		t.Errorf("pub file mode %v", pfi.Mode())
	}
	msg, err := note.Sign(&note.Note{Text: "airlock\n1\n" + strings.Repeat("A", 43) + "=\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(v)); err != nil {
		t.Fatal(err)
	}

	// Loading again returns the same key.
	s2, v2, err := LoadOrCreateKey(dir, "airlock")
	if err != nil {
		t.Fatal(err)
	}
	if s2.KeyHash() != s.KeyHash() || v2.KeyHash() != v.KeyHash() {
		t.Error("reloaded a different key")
	}
	lv, err := LoadVerifier(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(msg, note.VerifierList(lv)); err != nil {
		t.Fatalf("LoadVerifier's key does not verify: %v", err)
	}

	// Another name is refused.
	if _, _, err := LoadOrCreateKey(dir, "other"); err == nil {
		t.Error("accepted a key with another name")
	}

	// A missing public key is rewritten; a foreign one is refused.
	os.Remove(filepath.Join(dir, VerifierKeyFile))
	if _, _, err := LoadOrCreateKey(dir, "airlock"); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadVerifier(dir); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if _, _, err := LoadOrCreateKey(other, "airlock"); err != nil {
		t.Fatal(err)
	}
	pub, _ := os.ReadFile(filepath.Join(other, VerifierKeyFile))
	os.WriteFile(filepath.Join(dir, VerifierKeyFile), pub, 0o644)
	if _, _, err := LoadOrCreateKey(dir, "airlock"); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("mismatched public key: %v", err)
	}

	// A key file readable by others is refused.
	os.Chmod(filepath.Join(dir, SignerKeyFile), 0o640)
	if _, _, err := LoadOrCreateKey(dir, "airlock"); err == nil || !strings.Contains(err.Error(), "group or others") {
		t.Errorf("group-readable key: %v", err)
	}
}

func TestLoadVerifierMissing(t *testing.T) {
	if _, err := LoadVerifier(t.TempDir()); err == nil {
		t.Error("no error for a missing key")
	}
}
