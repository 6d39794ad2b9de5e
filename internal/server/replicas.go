package server

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/pgstore"
)

// Environment variables holding Go durations that tune how the open
// sessions of a replica that is gone are ended (grants.Options): how often
// each replica looks (SessionSweep, default 15 s), and how long another
// replica must have been gone first (ReplicaGrace, default 30 s, above a
// live replica's reconnection time after a database restart). Tests
// shorten them; operators rarely need to.
const (
	SessionSweepEnv = "AIRLOCK_SESSION_SWEEP"
	ReplicaGraceEnv = "AIRLOCK_REPLICA_GRACE"
)

// withReplicas makes the grant service one replica among those sharing a
// PostgreSQL store: grant changes reach it through the store's
// notification connection (LISTEN/NOTIFY), a credential it has not seen is
// read from the store, and it ends the sessions of replicas that died.
// With SQLite (one process) nothing changes.
func withReplicas(o *grants.Options, cfg *config.Config, st store.Store) error {
	ps, ok := st.(*pgstore.Store)
	if !ok {
		return nil
	}
	o.ReplicaID = replicaID(cfg)
	o.Notifier = ps.Listener(o.ReplicaID)
	for _, e := range []struct {
		name string
		dst  *time.Duration
	}{{SessionSweepEnv, &o.SessionSweep}, {ReplicaGraceEnv, &o.ReplicaGrace}} {
		v := os.Getenv(e.name)
		if v == "" {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%s=%q: want a positive Go duration such as 15s", e.name, v)
		}
		*e.dst = d
	}
	return nil
}

// replicaID names this replica, stably across restarts so that a replica
// restarted after a crash ends its previous run's sessions at once: the
// host's name and the API's port (unique on a host), e.g. "gw-1:8700".
// With an ephemeral API port the grant service picks a random id.
func replicaID(cfg *config.Config) string {
	_, port, err := net.SplitHostPort(cfg.Listen.API)
	if err != nil || port == "0" {
		return ""
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "airlock"
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, host) + ":" + port
}
