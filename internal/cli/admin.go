package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"strings"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/findings"
	"github.com/airlock-dev/airlock/internal/gcpolicy"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/procpolicy"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/textesc"
)

// applyGCPolicy and applyProcPolicy are serve's garbage collector and P
// policies; variables for the tests that serve, and only serve, applies
// them.
var (
	applyGCPolicy   = gcpolicy.Apply
	applyProcPolicy = procpolicy.Apply
)

func (a *app) serveCmd() *cobra.Command {
	var cfg string
	var debug bool
	var o config.Overrides
	cmd := &cobra.Command{
		Use:   "serve --config airlock.yaml [--listen-api ADDR] [--listen-aws ADDR] [--listen-postgres ADDR] [--data-dir DIR] [--debug]",
		Short: "Run the control plane (API) and the gateway listeners in the configuration",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// An empty value meant "the file's setting", so a replica
			// started with --data-dir "$DIR" and DIR unset ran on the
			// shared data_dir (or another replica's listener) unwarned.
			if err := emptyFlag(cmd, "config", "listen-api", "listen-aws", "listen-postgres", "data-dir"); err != nil {
				return err
			}
			// A listener flag that is no address is a usage error, found
			// before the file is read; it used to surface from the
			// configuration's checks and exit 1, as the file's fault.
			if err := o.Check(); err != nil {
				return usagef("%s", strings.ReplaceAll(err.Error(), "\n", "; "))
			}
			level := slog.LevelInfo
			if debug {
				level = slog.LevelDebug
			}
			logger := slog.New(slog.NewTextHandler(a.errOut, &slog.HandlerOptions{Level: level}))
			// For benchmarks (bench/README.md): where the server's CPU goes,
			// where a request waits, and what the heap holds at the end.
			for _, d := range []struct {
				env         string
				start, stop func(io.Writer) error
			}{
				{"AIRLOCK_CPUPROFILE", pprof.StartCPUProfile, func(io.Writer) error { pprof.StopCPUProfile(); return nil }},
				{"AIRLOCK_TRACE", trace.Start, func(io.Writer) error { trace.Stop(); return nil }},
				{"AIRLOCK_MEMPROFILE", func(io.Writer) error { return nil }, func(w io.Writer) error { return pprof.Lookup("heap").WriteTo(w, 0) }},
			} {
				if path := os.Getenv(d.env); path != "" {
					stop, err := diagnostic(d.env, path, d.start, d.stop)
					if err != nil {
						return err
					}
					defer func() {
						if err := stop(); err != nil {
							logger.Error(d.env, "err", err)
						}
					}()
				}
			}
			// The collector's policy, for the server alone: a floor under
			// the heap goal, unless GOGC or GOMEMLIMIT is set
			// (internal/gcpolicy).
			stopGC, applied := applyGCPolicy(a.getenv)
			defer stopGC()
			logger.Debug("gc policy", "heap_goal_floor", applied)
			// One P while the server needs much less than a core, the
			// runtime's default otherwise, unless GOMAXPROCS is set
			// (internal/procpolicy).
			stopProcs, adaptive := applyProcPolicy(a.getenv, logger)
			defer stopProcs()
			logger.Debug("gomaxprocs policy", "adaptive", adaptive)
			if err := server.Run(cmd.Context(), cfg, o, logger); err != nil {
				// Configuration problems come as several lines: print them all,
				// then the one-line summary.
				var problems *config.Errors
				if errors.As(err, &problems) && len(problems.List) > 1 {
					fmt.Fprintln(a.errOut, textesc.Text(err.Error()))
					return exitf(1, "invalid configuration; refusing to start")
				}
				// Other errors of several lines (pgx's, one line per
				// address it tried: the store is down) are not the
				// file's fault and used to be called an invalid
				// configuration; their lines are joined into the one
				// reason, whose cause is on the lines after the first.
				return errors.New(joinLines(err.Error()))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfg, "config", "airlock.yaml", "configuration file")
	cmd.Flags().BoolVar(&debug, "debug", false, "debug logging")
	// Replicas sharing one configuration file (store: postgres://…) on one
	// host each need their own addresses and data directory.
	cmd.Flags().StringVar(&o.ListenAPI, "listen-api", "", "listen for the API here instead of listen.api (host:port)")
	cmd.Flags().StringVar(&o.ListenAWS, "listen-aws", "", "run the AWS gateway here instead of listen.aws (host:port)")
	cmd.Flags().StringVar(&o.ListenPostgres, "listen-postgres", "", "run the PostgreSQL gateway here instead of listen.postgres (host:port)")
	cmd.Flags().StringVar(&o.DataDir, "data-dir", "", "use this data directory instead of data_dir")
	return cmd
}

func (a *app) keygenCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "Make a new API key; prints the key (give it to its owner) and the key_sha256 for airlock.yaml",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, sha := authn.NewKey()
			if a.output == "json" {
				return a.printJSON(map[string]string{"key": key, "key_sha256": sha})
			}
			fmt.Fprintf(a.out, "key:        %s\nkey_sha256: %s\n", key, sha)
			return nil
		},
	}
}

func (a *app) whoamiCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show the identity AIRLOCK_TOKEN authenticates as",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := a.client().WhoAmI(cmd.Context())
			if err != nil {
				return describe(err)
			}
			if a.output == "json" {
				return a.printJSON(id)
			}
			line := fmt.Sprintf("%s (%s", id.Name, id.Kind)
			if id.Owner != "" {
				line += ", owner " + id.Owner
			}
			if len(id.Groups) > 0 {
				line += ", groups " + strings.Join(id.Groups, ",")
			}
			linef(a.out, "%s)", line)
			if len(id.AuthMethods) > 0 {
				linef(a.out, "may authenticate by %s", strings.Join(id.AuthMethods, "; "))
			}
			if id.Auth != "" {
				from := ""
				if id.Instance != nil {
					from = " from " + findings.Describe(*id.Instance)
				}
				linef(a.out, "authenticated by %s%s", id.Auth, from)
			}
			return nil
		},
	}
}

func (a *app) agentCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "agent", Short: "Manage agent identities"}
	var owner, reason string
	var groups []string
	add := &cobra.Command{
		Use:   "add NAME --owner TEAM [--group G …]",
		Short: "Create an agent identity; prints its key once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := need(owner, "--owner"); err != nil {
				return err
			}
			// The server's own check of the names, made here first: a
			// malformed one is a usage error (exit 2). Whether the caller
			// may use that owner and those groups is the server's.
			if err := fieldUsage(cmd, grants.CheckAgentInput(args[0], owner, groups), func(field string) string {
				switch {
				case field == "name":
					return "NAME"
				case field == "owner":
					return "--owner"
				case strings.HasPrefix(field, "groups"):
					return "--group"
				}
				return ""
			}); err != nil {
				return err
			}
			r, err := a.client().AddAgent(cmd.Context(), httpapi.AgentInput{Name: args[0], Owner: owner, Groups: groups})
			if err != nil {
				return describe(err)
			}
			if a.output == "json" {
				return a.printJSON(r)
			}
			linef(a.out, "agent %s (owner %s) created", r.Identity.Name, r.Identity.Owner)
			linef(a.out, "key: %s", r.Key)
			fmt.Fprintln(a.errOut, "The key is shown this once; Airlock keeps only its SHA-256.")
			return nil
		},
	}
	add.Flags().StringVar(&owner, "owner", "", "owning team (also a group the agent is in)")
	add.Flags().StringArrayVar(&groups, "group", nil, "extra group (repeatable)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List identities",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := a.client().Identities(cmd.Context())
			if err != nil {
				return describe(err)
			}
			if a.output == "json" {
				return a.printJSON(ids)
			}
			w := a.table()
			fmt.Fprintln(w, "NAME\tKIND\tOWNER\tGROUPS\tSOURCE\tSTATUS\tCREATED\tAUTH")
			for _, id := range ids {
				st := "enabled"
				if id.Disabled {
					st = "disabled"
				}
				row(w, id.Name, id.Kind, dash(id.Owner), dash(strings.Join(id.Groups, ",")), id.Source, st, ts(id.CreatedAt), dash(strings.Join(id.AuthMethods, "; ")))
			}
			return w.Flush()
		},
	}
	disable := &cobra.Command{
		Use:   "disable NAME [--reason …]",
		Short: "Disable an agent and revoke its grants",
		Args:  plainArg("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkTextFlag(cmd, "reason", reason); err != nil {
				return err
			}
			id, err := a.client().DisableAgent(cmd.Context(), args[0], reason)
			if err != nil {
				return describe(err)
			}
			if a.output == "json" {
				return a.printJSON(id)
			}
			linef(a.out, "agent %s disabled", id.Name)
			return nil
		},
	}
	disable.Flags().StringVar(&reason, "reason", "", "why (recorded)")
	cmd.AddCommand(add, list, disable)
	return cmd
}

func (a *app) printReport(rep auditlog.Report) error {
	if a.output == "json" {
		if err := a.printJSON(rep); err != nil {
			return err
		}
	} else {
		linef(a.out, "entries %d, checkpoints %d, tree size %d, root %s, checked in %s", rep.Entries, rep.Checkpoints, rep.Size, rep.Root, rep.Elapsed)
		for _, p := range rep.Problems {
			loc := ""
			if p.Seq >= 0 {
				loc = fmt.Sprintf(" entry %d", p.Seq)
			}
			if p.Checkpoint > 0 {
				loc += fmt.Sprintf(" checkpoint %d", p.Checkpoint)
			}
			linef(a.out, "PROBLEM %s%s: %s", p.Kind, loc, p.Detail)
		}
		if rep.Journaled > 0 {
			// Not covered by any signed checkpoint: only the journal's seal,
			// under a key derived from the signing key (an earlier
			// release's frames: the credential key), vouches for them.
			linef(a.out, "NOTE %d entries are only in the journal, not yet signed: they are vouched for by the journal's seal alone (derived from the log signing key; frames an earlier release wrote, from the credential key), and the next start signs them", rep.Journaled)
		}
		if rep.OK {
			fmt.Fprintln(a.out, "OK: every entry matches the signed checkpoints")
		}
	}
	if !rep.OK {
		return exitf(1, "audit log verification FAILED: %d problem(s)", len(rep.Problems))
	}
	return nil
}

// diagnostic creates path and calls start with it; the returned function
// calls stop with it, then closes it. start begins a recording (a CPU
// profile, a trace), stop ends it or writes a snapshot (the heap).
func diagnostic(env, path string, start, stop func(io.Writer) error) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", env, err)
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", env, err)
	}
	return func() error {
		err := stop(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}, nil
}

// joinLines makes one line of a message of several: each line trimmed, the
// empty ones dropped, the rest joined with "; " (or a space after a line
// that ends in a colon, as pgx's heading does).
func joinLines(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		if b.Len() > 0 {
			if strings.HasSuffix(b.String(), ":") {
				b.WriteString(" ")
			} else {
				b.WriteString("; ")
			}
		}
		b.WriteString(l)
	}
	return b.String()
}
