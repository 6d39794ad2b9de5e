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

	"github.com/airlock-dev/airlock/internal/credenv"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

func (a *app) execCmd() *cobra.Command {
	var allow []string
	var dur, reason string
	var waitFor time.Duration
	cmd := &cobra.Command{
		Use:   "exec TARGET --allow 'ACTIONS RESOURCE' [--allow …] --for 10m --reason \"…\" [--wait-timeout D] -- CMD [ARG…]",
		Short: "Request a grant, wait for it, run CMD with its credentials, end the grant when CMD exits",
		Long: `exec requests a grant exactly as 'airlock request --wait' does. Once it is active it
runs CMD with the grant's credentials and gateway address in its environment, as
'airlock credentials GRANT --format env' prints them: AIRLOCK_GRANT, and for aws targets
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ENDPOINT_URL, AWS_REGION,
AWS_DEFAULT_REGION and, with TLS from Airlock's CA, AWS_CA_BUNDLE; for postgres targets
PGUSER, PGPASSWORD, PGREQUIREAUTH=scram-sha-256, PGHOST, PGPORT, PGDATABASE, PGSSLMODE,
with TLS from Airlock's CA PGSSLROOTCERT, and with $AIRLOCK_CLIENT_CERT PGSSLCERT and
PGSSLKEY (PGSSLMODE then at least require, so that psql presents the certificate).
CMD's command line is written to the grant's log first (grant.command, "via": "exec",
without the grant's secrets, the caller's key and what looks like a secret); if it
cannot be, CMD does not run and the grant is ended. When CMD exits the grant is ended,
with CMD's exit status recorded, and exec exits with that status. SIGINT, SIGTERM,
SIGHUP and SIGQUIT withdraw the request while exec waits for approval, and are passed
on to CMD while it runs.
CMD does not get $AIRLOCK_TOKEN (it holds the grant, not the caller's key), nor the
variables that would send its client past the gateway: AWS_ENDPOINT_URL_<SERVICE> and
AWS_IGNORE_CONFIGURED_ENDPOINT_URLS for aws targets, PGHOSTADDR, PGSERVICE and
PGSERVICEFILE for postgres targets.`,
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
			if err := positiveWait(cmd, waitFor); err != nil {
				return err
			}
			if err := plainValues(cmd, "TARGET", args[0]); err != nil {
				return err
			}
			if err := requestFlags(cmd, grants.RequestInput{Scope: allow, Duration: dur, Reason: reason}); err != nil {
				return err
			}
			c := a.client()
			ctx := cmd.Context()
			g, err := c.Request(ctx, grants.RequestInput{Target: args[0], Scope: allow, Duration: dur, Reason: reason})
			if err != nil {
				return describe(err)
			}
			// From here until exec returns, a forwarded signal never takes
			// the default action (ending the process): the waits and CMD
			// below act on their own copies, and one that arrives while
			// exec gives the grant up (a second Ctrl-C, the terminal
			// closing after CMD exited) would otherwise kill exec before
			// the grant is ended, leaving it active until it expires.
			// The guard's channel is never read: signals beyond its
			// buffer are dropped, which is all it is for.
			guard := make(chan os.Signal, 1)
			signal.Notify(guard, forwarded...)
			defer signal.Stop(guard)
			// The request exists for CMD alone: whenever exec stops
			// before running it (it gave up waiting, was interrupted, or
			// could not get the credentials), it withdraws the request or
			// ends the grant, so that no approval given later leaves an
			// active grant that nothing holds.
			id := g.ID
			if g.Status == model.Pending {
				linef(a.errOut, "%s pending: waiting for an approver (airlock approve %s)", id, id)
				wctx, stop := interruptible(ctx)
				g, err = a.waitFor(wctx, id, waitFor)
				sig := stop()
				if sig != nil {
					a.giveUp(ctx, id, "interrupted ("+sig.String()+") while waiting for approval")
					return exitError{code: 128 + signalNumber(sig), msg: id + ": interrupted while waiting for approval"}
				}
				if err != nil {
					a.giveUp(ctx, id, "gave up waiting for approval: "+err.Error())
					return err
				}
			}
			if g.Status != model.Active {
				return a.printGrantStatus(g)
			}
			linef(a.errOut, "%s active until %s", id, ts(g.ExpiresAt))
			cr, err := c.Credentials(ctx, id)
			if err != nil {
				err = describe(err)
				a.giveUp(ctx, id, "could not get the credentials: "+err.Error())
				return err
			}
			// The command line is on the grant's record before CMD runs,
			// as run_with_grant's is ("via": "exec"): if it cannot be
			// recorded, CMD does not run. The server takes out the
			// grant's secrets, the caller's key and what looks like a
			// secret.
			if err := c.RecordCommand(ctx, id, args[1:], grants.CommandViaExec); err != nil {
				err = describe(err)
				a.giveUp(ctx, id, "could not record the command: "+err.Error())
				return err
			}
			caFile, err := writeCA(cr)
			if err != nil {
				a.giveUp(ctx, id, "could not write the gateway's CA certificate")
				return exitf(1, "%v", err)
			}
			cc := a.clientCert()
			if cc.Cert != "" && cr.TargetKind == "postgres" && cr.Endpoint != nil && cr.Endpoint.SSLMode == "disable" {
				// Not silently an instance without it (credenv.SSLModeFor).
				linef(a.errOut, "%s: the PostgreSQL gateway offers no TLS: the command presents no client certificate ($%s)", id, EnvClientCert)
			}
			status, runErr := a.run(ctx, args[1:], credentialEnv(cr, caFile, cc))
			a.giveUp(ctx, id, status)
			return runErr
		},
	}
	cmd.Flags().StringArrayVar(&allow, "allow", nil, "scope statement 'ACTIONS RESOURCE' (repeatable)")
	cmd.Flags().StringVar(&dur, "for", "", "how long the grant lasts once active (Go duration: 90s, 10m, 2h)")
	cmd.Flags().StringVar(&reason, "reason", "", "why the access is needed (the task)")
	cmd.Flags().DurationVar(&waitFor, "wait-timeout", 0, "give up waiting for approval after this long")
	return cmd
}

// giveUp ends grant id for exec (withdraws it while it is pending) with
// "airlock exec: why" as its comment. It uses a fresh context: an
// interrupted exec still gives the grant up.
func (a *app) giveUp(ctx context.Context, id, why string) {
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	g, err := a.client().End(endCtx, id, "airlock exec: "+why)
	switch {
	case err != nil:
		linef(a.errOut, "airlock: ending %s: %v", id, describe(err))
	case g.Status == model.Cancelled:
		linef(a.errOut, "%s withdrawn (%s)", id, why)
	default:
		linef(a.errOut, "%s %s (%s)", id, g.Status, why)
	}
}

// forwarded are the signals exec catches: while it waits for approval they
// withdraw the request, while CMD runs they are passed on to it. By default
// each would kill exec and leave the request pending or the grant active
// (a closed terminal's SIGHUP, Ctrl-\'s SIGQUIT).
var forwarded = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// interruptible returns a context that a forwarded signal cancels, and a
// function that stops listening and reports the signal that did, if any.
// Without it a Ctrl-C while exec waits for approval would kill the
// process before it could withdraw its request.
func interruptible(ctx context.Context) (context.Context, func() os.Signal) {
	ctx, cancel := context.WithCancel(ctx)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, forwarded...)
	got := make(chan os.Signal, 1)
	go func() {
		select {
		case s := <-sigs:
			got <- s
			cancel()
		case <-ctx.Done():
			got <- nil
		}
	}()
	return ctx, func() os.Signal {
		signal.Stop(sigs)
		cancel()
		return <-got
	}
}

// signalNumber is sig's number for a shell-style exit status (128+n).
func signalNumber(sig os.Signal) int {
	if s, ok := sig.(syscall.Signal); ok {
		return int(s)
	}
	return 2
}

// run runs argv with vars added to this process's environment (less
// AIRLOCK_TOKEN, see credenv.Environ), passing the forwarded signals on to
// it. It returns a description of how the command ended and an error
// carrying its exit status (nil for status 0).
func (a *app) run(ctx context.Context, argv []string, vars []envVar) (string, error) {
	c := exec.Command(argv[0], argv[1:]...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, a.out, a.errOut
	// The command gets the grant, not the caller's own key: without
	// AIRLOCK_TOKEN it cannot request more, or outlast the grant.
	cv := make([]credenv.Var, len(vars))
	for i, v := range vars {
		cv[i] = credenv.Var{Name: v.name, Value: v.value}
	}
	c.Env = credenv.Environ(os.Environ(), cv)
	if err := c.Start(); err != nil {
		return "command did not start: " + err.Error(), exitf(127, "%v", err)
	}
	// Every signal that would otherwise end exec without ending the grant
	// goes to the command instead; exec ends the grant when it exits.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, forwarded...)
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
