package awsgw

import (
	"context"

	"github.com/airlock-dev/airlock/internal/gateway"
)

// recordRejection records a request refused before any session. The
// gateway does no rate limiting of its own: the Authority writes the first
// few attempts of a source individually and counts the rest into a summary
// (gateway.RejectAggregator), so a flood costs a bounded number of log
// writes and no attempt goes unrecorded.
func (g *Gateway) recordRejection(ctx context.Context, rj gateway.Rejection) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := g.auth.Reject(ctx, rj); err != nil {
		g.log.Error("awsgw: recording a rejected request failed", "credential_id", rj.CredentialID, "grant", rj.GrantID, "err", err)
	}
}
