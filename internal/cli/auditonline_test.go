package cli

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/server"
)

// TestAuditVerifyOnlinePinnedKeyDamagedLog: `airlock audit verify --key`
// against a server whose stored log was changed behind its back lists the
// problems the server's check found, and that no consistency proof could
// be had, and exits 1. It printed only "internal error": the proof request
// that follows the check failed, and that failure hid the report.
func TestAuditVerifyOnlinePinnedKeyDamagedLog(t *testing.T) {
	l := startServer(t, nil)
	pub := filepath.Join(l.dataDir, "log-signing.pub")
	witness, err := os.ReadFile(filepath.Join(l.dataDir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	wpath := filepath.Join(t.TempDir(), "checkpoint.copy")
	if err := os.WriteFile(wpath, witness, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := l.as(l.aliceKey, "audit", "verify", "--key", pub, "--witness", wpath); code != 0 {
		t.Fatalf("before any change: exit %d\n%s%s", code, out, errOut)
	}

	// Someone with write access to the database changes an entry.
	db, err := sql.Open("sqlite", filepath.Join(l.dataDir, server.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Exec(`UPDATE log_entries SET data = replace(data, '"actor":"config"', '"actor":"mallory"') WHERE seq = 0`)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("changed %d entries", n)
	}

	for _, args := range [][]string{
		{"audit", "verify", "--key", pub},
		{"audit", "verify", "--key", pub, "--witness", wpath},
	} {
		code, out, errOut := l.as(l.aliceKey, args...)
		t.Logf("%v: exit %d\n%s%s", args, code, out, errOut)
		if code != 1 {
			t.Errorf("%v: exit %d, want 1", args, code)
		}
		for _, want := range []string{
			"PROBLEM modified entry 0: entry 0 does not hash to the leaf hash stored with it",
			"PROBLEM checkpoint-mismatch: the server did not prove that",
			"no proof can be built from the log",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: output lacks %q", args, want)
			}
		}
		if strings.Contains(out+errOut, "internal error") {
			t.Errorf("%v: output says internal error", args)
		}
	}
}
