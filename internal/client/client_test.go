package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestResponseLimit: a response longer than the client reads is refused
// as such; it was cut at the limit and decoded, failing with "unexpected
// end of JSON input" (an export of a large review did).
func TestResponseLimit(t *testing.T) {
	defer func(n int64) { maxResponse = n }(maxResponse)
	maxResponse = 100
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"name":"` + strings.Repeat("a", 200) + `"}`))
	}))
	defer srv.Close()
	_, err := New(srv.URL, "k").WhoAmI(context.Background())
	if err == nil || !strings.Contains(err.Error(), "larger than 100 bytes") {
		t.Fatalf("a response over the limit: %v", err)
	}
	maxResponse = 300
	if id, err := New(srv.URL, "k").WhoAmI(context.Background()); err != nil || id.Name != strings.Repeat("a", 200) {
		t.Fatalf("a response within the limit: %+v, %v", id, err)
	}
}
