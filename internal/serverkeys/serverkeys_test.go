package serverkeys

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func noEnv(string) string { return "" }

func TestLoadSources(t *testing.T) {
	dir := t.TempDir()
	// First start: generated in data_dir, 0600.
	k, err := Load(Sources{DataDir: dir, Create: true, Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{CredentialKeyFile, SigningKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, %v", f, fi.Mode(), err)
		}
	}
	// Later starts read the same keys.
	k2, err := Load(Sources{DataDir: dir, Getenv: noEnv})
	if err != nil || !bytes.Equal(k.Credential, k2.Credential) || k.verifierKey != k2.verifierKey {
		t.Fatalf("reload: %v", err)
	}
	if err := k.WritePublic(dir); err != nil {
		t.Fatal(err)
	}

	// Configured files win over data_dir; the environment wins over both.
	other, err := Generate(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	odir := filepath.Dir(other.CredentialFrom)
	k3, err := Load(Sources{DataDir: dir, CredentialKeyFile: filepath.Join(odir, CredentialKeyFile), SigningKeyFile: filepath.Join(odir, SigningKeyFile), Getenv: noEnv})
	if err != nil || !bytes.Equal(k3.Credential, other.Credential) || k3.verifierKey != other.verifierKey {
		t.Fatalf("configured files: %v", err)
	}
	skey, _ := os.ReadFile(filepath.Join(odir, SigningKeyFile))
	env := map[string]string{CredentialKeyEnv: base64.StdEncoding.EncodeToString(other.Credential), SigningKeyEnv: string(skey)}
	k4, err := Load(Sources{DataDir: dir, Getenv: func(k string) string { return env[k] }})
	if err != nil || !bytes.Equal(k4.Credential, other.Credential) || k4.verifierKey != other.verifierKey || k4.CredentialFrom != "$"+CredentialKeyEnv {
		t.Fatalf("environment: %+v, %v", k4, err)
	}
	if _, err := Generate(odir); err == nil || !strings.Contains(err.Error(), "not overwriting") {
		t.Fatalf("Generate over existing keys: %v", err)
	}
	// The public key belongs to the signing key.
	if err := other.WritePublic(dir); err == nil {
		t.Fatal("WritePublic accepted another key's log-signing.pub")
	}
}

func TestLoadRefuses(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(Sources{DataDir: dir, Getenv: noEnv}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing keys without Create: %v", err)
	}
	if _, err := Generate(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, CredentialKeyFile), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(Sources{DataDir: dir, Getenv: noEnv}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a key file readable by the group: %v", err)
	}
	os.Chmod(filepath.Join(dir, CredentialKeyFile), 0o600)

	secret := "c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1uZXZlci1sZWFr"
	for name, env := range map[string]map[string]string{
		"short credential key":  {CredentialKeyEnv: secret},
		"not base64":            {CredentialKeyEnv: "!!" + secret},
		"not a signer key":      {SigningKeyEnv: "PRIVATE+KEY+" + secret},
		"a key with other name": {SigningKeyEnv: mustSignerNamed(t, "other")},
	} {
		_, err := Load(Sources{DataDir: dir, Getenv: func(k string) string { return env[k] }})
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		for _, v := range env {
			if strings.Contains(err.Error(), v) || strings.Contains(err.Error(), secret) {
				t.Errorf("%s: the error quotes the secret: %v", name, err)
			}
		}
	}
}

func mustSignerNamed(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	k, err := Generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(k.SignerFrom)
	return strings.Replace(strings.TrimSpace(string(b)), "+"+KeyName+"+", "+"+name+"+", 1)
}

// The journal's seal key comes from the signing key alone: the same for
// the same signing key wherever it is read from, another for another
// signing key, and never the credential key's.
func TestJournalSeal(t *testing.T) {
	dir := t.TempDir()
	k, err := Generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(k.JournalSeal) != 32 || bytes.Equal(k.JournalSeal, k.Credential) {
		t.Fatalf("seal key of %d bytes, equal to the credential key: %v", len(k.JournalSeal), bytes.Equal(k.JournalSeal, k.Credential))
	}
	seal, from, err := LoadJournalSeal(Sources{DataDir: dir, Getenv: noEnv})
	if err != nil || !bytes.Equal(seal, k.JournalSeal) || from != filepath.Join(dir, SigningKeyFile) {
		t.Fatalf("LoadJournalSeal: %x from %s, %v; want Load's %x", seal, from, err, k.JournalSeal)
	}
	skey, err := os.ReadFile(filepath.Join(dir, SigningKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	seal, from, err = LoadJournalSeal(Sources{DataDir: t.TempDir(), Getenv: func(k string) string {
		if k == SigningKeyEnv {
			return string(skey)
		}
		return ""
	}})
	if err != nil || !bytes.Equal(seal, k.JournalSeal) || from != "$"+SigningKeyEnv {
		t.Fatalf("LoadJournalSeal from the environment: %x from %s, %v", seal, from, err)
	}
	other, err := Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other.JournalSeal, k.JournalSeal) {
		t.Fatal("two signing keys give one seal key")
	}
	if _, _, err := LoadJournalSeal(Sources{DataDir: t.TempDir(), Getenv: noEnv}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadJournalSeal without a key: %v, want fs.ErrNotExist", err)
	}
}

// TestGenerateRefusesSharedDirectory: server-keys writes no key into a
// directory others may write to. Before, an existing world-writable DIR
// was used as found (MkdirAll leaves its mode alone): anyone could replace
// a key file after it was written, and the operator would then copy that
// key to every replica.
func TestGenerateRefusesSharedDirectory(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix modes")
	}
	dir := filepath.Join(t.TempDir(), "shared")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	// The mode reads as a directory's (it read -rwxrwxrwx).
	if _, err := Generate(dir); err == nil || !strings.Contains(err.Error(), "may be written by others (mode drwxrwxrwx)") {
		t.Fatalf("Generate into a world-writable directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, CredentialKeyFile)); err == nil {
		t.Fatal("a key was written into the world-writable directory")
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(dir); err != nil {
		t.Fatalf("Generate into a directory only its owner writes: %v", err)
	}
}

// TestLoadRefusesSharedDirectory: a key file is only as private as its
// directory. In one others may write to, anyone could put a key of their
// own in place of the server's (or before it, for a key made on first
// start): the key file's own mode 0600 says nothing about who wrote it.
func TestLoadRefusesSharedDirectory(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Unix modes")
	}
	for _, mode := range []os.FileMode{0o777, 0o1777, 0o770} {
		// Existing keys in data_dir.
		dir := t.TempDir()
		if _, err := Load(Sources{DataDir: dir, Create: true, Getenv: noEnv}); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(Sources{DataDir: dir, Getenv: noEnv}); err == nil || !strings.Contains(err.Error(), "may be written by others") {
			t.Fatalf("data_dir mode %v: %v", mode, err)
		}

		// First start in such a data_dir: nothing is created.
		empty := t.TempDir()
		if err := os.Chmod(empty, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(Sources{DataDir: empty, Create: true, Getenv: noEnv}); err == nil || !strings.Contains(err.Error(), "may be written by others") {
			t.Fatalf("first start, data_dir mode %v: %v", mode, err)
		}
		if _, err := os.Stat(filepath.Join(empty, CredentialKeyFile)); err == nil {
			t.Fatal("a key was created in a directory others may write to")
		}

		// Configured key files.
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		keys := filepath.Join(t.TempDir(), "keys")
		if _, err := Generate(keys); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(keys, mode); err != nil {
			t.Fatal(err)
		}
		for _, src := range []Sources{
			{DataDir: dir, CredentialKeyFile: filepath.Join(keys, CredentialKeyFile), Getenv: noEnv},
			{DataDir: dir, SigningKeyFile: filepath.Join(keys, SigningKeyFile), Getenv: noEnv},
		} {
			if _, err := Load(src); err == nil || !strings.Contains(err.Error(), "may be written by others") {
				t.Fatalf("configured key file, directory mode %v: %v", mode, err)
			}
		}
	}
}
