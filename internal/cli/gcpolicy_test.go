package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// TestServeAppliesGCPolicy: `airlock serve` applies the collector's policy
// (internal/gcpolicy) with the process's environment, where an operator's
// GOGC or GOMEMLIMIT wins, and stops it when it returns; the CLI's other
// commands, and a serve refused for its flags, leave the collector alone.
func TestServeAppliesGCPolicy(t *testing.T) {
	var applied, stopped int
	var sawGOGC string
	defer func(f func(func(string) string) (func(), bool)) { applyGCPolicy = f }(applyGCPolicy)
	applyGCPolicy = func(getenv func(string) string) (func(), bool) {
		applied++
		sawGOGC = getenv("GOGC")
		return func() { stopped++ }, true
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
	if code, _, errOut := run(t, []string{"GOGC=300"}, "serve", "--config", cfg); code != 1 {
		t.Fatalf("serve: exit %d, want 1 (the store is down)\n%s", code, errOut)
	}
	if applied != 1 || stopped != 1 || sawGOGC != "300" {
		t.Fatalf("serve: policy applied %d times, stopped %d, saw GOGC %q; want once, once, the environment's 300", applied, stopped, sawGOGC)
	}

	applied, stopped = 0, 0
	run(t, nil, "serve", "--config", cfg, "--listen-api", "8700")
	run(t, []string{EnvAddr + "=http://127.0.0.1:1", EnvToken + "=k"}, "grants")
	run(t, nil, "audit", "verify", "--data-dir", filepath.Join(dir, "data"))
	if applied != 0 {
		t.Fatalf("policy applied %d times by a refused serve and other commands, want none", applied)
	}
}
