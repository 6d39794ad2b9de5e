// Package mcpserver is Airlock's MCP server: the tools an LLM-based agent
// uses to ask for access, wait for it, act under it and give it up
// (list_targets, request_access, grant_status, end_grant, run_with_grant,
// sql_query) and its grants as resources (airlock://grants/{id}).
//
// It is a client of Airlock's own API (internal/client) with the caller's
// bearer token, so every tool is authorized exactly as the same call through
// the API or the CLI is. `airlock mcp` serves it on stdio with the agent's
// AIRLOCK_TOKEN; Handler serves it over streamable HTTP at /mcp, calling
// the API in process with each request's own bearer token.
//
// No tool result, error or log line carries a grant's secret, session token
// or password: the credentials are fetched inside the tool, used, and
// scrubbed from whatever the command run under them prints.
package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/credenv"
	"github.com/airlock-dev/airlock/internal/model"
)

// Options configures a server.
type Options struct {
	// Version is reported to clients.
	Version string
	// Logger gets one line per tool call (tool, grant, outcome; never a
	// secret). Nil discards.
	Logger *slog.Logger
	// AllowRun offers run_with_grant. It is true for `airlock mcp` on the
	// agent's own machine, and false over HTTP: the command would run on
	// the control plane's host, which holds the upstream credentials.
	AllowRun bool
	// MaxWait caps wait_seconds (default 10 minutes).
	MaxWait time.Duration
	// DialPostgres, if set, opens sql_query's connection to the
	// PostgreSQL gateway instead of dialing the grant's endpoint: over
	// HTTP the control plane connects on the agent's behalf and names the
	// agent to its gateway. ErrNotRelayed means dial as usual.
	DialPostgres func(ctx context.Context) (net.Conn, error)
	// ClientCert is the agent's TLS client certificate (`airlock mcp`:
	// AIRLOCK_CLIENT_CERT, AIRLOCK_CLIENT_KEY), presented to the
	// PostgreSQL gateway by sql_query and by the commands run_with_grant
	// runs (credenv.Env), so that their sessions are the agent's instance.
	// Over HTTP the server holds no agent's key: the relay names the
	// certificate the agent presented to /mcp instead (DialPostgres).
	ClientCert credenv.ClientCert
	// Stop, if set, cancels every call in flight once it is done: a
	// command run_with_grant started is killed, a query or a wait ends.
	// `airlock mcp` cancels it on SIGTERM, SIGINT or SIGHUP, so that a
	// host stopping the server leaves no command running on with a
	// grant's credentials (the SDK cancels calls when stdin closes, not
	// when the server is told to stop, and waits for them).
	Stop context.Context
}

// ErrNotRelayed is DialPostgres's answer when it cannot relay (no
// PostgreSQL gateway in the process): sql_query dials the endpoint.
var ErrNotRelayed = errors.New("mcpserver: no relay to the PostgreSQL gateway")

// server is one MCP server acting as one identity.
type server struct {
	c      *client.Client
	who    model.Identity
	opts   Options
	logger *slog.Logger
}

// New returns an MCP server acting as c's identity. An agent gets every
// tool; a person gets the read-only ones (list_targets, grant_status) and
// the grant resources.
func New(ctx context.Context, c *client.Client, opts Options) (*mcp.Server, error) {
	who, err := c.WhoAmI(ctx)
	if err != nil {
		return nil, err
	}
	return newFor(c, who, opts), nil
}

func newFor(c *client.Client, who model.Identity, opts Options) *mcp.Server {
	if opts.MaxWait <= 0 {
		opts.MaxWait = maxWait
	}
	if opts.Version == "" {
		opts.Version = "dev"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			opts.Version = bi.Main.Version
		}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &server{c: c, who: who, opts: opts, logger: logger}
	// Name only tools this server offers: over HTTP there is no
	// run_with_grant, and an agent told to call it fails.
	act := "act with run_with_grant or sql_query"
	if !opts.AllowRun {
		act = "act with sql_query on PostgreSQL targets (on AWS targets, use the grant's credentials from your own machine: this server runs no commands)"
	}
	instructions := "Airlock grants you scoped, time-boxed access to infrastructure through its gateway; every call you make under a grant is recorded. " +
		"Call list_targets to see what you may ask for, request_access with the narrowest scope and shortest duration your task needs and an honest reason, " +
		"then " + act + ", and end_grant when done. You never see the grant's secrets."
	if who.Kind != model.Agent {
		instructions = "You are signed in as a person (" + who.Name + "): only read-only tools are offered. Approvals happen through the Airlock CLI or console."
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "airlock", Title: "Airlock", Version: opts.Version},
		&mcp.ServerOptions{Instructions: instructions, Capabilities: &mcp.ServerCapabilities{}})
	srv.AddReceivingMiddleware(recoverPanics(logger))
	if opts.Stop != nil {
		srv.AddReceivingMiddleware(stopWith(opts.Stop))
	}
	readOnly := &mcp.ToolAnnotations{ReadOnlyHint: true}
	mcp.AddTool(srv, &mcp.Tool{Name: "list_targets", Annotations: readOnly, Description: "List the targets (AWS accounts, PostgreSQL databases) you may request access to, " +
		"with their kind, account, and the policies that could grant you access: which actions, whether approval is automatic or needs a person, and whether conditions " +
		"(resource pattern, duration, reason) apply. Use it before request_access to choose a target and a scope policy can grant."}, s.listTargets)
	mcp.AddTool(srv, &mcp.Tool{Name: "grant_status", Annotations: readOnly, Description: "Show one grant: status (pending, active, expired, revoked, ended, denied, cancelled), " +
		"scope requested and granted, expiry, the policy decision, approvals and, while pending, who can approve it. With wait_seconds, waits up to that long for a pending grant to be decided."}, s.grantStatus)
	srv.AddResourceTemplate(&mcp.ResourceTemplate{Name: "grant", Title: "Airlock grant", URITemplate: "airlock://grants/{id}", MIMEType: "application/json",
		Description: "One grant's whole record (JSON): identity, target, scope requested and granted, times, decision, approvals, usage. An agent reads only its own grants."}, s.readGrant)
	if who.Kind == model.Agent {
		mcp.AddTool(srv, &mcp.Tool{Name: "request_access", Description: "Ask for a grant on a target. allow lists scope statements 'ACTIONS RESOURCE' in IAM style, " +
			"e.g. 's3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*' for AWS or 'pg:select orders.public.*' for PostgreSQL; a resource may end in * (prefix match). " +
			"duration is a Go duration (10m, 1h). Returns the grant id and status: active (use it now), pending (a person must approve: the result names who and until when), " +
			"or denied (with the policy's explanation). With wait_seconds, waits up to that long for a pending request to be decided."}, s.requestAccess)
		mcp.AddTool(srv, &mcp.Tool{Name: "end_grant", Annotations: &mcp.ToolAnnotations{IdempotentHint: true},
			Description: "Give up one of your grants now (active or pending), when the task is done. Its credentials stop working at once."}, s.endGrant)
		if opts.AllowRun {
			mcp.AddTool(srv, &mcp.Tool{Name: "run_with_grant", Description: "Run a command (argv, no shell) with an active grant's credentials in its environment, " +
				"as `airlock exec` does: for AWS targets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ENDPOINT_URL and AWS_REGION point any AWS CLI or SDK at the gateway; " +
				"for PostgreSQL targets PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE do the same for psql. The command line is recorded on the grant before it runs. " +
				"Returns the exit code, stdout and stderr (each at most 64 KiB, truncated with a note; secrets are replaced by [REDACTED])."}, s.runWithGrant)
		}
		mcp.AddTool(srv, &mcp.Tool{Name: "sql_query", OutputSchema: sqlOutputSchema, Description: "Run one SQL statement through Airlock's PostgreSQL gateway under an active grant on a postgres target, " +
			"and return the columns and rows (at most 1000 rows and about 1 MiB; truncated with a note; NaN and infinite floats and numeric values as strings). No COPY (SELECT to read, INSERT to write); a statement still running after 60 seconds is cancelled. Statements outside the grant's scope are refused by the gateway and recorded."}, s.sqlQuery)
	}
	return srv
}

// recoverPanics turns a panic in a handler into an error for that one
// call. The SDK runs each handler on a goroutine of its own, outside
// net/http's per-request recovery, so without this one malformed call
// over /mcp would take down the whole control plane. The panic's value
// is not logged (it may hold whatever the handler held), only its type
// and the stack.
func recoverPanics(logger *slog.Logger) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (res mcp.Result, err error) {
			defer func() {
				if v := recover(); v != nil {
					logger.Error("mcp: handler panicked", "method", method, "panic_type", fmt.Sprintf("%T", v), "stack", string(debug.Stack()))
					res, err = nil, fmt.Errorf("internal error in %s", method)
				}
			}()
			return next(ctx, method, req)
		}
	}
}

// stopWith cancels each call's context once stop is done.
func stopWith(stop context.Context) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			defer context.AfterFunc(stop, cancel)()
			return next(ctx, method, req)
		}
	}
}

// toolError is what a failed tool reports: the API's stable code and
// message (which never carry a secret), or the error text.
func toolError(err error) error {
	var ae *apierr.Error
	if errors.As(err, &ae) {
		msg := ae.Message
		if ae.Field != "" {
			msg = ae.Field + ": " + msg
		}
		if ae.Code != "" {
			return fmt.Errorf("%s (%s)", msg, ae.Code)
		}
		return errors.New(msg)
	}
	return err
}

// scrubber replaces secret values in text. Errors that may quote what a
// command or connection saw pass through it before they are logged or
// returned.
type scrubber []string

// Redacted replaces each secret in tool output.
const Redacted = "[REDACTED]"

func newScrubber(secrets ...string) scrubber {
	var s scrubber
	for _, v := range secrets {
		if len(v) >= 4 { // shorter values would blank out ordinary text
			s = append(s, v)
		}
	}
	return s
}

func (s scrubber) str(v string) string {
	for _, sec := range s {
		v = strings.ReplaceAll(v, sec, Redacted)
	}
	return v
}

// strs is each of vs scrubbed.
func (s scrubber) strs(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = s.str(v)
	}
	return out
}

func (s scrubber) err(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(s.str(toolError(err).Error()))
}

// trimPartial drops the longest proper prefix of a secret that v ends
// with, once: v was cut in one place, so at most one secret straddles the
// cut. (Trimming again would eat ordinary text that happens to end like a
// secret begins.)
func (s scrubber) trimPartial(v string) string {
	cut := 0
	for _, sec := range s {
		for k := min(len(sec)-1, len(v)); k > cut; k-- {
			if strings.HasSuffix(v, sec[:k]) {
				cut = k
				break
			}
		}
	}
	return v[:len(v)-cut]
}

// longest is the length of the longest secret.
func (s scrubber) longest() int {
	n := 0
	for _, v := range s {
		n = max(n, len(v))
	}
	return n
}
