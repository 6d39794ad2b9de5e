package httpapi

import (
	"context"
	"encoding/base64"
	"net/http"
	"strconv"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// Exporter is implemented by an Auditor that writes evidence bundles and
// proves its log consistent with an older checkpoint.
type Exporter interface {
	Export(ctx context.Context, account, day string) ([]byte, []string, error)
	Consistency(ctx context.Context, old int64) (checkpoint []byte, proof [][32]byte, err error)
}

// ExportResponse carries an evidence bundle's exact bytes.
type ExportResponse struct {
	Bundle   string   `json:"bundle"`
	Warnings []string `json:"warnings,omitempty"`
}

// ConsistencyResponse carries a checkpoint and the consistency proof to it.
type ConsistencyResponse struct {
	Checkpoint string   `json:"checkpoint"`
	Proof      []string `json:"proof"`
}

func (h *Handler) exporter() (Exporter, error) {
	if e, ok := h.audit.(Exporter); ok {
		return e, nil
	}
	return nil, apierr.NotFound("this server does not export evidence")
}

func (h *Handler) export(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	if who.Kind != model.Human {
		return nil, apierr.Forbidden("", "only people may export evidence")
	}
	e, err := h.exporter()
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	if err := once(q, "account", "day"); err != nil {
		return nil, err
	}
	account, day := q.Get("account"), q.Get("day")
	if account == "" {
		return nil, apierr.Invalid("account", "an account is required")
	}
	if day == "" {
		return nil, apierr.Invalid("day", "a day (YYYY-MM-DD, UTC) is required")
	}
	b, warnings, err := e.Export(r.Context(), account, day)
	if err != nil {
		return nil, err
	}
	return ExportResponse{Bundle: string(b), Warnings: warnings}, nil
}

func (h *Handler) consistency(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	e, err := h.exporter()
	if err != nil {
		return nil, err
	}
	if err := once(r.URL.Query(), "old"); err != nil {
		return nil, err
	}
	old, err := strconv.ParseInt(r.URL.Query().Get("old"), 10, 64)
	if err != nil || old < 0 {
		return nil, apierr.Invalid("old", "a tree size (a non-negative number) is required")
	}
	cp, proof, err := e.Consistency(r.Context(), old)
	if err != nil {
		return nil, err
	}
	out := ConsistencyResponse{Checkpoint: string(cp), Proof: []string{}}
	for _, p := range proof {
		out.Proof = append(out.Proof, base64.StdEncoding.EncodeToString(p[:]))
	}
	return out, nil
}

// Events renders log entries as the API shows them (for the web console,
// which shows the same entries as the API and CLI); void are the sequence
// numbers of those a log.refused entry names, in order.
func Events(es []store.LogEntry, void []int64) []Event { return events(es, void) }
