package grants_test

import (
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// A postgres scope naming another database than the target's is refused
// when asked for, naming the target's database. It was granted (the
// README's policy permits orders.public.* whatever database orders-db
// is): the grant was active, its role got nothing, and the agent's every
// statement failed with "permission denied", the reason in the server's
// log alone.
func TestPostgresScopeOfAnotherDatabaseIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Policies: testPolicies + `
@id("sre-select-anything-auto")
@approval("auto")
permit (principal in Group::"sre-team", action == Action::"pg:select", resource == Target::"orders-db");
`})
	for _, c := range []struct {
		scope []string
		field string
	}{
		{[]string{"pg:select shop.public.customers"}, "scope[0]"},
		{[]string{"pg:select orders.public.customers", "pg:select Orders.public.*"}, "scope[1]"},
		// A prefix of the name is another database too.
		{[]string{"pg:select orders_archive.public.*"}, "scope[0]"},
	} {
		size, n := h.logSize(), h.grantCount()
		g, err := h.Svc.Request(h.ctx, h.id(bot), grants.RequestInput{Target: ordersDB, Scope: c.scope, Duration: "10m", Reason: "count customers"})
		ae := wantAPIErr(t, err, 400, apierr.CodeInvalid, c.field)
		if !strings.Contains(ae.Message, `"orders"`) || !strings.Contains(ae.Message, "orders-db") {
			t.Errorf("%q: message %q does not name the target's database", c.scope, ae.Message)
		}
		if g.ID != "" || h.logSize() != size || h.grantCount() != n {
			t.Errorf("%q: refused, but recorded: grant %q, log %d → %d, grants %d → %d", c.scope, g.ID, size, h.logSize(), n, h.grantCount())
		}
	}
	// The target's own database is granted as before.
	h.request(bot, grants.RequestInput{Target: ordersDB, Scope: []string{"pg:select orders.public.customers"}, Duration: "10m", Reason: "count customers"}, model.Active)
}
