package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/serverkeys"
)

// TestServerKeysSaysHowReplicasTakeThem: what `airlock server-keys` tells
// the operator to do works, both ways it names. It said only "copy both to
// every replica's data_dir" while the README's replicas section names the
// files in the configuration's keys section; it now prints that section,
// which is pasted here into a configuration the server's loader reads, and
// the keys it then loads are the files written. Copied into a data_dir
// instead, without a keys section, they are loaded too.
func TestServerKeysSaysHowReplicasTakeThem(t *testing.T) {
	dir := t.TempDir()
	keysDir := filepath.Join(dir, "keys dir")
	code, out, errOut := run(t, nil, "server-keys", keysDir)
	if code != 0 {
		t.Fatalf("server-keys: exit %d: %s", code, errOut)
	}
	cred, err := os.ReadFile(filepath.Join(keysDir, serverkeys.CredentialKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(out, "\n    keys:\n")
	if !ok || !strings.Contains(out, "data_dir") {
		t.Fatalf("server-keys does not print the keys section and the data_dir way:\n%s", out)
	}
	var yaml bytes.Buffer
	yaml.WriteString("data_dir: ./data\npolicies: ./policies\ntargets: []\nkeys:\n")
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "      ") {
			break
		}
		yaml.WriteString(strings.TrimPrefix(line, "    ") + "\n")
	}
	cfgDir := t.TempDir() // elsewhere: a relative path would be resolved against it
	if err := os.MkdirAll(filepath.Join(cfgDir, "policies"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(cfgDir, "airlock.yaml")
	if err := os.WriteFile(cfgPath, yaml.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatalf("the configuration with the printed keys section:\n%s\ndoes not load: %v", yaml.String(), err)
	}
	noEnv := func(string) string { return "" }
	k, err := serverkeys.Load(serverkeys.Sources{DataDir: cfg.DataDir, CredentialKeyFile: cfg.Keys.CredentialKeyFile,
		SigningKeyFile: cfg.Keys.LogSigningKeyFile, Getenv: noEnv})
	if err != nil || !bytes.Equal(k.Credential, cred) || k.SignerFrom != filepath.Join(keysDir, serverkeys.SigningKeyFile) {
		t.Fatalf("keys from the printed section: %v, from %v and %v; want the files written", err, k.CredentialFrom, k.SignerFrom)
	}

	dataDir := filepath.Join(dir, "replica-2")
	if err := os.Mkdir(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{serverkeys.CredentialKeyFile, serverkeys.SigningKeyFile} {
		b, err := os.ReadFile(filepath.Join(keysDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dataDir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	k2, err := serverkeys.Load(serverkeys.Sources{DataDir: dataDir, Getenv: noEnv})
	if err != nil || !bytes.Equal(k2.Credential, cred) || k2.Verifier.KeyHash() != k.Verifier.KeyHash() {
		t.Fatalf("keys copied into data_dir: %v", err)
	}
}
