package cli

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestServeAppliesRuntimePolicies: `airlock serve` applies the collector's
// policy (internal/gcpolicy) and the P policy (internal/procpolicy) with
// the process's environment, where an operator's GOGC, GOMEMLIMIT or
// GOMAXPROCS wins, and stops them when it returns; the CLI's other
// commands, and a serve refused for its flags, leave the runtime alone.
func TestServeAppliesRuntimePolicies(t *testing.T) {
	var gcApplied, gcStopped, procsApplied, procsStopped int
	var sawGOGC, sawProcs string
	defer func(f func(func(string) string) (func(), bool)) { applyGCPolicy = f }(applyGCPolicy)
	defer func(f func(func(string) string, *slog.Logger) (func(), bool)) { applyProcPolicy = f }(applyProcPolicy)
	applyGCPolicy = func(getenv func(string) string) (func(), bool) {
		gcApplied++
		sawGOGC = getenv("GOGC")
		return func() { gcStopped++ }, true
	}
	applyProcPolicy = func(getenv func(string) string, log *slog.Logger) (func(), bool) {
		procsApplied++
		sawProcs = getenv("GOMAXPROCS")
		if log == nil {
			t.Error("no logger for the P policy's changes")
		}
		return func() { procsStopped++ }, true
	}

	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "airlock.yaml")
	// A store that refuses at once: serve starts, applies, and returns.
	if err := os.WriteFile(cfg, []byte("data_dir: ./data\npolicies: ./policies\nlisten: {api: 127.0.0.1:0}\nstore: postgres://airlock@127.0.0.1:1/airlock?sslmode=disable\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, []string{"GOGC=300", "GOMAXPROCS=3"}, "serve", "--config", cfg); code != 1 {
		t.Fatalf("serve: exit %d, want 1 (the store is down)\n%s", code, errOut)
	}
	if gcApplied != 1 || gcStopped != 1 || sawGOGC != "300" {
		t.Errorf("serve: GC policy applied %d times, stopped %d, saw GOGC %q; want once, once, the environment's 300", gcApplied, gcStopped, sawGOGC)
	}
	if procsApplied != 1 || procsStopped != 1 || sawProcs != "3" {
		t.Errorf("serve: P policy applied %d times, stopped %d, saw GOMAXPROCS %q; want once, once, the environment's 3", procsApplied, procsStopped, sawProcs)
	}

	gcApplied, procsApplied = 0, 0
	run(t, nil, "serve", "--config", cfg, "--listen-api", "8700")
	run(t, []string{EnvAddr + "=http://127.0.0.1:1", EnvToken + "=k"}, "grants")
	run(t, nil, "audit", "verify", "--data-dir", filepath.Join(dir, "data"))
	if gcApplied != 0 || procsApplied != 0 {
		t.Fatalf("policies applied by a refused serve and other commands: GC %d times, Ps %d; want none", gcApplied, procsApplied)
	}
}
