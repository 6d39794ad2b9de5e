package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/model"
)

// maxWait bounds wait_seconds: a tool call should not hang for longer.
const maxWait = 10 * time.Minute

// Target is one target in list_targets.
type Target struct {
	Name    string   `json:"name" jsonschema:"the target's name, as request_access takes it"`
	Kind    string   `json:"kind" jsonschema:"aws (AWS APIs such as S3 through the AWS gateway) or postgres (a database through the PostgreSQL gateway)"`
	Account string   `json:"account" jsonschema:"the AWS account id or environment label the target belongs to"`
	Permits []Permit `json:"permits" jsonschema:"the policies that could grant you access to this target"`
}

// Permit is a policy that could grant a request.
type Permit struct {
	Policy      string   `json:"policy" jsonschema:"the policy id"`
	Actions     []string `json:"actions" jsonschema:"actions it may allow, such as s3:GetObject or pg:select; * means any action"`
	Approval    string   `json:"approval" jsonschema:"auto: granted at once; human: a person must approve"`
	Conditional bool     `json:"conditional" jsonschema:"true when the policy also limits resources, duration or reason, so not every request for these actions is granted"`
}

// ListTargetsInput takes nothing.
type ListTargetsInput struct{}

// ListTargetsOutput is list_targets' result.
type ListTargetsOutput struct {
	Targets []Target `json:"targets" jsonschema:"the targets, by name"`
}

func (s *server) listTargets(ctx context.Context, _ *mcp.CallToolRequest, _ ListTargetsInput) (*mcp.CallToolResult, ListTargetsOutput, error) {
	ts, err := s.c.Targets(ctx)
	if err != nil {
		return nil, ListTargetsOutput{}, s.fail("list_targets", "", err)
	}
	out := ListTargetsOutput{Targets: []Target{}}
	for _, t := range ts {
		o := Target{Name: t.Name, Kind: t.Kind, Account: t.Account, Permits: []Permit{}}
		for _, p := range t.Permits {
			o.Permits = append(o.Permits, Permit{Policy: p.Policy, Actions: p.Actions, Approval: p.Approval, Conditional: p.Conditional})
		}
		out.Targets = append(out.Targets, o)
	}
	s.logger.Info("mcp tool", "tool", "list_targets", "identity", s.who.Name, "targets", len(out.Targets))
	return nil, out, nil
}

// Grant is a grant as the tools report it.
type Grant struct {
	GrantID      string     `json:"grant_id" jsonschema:"the grant's id (g_...), for the other tools"`
	Status       string     `json:"status" jsonschema:"pending, active, expired, revoked, ended, denied or cancelled"`
	Target       string     `json:"target"`
	TargetKind   string     `json:"target_kind"`
	Account      string     `json:"account"`
	Requested    []string   `json:"requested_scope" jsonschema:"the scope statements asked for"`
	Granted      []string   `json:"granted_scope,omitempty" jsonschema:"the scope statements granted, once active"`
	Duration     string     `json:"duration"`
	Reason       string     `json:"reason"`
	RequestedAt  time.Time  `json:"requested_at"`
	DecideBy     *time.Time `json:"decide_by,omitempty" jsonschema:"while pending: when the request is cancelled if nobody decides"`
	StartedAt    *time.Time `json:"started_at,omitempty"`
	ExpiresAt    *time.Time `json:"expires_at,omitempty" jsonschema:"when an active grant's access ends on its own"`
	EndedAt      *time.Time `json:"ended_at,omitempty"`
	EndReason    string     `json:"end_reason,omitempty" jsonschema:"why it ended: expired, revoked, ended, denied or cancelled"`
	EndedBy      string     `json:"ended_by,omitempty"`
	EndComment   string     `json:"end_comment,omitempty"`
	Decision     string     `json:"decision" jsonschema:"the policy outcome: auto, human or deny"`
	Explanation  string     `json:"explanation" jsonschema:"the policy's explanation of its decision"`
	Approvals    []Approval `json:"approvals,omitempty"`
	Approvers    []string   `json:"approvers,omitempty" jsonschema:"while pending: the people who can approve it"`
	Note         string     `json:"note" jsonschema:"what to do next"`
	Calls        int64      `json:"calls" jsonschema:"calls or statements made through the gateway under this grant"`
	DeniedCalls  int64      `json:"denied_calls" jsonschema:"of which refused as outside the scope"`
	CredentialFP string     `json:"credential_fingerprint,omitempty" jsonschema:"fingerprint of the grant's credentials (never the secret)"`
}

// Approval is one person's decision.
type Approval struct {
	Approver string    `json:"approver"`
	Decision string    `json:"decision"`
	Comment  string    `json:"comment,omitempty"`
	At       time.Time `json:"at"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func (s *server) grantOut(ctx context.Context, g model.Grant) Grant {
	o := Grant{
		GrantID: g.ID, Status: string(g.Status), Target: g.Target, TargetKind: g.TargetKind, Account: g.Account,
		Requested: g.RequestedScope.Strings(), Duration: g.Duration.String(), Reason: g.Reason,
		RequestedAt: g.RequestedAt, StartedAt: timePtr(g.StartedAt), ExpiresAt: timePtr(g.ExpiresAt), EndedAt: timePtr(g.EndedAt),
		EndReason: g.EndReason, EndedBy: g.EndedBy, EndComment: g.EndComment,
		Decision: g.Decision.Outcome, Explanation: g.Decision.Explanation,
		Calls: g.Usage.Calls, DeniedCalls: g.Usage.DeniedCalls, CredentialFP: g.CredentialFingerprint,
	}
	if len(g.GrantedScope) > 0 {
		o.Granted = g.GrantedScope.Strings()
	}
	for _, a := range g.Approvals {
		o.Approvals = append(o.Approvals, Approval{Approver: a.Approver, Decision: a.Decision, Comment: a.Comment, At: a.At})
	}
	switch g.Status {
	case model.Pending:
		o.DecideBy = timePtr(g.DecideBy)
		if names, err := s.c.Approvers(ctx, g.ID); err == nil {
			o.Approvers = names
		}
		who := "a person"
		if len(o.Approvers) > 0 {
			who = strings.Join(o.Approvers, " or ")
		}
		o.Note = fmt.Sprintf("waiting for %s to approve (airlock approve %s); cancelled if nobody decides by %s. Call grant_status with wait_seconds to wait.",
			who, g.ID, g.DecideBy.UTC().Format(time.RFC3339))
	case model.Active:
		// As in the instructions, name only tools this server offers.
		how := "run_with_grant"
		switch {
		case g.TargetKind == "postgres" && s.opts.AllowRun:
			how = "sql_query or run_with_grant (psql)"
		case g.TargetKind == "postgres":
			how = "sql_query"
		case !s.opts.AllowRun:
			how = "its credentials from your own machine (airlock credentials; this server runs no commands)"
		}
		o.Note = fmt.Sprintf("active until %s: use %s with grant_id %s, and end_grant when done.", g.ExpiresAt.UTC().Format(time.RFC3339), how, g.ID)
	case model.Denied:
		o.Note = "denied: " + firstNonEmpty(g.EndComment, g.Decision.Explanation) + ". Ask for a narrower scope or shorter duration, or ask a person."
	default:
		o.Note = "this grant is over (" + string(g.Status) + "); request a new one if you still need access."
	}
	return o
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// wait long-polls a pending grant for up to secs seconds (at most
// MaxWait). Compared in seconds: a huge count times time.Second wrapped
// to a negative Duration, and the call answered "pending" at once.
func (s *server) wait(ctx context.Context, g model.Grant, secs int) (model.Grant, error) {
	d := s.opts.MaxWait
	if secs < int(d/time.Second) {
		d = time.Duration(secs) * time.Second
	}
	deadline := time.Now().Add(d)
	for g.Status == model.Pending {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		ng, err := s.c.Wait(ctx, g.ID, min(left, 60*time.Second))
		var ae *apierr.Error
		if asAPI(err, &ae) && ae.Status == http.StatusServiceUnavailable {
			// The server is stopping (or its log is failing): the
			// grant as it was, still pending, for the agent to ask
			// about again, rather than an error that would hide the
			// grant it asked for.
			return g, nil
		}
		if err != nil {
			return ng, err
		}
		g = ng
	}
	return g, nil
}

func (s *server) fail(tool, grant string, err error) error {
	err = toolError(err)
	s.logger.Info("mcp tool failed", "tool", tool, "identity", s.who.Name, "grant", grant, "err", err)
	return err
}

// RequestAccessInput is request_access's arguments.
type RequestAccessInput struct {
	Target      string   `json:"target" jsonschema:"a target name from list_targets"`
	Allow       []string `json:"allow" jsonschema:"scope statements 'ACTIONS RESOURCE', e.g. 's3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*' or 'pg:select orders.public.*'; ask for the least your task needs"`
	Duration    string   `json:"duration" jsonschema:"how long the grant lasts once active, as a Go duration: 90s, 10m, 1h"`
	Reason      string   `json:"reason" jsonschema:"why you need the access: the task, in a sentence a reviewer understands"`
	WaitSeconds int      `json:"wait_seconds,omitempty" jsonschema:"if the request needs a person's approval, wait up to this many seconds (at most 600 through airlock mcp over stdio, 90 through /mcp over HTTP) for the decision before returning"`
}

func (s *server) requestAccess(ctx context.Context, _ *mcp.CallToolRequest, in RequestAccessInput) (*mcp.CallToolResult, Grant, error) {
	if in.WaitSeconds < 0 {
		return nil, Grant{}, fmt.Errorf("wait_seconds must not be negative")
	}
	g, err := s.c.Request(ctx, requestInput(in))
	if err != nil {
		return nil, Grant{}, s.fail("request_access", "", err)
	}
	if g.Status == model.Pending && in.WaitSeconds > 0 {
		if g, err = s.wait(ctx, g, in.WaitSeconds); err != nil {
			return nil, Grant{}, s.fail("request_access", g.ID, err)
		}
	}
	s.logger.Info("mcp tool", "tool", "request_access", "identity", s.who.Name, "grant", g.ID, "status", g.Status)
	return nil, s.grantOut(ctx, g), nil
}

// GrantStatusInput is grant_status's arguments.
type GrantStatusInput struct {
	GrantID     string `json:"grant_id" jsonschema:"the grant id (g_...)"`
	WaitSeconds int    `json:"wait_seconds,omitempty" jsonschema:"if the grant is pending, wait up to this many seconds (at most 600 through airlock mcp over stdio, 90 through /mcp over HTTP) for it to be decided"`
}

func (s *server) grantStatus(ctx context.Context, _ *mcp.CallToolRequest, in GrantStatusInput) (*mcp.CallToolResult, Grant, error) {
	if err := checkGrantID(in.GrantID); err != nil {
		return nil, Grant{}, err
	}
	if in.WaitSeconds < 0 {
		// As request_access: a negative wait is a mistake, not "don't wait".
		return nil, Grant{}, fmt.Errorf("wait_seconds must not be negative")
	}
	g, err := s.c.Grant(ctx, in.GrantID)
	if err == nil && g.Status == model.Pending && in.WaitSeconds > 0 {
		g, err = s.wait(ctx, g, in.WaitSeconds)
	}
	if err != nil {
		return nil, Grant{}, s.fail("grant_status", in.GrantID, err)
	}
	return nil, s.grantOut(ctx, g), nil
}

// EndGrantInput is end_grant's arguments.
type EndGrantInput struct {
	GrantID string `json:"grant_id" jsonschema:"the grant id (g_...)"`
	Comment string `json:"comment,omitempty" jsonschema:"optional: why you are done (recorded)"`
}

func (s *server) endGrant(ctx context.Context, _ *mcp.CallToolRequest, in EndGrantInput) (*mcp.CallToolResult, Grant, error) {
	if err := checkGrantID(in.GrantID); err != nil {
		return nil, Grant{}, err
	}
	comment := in.Comment
	if comment == "" {
		comment = "ended through MCP"
	}
	g, err := s.c.End(ctx, in.GrantID, comment)
	if err != nil {
		return nil, Grant{}, s.fail("end_grant", in.GrantID, err)
	}
	s.logger.Info("mcp tool", "tool", "end_grant", "identity", s.who.Name, "grant", g.ID, "status", g.Status)
	return nil, s.grantOut(ctx, g), nil
}

// readGrant serves airlock://grants/{id}.
func (s *server) readGrant(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	id, ok := strings.CutPrefix(uri, "airlock://grants/")
	if !ok || checkGrantID(id) != nil {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	g, err := s.c.Grant(ctx, id)
	if err != nil {
		if isNotFound(err) {
			return nil, mcp.ResourceNotFoundError(uri)
		}
		return nil, s.fail("resources/read", id, err)
	}
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return nil, err
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: "application/json", Text: string(b)}}}, nil
}
