package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestUnknownSubcommandIsAUsageError: a mistyped subcommand of a command
// that only groups others (`airlock grant shw g_…`, `airlock audit verfy`)
// printed that command's help and exited 0, so a script's typo passed for
// success; a mistyped top-level command said "(and 4 more problems; see
// above)" with nothing above. Each is now one line naming the command, with
// the suggestion, and exit 2, before anything is sent.
func TestUnknownSubcommandIsAUsageError(t *testing.T) {
	env := []string{EnvAddr + "=http://127.0.0.1:1", EnvToken + "=k"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"grant", "shw", "g_x"}, `unknown command "shw" for "airlock grant" (did you mean "show"?)`},
		{[]string{"session", "shw", "s_x"}, `unknown command "shw" for "airlock session" (did you mean "show"?)`},
		{[]string{"audit", "verfy"}, `unknown command "verfy" for "airlock audit" (did you mean "verify"?)`},
		{[]string{"agent", "lst"}, `unknown command "lst" for "airlock agent" (did you mean "list"?)`},
		{[]string{"completion", "bsh"}, `unknown command "bsh" for "airlock completion" (did you mean "bash"?)`},
		{[]string{"grnts", "--day", "2026-12-01"}, `unknown command "grnts" for "airlock" (did you mean "grants"?)`},
		{[]string{"frobnicate"}, `unknown command "frobnicate" for "airlock"`},
	} {
		code, out, errOut := run(t, env, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.want) ||
			strings.Count(errOut, "\n") != 1 || strings.Contains(errOut, "see above") {
			t.Errorf("%v: exit %d, want 2 and one line with %q\nstdout: %q\nstderr: %q", tc.args, code, tc.want, out, errOut)
		}
	}
	// A grouping command alone still shows its subcommands, as --help does.
	for _, args := range [][]string{{"grant"}, {"audit"}, {}} {
		code, out, errOut := run(t, env, args...)
		if code != 0 || !strings.Contains(out, "Available Commands:") || errOut != "" {
			t.Errorf("%v: exit %d, want 0 and the help\nstdout: %q\nstderr: %q", args, code, out, errOut)
		}
	}
}

// TestUnknownHelpTopicIsAUsageError: `airlock help grnts` printed "Unknown
// help topic" and the root's help and exited 0, and `airlock help grant
// shw` showed the grant group's help as if it had found shw; each is now a
// usage error (exit 2) of one line with the suggestion, as an unknown
// subcommand is. A known topic still shows its help.
func TestUnknownHelpTopicIsAUsageError(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"help", "grnts"}, `unknown help topic "grnts" for "airlock" (did you mean "grants"?); see airlock --help`},
		{[]string{"help", "frobnicate"}, `unknown help topic "frobnicate" for "airlock"; see airlock --help`},
		{[]string{"help", "grant", "shw"}, `unknown help topic "shw" for "airlock grant" (did you mean "show"?); see airlock grant --help`},
		{[]string{"help", "audit", "verfy"}, `unknown help topic "verfy" for "airlock audit" (did you mean "verify"?)`},
	} {
		code, out, errOut := run(t, nil, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, want 2 and one line with %q\nstdout: %q\nstderr: %q", tc.args, code, tc.want, out, errOut)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"help"}, "Available Commands:"},
		{[]string{"help", "grants"}, "airlock grants"},
		{[]string{"help", "grant", "show"}, "airlock grant show GRANT"},
		{[]string{"help", "grant", "show", "g_1"}, "airlock grant show GRANT"},
		{[]string{"help", "audit"}, "verify"},
	} {
		code, out, errOut := run(t, nil, tc.args...)
		if code != 0 || !strings.Contains(out, tc.want) || errOut != "" {
			t.Errorf("%v: exit %d, want 0 and the help with %q\nstdout: %q\nstderr: %q", tc.args, code, tc.want, out, errOut)
		}
	}
}

// TestMissingArgumentNamesTheUsage: cobra's "accepts 1 arg(s), received 0"
// did not say what was missing (airlock request without TARGET, airlock
// exec without the command); the reason now ends with the usage line.
func TestMissingArgumentNamesTheUsage(t *testing.T) {
	env := []string{EnvAddr + "=http://127.0.0.1:1", EnvToken + "=k"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"request", "--allow", "s3:GetObject arn:aws:s3:::logs/*", "--for", "10m", "--reason", "x"}, "usage: airlock request TARGET --allow"},
		{[]string{"exec", "aws-prod", "--allow", "s3:GetObject arn:aws:s3:::logs/*", "--for", "10m", "--reason", "x"}, "usage: airlock exec TARGET --allow 'ACTIONS RESOURCE' [--allow …] --for 10m --reason \"…\" [--wait-timeout D] -- CMD [ARG…]\n"},
		{[]string{"grant", "show"}, "usage: airlock grant show GRANT\n"},
		{[]string{"audit", "verify-bundle", "--key", "k.pub"}, "usage: airlock audit verify-bundle FILE --key PUB [--origin O]\n"},
	} {
		code, out, errOut := run(t, env, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, want 2 and one line with %q\nstdout: %q\nstderr: %q", tc.args, code, tc.want, out, errOut)
		}
	}
}

// TestNoArgumentsExpected: `airlock serve airlock.yaml` (--config
// forgotten) said `unknown command "airlock.yaml" for "airlock serve"`, as
// if serve had subcommands; a command that takes no arguments now says so,
// with its usage line.
func TestNoArgumentsExpected(t *testing.T) {
	env := []string{EnvAddr + "=http://127.0.0.1:1", EnvToken + "=k"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "airlock.yaml"}, `airlock serve takes no arguments, got "airlock.yaml"; usage: airlock serve --config airlock.yaml`},
		{[]string{"pending", "all"}, `airlock pending takes no arguments, got "all"; usage: airlock pending`},
		{[]string{"audit", "verify", "./airlock-data"}, `airlock audit verify takes no arguments, got "./airlock-data"; usage: airlock audit verify`},
	} {
		code, out, errOut := run(t, env, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 || strings.Contains(errOut, "unknown command") {
			t.Errorf("%v: exit %d, want 2 and one line with %q\nstdout: %q\nstderr: %q", tc.args, code, tc.want, out, errOut)
		}
	}
}

// TestServeEmptyFlag: an empty --data-dir or --listen-* (a variable unset
// in a replica's start script: --data-dir "$DIR") meant "the file's
// setting", so the replica ran on the shared data_dir or another's
// address; it is a usage error before anything is read.
func TestServeEmptyFlag(t *testing.T) {
	for _, flag := range []string{"--data-dir", "--listen-api", "--listen-aws", "--listen-postgres", "--config"} {
		code, out, errOut := run(t, nil, "serve", "--config", "no-such-airlock.yaml", flag, " ")
		if want := "airlock: " + flag + " is empty; give a value, or leave the flag out\n"; code != 2 || out != "" || errOut != want {
			t.Errorf("serve %s '': exit %d, want 2 and %q\nstdout: %q\nstderr: %q", flag, code, want, out, errOut)
		}
	}
}

// TestServeBadListenFlag: a --listen-* value that is no address
// (--listen-api 8700, a port out of range, two flags on one address) came
// back from the configuration's checks as the file's problem and exited 1;
// it is a usage error (exit 2) naming the flag, found before the
// configuration file is read (here there is none).
func TestServeBadListenFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--listen-api", "8700"}, `airlock: --listen-api: "8700" is not host:port (e.g. 127.0.0.1:8700)` + "\n"},
		{[]string{"--listen-aws", "127.0.0.1:99999"}, `airlock: --listen-aws: port in "127.0.0.1:99999" must be a number from 0 to 65535` + "\n"},
		{[]string{"--listen-api", "0.0.0.0:9000", "--listen-postgres", "127.0.0.1:9000"},
			`airlock: --listen-postgres: "127.0.0.1:9000" collides with --listen-api ("0.0.0.0:9000"); each listener needs its own address` + "\n"},
		{[]string{"--listen-api", "x", "--listen-aws", "y:z"},
			`airlock: --listen-api: "x" is not host:port (e.g. 127.0.0.1:8700); --listen-aws: port in "y:z" must be a number from 0 to 65535` + "\n"},
	} {
		code, out, errOut := run(t, nil, append([]string{"serve", "--config", filepath.Join(t.TempDir(), "none.yaml")}, tc.args...)...)
		if code != 2 || out != "" || errOut != tc.want {
			t.Errorf("serve %q: exit %d, want 2 and %q\nstdout: %q\nstderr: %q", tc.args, code, tc.want, out, errOut)
		}
	}
}

// TestAuditVerifyEmptyFlag: `airlock audit verify --key "$PINNED"` with
// the variable unset verified against the data directory's own key and
// exited 0, dropping the pinning the caller asked for; likewise an empty
// --witness, --witness-key, --data-dir or --config. Each is now a usage
// error before anything is read or asked.
func TestAuditVerifyEmptyFlag(t *testing.T) {
	env := []string{EnvAddr + "=http://127.0.0.1:1", EnvToken + "=k"}
	for _, args := range [][]string{
		{"--key", ""}, {"--witness", " "}, {"--data-dir", ""}, {"--config", ""},
		{"--key", "k.pub", "--witness", "w", "--witness-key", ""},
	} {
		code, out, errOut := run(t, env, append([]string{"audit", "verify"}, args...)...)
		if want := "airlock: " + args[len(args)-2] + " is empty; give a value, or leave the flag out\n"; code != 2 || out != "" || errOut != want {
			t.Errorf("audit verify %q: exit %d, want 2 and %q\nstdout: %q\nstderr: %q", args, code, want, out, errOut)
		}
	}
}

// TestReviewEmptyFilter: `airlock grants --account "$ACCT" --day "$DAY"`
// with a variable unset dropped that filter, so a review (or its CSV
// export) held every account's or every day's grants; `findings --day ""`
// listed every day. An empty filter is now a usage error.
func TestReviewEmptyFilter(t *testing.T) {
	env := []string{EnvAddr + "=http://127.0.0.1:1", EnvToken + "=k"}
	for _, args := range [][]string{
		{"grants", "--account", "", "--day", "2026-12-01"},
		{"grants", "--account", "111122223333", "--day", ""},
		{"grants", "--target", ""}, {"grants", "--identity", " "}, {"grants", "--status", ""},
		{"grants", "--since", "", "--until", "2026-12-02"},
		{"findings", "--day", ""},
	} {
		flag := ""
		for i, a := range args {
			if i+1 < len(args) && strings.TrimSpace(args[i+1]) == "" {
				flag = a
			}
		}
		code, out, errOut := run(t, env, args...)
		if want := "airlock: " + flag + " is empty; give a value, or leave the flag out\n"; code != 2 || out != "" || errOut != want {
			t.Errorf("%q: exit %d, want 2 and %q\nstdout: %q\nstderr: %q", args, code, want, out, errOut)
		}
	}
}

// TestRequestEmptyExtends: `--extends "$GRANT"` with the variable unset
// asked for a grant of its own, not an extension (which revoking the
// extended grant ends too); it is a usage error.
func TestRequestEmptyExtends(t *testing.T) {
	env := []string{EnvAddr + "=http://127.0.0.1:1", EnvToken + "=k"}
	code, out, errOut := run(t, env, "request", "aws-prod", "--allow", "s3:GetObject arn:aws:s3:::logs/*", "--for", "10m", "--reason", "r", "--extends", "")
	if want := "airlock: --extends is empty; give a value, or leave the flag out\n"; code != 2 || out != "" || errOut != want {
		t.Errorf("exit %d, want 2 and %q\nstdout: %q\nstderr: %q", code, want, out, errOut)
	}
}

// TestServeStoreDownIsNotAConfigProblem: pgx reports a failed connection
// on several lines (one per address or TLS mode it tried), and serve took
// any error of several lines for the file's problems: a store that was
// down printed "invalid configuration; refusing to start". Only the file's
// problems say so now; any other error is one line, its causes included.
func TestServeStoreDownIsNotAConfigProblem(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "airlock.yaml")
	// Port 1 refuses at once; without sslmode pgx tries TLS, then not.
	if err := os.WriteFile(cfg, []byte("data_dir: ./data\npolicies: ./policies\nlisten: {api: 127.0.0.1:0}\nstore: postgres://airlock@127.0.0.1:1/airlock\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, nil, "serve", "--config", cfg)
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || strings.Contains(errOut, "invalid configuration") ||
		!strings.Contains(errOut, "connection refused") {
		t.Errorf("exit %d, want 1 and one line naming the refused connection\nstdout: %q\nstderr: %q", code, out, errOut)
	}
}

// TestUsageLinesNameEveryFlag: each command's usage line (the first line
// of --help, and what a usage error ends with) names every flag the
// command takes, and no flag it does not. `airlock request` left out
// --wait-timeout and --extends, `exec` --wait-timeout, `serve` --debug and
// `demo` --dir and --keep; `audit verify` showed --data-dir and --config
// as alternatives ("|") though they are taken together (--config's keys,
// --data-dir's directory); and `grants` showed --since and --until as a
// pair though each is taken alone.
func TestUsageLinesNameEveryFlag(t *testing.T) {
	a := &app{getenv: func(string) string { return "" }}
	named := regexp.MustCompile(`--([a-z][a-z-]*)`)
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
		if !cmd.Runnable() || cmd.Name() == "help" || cmd.HasParent() && cmd.Parent().Name() == "completion" {
			return
		}
		inUse := map[string]bool{}
		for _, m := range named.FindAllStringSubmatch(cmd.Use, -1) {
			inUse[m[1]] = true
			if cmd.Flags().Lookup(m[1]) == nil && cmd.InheritedFlags().Lookup(m[1]) == nil {
				t.Errorf("%s: the usage line names --%s, which it does not take: %s", cmd.CommandPath(), m[1], cmd.Use)
			}
		}
		cmd.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name != "help" && !f.Hidden && !inUse[f.Name] {
				t.Errorf("%s: the usage line leaves out --%s: %s", cmd.CommandPath(), f.Name, cmd.Use)
			}
		})
	}
	walk(a.root())

	for _, tc := range []struct {
		cmd, wrong string
	}{
		// Not alternatives: both are taken at once.
		{"audit verify", "--data-dir DIR | --config FILE"},
		// Not a pair: each is taken alone.
		{"grants", "--since T --until T"},
	} {
		cmd, _, err := a.root().Find(strings.Fields(tc.cmd))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(cmd.Use, tc.wrong) {
			t.Errorf("airlock %s: the usage line says %q: %s", tc.cmd, tc.wrong, cmd.Use)
		}
	}
}
