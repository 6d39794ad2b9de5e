package mcpserver

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/findings"
	"github.com/airlock-dev/airlock/internal/grants"
)

// Handler serves MCP over streamable HTTP (mounted at /mcp on listen.api).
// Every HTTP request must carry "Authorization: Bearer <key>", the same
// keys as the API; it is served by a server acting as that key's identity,
// which calls api (the /v1 handler) in process with the same header, so
// authentication and authorization are the API's own.
//
// The handler is stateless (no Mcp-Session-Id): each request stands alone
// and is bound to its own bearer token, so no session can be taken over by
// another key. run_with_grant is not offered over HTTP: it would run the
// agent's command on the control plane's host.
func Handler(api http.Handler, o HTTPOptions) http.Handler {
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	maxRequest := o.MaxRequest
	if maxRequest <= 0 {
		maxRequest = httpMaxRequest
	}
	mh := mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
		c, _ := r.Context().Value(clientKey{}).(*boundClient)
		if c == nil {
			return nil
		}
		// Waits stay well inside the API listener's write timeout.
		opts := Options{Version: o.Version, Logger: logger, MaxWait: httpMaxWait}
		if o.DialPostgres != nil {
			remote, tlsClient := r.RemoteAddr, findings.TLSClient(r.TLS)
			opts.DialPostgres = func(ctx context.Context) (net.Conn, error) { return o.DialPostgres(ctx, remote, tlsClient) }
		}
		return newFor(c.c, c.who, opts)
	}, &mcp.StreamableHTTPOptions{Stateless: true, JSONResponse: true,
		// The SDK refuses a request that reaches a loopback address with
		// a Host that is not a loopback name, against DNS rebinding. That
		// refused /mcp (and only /mcp) behind a balancer or TLS proxy on
		// the same host, the replicas' documented setup (listen.api on
		// 127.0.0.1, Host airlock.example.com). It protects nothing here:
		// every request needs its bearer key, which a page rebound to this
		// address never has, and the same key works on /v1 beside it,
		// which has no such check.
		DisableLocalhostProtection: true})
	// The MCP transport specification requires the Origin header to be
	// validated: a request a browser sends from another site's page is
	// refused (403) before anything else, whatever it carries. Clients
	// that are not browsers send neither Origin nor Sec-Fetch-Site and
	// pass; so does a page of this server's own origin.
	cop := http.NewCrossOriginProtection()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := cop.Check(r); err != nil {
			logger.Warn("mcp: cross-origin request refused", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"))
			writeError(w, apierr.Forbidden("", "cross-origin request refused: /mcp does not serve pages of other sites"))
			return
		}
		scheme, key, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		key = strings.TrimSpace(key)
		if !strings.EqualFold(scheme, "Bearer") || key == "" {
			unauthorized(w, "missing API key: send Authorization: Bearer <key>")
			return
		}
		if strings.IndexFunc(key, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
			// No key has these; the client below refuses to send one
			// (an error that is not the API's, which would be a 500).
			unauthorized(w, "invalid or disabled API key")
			return
		}
		c := client.New("http://airlock.internal", key)
		// Only the transport changes: the client keeps refusing to follow
		// redirects, as over the network.
		c.HTTP.Transport = inProcess{api: api, remote: r.RemoteAddr, ua: r.UserAgent(), tls: r.TLS}
		who, err := c.WhoAmI(r.Context())
		if err != nil {
			var ae *apierr.Error
			switch {
			case asAPI(err, &ae) && ae.Status == http.StatusUnauthorized:
				unauthorized(w, ae.Message)
				return
			case asAPI(err, &ae) && ae.Status != 0:
				// The API's own refusal (403 under identity_binding:
				// refuse, 503 while the log cannot be written...): the
				// client gets it as the API would answer, not a 500.
				writeError(w, ae)
				return
			}
			logger.Error("mcp: whoami failed", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxHTTPBody)
		if r.Method == http.MethodPost {
			// A JSON-RPC batch (protocol 2025-03-26, the default without
			// MCP-Protocol-Version) runs all its calls at once: 2 MiB of
			// sql_query calls would be some 20,000 gateway sessions
			// and credential issues from one request.
			body, err := io.ReadAll(r.Body)
			var tooLarge *http.MaxBytesError
			switch {
			case errors.As(err, &tooLarge):
				http.Error(w, fmt.Sprintf("request body exceeds %d bytes", tooLarge.Limit), http.StatusRequestEntityTooLarge)
				return
			case err != nil:
				http.Error(w, "request body unreadable", http.StatusBadRequest)
				return
			}
			if why := notJSON(body); why != "" {
				// The checks below read the body as encoding/json does;
				// the SDK's decoder reads the first value and ignores
				// what follows it, so "[...]x" or "{...}x" went past
				// them whole: a batch of any length, an id answered
				// rounded. What is not JSON is refused here, as on stdio.
				rpcError(w, nil, jsonrpc.CodeParseError, why)
				return
			}
			if n := batchLen(body); n > maxBatch {
				rpcError(w, nil, jsonrpc.CodeInvalidRequest, fmt.Sprintf("a batch may hold at most %d messages, not %d", maxBatch, n))
				return
			}
			if why, id := bodyIDProblem(body); why != "" {
				// Refused here, before any of it runs: the SDK would
				// answer such a call under another id (see maxExactID).
				rpcError(w, id, jsonrpc.CodeInvalidRequest, "invalid request: "+why)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		// Every request ends: a subscriptions/listen stream (protocol
		// 2026-07-28) otherwise stays open for as long as the client
		// holds it, with nothing ever sent on it (this server's lists
		// never change) and its key checked only once, at the start.
		ctx, cancel := context.WithTimeout(r.Context(), maxRequest)
		defer cancel()
		ctx = contextWith(ctx, &boundClient{c: c, who: who})
		mh.ServeHTTP(w, r.WithContext(ctx))
	})
}

// HTTPOptions configures Handler.
type HTTPOptions struct {
	// Version is reported to clients.
	Version string
	// Logger gets one line per tool call; nil discards.
	Logger *slog.Logger
	// DialPostgres connects to the PostgreSQL gateway for sql_query on
	// behalf of client, the agent's address as this request came from it,
	// and tlsClient, the fingerprint of the client certificate the request's
	// connection presented (findings.TLSClient), so that the gateway
	// records the session as the agent's instance (see gateway.Relays).
	// Nil, or ErrNotRelayed, dials the grant's endpoint from this host.
	DialPostgres func(ctx context.Context, client, tlsClient string) (net.Conn, error)
	// MaxRequest bounds how long one HTTP request is served, streams
	// included (default 105s: a tool's longest wait and then some, inside
	// the API listener's 2-minute write timeout).
	MaxRequest time.Duration
}

// batchLen is the number of messages in a JSON-RPC batch body; 1 for
// anything else (what is not valid JSON was refused before, notJSON).
func batchLen(body []byte) int {
	if b := bytes.TrimLeft(body, " \t\r\n"); len(b) == 0 || b[0] != '[' {
		return 1
	}
	var msgs []json.RawMessage
	if json.Unmarshal(body, &msgs) != nil {
		return 1
	}
	return len(msgs)
}

// bodyIDProblem is requestIDProblem for an HTTP body: one message, or
// each member of a batch (then refused whole, without an id).
func bodyIDProblem(body []byte) (string, json.RawMessage) {
	var batch []json.RawMessage
	if b := bytes.TrimLeft(body, " \t\r\n"); len(b) == 0 || b[0] != '[' || json.Unmarshal(body, &batch) != nil {
		return requestIDProblem(body)
	}
	for _, m := range batch {
		if why, _ := requestIDProblem(m); why != "" {
			return "in a batch member, " + why, nil
		}
	}
	return "", nil
}

// rpcError answers 400 with a JSON-RPC error of code (a parse error, an
// invalid request), carrying id if one can be given (MCP leaves it out
// where JSON-RPC would write null).
func rpcError(w http.ResponseWriter, id json.RawMessage, code int64, msg string) {
	type wireError struct {
		Code    int64  `json:"code"`
		Message string `json:"message"`
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id,omitempty"`
		Error   wireError       `json:"error"`
	}{"2.0", id, wireError{code, msg}})
}

// Bounds of the HTTP transport.
const (
	maxBatch       = 16
	maxHTTPBody    = 2 << 20
	httpMaxWait    = 90 * time.Second
	httpMaxRequest = httpMaxWait + 15*time.Second
)

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="airlock"`)
	writeError(w, &apierr.Error{Status: http.StatusUnauthorized, Code: apierr.CodeUnauthorized, Message: msg})
}

// writeError answers as the API does: e's status and {"error": e}.
func writeError(w http.ResponseWriter, e *apierr.Error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}

// inProcess is an http.RoundTripper that serves requests with the API
// handler directly, keeping the MCP caller's address, user agent and TLS
// connection (its client certificate is part of its instance).
type inProcess struct {
	api        http.Handler
	remote, ua string
	tls        *tls.ConnectionState
}

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	// The API sees that the call came through /mcp (a command's record
	// says so beside the client's "via"), which no network client can
	// claim.
	req = req.WithContext(grants.ThroughMCPEndpoint(req.Context()))
	req.RemoteAddr = t.remote
	req.TLS = t.tls
	if t.ua != "" {
		req.Header.Set("User-Agent", t.ua)
	}
	if req.Body == nil {
		req.Body = http.NoBody
	}
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	t.api.ServeHTTP(rec, req)
	return &http.Response{
		StatusCode: rec.status, Status: http.StatusText(rec.status), Header: rec.header,
		Body: io.NopCloser(bytes.NewReader(rec.body.Bytes())), ContentLength: int64(rec.body.Len()),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Request: req,
	}, nil
}

// recorder is a minimal http.ResponseWriter that keeps the response.
type recorder struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}
