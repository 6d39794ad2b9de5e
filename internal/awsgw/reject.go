package awsgw

import (
	"context"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
)

// Rejections are written to the log synchronously, but an unauthenticated
// flood must not turn into a flood of durable writes: beyond this rate the
// attempts are counted and logged as a summary instead.
const (
	rejectRate  = 100 // per second, sustained
	rejectBurst = 200
)

type rejectLimiter struct {
	mu      sync.Mutex
	tokens  float64
	last    time.Time
	dropped int
	warned  time.Time
}

// allow takes a token; when none is left it counts the attempt as dropped
// and returns how many were dropped since the last warning, if one is due.
func (l *rejectLimiter) allow(now time.Time) (ok bool, report int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.tokens = rejectBurst
	} else {
		l.tokens = min(rejectBurst, l.tokens+now.Sub(l.last).Seconds()*rejectRate)
	}
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return true, 0
	}
	l.dropped++
	if now.Sub(l.warned) >= time.Second {
		report, l.dropped, l.warned = l.dropped, 0, now
	}
	return false, report
}

func (g *Gateway) recordRejection(ctx context.Context, rj gateway.Rejection) {
	ok, dropped := g.rejects.allow(time.Now())
	if !ok {
		if dropped > 0 {
			g.log.Warn("awsgw: too many rejected requests to record each one; counted here instead", "not_recorded", dropped, "last_reason", rj.Reason, "last_client", rj.Client)
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := g.auth.Reject(ctx, rj); err != nil {
		g.log.Error("awsgw: recording a rejected request failed", "credential_id", rj.CredentialID, "grant", rj.GrantID, "err", err)
	}
}
