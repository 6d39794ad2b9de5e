package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

func (a *app) execCmd() *cobra.Command {
	var allow []string
	var dur, reason string
	var waitFor time.Duration
	cmd := &cobra.Command{
		Use:   "exec TARGET --allow 'ACTIONS RESOURCE' [--allow …] --for 10m --reason \"…\" -- CMD [ARG…]",
		Short: "Request a grant, wait for it, run CMD with its credentials, end the grant when CMD exits",
		Long: `exec requests a grant exactly as 'airlock request --wait' does. Once it is active it
runs CMD with the grant's credentials and gateway address in its environment (for aws
targets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ENDPOINT_URL,
AWS_REGION and, with TLS from Airlock's CA, AWS_CA_BUNDLE; for postgres targets PGHOST,
PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE and PGSSLROOTCERT). When CMD exits the
grant is ended, with CMD's exit status recorded, and exec exits with that status.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return usagef("put the command after --: airlock exec TARGET --allow … --for 10m --reason … -- CMD")
			}
			if len(allow) == 0 {
				return usagef("--allow is required (for example --allow 's3:GetObject arn:aws:s3:::logs/app/*')")
			}
			if err := need(dur, "--for"); err != nil {
				return err
			}
			c := a.client()
			ctx := cmd.Context()
			g, err := c.Request(ctx, grants.RequestInput{Target: args[0], Scope: allow, Duration: dur, Reason: reason})
			if err != nil {
				return describe(err)
			}
			if g.Status == model.Pending {
				linef(a.errOut, "%s pending: waiting for an approver (airlock approve %s)", g.ID, g.ID)
				if g, err = a.waitFor(cmd, g.ID, waitFor); err != nil {
					return err
				}
			}
			if g.Status != model.Active {
				return a.printGrantStatus(g)
			}
			linef(a.errOut, "%s active until %s", g.ID, ts(g.ExpiresAt))
			cr, err := c.Credentials(ctx, g.ID)
			if err != nil {
				return describe(err)
			}
			caFile, err := writeCA(cr)
			if err != nil {
				return exitf(1, "%v", err)
			}
			status, runErr := a.run(ctx, args[1:], credentialEnv(cr, caFile))
			comment := "airlock exec: " + status
			// End with a fresh context: an interrupted exec still gives the
			// grant up.
			endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if _, err := c.End(endCtx, g.ID, comment); err != nil {
				linef(a.errOut, "airlock: ending %s: %v", g.ID, describe(err))
			} else {
				linef(a.errOut, "%s ended (%s)", g.ID, status)
			}
			return runErr
		},
	}
	cmd.Flags().StringArrayVar(&allow, "allow", nil, "scope statement 'ACTIONS RESOURCE' (repeatable)")
	cmd.Flags().StringVar(&dur, "for", "", "how long the grant lasts once active (Go duration: 90s, 10m, 2h)")
	cmd.Flags().StringVar(&reason, "reason", "", "why the access is needed (the task)")
	cmd.Flags().DurationVar(&waitFor, "wait-timeout", 0, "give up waiting for approval after this long")
	return cmd
}

// run runs argv with vars added to this process's environment, passing
// SIGINT and SIGTERM on to it. It returns a description of how the command
// ended and an error carrying its exit status (nil for status 0).
func (a *app) run(ctx context.Context, argv []string, vars []envVar) (string, error) {
	c := exec.Command(argv[0], argv[1:]...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, a.out, a.errOut
	c.Env = os.Environ()
	for _, v := range vars {
		c.Env = append(c.Env, v.name+"="+v.value)
	}
	if err := c.Start(); err != nil {
		return "command did not start: " + err.Error(), exitf(127, "%v", err)
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	for {
		select {
		case s := <-sigs:
			_ = c.Process.Signal(s)
		case <-ctx.Done():
			_ = c.Process.Signal(syscall.SIGTERM)
			ctx = context.Background()
		case err := <-done:
			var ee *exec.ExitError
			switch {
			case err == nil:
				return "command exited with status 0", nil
			case errors.As(err, &ee):
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					return fmt.Sprintf("command killed by signal %s", ws.Signal()), exitError{code: 128 + int(ws.Signal())}
				}
				code := ee.ExitCode()
				return fmt.Sprintf("command exited with status %d", code), exitError{code: code}
			default:
				return "command failed: " + err.Error(), exitf(1, "%v", err)
			}
		}
	}
}
