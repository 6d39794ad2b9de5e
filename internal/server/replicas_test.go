package server

import (
	"os"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/store/pgstore"
)

func TestReplicaID(t *testing.T) {
	host, _ := os.Hostname()
	cfg := &config.Config{Listen: config.Listen{API: "127.0.0.1:8710"}}
	if got := replicaID(cfg); got != host+":8710" || strings.ContainsAny(got, " \t\n") {
		t.Fatalf("replicaID = %q, want %q", got, host+":8710")
	}
	// An ephemeral port says nothing stable: the grant service picks one.
	cfg.Listen.API = "127.0.0.1:0"
	if got := replicaID(cfg); got != "" {
		t.Fatalf("replicaID with port 0 = %q, want empty", got)
	}
}

func TestSessionSweepEnv(t *testing.T) {
	dsn := pgDatabase(t)
	cfg := pgConfig(t, dsn)
	s := openServer(t, cfg)
	defer s.Close()
	var o grants.Options
	t.Setenv(SessionSweepEnv, "2s")
	t.Setenv(ReplicaGraceEnv, "7s")
	if err := withReplicas(&o, cfg, s.store); err != nil || o.SessionSweep.String() != "2s" || o.ReplicaGrace.String() != "7s" || o.Notifier == nil {
		t.Fatalf("withReplicas: %v, sweep %v, grace %v, notifier %v", err, o.SessionSweep, o.ReplicaGrace, o.Notifier)
	}
	t.Setenv(SessionSweepEnv, "soon")
	if err := withReplicas(&o, cfg, s.store); err == nil || !strings.Contains(err.Error(), SessionSweepEnv) {
		t.Fatalf("a bad %s: %v", SessionSweepEnv, err)
	}
	if _, ok := s.store.(*pgstore.Store); !ok {
		t.Fatal("not a PostgreSQL store")
	}
}
