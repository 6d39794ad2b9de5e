package server

import (
	"log/slog"
	"net/http"

	"github.com/airlock-dev/airlock/internal/mcpserver"
)

// withMCP serves the MCP server (streamable HTTP) at /mcp beside the API;
// it calls the API in process with each request's bearer token.
func withMCP(api http.Handler, logger *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/mcp", mcpserver.Handler(api, "", logger))
	mux.Handle("/", api)
	return mux
}
