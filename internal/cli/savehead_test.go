package cli

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/server"
)

// TestAuditVerifySaveHead: `audit verify --key PUB --save-head FILE` keeps
// the newest checkpoint a verification that passed covered, online and
// offline, and that file is the next run's --witness. Without --key it is
// a usage error (a head nobody checked against a pinned key is no anchor),
// and a verification that fails writes nothing.
func TestAuditVerifySaveHead(t *testing.T) {
	l := startServer(t, nil)
	pub := filepath.Join(l.dataDir, "log-signing.pub")
	dir := t.TempDir()
	if code, out, errOut := l.as(l.aliceKey, "audit", "verify", "--save-head", filepath.Join(dir, "nokey")); code != 2 || !strings.Contains(errOut, "--save-head needs --key") {
		t.Errorf("--save-head without --key: exit %d, want 2\n%s%s", code, out, errOut)
	}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"online", nil},
		{"offline", []string{"--data-dir", l.dataDir}},
	} {
		head := filepath.Join(dir, c.name+".head")
		args := append([]string{"audit", "verify", "--key", pub, "--save-head", head}, c.args...)
		code, out, errOut := l.as(l.aliceKey, args...)
		if code != 0 || !strings.Contains(out, "saved checkpoint (tree size ") {
			t.Fatalf("%s: exit %d\n%s%s", c.name, code, out, errOut)
		}
		b, err := os.ReadFile(head)
		if err != nil || !strings.Contains(string(b), "\n\n— ") {
			t.Fatalf("%s: the saved head is not a signed note: %v\n%s", c.name, err, b)
		}
		// The same file, as the README has it: checked, then replaced.
		args = append([]string{"audit", "verify", "--key", pub, "--witness", head, "--save-head", head}, c.args...)
		if code, out, errOut := l.as(l.aliceKey, args...); code != 0 || !strings.Contains(out, "the log extends it") || !strings.Contains(out, "saved checkpoint") {
			t.Fatalf("%s: the saved head as --witness: exit %d\n%s%s", c.name, code, out, errOut)
		}
	}

	db, err := sql.Open("sqlite", filepath.Join(l.dataDir, server.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE log_entries SET data = replace(data, '"actor":"config"', '"actor":"mallory"') WHERE seq = 0`); err != nil {
		t.Fatal(err)
	}
	failed := filepath.Join(dir, "failed.head")
	if code, out, errOut := l.as(l.aliceKey, "audit", "verify", "--key", pub, "--save-head", failed); code != 1 {
		t.Fatalf("a damaged log: exit %d, want 1\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(failed); !os.IsNotExist(err) {
		t.Fatalf("a verification that failed wrote --save-head: %v", err)
	}
}
