package server

import (
	"os"
	"path/filepath"
	"testing"
)

// The first journal format's seal was only as safe as the credential key
// it was derived from: with the signing key kept away from data_dir while
// the credential key stays in it, frames of that format the store does not
// hold yet are refused at start (TestJournalSealNeedsSigningKey).
func TestSealWeakerThanSigner(t *testing.T) {
	for _, tc := range []struct {
		cred, signer string
		want         bool
	}{
		{"/var/lib/airlock/credential.key", "/var/lib/airlock/log-signing.key", false}, // both in data_dir (the default)
		{"/var/lib/airlock/credential.key", "/etc/airlock/log-signing.key", true},
		{"/var/lib/airlock/credential.key", "$AIRLOCK_LOG_SIGNING_KEY", true},
		{"/etc/airlock/credential.key", "/etc/airlock/log-signing.key", false},
		{"$AIRLOCK_CREDENTIAL_KEY", "$AIRLOCK_LOG_SIGNING_KEY", false},
		{"/var/lib/airlock-other/credential.key", "/etc/airlock/log-signing.key", false}, // a sibling, not inside
	} {
		if got := sealWeakerThanSigner("/var/lib/airlock", tc.cred, tc.signer); got != tc.want {
			t.Errorf("credential %s, signer %s: %v, want %v", tc.cred, tc.signer, got, tc.want)
		}
	}
}

// A key file reached through a symbolic link into data_dir is inside it.
func TestSealWeakerThanSignerResolvesLinks(t *testing.T) {
	dataDir, elsewhere := t.TempDir(), t.TempDir()
	cred := filepath.Join(dataDir, "credential.key")
	if err := os.WriteFile(cred, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(elsewhere, "credential.key")
	if err := os.Symlink(cred, link); err != nil {
		t.Fatal(err)
	}
	if !sealWeakerThanSigner(dataDir, link, "$AIRLOCK_LOG_SIGNING_KEY") {
		t.Error("a credential key linked from outside data_dir into it counted as outside")
	}
}
