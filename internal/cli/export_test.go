package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/textesc"
	"github.com/spf13/cobra"
)

// TestEveryCommandHasHelp runs `--help` on every command of the tree. A
// flag of a command's own that clashes with an inherited one (a shorthand
// taken twice) makes pflag panic the moment the command's flags are
// merged, so the command could never run at all: `audit export`'s -o did.
func TestEveryCommandHasHelp(t *testing.T) {
	a := &app{}
	var walk func(c *cobra.Command, path []string)
	n := 0
	walk = func(c *cobra.Command, path []string) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			p := append(append([]string(nil), path...), sub.Name())
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("airlock %s --help panicked: %v", strings.Join(p, " "), r)
					}
				}()
				if code, _, errOut := run(t, nil, append(p, "--help")...); code != 0 {
					t.Errorf("airlock %s --help: exit %d: %s", strings.Join(p, " "), code, errOut)
				}
			}()
			n++
			walk(sub, p)
		}
	}
	walk(a.root(), nil)
	if n < 20 {
		t.Fatalf("walked %d commands: the test does not see the tree", n)
	}
}

// TestAuditExportWritesABundle: `airlock audit export -o FILE`, as
// DESIGN.md and the README write it, writes the bundle to FILE, and
// `airlock audit verify-bundle` proves it against the server's key.
func TestAuditExportWritesABundle(t *testing.T) {
	l := startServer(t, nil)
	ctx := context.Background()
	bot := client.New("http://"+l.apiAddr, l.botKey)
	g, err := bot.Request(ctx, grants.RequestInput{Target: "aws-prod", Scope: []string{"s3:ListBucket arn:aws:s3:::logs/app/*"}, Duration: "10m", Reason: "bundle"})
	if err != nil || g.Status != model.Active {
		t.Fatalf("request: %v (%s)", err, g.Status)
	}
	day := time.Now().UTC().Format("2006-01-02")
	file := filepath.Join(t.TempDir(), "review.json")
	code, out, errOut := l.as(l.aliceKey, "audit", "export", "--account", "111122223333", "--day", day, "-o", file)
	if code != 0 {
		t.Fatalf("audit export: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "wrote "+file) {
		t.Errorf("audit export says %q", out)
	}
	b, err := os.ReadFile(file)
	if err != nil || !strings.Contains(string(b), g.ID) {
		t.Fatalf("the bundle (%d bytes, %v) does not hold grant %s", len(b), err, g.ID)
	}
	// The long form too; and no file named after the format by default.
	file2 := filepath.Join(t.TempDir(), "review2.json")
	if code, _, errOut := l.as(l.aliceKey, "audit", "export", "--account", "111122223333", "--day", day, "--output", file2); code != 0 {
		t.Fatalf("audit export --output: exit %d: %s", code, errOut)
	}
	if code, _, errOut := l.as(l.aliceKey, "audit", "export", "--account", "111122223333", "--day", day); code != 2 || !strings.Contains(errOut, "-o is required") {
		t.Fatalf("audit export without -o: exit %d: %s", code, errOut)
	}
	code, out, errOut = run(t, nil, "audit", "verify-bundle", file, "--key", filepath.Join(l.dataDir, "log-signing.pub"))
	if code != 0 {
		t.Fatalf("verify-bundle: exit %d: %s%s", code, out, errOut)
	}
}

// TestAuditExportRefusesABadDay: a day that is not a date is the caller's
// mistake, said as such (a usage error, exit 2, the reason on stderr, no
// file); it was "airlock: internal error" and a 500, the reason only in the
// server's log, and then exit 1, a command that failed.
func TestAuditExportRefusesABadDay(t *testing.T) {
	l := startServer(t, nil)
	file := filepath.Join(t.TempDir(), "review.json")
	code, _, errOut := l.as(l.aliceKey, "audit", "export", "--account", "111122223333", "--day", "2026-12-40", "-o", file)
	if code != 2 || !strings.Contains(errOut, `"2026-12-40" is not a date (YYYY-MM-DD, UTC)`) || strings.Contains(errOut, "internal") {
		t.Fatalf("audit export --day 2026-12-40: exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a file was written: %v", err)
	}
}

// TestVerifyBundleOutput: verify-bundle prints a bundle's rows escaped (a
// reason is the agent's text), and says whether the bundle's entry list is
// signed: a v3 bundle's is; a v2 bundle (exported by the previous release,
// ../evidence/testdata) still verifies, with a warning on stderr, in -o
// json too, that its list is not signed.
func TestVerifyBundleOutput(t *testing.T) {
	l := startServer(t, nil)
	ctx := context.Background()
	bot := client.New("http://"+l.apiAddr, l.botKey)
	g, err := bot.Request(ctx, grants.RequestInput{Target: "aws-prod", Scope: []string{"s3:ListBucket arn:aws:s3:::logs/app/*"}, Duration: "10m", Reason: hostile})
	if err != nil || g.Status != model.Active {
		t.Fatalf("request: %v (%s)", err, g.Status)
	}
	day := time.Now().UTC().Format("2006-01-02")
	file := filepath.Join(t.TempDir(), "review.json")
	if code, _, errOut := l.as(l.aliceKey, "audit", "export", "--account", "111122223333", "--day", day, "-o", file); code != 0 {
		t.Fatalf("audit export: exit %d: %s", code, errOut)
	}
	pub := filepath.Join(l.dataDir, "log-signing.pub")
	code, out, errOut := run(t, nil, "audit", "verify-bundle", file, "--key", pub)
	if code != 0 || errOut != "" || !strings.Contains(out, "the signed statement lists every one") || !strings.Contains(out, textesc.String(hostile)) {
		t.Fatalf("verify-bundle: exit %d:\n%s%s", code, out, errOut)
	}
	checkTerminalSafe(t, "verify-bundle", out)

	v2 := filepath.Join("..", "evidence", "testdata", "bundle-v2.json")
	v2pub := filepath.Join("..", "evidence", "testdata", "bundle-v2.pub")
	code, out, errOut = run(t, nil, "audit", "verify-bundle", v2, "--key", v2pub, "--origin", "airlock/0123abcd")
	if code != 0 || !strings.Contains(out, "OK: 1 grant(s)") || !strings.Contains(out, "NOT signed") ||
		!strings.HasPrefix(errOut, "WARNING this is a airlock-evidence-bundle/v2 bundle") {
		t.Fatalf("verify-bundle of a v2 bundle: exit %d:\n%s%s", code, out, errOut)
	}
	code, out, errOut = run(t, nil, "-o", "json", "audit", "verify-bundle", v2, "--key", v2pub, "--origin", "airlock/0123abcd")
	if code != 0 || !strings.Contains(out, `"entries_signed": false`) || !strings.HasPrefix(errOut, "WARNING ") {
		t.Fatalf("verify-bundle -o json of a v2 bundle: exit %d:\n%s%s", code, out, errOut)
	}
}

// TestAuditExportRefusesAControlCharacterInTheAccount: an account with a
// control character is the caller's mistake, said as such (a usage error,
// exit 2); it was a 500 and "airlock: internal error" once the whole log
// had been walked, and then the server's 400, exit 1.
func TestAuditExportRefusesAControlCharacterInTheAccount(t *testing.T) {
	l := startServer(t, nil)
	file := filepath.Join(t.TempDir(), "review.json")
	code, _, errOut := l.as(l.aliceKey, "audit", "export", "--account", "1111\x1b[2K22223333", "--day", "2026-12-01", "-o", file)
	if code != 2 || !strings.Contains(errOut, "account: ") || !strings.Contains(errOut, "holds a control character") || strings.Contains(errOut, "internal") {
		t.Fatalf("audit export with a control character in --account: exit %d, stderr %q", code, errOut)
	}
	checkTerminalSafe(t, "audit export", errOut)
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("a file was written: %v", err)
	}
}

// TestMalformedFilterIsAUsageError: a --day, --since, --until or --status
// the server could not read is refused by the CLI itself as a usage error
// (exit 2, as README's exit codes say), with the server's own reason; it
// was sent, refused, and reported as a failed command (exit 1).
func TestMalformedFilterIsAUsageError(t *testing.T) {
	l := startServer(t, nil)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"grants", "--day", "2026-13-01"}, `--day: "2026-13-01" is not a date (YYYY-MM-DD, UTC)`},
		{[]string{"grants", "--since", "yesterday"}, `--since: "yesterday" is not a time`},
		{[]string{"grants", "--since", "2026-11-25", "--until", "soon"}, `--until: "soon" is not a time`},
		{[]string{"grants", "--since", "2026-11-26", "--until", "2026-11-25"}, "--until: must be after since"},
		{[]string{"grants", "--status", "actvie"}, `--status: unknown status "actvie"`},
		{[]string{"findings", "--day", "25/11/2026"}, `--day: "25/11/2026" is not a date (YYYY-MM-DD, UTC)`},
	} {
		code, out, errOut := l.as(l.aliceKey, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errOut, tc.want)
		}
	}
	// A well-formed filter still reaches the server and answers.
	if code, _, errOut := l.as(l.aliceKey, "grants", "--day", "2026-11-25", "--status", "active"); code != 0 {
		t.Fatalf("grants --day 2026-11-25: exit %d: %s", code, errOut)
	}
}
