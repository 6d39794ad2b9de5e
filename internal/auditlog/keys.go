package auditlog

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlock-dev/airlock/internal/safefile"
)

// Key file names inside the data directory.
const (
	SignerKeyFile   = "log-signing.key"
	VerifierKeyFile = "log-signing.pub"
)

// LoadOrCreateKey returns the log's checkpoint signing key from dataDir,
// creating it on first use.
//
// On first use it generates an Ed25519 note key named name and writes the
// signer key to <dataDir>/log-signing.key (mode 0600, created exclusively, so
// two processes cannot both create one) and the verifier key to
// <dataDir>/log-signing.pub (mode 0644). Later it loads the signer key,
// refusing a key file that is readable by group or others or whose key is not
// named name, and derives the verifier from it; it rewrites a missing
// log-signing.pub and refuses one that does not match the signer key.
func LoadOrCreateKey(dataDir, name string) (note.Signer, note.Verifier, error) {
	keyPath := filepath.Join(dataDir, SignerKeyFile)
	pubPath := filepath.Join(dataDir, VerifierKeyFile)

	skey, err := readSignerKey(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		skey, err = createSignerKey(keyPath, name)
		if errors.Is(err, fs.ErrExist) { // created concurrently by someone else
			skey, err = readSignerKey(keyPath)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, nil, fmt.Errorf("auditlog: signing key %s: %v", keyPath, err)
	}
	if signer.Name() != name {
		return nil, nil, fmt.Errorf("auditlog: signing key %s is named %q, not %q", keyPath, signer.Name(), name)
	}
	vkey, err := verifierKeyFor(skey)
	if err != nil {
		return nil, nil, fmt.Errorf("auditlog: signing key %s: %v", keyPath, err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, fmt.Errorf("auditlog: signing key %s: %v", keyPath, err)
	}

	pub, err := os.ReadFile(pubPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := safefile.WriteAtomic(pubPath, []byte(vkey+"\n"), 0o644); err != nil {
			return nil, nil, fmt.Errorf("auditlog: writing verifier key: %w", err)
		}
	case err != nil:
		return nil, nil, fmt.Errorf("auditlog: reading verifier key: %w", err)
	case strings.TrimSpace(string(pub)) != vkey:
		return nil, nil, fmt.Errorf("auditlog: verifier key %s does not belong to signing key %s", pubPath, keyPath)
	}
	return signer, verifier, nil
}

// LoadVerifier returns the verifier key stored in <dataDir>/log-signing.pub.
func LoadVerifier(dataDir string) (note.Verifier, error) {
	pubPath := filepath.Join(dataDir, VerifierKeyFile)
	pub, err := ReadFileMax(pubPath, MaxVerifierKeyFile)
	if err != nil {
		return nil, fmt.Errorf("auditlog: reading verifier key: %w", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(pub)))
	if err != nil {
		return nil, fmt.Errorf("auditlog: verifier key %s: %v", pubPath, err)
	}
	return v, nil
}

func readSignerKey(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("auditlog: signing key %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("auditlog: refusing to use signing key %s: its mode %04o lets group or others access it (chmod 600 it)", path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", fmt.Errorf("auditlog: reading signing key: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func createSignerKey(path, name string) (string, error) {
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", fmt.Errorf("auditlog: generating signing key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	if err := safefile.CreateExclusive(path, []byte(skey+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("auditlog: writing signing key: %w", err)
	}
	return skey, nil
}

// verifierKeyFor derives the verifier key from a note signer key
// (PRIVATE+KEY+<name>+<hash>+<base64(alg || seed)>).
func verifierKeyFor(skey string) (string, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("malformed signer key")
	}
	key, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(key) != 1+ed25519.SeedSize || key[0] != 1 {
		return "", errors.New("malformed signer key (not an Ed25519 key)")
	}
	pub := ed25519.NewKeyFromSeed(key[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(parts[2], pub)
}
