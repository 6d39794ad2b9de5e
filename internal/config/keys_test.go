package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKeysFiles(t *testing.T) {
	dir := inConfigDir(t)
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"credential.key", "log-signing.key"} {
		if err := os.WriteFile(filepath.Join(dir, "keys", f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Parse("airlock.yaml", []byte(quickstartYAML()+"keys:\n  credential_key_file: keys/credential.key\n  log_signing_key_file: keys/log-signing.key\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Keys.CredentialKeyFile != filepath.Join(dir, "keys", "credential.key") || c.Keys.LogSigningKeyFile != filepath.Join(dir, "keys", "log-signing.key") {
		t.Fatalf("Keys = %+v, want paths resolved against the file's directory", c.Keys)
	}
	_, err = Parse("airlock.yaml", []byte(quickstartYAML()+"keys:\n  credential_key_file: nope.key\n  signing_key: x\n"))
	if err == nil || !strings.Contains(err.Error(), `keys.credential_key_file: cannot read`) || !strings.Contains(err.Error(), "signing_key") {
		t.Fatalf("a missing key file and an unknown key: %v", err)
	}
}
