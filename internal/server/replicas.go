package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/replicaset"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/pgstore"
)

// withReplicas makes the grant service one replica among those sharing a
// PostgreSQL store: grant changes reach it through the store's
// notification connection (LISTEN/NOTIFY), and a credential it has not
// seen is read from the store. The replica id is random per process, so
// that a restarted replica is a new one. With SQLite (one process) nothing
// changes.
func withReplicas(o *grants.Options, st store.Store) {
	ps, ok := st.(*pgstore.Store)
	if !ok {
		return
	}
	b := make([]byte, 6)
	rand.Read(b)
	o.ReplicaID = "r_" + hex.EncodeToString(b)
	o.Notifier = ps.Listener(o.ReplicaID)
}

// sessionRecoverer is the grant service's way to end one session at its
// last recorded event.
type sessionRecoverer interface {
	RecoverSession(ctx context.Context, sessionID string) error
}

// joinReplicaSet records, for a PostgreSQL store, which replica serves
// each gateway session, and ends the sessions of replicas that are gone
// (see replicaset). It returns nil with SQLite.
func joinReplicaSet(ctx context.Context, cfg *config.Config, svc *grants.Service, logger *slog.Logger) (*replicaset.Set, error) {
	if cfg.Store == "" {
		return nil, nil
	}
	rec, ok := any(svc).(sessionRecoverer)
	if !ok {
		logger.Warn("this build cannot end the sessions of a dead replica (no grants.Service.RecoverSession)")
		return nil, nil
	}
	return replicaset.Open(ctx, cfg.Store, svc.ReplicaID(), rec.RecoverSession, logger.With("component", "replicaset"))
}

// authority is what the gateways see of the grant service: the service
// itself, or among replicas the service with each session's replica
// recorded while it is open.
func (s *Server) authority() gateway.Authority {
	if s.replicas == nil {
		return s.Service
	}
	return ownedSessions{Service: s.Service, set: s.replicas}
}

// ownedSessions records each session's replica in the replica set.
type ownedSessions struct {
	*grants.Service
	set *replicaset.Set
}

// StartSession starts the session and records that this replica serves it;
// if that cannot be recorded the session is ended and refused, since
// nobody could end it should this replica die.
func (o ownedSessions) StartSession(ctx context.Context, g *gateway.Grant, client string) (*gateway.Session, error) {
	inner, err := o.Service.StartSession(ctx, g, client)
	if err != nil {
		return nil, err
	}
	if err := o.set.Started(ctx, inner.ID); err != nil {
		inner.End(context.WithoutCancel(ctx))
		return nil, err
	}
	return gateway.NewSession(inner.ID, inner.Grant, gateway.Recorder{
		Request: inner.Request,
		RequestAsync: func(ctx context.Context, c gateway.Call) func(context.Context) error {
			return inner.RequestAsync(ctx, c).Wait
		},
		Result: inner.Result,
		End: func(ctx context.Context) error {
			err := inner.End(ctx)
			o.set.Ended(context.WithoutCancel(ctx), inner.ID)
			return err
		},
	}), nil
}
