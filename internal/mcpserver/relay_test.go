package mcpserver_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/model"
)

// fromAddr is a bearer-keyed transport whose connections come from ip,
// as an agent on another machine would reach /mcp.
type fromAddr struct {
	key string
	rt  http.RoundTripper
}

func (b fromAddr) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.rt.RoundTrip(r)
}

// TestHTTPSQLQueryIsTheAgents: sql_query over /mcp from an agent at
// another address (127.0.0.2) opens its gateway session on the agent's
// behalf: the session is recorded with the agent's address, and it is not
// read as the grant's credential used from another instance than the one
// that requested it (a credential-moved finding, refused under
// identity_binding: refuse). Before, the gateway saw the control plane's
// own address (127.0.0.1).
func TestHTTPSQLQueryIsTheAgents(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	hc := &http.Client{Transport: fromAddr{key: f.botKey, rt: &http.Transport{DialContext: d.DialContext}}}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "remote-agent", Version: "1"}, nil).Connect(ctx,
		&mcp.StreamableClientTransport{Endpoint: f.api + "/mcp", HTTPClient: hc, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	var responses []string
	s := &session{t: t, cs: cs, responses: &responses}
	var g struct {
		GrantID string `json:"grant_id"`
		Status  string `json:"status"`
	}
	s.mustCall("request_access", map[string]any{"target": "orders-db", "allow": []string{"pg:select " + f.db + ".public.customers"},
		"duration": "15m", "reason": "INC-12 remote agent"}, &g)
	if g.Status != "active" {
		t.Fatalf("grant %+v", g)
	}
	var rows struct {
		Rows [][]any `json:"rows"`
	}
	s.mustCall("sql_query", map[string]any{"grant_id": g.GrantID, "statement": "select id, name from customers order by id"}, &rows)
	if len(rows.Rows) != 3 {
		t.Fatalf("rows %v", rows.Rows)
	}

	alice := client.New(f.api, f.aliceKy)
	sessions, err := alice.Sessions(ctx, g.GrantID)
	if err != nil {
		t.Fatal(err)
	}
	if len(sessions) != 1 || !strings.HasPrefix(sessions[0].Client, "127.0.0.2:") {
		t.Errorf("the gateway session's client is not the agent's address: %+v", sessions)
	}
	err = alice.Findings(ctx, "", func(found []model.Finding) error {
		for _, fd := range found {
			if fd.Grant == g.GrantID {
				t.Errorf("sql_query over /mcp raised a finding on the agent's own grant: %+v", fd)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
