package config

import (
	"os"
	"strings"
	"testing"
)

// TestWritableByAnyone: whoever may write airlock.yaml or the policies
// directory decides who gets access (an identity with their key, a permit
// for themselves at the next SIGHUP). Either being writable by every user
// of the machine is refused; group-writable is the operator's choice.
func TestWritableByAnyone(t *testing.T) {
	inConfigDir(t)
	if err := os.WriteFile("airlock.yaml", []byte(quickstartYAML()), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load("airlock.yaml"); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod("policies", 0o775); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod("airlock.yaml", 0o660); err != nil {
		t.Fatal(err)
	}
	if _, err := Load("airlock.yaml"); err != nil {
		t.Fatalf("group-writable: %v", err)
	}

	if err := os.Chmod("policies", 0o1777); err != nil {
		t.Fatal(err)
	}
	_, err := Load("airlock.yaml")
	if err == nil || !strings.Contains(err.Error(), "policies: ") || !strings.Contains(err.Error(), "may be written by anyone (mode drwxrwxrwx)") {
		t.Fatalf("world-writable policies directory: %v", err)
	}
	if err := os.Chmod("policies", 0o755); err != nil {
		t.Fatal(err)
	}

	if err := os.Chmod("airlock.yaml", 0o666); err != nil {
		t.Fatal(err)
	}
	_, err = Load("airlock.yaml")
	if err == nil || !strings.HasPrefix(err.Error(), "airlock.yaml: ") || !strings.Contains(err.Error(), "may be written by anyone (mode -rw-rw-rw-)") {
		t.Fatalf("world-writable airlock.yaml: %v", err)
	}
}
