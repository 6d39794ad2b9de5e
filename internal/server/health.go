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
	checks := []health.Check{
		{Name: "store", Failing: "unreachable", Run: s.pingStore},
		// The log can write: an empty batch goes through the write path
		// (with a shared log, the writers' lock and the head read) now, and
		// no batch is stalled.
		{Name: "log", Failing: "cannot write", Run: func(ctx context.Context) error {
			if err := s.log.Probe(ctx); err != nil {
				return err
			}
			return s.log.Err() // cleared by the probe's commit unless stalled
		}},
	}
	// Grants loaded and, across replicas, the notification connection that
	// tells this replica of revocations up (or grants re-read since it came
	// back). While it is not, the grant service refuses every credential.
	checks = append(checks, health.Check{Name: "grants", Failing: "not current", Run: func(context.Context) error { return s.Service.Ready() }})
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
