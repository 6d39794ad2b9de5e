// Package httpapi serves Airlock's JSON API under /v1, the one the CLI and
// any other client use. api/openapi.yaml describes it; a test keeps the two
// in step.
//
// Every route but /healthz and /readyz needs "Authorization: Bearer <key>";
// /metrics a person's. A missing or
// unknown key is a 401 with a JSON error, and the attempt is logged with the
// caller's address, never the key. Errors are {"error":{"code","field",
// "message"}} with a stable code.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/findings"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/workload"
)

// maxBody bounds request bodies; nothing the API takes is larger.
const maxBody = 1 << 20

// maxWait bounds a long poll on a pending grant.
const maxWait = 60 * time.Second

// Auditor verifies the log and returns the newest signed checkpoint.
type Auditor interface {
	Verify(ctx context.Context) (auditlog.Report, error)
	Checkpoint() []byte
}

// Handler is the API.
type Handler struct {
	svc     *grants.Service
	dir     *authn.Directory
	audit   Auditor
	logger  *slog.Logger
	mux     *http.ServeMux
	slack   http.Handler // see SetSlackActions
	webhook http.Handler // see SetWebhookActions
	// workload verifies workload tokens (nil: only API keys are accepted).
	workload *workload.Verifier
	// ready answers GET /readyz (nil: ready whenever serving).
	ready http.Handler
	// metrics answers GET /metrics for people (nil: 404).
	metrics http.Handler
}

// SetMetrics serves m (package metrics: Prometheus's text format) at GET
// /metrics, to people only: a scraper signs in with a human identity's API
// key, as for any other read of the API. Call it before serving.
func (h *Handler) SetMetrics(m http.Handler) { h.metrics = m }

// SetReadiness answers GET /readyz with ready (see internal/health): a
// load balancer's probe, unauthenticated. Without it /readyz answers 200
// whenever the process serves. Call it before serving.
func (h *Handler) SetReadiness(ready http.Handler) { h.ready = ready }

// SetWorkload lets agents authenticate with workload tokens checked by v.
// Call it before serving.
func (h *Handler) SetWorkload(v *workload.Verifier) { h.workload = v }

// Routes lists every route, for the OpenAPI consistency test.
var Routes = []string{
	"GET /healthz",
	"GET /readyz",
	"GET /metrics",
	"GET /v1/whoami",
	"POST /v1/grants",
	"GET /v1/grants",
	"GET /v1/grants/{id}",
	"GET /v1/grants/{id}/history",
	"GET /v1/grants/{id}/sessions",
	"POST /v1/grants/{id}/approve",
	"POST /v1/grants/{id}/deny",
	"POST /v1/grants/{id}/revoke",
	"POST /v1/grants/{id}/end",
	"POST /v1/grants/{id}/credentials",
	"GET /v1/pending",
	"GET /v1/sessions/{id}",
	"GET /v1/identities",
	"POST /v1/agents",
	"POST /v1/agents/{name}/disable",
	"GET /v1/audit/verify",
	"GET /v1/audit/checkpoint",
	"GET /v1/audit/export",
	"GET /v1/audit/consistency",
	"POST /v1/integrations/slack/actions",
	"POST /v1/integrations/webhook/actions",
	"GET /v1/targets",
	"GET /v1/grants/{id}/approvers",
	"POST /v1/grants/{id}/commands",
	"GET /v1/findings",
}

// New returns the API handler.
func New(svc *grants.Service, dir *authn.Directory, audit Auditor, logger *slog.Logger) *Handler {
	h := &Handler{svc: svc, dir: dir, audit: audit, logger: logger, mux: http.NewServeMux()}
	handlers := map[string]func(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error){
		"GET /v1/whoami":                   h.whoami,
		"POST /v1/grants":                  h.request,
		"GET /v1/grants":                   h.list,
		"GET /v1/grants/{id}":              h.get,
		"GET /v1/grants/{id}/history":      h.history,
		"GET /v1/grants/{id}/sessions":     h.sessions,
		"POST /v1/grants/{id}/approve":     h.approve,
		"POST /v1/grants/{id}/deny":        h.deny,
		"POST /v1/grants/{id}/revoke":      h.revoke,
		"POST /v1/grants/{id}/end":         h.end,
		"POST /v1/grants/{id}/credentials": h.credentials,
		"GET /v1/pending":                  h.pending,
		"GET /v1/sessions/{id}":            h.session,
		"GET /v1/identities":               h.identities,
		"POST /v1/agents":                  h.addAgent,
		"POST /v1/agents/{name}/disable":   h.disableAgent,
		"GET /v1/audit/verify":             h.verify,
		"GET /v1/audit/checkpoint":         h.checkpoint,
		"GET /v1/audit/export":             h.export,
		"GET /v1/audit/consistency":        h.consistency,
		"GET /v1/targets":                  h.targets,
		"GET /v1/grants/{id}/approvers":    h.approvers,
		"POST /v1/grants/{id}/commands":    h.command,
		"GET /v1/findings":                 h.findings,
	}
	for pattern, fn := range handlers {
		h.mux.Handle(pattern, h.authed(fn))
	}
	h.mux.HandleFunc("POST /v1/integrations/slack/actions", h.slackActions)
	h.mux.HandleFunc("POST /v1/integrations/webhook/actions", h.webhookActions)
	// The probes answer one line of JSON, as health.Checker does and the
	// docs show: a balancer's log or a grep of it reads one line a probe.
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeLine(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	h.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if h.ready == nil {
			writeLine(w, http.StatusOK, map[string]any{"status": "ready", "checks": map[string]string{}})
			return
		}
		h.ready.ServeHTTP(w, r)
	})
	h.mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		who, aerr := h.Authenticate(r)
		switch {
		case aerr != nil:
			writeError(w, aerr)
		case who.Kind != model.Human:
			writeError(w, apierr.Forbidden("", "metrics are for people (operators): sign in with a human identity's API key"))
		case h.metrics == nil:
			writeError(w, &apierr.Error{Status: http.StatusNotFound, Code: apierr.CodeNotFound, Message: "this server does not serve metrics"})
		default:
			h.metrics.ServeHTTP(w, r)
		}
	})
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// This catch-all matches every method, so the mux never answers 405
		// itself: tell a wrong method from an unknown path here.
		if allow := h.allowed(r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, &apierr.Error{Status: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed, Message: r.Method + " is not allowed on " + r.URL.Path + "; use " + strings.Join(allow, ", ")})
			return
		}
		writeError(w, &apierr.Error{Status: http.StatusNotFound, Code: apierr.CodeNotFound, Message: "no such endpoint: " + r.Method + " " + r.URL.Path})
	})
	return h
}

// CodeMethodNotAllowed is kept for callers of this package; the code
// itself lives with the others in apierr.
const CodeMethodNotAllowed = apierr.CodeMethodNotAllowed

// allowed returns the methods some route other than the catch-all serves
// r's path with.
func (h *Handler) allowed(r *http.Request) []string {
	var out []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.WithContext(r.Context())
		probe.Method = m
		if _, pattern := h.mux.Handler(probe); pattern != "" && pattern != "/" {
			out = append(out, m)
		}
	}
	return out
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) authed(fn func(http.ResponseWriter, *http.Request, model.Identity) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, aerr := h.Authenticate(r)
		if aerr != nil {
			writeError(w, aerr)
			return
		}
		if aerr := plainParams(r); aerr != nil {
			writeError(w, aerr)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		out, err := fn(w, r, who)
		if err != nil {
			ae := apierr.From(err)
			switch {
			case errors.Is(err, grants.ErrStopping):
				// A long poll the stop ended: the server works as meant.
				h.logger.Info("long poll ended by the server's stop", "method", r.Method, "path", r.URL.Path, "caller", who.Name)
			case ae.Status >= 500:
				h.logger.Error("API call failed", "method", r.Method, "path", r.URL.Path, "caller", who.Name, "err", err)
			}
			writeError(w, ae)
			return
		}
		status := http.StatusOK
		if r.Method == http.MethodPost && (r.URL.Path == "/v1/grants" || r.URL.Path == "/v1/agents") {
			status = http.StatusCreated
		}
		writeJSON(w, status, out)
	})
}

// Authenticate checks r's bearer token (an API key or a workload token),
// fingerprints the caller's instance and applies identity binding: it is
// the one sign-in every route of the API, and anything served beside it
// (MCP over HTTP), goes through. The error is ready to send.
func (h *Handler) Authenticate(r *http.Request) (model.Identity, *apierr.Error) {
	// The scheme is case-insensitive (RFC 9110, section 11.1): "bearer
	// KEY" was refused as "missing API key", with the key right there.
	auth := r.Header.Get("Authorization")
	scheme, key, _ := strings.Cut(auth, " ")
	key = strings.TrimSpace(key)
	if !strings.EqualFold(scheme, "Bearer") || key == "" {
		h.logger.Warn("API call without a key", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
		msg := "missing API key: set AIRLOCK_TOKEN (sent as Authorization: Bearer <key>)"
		if strings.TrimSpace(auth) != "" && !strings.EqualFold(scheme, "Bearer") {
			msg = "the Authorization header must be \"Bearer <key>\" (another scheme, such as Basic, is not accepted): set AIRLOCK_TOKEN to the key alone"
		}
		return model.Identity{}, &apierr.Error{Status: http.StatusUnauthorized, Code: apierr.CodeUnauthorized, Message: msg}
	}
	who, aerr := h.authenticate(r, key)
	if aerr != nil {
		return model.Identity{}, aerr
	}
	// Every call carries its instance fingerprint; a second instance of
	// one agent within the window is a finding, or a refusal.
	if err := h.svc.ObserveCall(r.Context(), who); err != nil {
		h.logger.Warn("API call refused by identity binding", "remote", r.RemoteAddr, "caller", who.Name, "method", r.Method, "path", r.URL.Path)
		return model.Identity{}, apierr.From(err)
	}
	return who, nil
}

// authenticate resolves a bearer token: a workload token (a JWT, when an
// issuer is configured) or an API key. The identity comes back with how it
// authenticated and its instance. Refusals say which check failed, never
// what the token held.
func (h *Handler) authenticate(r *http.Request, tok string) (model.Identity, *apierr.Error) {
	inst := findings.FromRequest(r)
	if h.workload != nil && workload.LooksLikeJWT(tok) {
		res, err := h.workload.Verify(r.Context(), tok)
		if err != nil {
			h.logger.Warn("API call with a refused workload token", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "err", err)
			msg := "workload token refused"
			var we *workload.Error
			if errors.As(err, &we) {
				msg = we.Error()
			}
			return model.Identity{}, &apierr.Error{Status: http.StatusUnauthorized, Code: apierr.CodeUnauthorized, Message: msg}
		}
		who, ok := h.dir.Lookup(res.Identity)
		// Only agents sign in with workload tokens; the configuration
		// allows no other binding, and this holds if it ever did.
		if !ok || who.Disabled || who.Kind != model.Agent {
			h.logger.Warn("workload token mapped to an unusable identity", "remote", r.RemoteAddr, "identity", res.Identity)
			return model.Identity{}, &apierr.Error{Status: http.StatusUnauthorized, Code: apierr.CodeUnauthorized, Message: "workload token refused: the identity it maps to is disabled or not an agent"}
		}
		who.Auth = res.Auth()
		// The token, for the record of a decision refused to it, in the
		// structure decisions record.
		who.SignIn = &model.SignIn{Method: model.SignInOIDC, Issuer: res.Issuer, Subject: res.Subject}
		inst.Claims = res.Instance
		who.Instance = &inst
		return who, nil
	}
	who, ok := h.dir.Authenticate(tok)
	if !ok {
		h.logger.Warn("API call with an unknown or disabled key", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path)
		return model.Identity{}, &apierr.Error{Status: http.StatusUnauthorized, Code: apierr.CodeUnauthorized, Message: "invalid or disabled API key"}
	}
	who.Auth = "key"
	// Which key, for the record of a decision made with it: its id, never
	// the key or its hash.
	who.SignIn = &model.SignIn{Method: model.SignInAPIKey, KeyID: authn.KeyID(who.KeySHA256)}
	who.Instance = &inst
	return who, nil
}

// withAuthMethods fills id's AuthMethods from its key and the configured
// workload bindings. It is derived here, at read time, rather than stored,
// so the record always shows the configuration in force.
func (h *Handler) withAuthMethods(id model.Identity) model.Identity {
	id.AuthMethods = nil
	if id.KeySHA256 != "" {
		id.AuthMethods = append(id.AuthMethods, "key")
	}
	if h.workload != nil {
		id.AuthMethods = append(id.AuthMethods, h.workload.BindingsOf(id.Name)...)
	}
	return id
}

// FindingsResponse is a page of findings. Next, when set, is the cursor of
// the next page (?after=NEXT, with the same day and limit); absent, the log
// holds no more findings for the query. A page may hold fewer findings
// than its limit, even none, and still have a next (grants.Findings).
type FindingsResponse struct {
	Findings []model.Finding `json:"findings"`
	Next     string          `json:"next,omitempty"`
}

func (h *Handler) findings(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	q := r.URL.Query()
	if err := known(q, "day", "limit", "after"); err != nil {
		return nil, err
	}
	if err := once(q, "day", "limit", "after"); err != nil {
		return nil, err
	}
	fq := grants.FindingsQuery{Day: q.Get("day")}
	if fq.Day != "" {
		if _, err := time.Parse("2006-01-02", fq.Day); err != nil {
			return nil, apierr.Invalid("day", "%s is not a day (YYYY-MM-DD)", apierr.Quote(fq.Day))
		}
	}
	var err error
	if fq.Limit, err = parseLimit(q.Get("limit"), grants.MaxFindingsPage); err != nil {
		return nil, err
	}
	if fq.After, err = parseSeqCursor(q.Get("after")); err != nil {
		return nil, err
	}
	page, err := h.svc.Findings(r.Context(), who, fq)
	if err != nil {
		return nil, err
	}
	return FindingsResponse{Findings: page.Findings, Next: seqCursor(page.Next)}, nil
}

// parseSeqCursor reads the after parameter of a list paged by log
// sequence (findings, a session's events): the sequence number of the log
// entry the page before ended at, but only as the server wrote it in next;
// 0 when v is empty.
func parseSeqCursor(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || strconv.FormatInt(n, 10) != v {
		return 0, apierr.Invalid("after", "%s is not a cursor (the next of a previous page)", apierr.Quote(v))
	}
	return n, nil
}

// seqCursor is the next of a page paged by log sequence: "" (no page
// follows) for 0.
func seqCursor(next int64) string {
	if next <= 0 {
		return ""
	}
	return strconv.FormatInt(next, 10)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeLine is writeJSON on one line.
func writeLine(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *apierr.Error) {
	writeJSON(w, e.Status, map[string]any{"error": e})
}

// decode reads a JSON body strictly: unknown fields are errors, so a typo
// in a client never silently drops a parameter.
//
// The body must be UTF-8 (Go's decoder would quietly turn each invalid byte
// into U+FFFD, so the record would not hold what was sent), and no object
// in it may name one key twice, in any letter case: Go's decoder takes the
// last of {"target":"a","Target":"b"}, another parser the first, so such a
// body means different things to different readers.
func decode(r *http.Request, v any) error {
	data, err := io.ReadAll(r.Body)
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		// 413, as HTTP has it for a body too large (it was a 400).
		return apierr.TooLarge("larger than %d bytes (1 MiB), the most the API reads", maxBody)
	case err != nil:
		return apierr.Invalid("body", "reading the body: %v", err)
	case !utf8.Valid(data):
		return apierr.Invalid("body", "not valid UTF-8")
	}
	if key, path := duplicateKey(data); key != "" {
		return apierr.Invalid(path+key, "given more than once (keys are matched regardless of case)")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		switch {
		case errors.Is(err, io.EOF):
			return apierr.Invalid("body", "a JSON body is required")
		}
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			if ute.Field == "" {
				// The body itself is not a JSON object; the Go type it
				// was to fill is no business of the caller's.
				return apierr.Invalid("body", "wrong type: want a JSON object, got %s", ute.Value)
			}
			return apierr.Invalid(ute.Field, "wrong type: want %s", ute.Type)
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			if name := strings.Trim(f, `"`); name != "" {
				return apierr.Invalid(name, "unknown field")
			}
			return apierr.Invalid("body", "unknown field %s", f)
		}
		return apierr.Invalid("body", "malformed JSON: %v", err)
	}
	if dec.More() {
		return apierr.Invalid("body", "trailing data after the JSON object")
	}
	return nil
}

// duplicateKey returns the first key that some object of the JSON text
// data names twice, matched as encoding/json matches keys to fields (by
// Unicode case folding), and the path of that object ("" at the top,
// "scope[0]." and so on below). Malformed JSON is left to the decoder to
// report.
func duplicateKey(data []byte) (key, path string) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	// walk reads one value; it returns a duplicate key and where it is, or
	// an error where the text is malformed (the decoder will say so).
	var walk func(path string) (string, string, error)
	walk = func(path string) (string, string, error) {
		t, err := dec.Token()
		if err != nil {
			return "", "", err
		}
		switch t {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return "", "", err
				}
				k, _ := kt.(string)
				f := foldKey(k)
				if seen[f] {
					return k, path, nil
				}
				seen[f] = true
				if key, at, err := walk(path + k + "."); key != "" || err != nil {
					return key, at, err
				}
			}
		case json.Delim('['):
			for i := 0; dec.More(); i++ {
				if key, at, err := walk(strings.TrimSuffix(path, ".") + "[" + strconv.Itoa(i) + "]."); key != "" || err != nil {
					return key, at, err
				}
			}
		default:
			return "", "", nil
		}
		_, err = dec.Token() // the closing delimiter
		return "", "", err
	}
	key, path, _ = walk("")
	return key, path
}

// foldKey maps each rune of k to the smallest rune of its case-folding
// orbit, so that two keys encoding/json would match to one field fold to
// the same string.
func foldKey(k string) string {
	var b strings.Builder
	for _, r := range k {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}

func (h *Handler) whoami(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	return h.withAuthMethods(who), nil
}

// GrantResponse wraps one grant.
type GrantResponse struct {
	Grant model.Grant `json:"grant"`
}

func (h *Handler) request(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	var in grants.RequestInput
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	g, err := h.svc.Request(r.Context(), who, in)
	return GrantResponse{g}, err
}

// ListResponse is the review query's answer, and the approver's queue's
// (GET /v1/pending): a page of it. Next, when set, is the cursor of the
// next page (?after=NEXT, with the same filter); absent, no grant
// follows.
type ListResponse struct {
	Grants []model.Grant `json:"grants"`
	Next   string        `json:"next,omitempty"`
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	q, err := ParseGrantsQuery(r.URL.Query())
	if err != nil {
		return nil, err
	}
	page, err := h.svc.List(r.Context(), who, q)
	if err != nil {
		return nil, err
	}
	return ListResponse{Grants: page.Grants, Next: page.Next}, nil
}

// ParseGrantsQuery turns review-query parameters into a page of the
// review query: the filter, limit and the cursor after. It refuses a
// parameter it does not know: GET /v1/grants and the web console's review
// (page and downloads) both answer through it, and a typo (acount=A)
// would otherwise be dropped and the review answer for every account.
func ParseGrantsQuery(q map[string][]string) (grants.GrantsQuery, error) {
	if err := known(q, "account", "target", "identity", "status", "day", "since", "until", "limit", "after"); err != nil {
		return grants.GrantsQuery{}, err
	}
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	// Only status takes several values; another parameter given twice
	// (account=A&account=B) was answered for the first alone, a review
	// that silently left B out.
	if err := once(q, "account", "target", "identity", "day", "since", "until", "limit", "after"); err != nil {
		return grants.GrantsQuery{}, err
	}
	f := store.GrantFilter{Account: get("account"), Target: get("target"), Identity: get("identity")}
	out := grants.GrantsQuery{After: get("after")}
	for _, s := range q["status"] {
		for _, one := range strings.Split(s, ",") {
			st := model.GrantStatus(one)
			if !st.Valid() {
				return out, apierr.Invalid("status", "unknown status %s", apierr.Quote(one))
			}
			f.Status = append(f.Status, st)
		}
	}
	if day := get("day"); day != "" {
		if get("since") != "" || get("until") != "" {
			return out, apierr.Invalid("day", "use either day or since/until, not both")
		}
		d, err := time.Parse("2006-01-02", day)
		if err != nil {
			return out, apierr.Invalid("day", "%s is not a date (YYYY-MM-DD, UTC)", apierr.Quote(day))
		}
		f.Since, f.Until = d, d.Add(24*time.Hour)
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
		ago  *time.Duration
	}{{"since", &f.Since, &out.SinceAgo}, {"until", &f.Until, &out.UntilAgo}} {
		if v := get(p.name); v != "" {
			if t, err := parseTime(v); err == nil {
				*p.dst = t
				continue
			}
			// A relative time (since=1h): that long before now, which
			// List resolves, so that every page of the query reads the
			// same window.
			d, err := grants.ParseAgo(v)
			if err != nil {
				return out, apierr.Invalid(p.name, "%s is not a time (RFC 3339, such as 2026-11-25T14:00:00Z, a date, or a positive duration before now such as 90m, 1h or 7d): %v", apierr.Quote(v), err)
			}
			*p.ago = d
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) ||
		out.SinceAgo > 0 && out.UntilAgo > 0 && out.UntilAgo >= out.SinceAgo {
		return out, apierr.Invalid("until", "must be after since")
	}
	if v := get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		switch {
		case err == nil && n == 0:
			// limit=0 meant "no cap" before the list was paged: refused
			// rather than read as a page of the default size, so that a
			// script relying on it learns it now gets pages.
			return out, apierr.Invalid("limit", "0 no longer means every grant: the list is answered a page at a time (limit 1 to %d, %d if absent); follow next for the rest", grants.MaxGrantsPage, grants.DefaultGrantsPage)
		case err != nil || n < 1 || n > grants.MaxGrantsPage:
			return out, apierr.Invalid("limit", "%s is not a number from 1 to %d", apierr.Quote(v), grants.MaxGrantsPage)
		}
		out.Limit = n
	}
	out.Filter = f
	return out, nil
}

// known refuses a query parameter other than keys, as decode refuses an
// unknown field: a typo (acount=A) was ignored, and the review answered
// for every account.
func known(q map[string][]string, keys ...string) error {
	for k := range q {
		if !slices.Contains(keys, k) {
			if k == "" {
				// "?=x" or "?&": the error must still name what to fix.
				return apierr.Invalid("query", "a query parameter has an empty name")
			}
			if len(keys) == 0 {
				return apierr.Invalid(k, "unknown query parameter; this route takes none")
			}
			return apierr.Invalid(k, "unknown query parameter; this route takes %s", strings.Join(keys, ", "))
		}
	}
	return nil
}

// plainParams refuses a path value ({id}, {name}) or query parameter that
// holds a control character or is not UTF-8. No grant or session id,
// identity, target, account, day, time, cursor or duration can hold one,
// and PostgreSQL refuses NUL and invalid UTF-8 in text outright: passed
// on, such a value was a 500 on that store (and a "not found" on SQLite)
// rather than a 400 naming what to fix. Checked here, once, for every
// authenticated route, so a new parameter needs no check of its own.
func plainParams(r *http.Request) *apierr.Error {
	for _, k := range []string{"id", "name"} {
		if v := r.PathValue(k); !Plain(v) {
			return apierr.Invalid(k, "%s holds a control character or is not UTF-8; no %s can", apierr.Quote(v), k)
		}
	}
	q := r.URL.Query()
	keys := slices.Sorted(maps.Keys(q))
	for _, k := range keys {
		if !Plain(k) {
			return apierr.Invalid("query", "the query parameter name %s holds a control character or is not UTF-8", apierr.Quote(k))
		}
		for _, v := range q[k] {
			if !Plain(v) {
				return apierr.Invalid(k, "%s holds a control character or is not UTF-8; no value of %s can", apierr.Quote(v), k)
			}
		}
	}
	return nil
}

// Plain reports whether s is UTF-8 without control characters (C0, DEL,
// C1): what plainParams requires of every path value and query parameter.
// The CLI checks its ids and filters with it before asking (a usage error).
func Plain(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl)
}

// once refuses a query in which one of keys is given more than once:
// every handler reads the first value alone, and the others would be
// silently ignored.
func once(q map[string][]string, keys ...string) error {
	for _, k := range keys {
		if n := len(q[k]); n > 1 {
			return apierr.Invalid(k, "given %d times; give it once", n)
		}
	}
	return nil
}

func parseTime(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	return time.Parse("2006-01-02", v)
}

func (h *Handler) get(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	id := r.PathValue("id")
	if err := known(r.URL.Query(), "wait"); err != nil {
		return nil, err
	}
	if err := once(r.URL.Query(), "wait"); err != nil {
		return nil, err
	}
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, apierr.Invalid("wait", "%s is not a positive duration", apierr.Quote(v))
		}
		g, err := h.svc.Wait(r.Context(), who, id, min(d, maxWait))
		return GrantResponse{g}, err
	}
	g, err := h.svc.Get(r.Context(), who, id)
	return GrantResponse{g}, err
}

// Event is a log entry as the API shows it. Void marks an entry a later
// log.refused entry names: its batch's commit outcome was unknown and its
// caller was told it failed (a call refused), so no record counts it.
type Event struct {
	Seq       int64           `json:"seq"`
	Time      time.Time       `json:"time"`
	Type      string          `json:"type"`
	GrantID   string          `json:"grant,omitempty"`
	SessionID string          `json:"session,omitempty"`
	Void      bool            `json:"void,omitempty"`
	Entry     json.RawMessage `json:"entry"`
}

// events renders es; void are the sequence numbers of those a log.refused
// entry names, in order (grants.SessionPage.Void).
func events(es []store.LogEntry, void []int64) []Event {
	out := make([]Event, 0, len(es))
	for _, e := range es {
		raw := json.RawMessage(e.Data)
		if !json.Valid(raw) {
			raw, _ = json.Marshal(string(e.Data))
		}
		_, isVoid := slices.BinarySearch(void, e.Seq)
		out = append(out, Event{Seq: e.Seq, Time: e.Time, Type: e.Type, GrantID: e.GrantID, SessionID: e.SessionID, Void: isVoid, Entry: raw})
	}
	return out
}

// HistoryResponse is a page of a grant's log entries. Next, when set, is
// the cursor of the next page (?after=NEXT); absent, no entry follows.
// LogMismatch lists the problems proving the page met (an entry not as
// the log holds it, or changed since an earlier read of the grant).
type HistoryResponse struct {
	Events      []Event  `json:"events"`
	Next        string   `json:"next,omitempty"`
	LogMismatch []string `json:"log_mismatch,omitempty"`
}

func (h *Handler) history(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	eq, err := ParseEventsQuery(r.URL.Query())
	if err != nil {
		return nil, err
	}
	page, err := h.svc.History(r.Context(), who, r.PathValue("id"), eq)
	if err != nil {
		return nil, err
	}
	return HistoryResponse{Events: events(page.Entries, page.Void), Next: seqCursor(page.Next), LogMismatch: page.LogMismatch}, nil
}

// SessionsResponse is a page of a grant's sessions. Next, when set, is the
// cursor of the next page (?after=NEXT); absent, no session follows.
type SessionsResponse struct {
	Sessions []model.Session `json:"sessions"`
	Next     string          `json:"next,omitempty"`
}

func (h *Handler) sessions(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	q := r.URL.Query()
	if err := known(q, "limit", "after"); err != nil {
		return nil, err
	}
	if err := once(q, "limit", "after"); err != nil {
		return nil, err
	}
	sq := grants.SessionsQuery{After: q.Get("after")}
	var err error
	if sq.Limit, err = parseLimit(q.Get("limit"), grants.MaxSessionsPage); err != nil {
		return nil, err
	}
	page, err := h.svc.GrantSessions(r.Context(), who, r.PathValue("id"), sq)
	if err != nil {
		return nil, err
	}
	return SessionsResponse{Sessions: page.Sessions, Next: page.Next}, nil
}

// SessionResponse is one session's record and a page of its recording.
// Next, when set, is the cursor of the next page of events (?after=NEXT);
// absent, no event follows. A client that names no page gets the first
// DefaultEventsPage events, and the whole recording if it fits.
type SessionResponse struct {
	Session model.Session `json:"session"`
	Events  []Event       `json:"events"`
	Next    string        `json:"next,omitempty"`
}

func (h *Handler) session(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	eq, err := ParseEventsQuery(r.URL.Query())
	if err != nil {
		return nil, err
	}
	page, err := h.svc.Session(r.Context(), who, r.PathValue("id"), eq)
	if err != nil {
		return nil, err
	}
	return SessionResponse{Session: page.Session, Events: events(page.Entries, page.Void), Next: seqCursor(page.Next)}, nil
}

// ParseEventsQuery reads a page of a session's events from query
// parameters: limit and after. GET /v1/sessions/{id} and the console's
// session page both answer through it.
func ParseEventsQuery(q map[string][]string) (grants.EventsQuery, error) {
	if err := known(q, "limit", "after"); err != nil {
		return grants.EventsQuery{}, err
	}
	if err := once(q, "limit", "after"); err != nil {
		return grants.EventsQuery{}, err
	}
	v := url.Values(q)
	var eq grants.EventsQuery
	var err error
	if eq.Limit, err = parseLimit(v.Get("limit"), grants.MaxEventsPage); err != nil {
		return eq, err
	}
	eq.After, err = parseSeqCursor(v.Get("after"))
	return eq, err
}

// DecisionInput is the body of approve, deny, revoke and end.
type DecisionInput struct {
	Comment string `json:"comment,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// decision reads the body of a verb that takes field ("comment" or
// "reason"). The other field of DecisionInput is refused: approve with a
// "reason", or deny with a "comment", had its text silently dropped.
func (h *Handler) decision(r *http.Request, verb, field string) (DecisionInput, error) {
	var in DecisionInput
	if r.ContentLength == 0 {
		return in, nil
	}
	err := decode(r, &in)
	var ae *apierr.Error
	if errors.As(err, &ae) && ae.Field == "body" && strings.HasPrefix(ae.Message, "a JSON body is required") {
		// An empty chunked body means "no comment", as an absent one does.
		return in, nil
	}
	if err != nil {
		return in, err
	}
	switch {
	case field == "comment" && in.Reason != "":
		return in, apierr.Invalid("reason", "%s takes a comment, not a reason", verb)
	case field == "reason" && in.Comment != "":
		return in, apierr.Invalid("comment", "%s takes a reason, not a comment", verb)
	}
	return in, nil
}

func (h *Handler) approve(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	in, err := h.decision(r, "approve", "comment")
	if err != nil {
		return nil, err
	}
	g, err := h.svc.Approve(apiChannel(r), who, r.PathValue("id"), in.Comment)
	return GrantResponse{g}, err
}

func (h *Handler) deny(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	in, err := h.decision(r, "deny", "reason")
	if err != nil {
		return nil, err
	}
	g, err := h.svc.Deny(apiChannel(r), who, r.PathValue("id"), in.Reason)
	return GrantResponse{g}, err
}

func (h *Handler) revoke(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	in, err := h.decision(r, "revoke", "reason")
	if err != nil {
		return nil, err
	}
	g, err := h.svc.Revoke(apiChannel(r), who, r.PathValue("id"), in.Reason)
	return GrantResponse{g}, err
}

// apiChannel is r's context marked as a decision made through the API
// (or the CLI, its client), so the log records "via": "api" as it records
// the console's and Slack's; before, an API decision recorded none.
func apiChannel(r *http.Request) context.Context {
	return grants.WithChannel(r.Context(), "api", "")
}

func (h *Handler) end(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	in, err := h.decision(r, "end", "comment")
	if err != nil {
		return nil, err
	}
	g, err := h.svc.End(r.Context(), who, r.PathValue("id"), in.Comment)
	return GrantResponse{g}, err
}

func (h *Handler) credentials(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	return h.svc.Credentials(r.Context(), who, r.PathValue("id"))
}

func (h *Handler) pending(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	pq, err := ParsePendingQuery(r.URL.Query())
	if err != nil {
		return nil, err
	}
	page, err := h.svc.Pending(r.Context(), who, pq)
	if err != nil {
		return nil, err
	}
	return ListResponse{Grants: page.Grants, Next: page.Next}, nil
}

// ParsePendingQuery reads a page of the approver's queue from query
// parameters: limit and after. GET /v1/pending and the console's queue
// both answer through it. It took no parameter before it was paged and
// ignored any; an unknown one is refused now, as the other lists do.
func ParsePendingQuery(q map[string][]string) (grants.PendingQuery, error) {
	if err := known(q, "limit", "after"); err != nil {
		return grants.PendingQuery{}, err
	}
	if err := once(q, "limit", "after"); err != nil {
		return grants.PendingQuery{}, err
	}
	v := url.Values(q)
	pq := grants.PendingQuery{After: v.Get("after")}
	var err error
	pq.Limit, err = parseLimit(v.Get("limit"), grants.MaxPendingPage)
	return pq, err
}

// parseLimit reads a page's limit parameter: 0 (the list's default) when
// v is empty, else a number from 1 to most.
func parseLimit(v string, most int) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > most {
		return 0, apierr.Invalid("limit", "%s is not a number from 1 to %d", apierr.Quote(v), most)
	}
	return n, nil
}

// IdentitiesResponse lists identities.
type IdentitiesResponse struct {
	Identities []model.Identity `json:"identities"`
}

func (h *Handler) identities(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	ids, err := h.svc.Identities(r.Context(), who)
	for i := range ids {
		ids[i] = h.withAuthMethods(ids[i])
	}
	return IdentitiesResponse{ids}, err
}

// AgentInput is the body of POST /v1/agents.
type AgentInput struct {
	Name   string   `json:"name"`
	Owner  string   `json:"owner"`
	Groups []string `json:"groups,omitempty"`
}

// AgentResponse carries a new agent and its key, shown this once.
type AgentResponse struct {
	Identity model.Identity `json:"identity"`
	Key      string         `json:"key"`
}

func (h *Handler) addAgent(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	var in AgentInput
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	id, key, err := h.svc.AddAgent(r.Context(), who, in.Name, in.Owner, in.Groups)
	return AgentResponse{h.withAuthMethods(id), key}, err
}

// IdentityResponse wraps one identity.
type IdentityResponse struct {
	Identity model.Identity `json:"identity"`
}

func (h *Handler) disableAgent(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	in, err := h.decision(r, "disable", "reason")
	if err != nil {
		return nil, err
	}
	id, err := h.svc.DisableAgent(r.Context(), who, r.PathValue("name"), in.Reason)
	return IdentityResponse{h.withAuthMethods(id)}, err
}

func (h *Handler) verify(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	if who.Kind != model.Human {
		return nil, apierr.Forbidden("", "only people may run audit verification")
	}
	return h.audit.Verify(r.Context())
}

// CheckpointResponse carries the newest signed checkpoint, for witnesses,
// and the newest one the configured tlog-witnesses cosigned.
type CheckpointResponse struct {
	Checkpoint string `json:"checkpoint"`
	Cosigned   string `json:"cosigned,omitempty"`
}

// CosignedAuditor is an Auditor that also keeps witness-cosigned
// checkpoints (package witness).
type CosignedAuditor interface {
	CosignedCheckpoint() []byte
}

func (h *Handler) checkpoint(w http.ResponseWriter, r *http.Request, who model.Identity) (any, error) {
	resp := CheckpointResponse{Checkpoint: string(h.audit.Checkpoint())}
	if c, ok := h.audit.(CosignedAuditor); ok {
		resp.Cosigned = string(c.CosignedCheckpoint())
	}
	return resp, nil
}
