package mcpserver

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/airlock-dev/airlock/internal/grants"
)

// TestInProcessMarksMCPEndpoint: a call /mcp makes to the API in process
// is marked as come through /mcp, which the API records on a command
// (grant.command's "endpoint"); a request from the network is not, whatever
// it carries. Before, the record had only the client's "via", which any
// caller of the API may set to "mcp".
func TestInProcessMarksMCPEndpoint(t *testing.T) {
	var seen []string
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, grants.CommandEndpoint(r.Context())+" from "+r.RemoteAddr)
	})
	req := httptest.NewRequest("POST", "http://airlock.internal/v1/grants/g/commands", nil)
	resp, err := inProcess{api: api, remote: "192.0.2.7:4000"}.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	api.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/v1/grants/g/commands", nil))
	if want := []string{"mcp from 192.0.2.7:4000", "api from 192.0.2.1:1234"}; len(seen) != 2 || seen[0] != want[0] || seen[1] != want[1] {
		t.Fatalf("the API saw %q, want %q", seen, want)
	}
	if grants.CommandEndpoint(req.Context()) != grants.CommandViaAPI {
		t.Error("RoundTrip changed its caller's request")
	}
}
