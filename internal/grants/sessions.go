package grants

import (
	"context"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
)

// StartSession implements gateway.Authority: the grant must be live and,
// where the identity binds its credentials, the client where it asked for
// them (checkMoved); the session is then recorded by the sessions
// package's Recorder, from its start to its end.
func (s *Service) StartSession(ctx context.Context, g *gateway.Grant, client string) (*gateway.Session, error) {
	if !g.Live(s.now()) {
		return nil, gateway.ErrNoGrant
	}
	sid := newID("s_")
	if err := s.checkMoved(ctx, g, client, sid); err != nil {
		return nil, err
	}
	return s.rec.Start(ctx, g, sid, client)
}

// withCall returns r with c counted; r itself is left unchanged. It is the
// review's own counting, so that summaries match what the log implies.
func withCall(r model.Session, c gateway.Call) model.Session { return review.CountCall(r, c) }
