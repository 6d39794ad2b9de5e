// Package serverkeys loads the two secret keys of an Airlock server, the
// credential key (grant credential secrets are HMAC-derived from it) and the
// log's checkpoint signing key (the log's journal is sealed with a key
// derived from it, see [Keys.JournalSeal]), and checks that every replica sharing a
// PostgreSQL store holds the same ones.
//
// # Where the keys come from
//
// For each key, the first of these that is set wins:
//
//  1. an environment variable holding the key itself:
//     AIRLOCK_CREDENTIAL_KEY (the 32 bytes, base64) and
//     AIRLOCK_LOG_SIGNING_KEY (the note signer key, PRIVATE+KEY+airlock+…);
//  2. a file named in the configuration (keys.credential_key_file,
//     keys.log_signing_key_file);
//  3. the file in data_dir (credential.key, log-signing.key), generated on
//     first start when it does not exist and the store has not seen keys
//     yet.
//
// Key files must be regular files that neither group nor others may access
// (mode 0600), in a directory neither may write to. Keys never cross the network: an operator copies them to each
// replica (or into its secret store) by the means they trust.
//
// # The check against the store
//
// A replica whose credential key differs would issue credentials no other
// replica accepts, and one whose signing key differs would sign checkpoints
// nobody can verify with the log's public key. So on its first start against
// a PostgreSQL store a server records a fingerprint of each key in the
// database (airlock_key_fingerprints): for the credential key an HMAC of a
// fixed label under the key (which tells nothing about the key), for the
// signing key its public verifier key. Every later start compares its keys
// with them and refuses to start, naming the key, when one differs.
// Rotation is not supported yet: a database keeps the keys it started with.
package serverkeys

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/fsperm"
	"github.com/airlock-dev/airlock/internal/safefile"
)

// Environment variables that hold the keys themselves.
const (
	CredentialKeyEnv = "AIRLOCK_CREDENTIAL_KEY"
	SigningKeyEnv    = "AIRLOCK_LOG_SIGNING_KEY"
)

// Files inside data_dir.
const (
	CredentialKeyFile = "credential.key"
	SigningKeyFile    = auditlog.SignerKeyFile
)

// KeyName is the name the log's signing key carries in its checkpoints.
const KeyName = "airlock"

// Sources says where to look for the keys.
type Sources struct {
	// DataDir holds the default key files.
	DataDir string
	// CredentialKeyFile and SigningKeyFile, when set, replace the files in
	// DataDir (config keys.credential_key_file, keys.log_signing_key_file).
	CredentialKeyFile, SigningKeyFile string
	// Getenv reads the environment (os.Getenv in production).
	Getenv func(string) string
	// Create allows generating the keys in DataDir when they are missing
	// there and nothing else provides them. A server sets it only while the
	// store has no fingerprints: a replica joining a running cluster must be
	// given the cluster's keys, not make new ones.
	Create bool
}

// Keys are a server's secret keys.
type Keys struct {
	// Credential is the 32-byte credential key.
	Credential []byte
	// Signer and Verifier are the log's checkpoint keys.
	Signer   note.Signer
	Verifier note.Verifier
	// JournalSeal is the key that seals the log's journal frames, derived
	// from the signing key: replay takes a sealed frame and the next start
	// signs it into the log, so making a seal must take what signing takes.
	JournalSeal []byte
	// verifierKey is Verifier in note text form.
	verifierKey string
	// CredentialFrom and SignerFrom say where each key came from (an
	// environment variable's name or a file's path), for messages.
	CredentialFrom, SignerFrom string
}

// Load reads the keys from src, generating the data_dir files if allowed.
func Load(src Sources) (*Keys, error) {
	getenv := src.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	k := &Keys{}
	var err error
	if k.Credential, k.CredentialFrom, err = loadCredential(src, getenv, src.Create, false); err != nil {
		return nil, err
	}

	var skey string
	if v := getenv(SigningKeyEnv); v != "" {
		skey, k.SignerFrom = strings.TrimSpace(v), "$"+SigningKeyEnv
	} else {
		path, create := src.SigningKeyFile, false
		if path == "" {
			path, create = filepath.Join(src.DataDir, SigningKeyFile), src.Create
		}
		b, err := readOrCreate(path, create, newSignerKey)
		if err != nil {
			return nil, err
		}
		skey, k.SignerFrom = strings.TrimSpace(string(b)), path
	}
	if k.Signer, k.Verifier, k.verifierKey, k.JournalSeal, err = parseSigner(skey); err != nil {
		return nil, fmt.Errorf("log signing key from %s: %v", k.SignerFrom, err)
	}
	return k, nil
}

// LoadJournalSeal reads the log signing key alone, from the same places as
// Load and in the same order, never creating it, and returns the journal
// seal key derived from it ([Keys.JournalSeal]); from says where the
// signing key came from. A key file that does not exist is an error
// wrapping fs.ErrNotExist. Offline checks of a data directory's journal use
// it, so that they find the key where the server found it.
func LoadJournalSeal(src Sources) (seal []byte, from string, err error) {
	_, seal, from, err = LoadJournalSigner(src)
	return seal, from, err
}

// LoadJournalSigner is LoadJournalSeal that also returns the signing key
// the seal key is derived from, so that an offline check given a pinned
// verifier key can refuse seals made under any other key.
func LoadJournalSigner(src Sources) (signer note.Signer, seal []byte, from string, err error) {
	getenv := src.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	var skey string
	if v := getenv(SigningKeyEnv); v != "" {
		skey, from = strings.TrimSpace(v), "$"+SigningKeyEnv
	} else {
		from = src.SigningKeyFile
		if from == "" {
			from = filepath.Join(src.DataDir, SigningKeyFile)
		}
		b, err := readLoose(from)
		if err != nil {
			return nil, nil, "", err
		}
		skey = strings.TrimSpace(string(b))
	}
	signer, _, _, seal, err = parseSigner(skey)
	if err != nil {
		return nil, nil, "", fmt.Errorf("log signing key from %s: %v", from, err)
	}
	return signer, seal, from, nil
}

// journalSeal derives the journal's seal key from the signing key's seed.
// The label keeps it apart from any other use of the seed.
func journalSeal(seed []byte) []byte {
	m := hmac.New(sha256.New, seed)
	m.Write([]byte("airlock journal seal v2"))
	return m.Sum(nil)
}

// LoadCredential reads the credential key alone, from the same places as
// Load and in the same order, and never creates it; from says where it
// came from. A key file that does not exist is an error wrapping
// fs.ErrNotExist. Offline tools that check what a server wrote (the
// journal's seals, derived from this key) use it, so that they find the
// key where the server found it.
func LoadCredential(src Sources) (key []byte, from string, err error) {
	getenv := src.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	return loadCredential(src, getenv, false, true)
}

// loadCredential is LoadCredential; a server (strict) also refuses a key
// file others may read, where an offline check only reads what it finds
// (a copied data directory seldom keeps its modes).
func loadCredential(src Sources, getenv func(string) string, create, loose bool) ([]byte, string, error) {
	if v := getenv(CredentialKeyEnv); v != "" {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
		if err != nil || len(b) != 32 {
			// Never quote the value: it is a secret.
			return nil, "", fmt.Errorf("%s must hold 32 bytes in base64 (e.g. the output of: base64 -w0 credential.key)", CredentialKeyEnv)
		}
		return b, "$" + CredentialKeyEnv, nil
	}
	path := src.CredentialKeyFile
	if path == "" {
		path = filepath.Join(src.DataDir, CredentialKeyFile)
	} else {
		create = false
	}
	var b []byte
	var err error
	if loose {
		b, err = readLoose(path)
	} else {
		b, err = readOrCreate(path, create, newCredentialKey)
	}
	if err != nil {
		return nil, "", err
	}
	if len(b) != 32 {
		return nil, "", fmt.Errorf("%s: want 32 bytes, found %d", path, len(b))
	}
	return b, path, nil
}

// WritePublic writes the verifier key to data_dir/log-signing.pub if it is
// not there (it is public: `airlock audit verify --key` and the evidence
// bundles use it), and refuses one that belongs to another key.
func (k *Keys) WritePublic(dataDir string) error {
	path := filepath.Join(dataDir, auditlog.VerifierKeyFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return os.WriteFile(path, []byte(k.verifierKey+"\n"), 0o644)
	case err != nil:
		return err
	case strings.TrimSpace(string(b)) != k.verifierKey:
		return fmt.Errorf("%s does not belong to the log signing key from %s; remove it (it is rewritten from the key)", path, k.SignerFrom)
	}
	return nil
}

// Generate writes a new credential key and signing key into dir (created
// 0700; the key files 0600, created exclusively so nothing is overwritten),
// for an operator to distribute to every replica, and the public key beside
// them.
func Generate(dir string) (*Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	// In a directory others may write to (an existing one: MkdirAll
	// leaves its mode alone), anyone could swap a key file for their own
	// after it is written, and the operator would copy theirs to every
	// replica; or plant log-signing.pub as a link for it to follow.
	if err := privateDir(dir); err != nil {
		return nil, fmt.Errorf("%w; give server-keys a directory only you may write to (chmod go-w it, or name a new one)", err)
	}
	for _, f := range []string{CredentialKeyFile, SigningKeyFile} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			return nil, fmt.Errorf("%s already exists; not overwriting a key", filepath.Join(dir, f))
		}
	}
	k, err := Load(Sources{DataDir: dir, Create: true, Getenv: func(string) string { return "" }})
	if err != nil {
		return nil, err
	}
	return k, k.WritePublic(dir)
}

// fingerprints are what the store keeps of each key: nothing that would
// help recover a secret.
func (k *Keys) fingerprints() map[string]string {
	m := hmac.New(sha256.New, k.Credential)
	m.Write([]byte("airlock credential key fingerprint v1"))
	return map[string]string{
		"credential":  "hmac-sha256:" + base64.StdEncoding.EncodeToString(m.Sum(nil)),
		"log-signing": k.verifierKey,
	}
}

func newCredentialKey() ([]byte, error) {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	return b, err
}

func newSignerKey() ([]byte, error) {
	skey, _, err := note.GenerateKey(rand.Reader, KeyName)
	return []byte(skey + "\n"), err
}

// privateDir returns an error if group or others may write to dir: they
// could then put a key of their own in place of one there, or before it is
// generated, whatever the key file's own mode. A directory that does not
// exist is no error (it is created 0700 when a key is made).
func privateDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case runtime.GOOS != "windows" && fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s may be written by others (mode %s)", dir, fsperm.Mode(fi.Mode()))
	}
	return nil
}

// readOrCreate reads a key file, refusing one that group or others may
// access or that lies in a directory they may write to, or creates it with
// gen when it does not exist and create is set.
func readOrCreate(path string, create bool, gen func() ([]byte, error)) ([]byte, error) {
	if err := privateDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("%w, so anyone who may could replace the key %s; chmod go-w it", err, filepath.Base(path))
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		if !create {
			return nil, fmt.Errorf("%s does not exist; give this replica the keys the others use (see docs/replicas.md): %w", path, fs.ErrNotExist)
		}
		b, err := gen()
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, err
		}
		if err := safefile.CreateExclusive(path, b, 0o600); errors.Is(err, fs.ErrExist) {
			return readOrCreate(path, false, nil) // created concurrently
		} else if err != nil {
			return nil, err
		}
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is readable by others (mode %s); chmod 600 it", path, fsperm.Mode(fi.Mode()))
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return b, nil
}

// readLoose reads a key file (bounded) whatever its mode.
func readLoose(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return b, nil
}

// parseSigner parses a note signer key
// (PRIVATE+KEY+<name>+<hash>+<base64(alg || seed)>) and derives its
// verifier and the journal seal key. Errors never quote the key.
func parseSigner(skey string) (note.Signer, note.Verifier, string, []byte, error) {
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, nil, "", nil, errors.New("not a note signer key (PRIVATE+KEY+airlock+…)")
	}
	if signer.Name() != KeyName {
		return nil, nil, "", nil, fmt.Errorf("the key is named %q, not %q", signer.Name(), KeyName)
	}
	parts := strings.SplitN(skey, "+", 5)
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, nil, "", nil, errors.New("not an Ed25519 note key")
	}
	vkey, err := note.NewEd25519VerifierKey(KeyName, ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey))
	if err != nil {
		return nil, nil, "", nil, err
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, "", nil, err
	}
	return signer, verifier, vkey, journalSeal(raw[1:]), nil
}
