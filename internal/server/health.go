package server

import (
	"context"
	"errors"

	"github.com/airlock-dev/airlock/internal/health"
	"github.com/airlock-dev/airlock/internal/store"
)

// readiness is GET /readyz: the checks a load balancer uses to decide
// whether to send this replica calls.
func (s *Server) readiness() *health.Checker {
	checks := []health.Check{{Name: "store", Failing: "unreachable", Run: s.pingStore}}
	// The log's own view of whether it can write (a batch that failed to
	// commit, a lost database connection), when the log offers one.
	if l, ok := any(s.log).(interface{ Healthy(context.Context) error }); ok {
		checks = append(checks, health.Check{Name: "log", Failing: "cannot write", Run: l.Healthy})
	}
	// Grants loaded and, across replicas, the notification connection that
	// tells this replica of revocations up (or grants re-read since it came
	// back), when the grant service offers it.
	if g, ok := any(s.Service).(interface{ Ready(context.Context) error }); ok {
		checks = append(checks, health.Check{Name: "grants", Failing: "not current", Run: g.Ready})
	}
	return health.New(s.logger, checks...)
}

// pingStore runs one cheap indexed read: the lookup of a grant id that
// cannot exist.
func (s *Server) pingStore(ctx context.Context) error {
	if p, ok := s.store.(interface{ Ping(context.Context) error }); ok {
		return p.Ping(ctx)
	}
	_, err := s.store.Grant(ctx, "g_readyz")
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err == nil {
		return errors.New("the readiness probe's grant id exists")
	}
	return err
}
