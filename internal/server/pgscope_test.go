package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestPostgresTargetDatabaseChecked: the server tells the grants service
// which database a postgres target's upstream names, so that a request
// naming another (the README's orders.public.* against a database of
// another name) is refused naming it, rather than granted a role that
// can read nothing. The upstream is never dialled: no gateway listens.
func TestPostgresTargetDatabaseChecked(t *testing.T) {
	dir := t.TempDir()
	_, sha := authn.NewKey()
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	pol := `@id("sre-reads-orders")
@approval("auto")
permit (principal in Group::"sre-team", action == Action::"pg:select", resource == Target::"orders-db");
`
	if err := os.WriteFile(filepath.Join(dir, "policies", "p.cedar"), []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "airlock.yaml")
	yaml := fmt.Sprintf(`data_dir: ./data
identities:
  - {name: log-triage-bot, kind: agent, owner: sre-team, key_sha256: %q}
targets:
  - name: orders-db
    kind: postgres
    account: "111122223333"
    upstream: postgres://airlock_admin@127.0.0.1:5432/readme_orders
policies: ./policies
`, sha)
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s := openServer(t, cfg)
	defer s.Close()
	ctx := context.Background()
	_, err = s.Service.Request(ctx, bot, grants.RequestInput{Target: "orders-db", Scope: []string{"pg:select orders.public.customers"}, Duration: "10m", Reason: "count customers"})
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Field != "scope[0]" || !strings.Contains(ae.Message, `"readme_orders"`) {
		t.Fatalf("a scope naming database orders on a target of readme_orders: %v, want a 400 on scope[0] naming readme_orders", err)
	}
	g, err := s.Service.Request(ctx, bot, grants.RequestInput{Target: "orders-db", Scope: []string{"pg:select readme_orders.public.customers"}, Duration: "10m", Reason: "count customers"})
	if err != nil || g.Status != model.Active {
		t.Fatalf("the target's own database: %v, %v", g.Status, err)
	}
}
