package cli

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/jsonlist"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
)

func (a *app) requestCmd() *cobra.Command {
	var allow []string
	var dur, reason, extends string
	var wait bool
	var waitFor time.Duration
	cmd := &cobra.Command{
		Use:   "request TARGET --allow 'ACTIONS RESOURCE' [--allow …] --for 10m --reason \"…\" [--wait [--wait-timeout D]] [--extends G]",
		Short: "Ask for a grant; prints the grant id and its status",
		Args:  plainArg("TARGET"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(allow) == 0 {
				return usagef("--allow is required (for example --allow 's3:GetObject arn:aws:s3:::logs/app/*')")
			}
			if err := need(dur, "--for"); err != nil {
				return err
			}
			if err := positiveWait(cmd, waitFor); err != nil {
				return err
			}
			// An empty --extends made an extension a grant of its own,
			// which revoking the grant it meant to extend leaves alone.
			if err := emptyFlag(cmd, "extends"); err != nil {
				return err
			}
			if err := plainValues(cmd, "--extends", extends); err != nil {
				return err
			}
			if cmd.Flags().Changed("wait-timeout") && !wait {
				// Without --wait nothing waits: the timeout would be
				// ignored, and the caller think it bounded something.
				return usagef("--wait-timeout applies only with --wait")
			}
			if err := requestFlags(cmd, grants.RequestInput{Scope: allow, Duration: dur, Reason: reason}); err != nil {
				return err
			}
			c := a.client()
			g, err := c.Request(cmd.Context(), grants.RequestInput{Target: args[0], Scope: allow, Duration: dur, Reason: reason, Extends: extends})
			if err != nil {
				return describe(err)
			}
			if wait && g.Status == model.Pending {
				linef(a.errOut, "%s pending: waiting for an approver (airlock approve %s)", g.ID, g.ID)
				g, err = a.waitFor(cmd.Context(), g.ID, waitFor)
				if err != nil {
					return err
				}
			}
			return a.printGrantStatus(g)
		},
	}
	cmd.Flags().StringArrayVar(&allow, "allow", nil, "scope statement 'ACTIONS RESOURCE' (repeatable)")
	cmd.Flags().StringVar(&dur, "for", "", "how long the grant lasts once active (Go duration: 90s, 10m, 2h)")
	cmd.Flags().StringVar(&reason, "reason", "", "why the access is needed (the task)")
	cmd.Flags().StringVar(&extends, "extends", "", "id of an active grant this request extends")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the request is approved, denied or cancelled")
	cmd.Flags().DurationVar(&waitFor, "wait-timeout", 0, "give up waiting after this long (default: until the request's decision deadline)")
	return cmd
}

// waitFor long-polls until the grant leaves pending.
func (a *app) waitFor(ctx context.Context, id string, max time.Duration) (model.Grant, error) {
	c := a.client()
	var deadline time.Time
	if max > 0 {
		deadline = time.Now().Add(max)
	}
	for {
		step := 30 * time.Second
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return model.Grant{}, exitf(1, "%s still pending after %s", id, max)
			}
			step = min(step, left)
		}
		g, err := c.Wait(ctx, id, step)
		if err != nil {
			return g, describe(err)
		}
		if g.Status != model.Pending {
			return g, nil
		}
	}
}

// printGrantStatus prints "g_… active" (or JSON) and fails for outcomes
// that leave the caller without access.
func (a *app) printGrantStatus(g model.Grant) error {
	if a.output == "json" {
		if err := a.printJSON(g); err != nil {
			return err
		}
	} else {
		line := g.ID + " " + string(g.Status)
		switch g.Status {
		case model.Active:
			line += " until " + ts(g.ExpiresAt)
		case model.Pending:
			line += " (decide by " + ts(g.DecideBy) + ")"
		}
		linef(a.out, "%s", line)
	}
	switch g.Status {
	case model.Denied:
		return exitf(1, "%s denied: %s", g.ID, g.EndComment)
	case model.Cancelled:
		return exitf(1, "%s cancelled: %s", g.ID, g.EndComment)
	}
	return nil
}

func (a *app) credentialsCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "credentials GRANT [--format env|json|process]",
		Short: "Print an active grant's gateway credentials",
		Args:  plainArg("GRANT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case "env", "json", "process":
			default:
				return usagef("--format %q: want env, json or process", format)
			}
			// -o json, which every listing and show command takes, asks
			// for JSON here too (it printed shell exports regardless).
			if a.output == "json" {
				if cmd.Flags().Changed("format") && format != "json" {
					return usagef("-o json and --format %s ask for different output; give one", format)
				}
				format = "json"
			}
			cr, err := a.client().Credentials(cmd.Context(), args[0])
			if err != nil {
				return describe(err)
			}
			switch format {
			case "json":
				return a.printJSON(cr)
			case "process":
				if cr.TargetKind != "aws" {
					return exitf(1, "--format process is AWS credential_process output; %s is a %s target (use --format env)", cr.Target, cr.TargetKind)
				}
				// AWS credential_process output, version 1.
				return a.printJSON(map[string]any{
					"Version": 1, "AccessKeyId": cr.AccessKeyID, "SecretAccessKey": cr.SecretAccessKey,
					"SessionToken": cr.SessionToken, "Expiration": cr.Expiration.UTC().Format(time.RFC3339),
				})
			}
			caFile, err := writeCA(cr)
			if err != nil {
				return exitf(1, "%v", err)
			}
			vars := credentialEnv(cr, caFile, a.clientCert())
			if err := checkEnvValues(vars); err != nil {
				return err
			}
			for _, v := range vars {
				fmt.Fprintf(a.out, "export %s=%s\n", v.name, shellQuote(v.value))
			}
			fmt.Fprintf(a.out, "# expires %s\n", cr.Expiration.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "env", "env (shell exports), json, or process (AWS credential_process)")
	return cmd
}

func (a *app) endCmd() *cobra.Command {
	var comment string
	cmd := &cobra.Command{
		Use:   "end GRANT [--comment …]",
		Short: "Give a grant up early (or withdraw a pending request)",
		Args:  plainArg("GRANT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkTextFlag(cmd, "comment", comment); err != nil {
				return err
			}
			g, err := a.client().End(cmd.Context(), args[0], comment)
			if err != nil {
				return describe(err)
			}
			return a.printDecided(g)
		},
	}
	cmd.Flags().StringVar(&comment, "comment", "", "why (recorded)")
	return cmd
}

func (a *app) printDecided(g model.Grant) error {
	if a.output == "json" {
		return a.printJSON(g)
	}
	linef(a.out, "%s %s", g.ID, g.Status)
	return nil
}

func (a *app) pendingCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pending",
		Short: "List the requests you may approve or deny",
		Long: "List the requests you may approve or deny, oldest first. Every one is listed: the server answers\n" +
			"1,000 at a time, and each page is printed as it comes (the table's columns are aligned within each\n" +
			"page; -o json is one array).",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if a.output == "json" {
				arr := jsonlist.Writer[model.Grant]{W: a.out}
				if err := a.client().Pending(cmd.Context(), arr.Add); err != nil {
					return describe(err)
				}
				return arr.Close()
			}
			header := true
			if err := a.client().Pending(cmd.Context(), func(gs []model.Grant) error {
				// One table per page, each aligned on its own (a
				// tabwriter holds every row until it is flushed); the
				// header once, on the first. A page may be empty.
				if len(gs) == 0 && !header {
					return nil
				}
				w := a.table()
				if header {
					fmt.Fprintln(w, "GRANT\tIDENTITY\tTARGET\tSCOPE\tFOR\tREASON\tREQUESTED\tDECIDE BY")
					header = false
				}
				for _, g := range gs {
					// An extension says so: approving it lengthens access
					// the holder already has.
					dur := g.Duration.String()
					if g.Extends != "" {
						dur += " more (extends " + g.Extends + ")"
					}
					row(w, g.ID, g.Identity, g.Target,
						strings.Join(g.RequestedScope.Strings(), "; "), dur, g.Reason, ts(g.RequestedAt), ts(g.DecideBy))
				}
				return w.Flush()
			}); err != nil {
				return describe(err)
			}
			return nil
		},
	}
}

func (a *app) decideCmd(verb, short, textFlag string, required bool) *cobra.Command {
	var text string
	cmd := &cobra.Command{
		Use:   verb + " GRANT " + map[bool]string{true: "--" + textFlag + " …", false: "[--" + textFlag + " …]"}[required],
		Short: short,
		Args:  plainArg("GRANT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if required {
				if err := need(text, "--"+textFlag); err != nil {
					return err
				}
			}
			if err := checkTextFlag(cmd, textFlag, text); err != nil {
				return err
			}
			c := a.client()
			var g model.Grant
			var err error
			switch verb {
			case "approve":
				g, err = c.Approve(cmd.Context(), args[0], text)
			case "deny":
				g, err = c.Deny(cmd.Context(), args[0], text)
			case "revoke":
				g, err = c.Revoke(cmd.Context(), args[0], text)
			}
			if err != nil {
				return describe(err)
			}
			return a.printDecided(g)
		},
	}
	cmd.Flags().StringVar(&text, textFlag, "", "recorded with the decision")
	return cmd
}

func (a *app) approveCmd() *cobra.Command {
	return a.decideCmd("approve", "Approve a pending request (never your own)", "comment", false)
}
func (a *app) denyCmd() *cobra.Command {
	return a.decideCmd("deny", "Deny a pending request", "reason", true)
}
func (a *app) revokeCmd() *cobra.Command {
	return a.decideCmd("revoke", "Cut an active grant off now", "reason", true)
}

// printGrantRows writes the review table (its header if header): one row
// per grant with the five answers (review.TableCells).
func printGrantRows(w *tabwriter.Writer, rows []review.Row, header bool) error {
	if header {
		fmt.Fprintln(w, review.TableHeader)
	}
	for _, r := range rows {
		cells := review.TableCells(r)
		anys := make([]any, len(cells))
		for i, c := range cells {
			anys[i] = c
		}
		row(w, anys...)
	}
	return w.Flush()
}

func (a *app) grantsCmd() *cobra.Command {
	var account, target, identity, status, day, since, until string
	cmd := &cobra.Command{
		Use:   "grants [--account A] [--target T] [--identity I] [--status S,…] [--day YYYY-MM-DD | [--since T] [--until T]]",
		Short: "The review query: one row per grant with the five answers",
		Long: "The review query: one row per grant with the five answers. Every matching grant is listed: the server\n" +
			"answers 1,000 at a time, and each page is printed as it comes (the table's columns are aligned within\n" +
			"each page; -o csv and -o json are one file).",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// An empty filter was no filter: `--account "$ACCT"` with the
			// variable unset reviewed (and exported) every account.
			if err := emptyFlag(cmd, "account", "target", "identity", "status", "day", "since", "until"); err != nil {
				return err
			}
			if day != "" && (since != "" || until != "") {
				return usagef("use --day or --since/--until, not both")
			}
			if err := plainValues(cmd, "--account", account, "--target", target, "--identity", identity,
				"--status", status, "--day", day, "--since", since, "--until", until); err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"account": account, "target": target, "identity": identity, "status": status, "day": day, "since": since, "until": until} {
				if v != "" {
					q.Set(k, v)
				}
			}
			// The server's own reading of the query, made here first:
			// a malformed --day, --since or --status is the caller's
			// mistake (exit 2), not a command that failed (exit 1).
			if _, err := httpapi.ParseGrantsQuery(q); err != nil {
				return usagef("%s; see %s --help", flagReason(err), cmd.CommandPath())
			}
			// The server answers a page at a time; every page is
			// printed as it comes, so that the CLI holds one page, not
			// every grant of the query.
			var unproven []review.Row
			each := func(print func([]review.Row) error) error {
				return a.client().Grants(cmd.Context(), q, func(gs []model.Grant) error {
					rows := make([]review.Row, len(gs))
					for i, g := range gs {
						rows[i] = review.FromGrant(g)
						if len(rows[i].LogMismatch) > 0 {
							unproven = append(unproven, rows[i])
						}
					}
					return print(rows)
				})
			}
			// A row the log does not prove fails the command in every
			// format: machine output too holds the database's answers,
			// the difference only in its log_mismatch field, and a script
			// (or a spreadsheet) would take them as the review's. The
			// warnings go to stderr there, leaving the output parseable.
			switch a.output {
			case "json":
				arr := jsonlist.Writer[review.Row]{W: a.out}
				if err := each(arr.Add); err != nil {
					return describe(err)
				}
				if err := arr.Close(); err != nil {
					return err
				}
				return a.warnUnproven(a.errOut, unproven)
			case "csv":
				w := csv.NewWriter(a.out)
				w.Write(review.Header)
				if err := each(func(rows []review.Row) error {
					for _, r := range rows {
						w.Write(r.Record())
					}
					w.Flush()
					return w.Error()
				}); err != nil {
					return describe(err)
				}
				return a.warnUnproven(a.errOut, unproven)
			}
			header := true
			if err := each(func(rows []review.Row) error {
				// One table per page, each aligned on its own (a
				// tabwriter holds every row until it is flushed).
				err := printGrantRows(a.table(), rows, header)
				header = false
				return err
			}); err != nil {
				return describe(err)
			}
			return a.warnUnproven(a.out, unproven)
		},
	}
	f := cmd.Flags()
	f.StringVar(&account, "account", "", "AWS account id or environment label")
	f.StringVar(&target, "target", "", "target name")
	f.StringVar(&identity, "identity", "", "identity name")
	f.StringVar(&status, "status", "", "comma-separated statuses (pending,active,expired,revoked,ended,denied,cancelled)")
	f.StringVar(&day, "day", "", "grants live at any time on this UTC day (YYYY-MM-DD)")
	f.StringVar(&since, "since", "", "grants live at or after this time: RFC 3339, YYYY-MM-DD, or that long before now (90m, 1h, 7d)")
	f.StringVar(&until, "until", "", "grants live before this time: RFC 3339, YYYY-MM-DD, or that long before now (30m)")
	return cmd
}
