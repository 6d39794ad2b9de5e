package grants_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// A recorded command keeps the client's word on where it was run from
// ("via") apart from what the server saw ("endpoint"): "mcp" only for a
// call this server's /mcp endpoint made in process (ThroughMCPEndpoint),
// "api" for any caller of the API, one that says "mcp" too. The record
// had only "via", which whoever calls the API may set to "mcp".
func TestCommandEndpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, grants.RequestInput{Target: awsDev, Scope: []string{"s3:GetObject arn:aws:s3:::dev/*"}, Duration: "10m", Reason: "r"}, model.Active)
	for _, c := range []struct {
		via    string
		viaMCP bool
	}{{grants.CommandViaMCP, false}, {grants.CommandViaExec, false}, {"", false}, {grants.CommandViaMCP, true}} {
		ctx := h.ctx
		if c.viaMCP {
			ctx = grants.ThroughMCPEndpoint(ctx)
		}
		if err := h.Svc.RecordCommand(ctx, h.id(bot), g.ID, []string{"aws", "s3", "ls"}, c.via); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, e := range h.entries(g.ID) {
		if e.Type == "grant.command" {
			d := entryData(t, e)
			got = append(got, fmt.Sprintf("%v@%v", d["via"], d["endpoint"]))
		}
	}
	if want := []string{"mcp@api", "exec@api", "api@api", "mcp@mcp"}; !slices.Equal(got, want) {
		t.Errorf("recorded via@endpoint: %q, want %q", got, want)
	}
	h.verifyLog()
}
