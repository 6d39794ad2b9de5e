// Package cli implements the airlock command line. Each command is a thin
// layer over the HTTP client (or, for serve and demo, over the server
// package); output is a table for people, or JSON/CSV with -o.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/httpapi"
)

// Env names the CLI reads.
const (
	EnvAddr  = "AIRLOCK_ADDR"
	EnvToken = "AIRLOCK_TOKEN"
)

type app struct {
	out, errOut io.Writer
	output      string
	getenv      func(string) string
}

// Main runs the CLI with args and returns the process exit code: 0 on
// success, 1 when the command failed, 2 for a usage error.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{out: stdout, errOut: stderr, getenv: getenv}
	root := a.root()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	if cmd != nil && isArgCountError(err) {
		// cobra's "accepts 1 arg(s), received 0" does not say which
		// argument is missing: the usage line does.
		err = usagef("%s; usage: %s", err, useLine(cmd))
	}
	var ue usageError
	var ee exitError
	switch {
	case errors.As(err, &ee):
		if ee.msg != "" {
			linef(stderr, "airlock: %s", ee.msg)
		}
		return ee.code
	case errors.As(err, &ue) || isFlagError(err):
		linef(stderr, "airlock: %s", oneLine(suggestion(err.Error())))
		return 2
	}
	// Error messages carry what the server (and through it, other users)
	// sent: linef escapes their control characters.
	linef(stderr, "airlock: %s", oneLine(err.Error()))
	return 1
}

// usageError marks bad command-line input (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// exitError carries a specific exit code and message.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func isFlagError(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "unknown flag") || strings.HasPrefix(s, "unknown shorthand flag") ||
		strings.HasPrefix(s, "invalid argument") || strings.Contains(s, "flag needs an argument") ||
		strings.HasPrefix(s, "unknown command") || strings.HasPrefix(s, "accepts ") || strings.HasPrefix(s, "requires ") ||
		strings.Contains(s, "required flag")
}

// noArgs is cobra.NoArgs with a reason that fits a command taking none:
// cobra's `unknown command "airlock.yaml" for "airlock serve"` (for
// `airlock serve airlock.yaml`, --config forgotten) reads as a mistyped
// subcommand of a command that has none.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	return usagef("%s takes no arguments, got %q; usage: %s", cmd.CommandPath(), args[0], useLine(cmd))
}

// useLine is the command's usage line without cobra's " [flags]".
func useLine(cmd *cobra.Command) string {
	return strings.TrimSuffix(cmd.UseLine(), " [flags]")
}

// isArgCountError reports whether err is cobra's complaint about the number
// of positional arguments (cobra.ExactArgs, MinimumNArgs).
func isArgCountError(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "accepts ") || strings.HasPrefix(s, "requires ")
}

// subcommandsOnly makes a command that only groups others (airlock grant,
// audit, …) refuse an unknown subcommand. Left to cobra, such a command
// printed its help and exited 0 for `airlock grant shw g_…` or `airlock
// audit verfy`, so a script's typo passed for success; and cobra's own
// error for the root (`airlock grnts`) ends in a multi-line suggestion,
// which the one-line reason cut into "(and 4 more problems; see above)"
// with nothing above (see suggestion). The command alone still prints its
// help.
func subcommandsOnly(cmd *cobra.Command) {
	cmd.SuggestionsMinimumDistance = 2 // cobra's default, which SuggestionsFor does not apply
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf(" (did you mean %q?)", s[0])
		}
		return usagef("%s; see %s --help", msg, c.CommandPath())
	}
	cmd.RunE = func(c *cobra.Command, args []string) error { return c.Help() }
}

// helpTopics makes `airlock help TOPIC` refuse a topic that is no command.
// cobra's help command printed "Unknown help topic" and the root's help,
// and exited 0, for `airlock help grnts`; for `airlock help grant shw` it
// showed the grant group's help as if shw had been found. Like an unknown
// subcommand (subcommandsOnly), it is now a usage error with the
// suggestion.
func helpTopics(help *cobra.Command) {
	run := help.Run
	help.Run = nil
	help.RunE = func(c *cobra.Command, args []string) error {
		cmd, rest, err := c.Root().Find(args)
		var word string
		switch {
		case err != nil || cmd == nil:
			// Only the root's lookup fails: its first word is unknown.
			cmd, word = c.Root(), args[0]
		case len(rest) > 0 && cmd.HasSubCommands():
			word = rest[0]
		default:
			// A command, or a command and its arguments (help grant
			// show g_1): its help.
			run(c, args)
			return nil
		}
		msg := fmt.Sprintf("unknown help topic %q for %q", word, cmd.CommandPath())
		if cmd.SuggestionsMinimumDistance <= 0 {
			cmd.SuggestionsMinimumDistance = 2 // cobra's default, which SuggestionsFor does not apply
		}
		if s := cmd.SuggestionsFor(word); len(s) > 0 {
			msg += fmt.Sprintf(" (did you mean %q?)", s[0])
		}
		return usagef("%s; see %s --help", msg, cmd.CommandPath())
	}
}

// suggestion turns the block cobra appends to an unknown command
// ("\n\nDid you mean this?\n\tgrants\n") into one line's worth; oneLine
// would have cut it into "(and 4 more problems; see above)", with nothing
// above.
func suggestion(s string) string {
	msg, names, ok := strings.Cut(s, "\n\nDid you mean this?\n")
	if !ok {
		return s
	}
	if f := strings.Fields(names); len(f) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", f[0])
	}
	return msg + "; see airlock --help"
}

// oneLine keeps failures to the one line the contract promises. What
// follows the first line is counted, not pointed to: it used to say
// "(and 2 more problems; see above)" with nothing above. Commands whose
// errors come as several problems (serve's and audit verify's
// configuration) print them all first.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		more := "1 more line"
		if rest := strings.Count(s[i:], "\n"); rest > 1 {
			more = fmt.Sprintf("%d more lines", rest)
		}
		s = s[:i] + " (and " + more + ", not shown)"
	}
	return s
}

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:           "airlock",
		Short:         "Just-in-time, recorded access for AI agents",
		Long:          "Airlock grants agents scoped, time-boxed access through its gateway, approved by policy or a person,\nand records every step in a tamper-evident log.\n\nClients reach the server at $AIRLOCK_ADDR (default http://127.0.0.1:8700) with the key in $AIRLOCK_TOKEN.\nFrom another machine use https://HOST:PORT, trusting the server's data_dir/ca.pem through $AIRLOCK_CA.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&a.output, "output", "o", "table", "output format: table, json or csv (csv: grants only)")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		switch a.output {
		case "table", "json":
			return nil
		case "csv":
			// Only the review query has a CSV form; elsewhere -o csv
			// printed the table as if it had been honoured.
			if cmd.CommandPath() == "airlock grants" {
				return nil
			}
			return usagef("-o csv is for airlock grants only; use -o json or the default table")
		}
		return usagef("-o %q: want table, json or csv", a.output)
	}
	root.AddCommand(
		a.serveCmd(), a.demoCmd(), a.keygenCmd(), a.whoamiCmd(),
		a.requestCmd(), a.credentialsCmd(), a.execCmd(), a.endCmd(),
		a.pendingCmd(), a.approveCmd(), a.denyCmd(), a.revokeCmd(),
		a.grantsCmd(), a.grantCmd(), a.sessionCmd(), a.auditCmd(), a.agentCmd(),
		a.mcpCmd(),
		a.findingsCmd(), a.serverKeysCmd(),
	)
	// cobra adds `completion` (a group of one command per shell) only as
	// it executes; added now, it refuses `airlock completion bsh` too.
	root.InitDefaultCompletionCmd()
	root.InitDefaultHelpCmd()
	for _, c := range root.Commands() {
		if c.Name() == "help" {
			helpTopics(c)
		}
	}
	var groups func(*cobra.Command)
	groups = func(c *cobra.Command) {
		// The root is left to cobra, which finds an unknown command
		// before it parses flags (`airlock grnts --day D` is an unknown
		// command, not an unknown flag); Main tidies its message.
		if c.HasParent() && c.HasSubCommands() && !c.Runnable() {
			subcommandsOnly(c)
		}
		for _, sub := range c.Commands() {
			groups(sub)
		}
	}
	groups(root)
	return root
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (a *app) table() *tabwriter.Writer {
	return tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
}

// ts formats a time for tables: UTC, to the second.
func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// describe turns an API error into the CLI's one-line reason.
func describe(err error) error {
	var ae *apierr.Error
	if errors.As(err, &ae) && ae.Field != "" {
		return fmt.Errorf("%s: %s", ae.Field, ae.Message)
	}
	return err
}

// dayFlag checks a --day value as the server reads it (a UTC date,
// YYYY-MM-DD), so that a malformed one is a usage error (exit 2) said
// before any request, not a command that failed (exit 1).
func dayFlag(cmd *cobra.Command, v string) error {
	if v == "" {
		return nil
	}
	if _, err := time.Parse("2006-01-02", v); err != nil {
		return usagef("--day: %s is not a date (YYYY-MM-DD, UTC); see %s --help", apierr.Quote(v), cmd.CommandPath())
	}
	return nil
}

// requestFlags checks request's and exec's --allow, --for and --reason as
// the server reads them (grants.CheckRequestInput), so that a malformed
// one is a usage error (exit 2) said before any request, not a command
// that failed (exit 1). What depends on the server (the target and the
// actions its kind takes, the duration's cap, a required reason) is left
// to the request.
func requestFlags(cmd *cobra.Command, in grants.RequestInput) error {
	return fieldUsage(cmd, grants.CheckRequestInput(in), func(field string) string {
		var i int
		if n, _ := fmt.Sscanf(field, "scope[%d]", &i); n == 1 && i >= 0 && i < len(in.Scope) {
			return "--allow " + apierr.Quote(in.Scope[i])
		}
		return map[string]string{"scope": "--allow", "duration": "--for", "reason": "--reason"}[field]
	})
}

// checkTextFlag checks a reason or comment as the server does whatever its
// configuration (grants.CheckText): one too long or holding a control
// character is a usage error (exit 2), said before any request.
func checkTextFlag(cmd *cobra.Command, flag, v string) error {
	return fieldUsage(cmd, grants.CheckText(flag, v), func(string) string { return "--" + flag })
}

// fieldUsage is err, a refusal by one of the server's own checks made
// before asking, as a usage error said of the flag or argument that set
// its field (flagOf; the field itself where that names none). Any other
// error is returned as it is.
func fieldUsage(cmd *cobra.Command, err error, flagOf func(field string) string) error {
	var ae *apierr.Error
	if err == nil || !errors.As(err, &ae) {
		return err
	}
	flag := flagOf(ae.Field)
	if flag == "" {
		flag = ae.Field
	}
	return usagef("%s: %s; see %s --help", flag, ae.Message, cmd.CommandPath())
}

// plainValues refuses, as the server refuses every path value and query
// parameter (httpapi.Plain), a value that holds a control character or is
// not UTF-8: no grant or session id, identity, target or account can hold
// one. It is a usage error (exit 2) said before any request, not a
// command that failed (exit 1). nameValues are pairs: the flag or
// argument (--account, GRANT) and its value.
func plainValues(cmd *cobra.Command, nameValues ...string) error {
	for i := 0; i+1 < len(nameValues); i += 2 {
		if v := nameValues[i+1]; !httpapi.Plain(v) {
			return usagef("%s: %s holds a control character or is not UTF-8; see %s --help", nameValues[i], apierr.Quote(v), cmd.CommandPath())
		}
	}
	return nil
}

// plainArg is cobra.ExactArgs(1) for a command whose one argument, name
// (GRANT, NAME), is a path value of its request: one that holds a
// control character or is not UTF-8 is refused as plainValues does.
func plainArg(name string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(1)(cmd, args); err != nil {
			return err
		}
		return plainValues(cmd, name, args[0])
	}
}

// flagReason is an API refusal of a query parameter said as of the flag
// that set it (day → --day).
func flagReason(err error) string {
	var ae *apierr.Error
	if errors.As(err, &ae) && ae.Field != "" {
		return "--" + ae.Field + ": " + ae.Message
	}
	return err.Error()
}

func need(v, flag string) error {
	if strings.TrimSpace(v) == "" {
		return usagef("%s is required", flag)
	}
	return nil
}

// emptyFlag refuses any of the named flags given with an empty (or blank)
// value, as `--key "$PINNED"` with the variable unset gives. For these
// flags an empty value means "not given", which would quietly do
// something other than what the caller asked for.
func emptyFlag(cmd *cobra.Command, names ...string) error {
	for _, name := range names {
		f := cmd.Flags().Lookup(name)
		if f == nil || !f.Changed {
			continue
		}
		vals := []string{f.Value.String()}
		if sv, ok := f.Value.(interface{ GetSlice() []string }); ok { // repeatable flags
			vals = sv.GetSlice()
		}
		for _, v := range vals {
			if strings.TrimSpace(v) == "" {
				return usagef("--%s is empty; give a value, or leave the flag out", name)
			}
		}
	}
	return nil
}

// positiveWait checks --wait-timeout: given, it must be positive. A zero
// or negative value used to mean "no limit" (the default), so that
// --wait-timeout -1s waited until the request's decision deadline.
func positiveWait(cmd *cobra.Command, d time.Duration) error {
	if cmd.Flags().Changed("wait-timeout") && d <= 0 {
		return usagef("--wait-timeout must be a positive duration (such as 90s or 10m), got %s", cmd.Flags().Lookup("wait-timeout").Value)
	}
	return nil
}

func init() {
	cobra.EnableCommandSorting = false
}

// exitf fails the command with a code and message.
func exitf(code int, format string, args ...any) error {
	return exitError{code: code, msg: fmt.Sprintf(format, args...)}
}
