package server

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/config"
)

// TestHangupSaysConfigNotReloaded: SIGHUP reloads the policies only.
// An operator who removed an identity from airlock.yaml and sent SIGHUP
// must be told that it takes a restart, and so must one whose edit broke
// the file (the restart would fail).
func TestHangupSaysConfigNotReloaded(t *testing.T) {
	cfg := auditConfig(t, "")
	var logs bytes.Buffer
	s, err := Open(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	o := config.Overrides{ListenAPI: "127.0.0.1:0"}

	hangup := func() string {
		t.Helper()
		logs.Reset()
		s.hangup(ctx, o)
		out := logs.String()
		if !strings.Contains(out, "policies loaded") {
			t.Fatalf("SIGHUP did not reload the policies: %s", out)
		}
		return out
	}
	if out := hangup(); strings.Contains(out, "level=WARN") {
		t.Fatalf("unchanged file: %s", out)
	}

	data, err := os.ReadFile(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	// alice removed.
	i, j := bytes.Index(data, []byte("  - name: alice")), bytes.Index(data, []byte("targets:"))
	edited := append(append(append([]byte{}, data[:i]...), data[j:]...), "grants: {max_duration: 1h}\n"...)
	if err := os.WriteFile(cfg.Path, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := hangup(); !strings.Contains(out, "restart airlock serve") || !strings.Contains(out, "changed=identities,grants") {
		t.Fatalf("edited file: %s", out)
	}
	if len(s.Config.Identities) != 2 {
		t.Fatalf("the running configuration changed: %d identities", len(s.Config.Identities))
	}

	if err := os.WriteFile(cfg.Path, append(data, "identity_binding: Refuse\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := hangup(); !strings.Contains(out, "has problems") || !strings.Contains(out, "identity_binding") {
		t.Fatalf("broken file: %s", out)
	}
}
