package cli

import (
	"context"
	"log/slog"
	"os/signal"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/mcpserver"
)

func (a *app) mcpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "mcp",
		Short: "Serve the agent's Airlock tools over MCP on stdio",
		Long: `mcp runs an MCP (Model Context Protocol) server on standard input and output for an
agent host, acting as the identity of $AIRLOCK_TOKEN against $AIRLOCK_ADDR. An agent gets
the tools list_targets, request_access, grant_status, end_grant, run_with_grant and
sql_query, and its grants as resources (airlock://grants/{id}); a person's key gets the
read-only ones. No tool result carries a grant's secret. Logs go to stderr.

The same server (without run_with_grant) is served over streamable HTTP at /mcp on the
API listener, with the key as a bearer token.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := need(a.getenv(EnvToken), "$"+EnvToken); err != nil {
				return err
			}
			logger := slog.New(slog.NewTextHandler(a.errOut, nil))
			// A host stops its server with a signal (SIGTERM after closing
			// stdin; Ctrl-C in a terminal). Killed by it, this process
			// would leave a command run_with_grant started (in a process
			// group of its own) running with the grant's credentials; the
			// signal instead ends every call, and the commands with them.
			// A second signal kills as before.
			ctx, stop := signal.NotifyContext(cmd.Context(), forwarded...)
			defer stop()
			context.AfterFunc(ctx, stop)
			srv, err := mcpserver.New(ctx, a.client(), mcpserver.Options{Logger: logger, AllowRun: true, Stop: ctx, ClientCert: a.clientCert()})
			if err != nil {
				return describe(err)
			}
			// mcpserver's transport answers a line it cannot take with a
			// JSON-RPC error and reads on, where the SDK's ended the session.
			err = srv.Run(ctx, &mcpserver.StdioTransport{Logger: logger})
			if ctx.Err() != nil && cmd.Context().Err() == nil {
				return nil // stopped by a signal
			}
			return err
		},
	}
}
