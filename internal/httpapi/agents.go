package httpapi

import (
	"net/http"
	"strings"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// Routes for agents acting on their own (the MCP server in internal/mcpserver
// uses them): what to ask for, whom a pending request waits for, and the
// record of a command run under a grant.

// TargetsResponse lists the targets a caller may request.
type TargetsResponse struct {
	Targets []grants.TargetInfo `json:"targets"`
}

func (h *Handler) targets(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	ts, err := h.svc.Targets(r.Context(), who)
	return TargetsResponse{ts}, err
}

// ApproversResponse names who may decide a pending grant.
type ApproversResponse struct {
	Approvers []string `json:"approvers"`
}

func (h *Handler) approvers(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	names, err := h.svc.Approvers(r.Context(), who, r.PathValue("id"))
	return ApproversResponse{names}, err
}

// CommandInput is the body of POST /v1/grants/{id}/commands.
type CommandInput struct {
	Argv []string `json:"argv"`
	// Via is where the command is run from, as the client says:
	// "mcp" (airlock mcp's run_with_grant) or "exec" (airlock exec);
	// none records "api".
	Via string `json:"via,omitempty"`
}

// CommandResponse acknowledges a recorded command.
type CommandResponse struct {
	Recorded bool `json:"recorded"`
}

func (h *Handler) command(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	var in CommandInput
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	// The caller's own key, should it be on the command line, never
	// reaches the log (the MCP side takes it out too; a direct caller of
	// this route did not).
	_, key, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if err := h.svc.RecordCommand(r.Context(), who, r.PathValue("id"), in.Argv, in.Via, strings.TrimSpace(key)); err != nil {
		return nil, err
	}
	return CommandResponse{Recorded: true}, nil
}
