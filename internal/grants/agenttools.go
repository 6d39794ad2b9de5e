package grants

import (
	"context"
	"errors"
	"sort"
	"strings"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/store"
)

// These reads and the command record serve agents that discover what to ask
// for and act under a grant without a person's help (the MCP tools of
// internal/mcpserver, through GET /v1/targets, GET /v1/grants/{id}/approvers
// and POST /v1/grants/{id}/commands).

// TargetInfo is one configured target as a caller may see it, with the
// permit policies that could allow the caller's requests on it.
type TargetInfo struct {
	Name    string          `json:"name"`
	Kind    string          `json:"kind"`
	Account string          `json:"account"`
	Permits []policy.Permit `json:"permits"`
}

// Targets lists the configured targets, by name, each with the permit
// policies that match the caller. Targets no policy permits the caller to
// request are left out for an agent (it could not get a grant on them);
// a person sees all.
func (s *Service) Targets(ctx context.Context, caller model.Identity) ([]TargetInfo, error) {
	set := s.pol.Current()
	out := []TargetInfo{}
	for _, t := range s.targets {
		ps := set.Permitted(principalOf(caller), policy.Target{Name: t.Name, Account: t.Account})
		if len(ps) == 0 && caller.Kind != model.Human {
			continue
		}
		if ps == nil {
			ps = []policy.Permit{}
		}
		out = append(out, TargetInfo{Name: t.Name, Kind: t.Kind, Account: t.Account, Permits: ps})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Approvers names the people an approve policy lets decide the caller's
// pending grant id (empty once it is decided, or once the policies in
// force no longer permit the request). It tells a waiting agent whom
// it waits for; it reveals nothing about grants the caller may not see.
func (s *Service) Approvers(ctx context.Context, caller model.Identity, id string) ([]string, error) {
	g, err := s.st.Grant(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !canSee(caller, g.Identity)) {
		return nil, apierr.NotFound("no grant %s", apierr.Quote(id))
	}
	if err != nil {
		return nil, err
	}
	out := []string{}
	if g.Status != model.Pending || s.stillPermitted(g) != nil {
		// Decided, or no longer permitted by the policies in force:
		// nobody can approve it (Approve would refuse).
		return out, nil
	}
	ids, err := s.st.Identities(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range ids {
		if p.Kind != model.Human || p.Disabled {
			continue
		}
		if _, _, err := s.mayDecide(p, g, "approve"); err == nil {
			out = append(out, p.Name)
		}
	}
	return out, nil
}

// MaxCommandLength bounds a recorded command line.
const MaxCommandLength = 4096

// Where a recorded command was run from (grant.command's "via"), as
// the holder's client says, as it says the command line itself: a claim,
// which the server cannot check (airlock mcp and airlock exec run the
// command on the holder's machine and call the API like any client).
const (
	CommandViaAPI  = "api"  // a direct caller of the API: the client said nothing
	CommandViaMCP  = "mcp"  // airlock mcp's run_with_grant
	CommandViaExec = "exec" // airlock exec
)

// Where a command's record reached the server (grant.command's
// "endpoint"), as the server saw it, beside the client's "via":
// CommandViaAPI for the API's route from the network, CommandViaMCP for a
// call this server's /mcp endpoint made to its own API in process
// (ThroughMCPEndpoint). Entries written before it have no endpoint.
type endpointKey struct{}

// ThroughMCPEndpoint marks ctx as a request this server's /mcp endpoint
// makes to its own API in process: a network client cannot set it, as it
// could a header or the body's "via".
func ThroughMCPEndpoint(ctx context.Context) context.Context {
	return context.WithValue(ctx, endpointKey{}, CommandViaMCP)
}

// CommandEndpoint returns where a request with ctx reached the server:
// CommandViaMCP when ThroughMCPEndpoint marked it, else CommandViaAPI.
func CommandEndpoint(ctx context.Context) string {
	if e, ok := ctx.Value(endpointKey{}).(string); ok {
		return e
	}
	return CommandViaAPI
}

// RecordCommand writes a command the holder runs under its active grant
// (an MCP run_with_grant, airlock exec) into the log, before the command
// runs: the grant's record says what was run with its credentials, in the
// holder's words (less the secrets redactCommand takes out), beside what
// the gateway saw, and through what as the client says (via:
// CommandViaMCP, CommandViaExec, or "" for CommandViaAPI; another value is
// refused) and as the server saw it (CommandEndpoint). hide are more
// secrets to take out wherever they appear: the caller's own API key,
// which the API sees and the log must not.
func (s *Service) RecordCommand(ctx context.Context, caller model.Identity, id string, argv []string, via string, hide ...string) error {
	if len(argv) == 0 || argv[0] == "" {
		return apierr.Invalid("argv", "a command is required")
	}
	switch via {
	case "":
		via = CommandViaAPI
	case CommandViaMCP, CommandViaExec:
	default:
		return apierr.Invalid("via", "%s is not where a command is run from; want %s or %s, or none", apierr.Quote(via), CommandViaMCP, CommandViaExec)
	}
	n := 0
	for _, a := range argv {
		n += len(a) + 1
		if strings.ContainsRune(a, 0) {
			return apierr.Invalid("argv", "arguments may not contain NUL")
		}
	}
	if n > MaxCommandLength {
		return apierr.Invalid("argv", "command line longer than %d bytes", MaxCommandLength)
	}
	g, err := s.st.Grant(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && g.Identity != caller.Name) {
		return apierr.NotFound("no grant %s of yours", apierr.Quote(id))
	}
	if err != nil {
		return err
	}
	if g.Status != model.Active || !s.now().Before(g.ExpiresAt) {
		return apierr.Conflict("grant %s is %s; commands run only under an active grant", id, g.Status)
	}
	// The grant's own secret and other recognisable secrets never reach
	// the log (commandredact.go).
	argv = redactCommand(argv, append([]string{s.secretFor(g.CredentialID), s.sessionTokenFor(g.CredentialID)}, hide...)...)
	// As for Credentials, not logged after an end committed since the
	// read above.
	err = s.appendWhileActive(ctx, g.ID, fromCaller(auditlog.Event{Type: "grant.command", Time: s.now(), GrantID: g.ID, Actor: caller.Name,
		Data: map[string]any{"argv": argv, "via": via, "endpoint": CommandEndpoint(ctx)}}, caller))
	if errors.Is(err, auditlog.ErrGrantEnded) {
		return apierr.Conflict("grant %s has ended; commands run only under an active grant", id)
	}
	if err != nil {
		return s.logErr("the command", err)
	}
	return nil
}
