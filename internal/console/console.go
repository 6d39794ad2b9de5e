// Package console is Airlock's web console for people: the approver's
// queue, the review query, the findings, each grant's record and session transcripts,
// and the audit log's status. It is served by `airlock serve` under
// /console/ on listen.api, beside the JSON API and on the same listener
// (so with the same TLS).
//
// The console is a thin skin over the same grants.Service calls the API
// makes, with the signed-in identity as the caller: every decision goes
// through the same policies, and whatever the service refuses (a person
// approving their own request, a grant no longer pending) is shown as
// the service's error.
//
// Pages are rendered on the server with html/template, which escapes
// HTML; every string that came from a request or a recording additionally
// goes through textesc, so control characters and bidirectional overrides
// show as visible escapes rather than acting on the page. The small
// script and style sheet are embedded: the console needs no network but
// the server's.
//
// People sign in with their API key (only human identities; an agent's
// key is refused) or, with an sso section, with OpenID Connect (sso.go).
// A sign-in opens a server-side session kept in memory,
// keyed by the hash of a random id the browser holds in an HttpOnly,
// SameSite=Strict cookie (Secure, and named with the __Host- prefix, over
// TLS, or always when listen.public.api is https://: SecureCookies); it ends after 8 hours, after 1
// idle hour, at sign-out, at the next sign-in in the same browser, or for an SSO sign-in when its ID token expires. Every form carries the session's CSRF token,
// compared in constant time, and state-changing requests must also pass
// net/http's cross-origin protection (Sec-Fetch-Site / Origin). Where
// the cookies are Secure, answers also carry Strict-Transport-Security
// (for a host name other than localhost).
package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// Prefix is where the console is mounted.
const Prefix = "/console/"

// Session lifetimes and bounds.
const (
	DefaultSessionTTL  = 8 * time.Hour
	DefaultIdleTimeout = time.Hour
	maxSessions        = 10000
	maxForm            = 64 << 10
)

// Cookie names. The pre-session cookie carries the sign-in form's CSRF
// token, so that nobody can sign a victim in as someone else. Where the
// cookies are Secure they carry the __Host- prefix (see cookieName).
const (
	sessionCookie = "airlock_console"
	preCookie     = "airlock_console_pre"
	hostPrefix    = "__Host-"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Auditor verifies the log and returns its newest checkpoint (the server).
type Auditor interface {
	Verify(ctx context.Context) (auditlog.Report, error)
	Checkpoint() []byte
}

// Exporter writes evidence bundles (the server).
type Exporter interface {
	Export(ctx context.Context, account, day string) ([]byte, []string, error)
}

// Options configures the console.
type Options struct {
	Service   *grants.Service
	Directory *authn.Directory
	Audit     Auditor // may also be an Exporter
	Logger    *slog.Logger
	// Clock tells the time for session expiry and the review's default
	// day; clock.Real if nil.
	Clock clock.Clock
	// SSO, if set, offers sign-in with OpenID Connect.
	SSO *SSO
	// SessionTTL and IdleTimeout default to 8h and 1h.
	SessionTTL, IdleTimeout time.Duration
	// SecureCookies marks every cookie Secure, also on a plaintext
	// request: browsers reach the console over https through a proxy or
	// balancer that ends TLS (listen.public.api is https://), so the
	// request's own lack of TLS says nothing about the browser's.
	SecureCookies bool
}

// Handler serves the console.
type Handler struct {
	svc    *grants.Service
	dir    *authn.Directory
	audit  Auditor
	logger *slog.Logger
	clk    clock.Clock
	ses    *sessions
	sso    *ssoState // nil without SSO
	tmpl   *template.Template
	mux    *http.ServeMux
	cop    *http.CrossOriginProtection
	secure bool // Options.SecureCookies

	// The last verification run from the console.
	verifyMu sync.Mutex
	lastRun  *verifyRun
}

// verifyRun is one verification and its outcome.
type verifyRun struct {
	At     time.Time
	By     string
	Report auditlog.Report
	Err    string
}

// New returns the console handler; mount it at Prefix (see Mount).
func New(o Options) (*Handler, error) {
	if o.Service == nil || o.Directory == nil {
		return nil, errors.New("console: Service and Directory are required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = clock.Real
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = DefaultSessionTTL
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	tmpl, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	h := &Handler{
		svc: o.Service, dir: o.Directory, audit: o.Audit, logger: o.Logger.With("component", "console"), clk: o.Clock,
		ses: newSessions(o.Clock, o.SessionTTL, o.IdleTimeout, maxSessions), tmpl: tmpl,
		mux: http.NewServeMux(), cop: http.NewCrossOriginProtection(), secure: o.SecureCookies,
	}
	static, _ := fs.Sub(staticFS, "static")
	h.mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", staticHandler(static)))
	h.mux.HandleFunc("GET /console/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/queue", http.StatusSeeOther)
	})
	if o.SSO != nil {
		cfg := *o.SSO
		if cfg.IdentityClaim == "" {
			cfg.IdentityClaim = "email"
		}
		if cfg.GroupsClaim == "" {
			cfg.GroupsClaim = "groups"
		}
		h.sso = &ssoState{cfg: cfg}
		h.mux.HandleFunc("GET /console/sso/start", h.ssoStart)
		h.mux.HandleFunc("GET "+callbackPath, h.ssoCallback)
	}
	h.mux.HandleFunc("GET /console/login", h.loginPage)
	h.mux.HandleFunc("POST /console/login", h.loginKey)
	h.mux.Handle("POST /console/logout", h.authed(h.logout))
	h.mux.Handle("GET /console/queue", h.authed(h.queue))
	h.mux.Handle("GET /console/queue.json", h.authed(h.queueJSON))
	h.mux.Handle("GET /console/review", h.authed(h.review))
	h.mux.Handle("GET /console/review.csv", h.authed(h.reviewCSV))
	h.mux.Handle("GET /console/review.json", h.authed(h.reviewJSON))
	h.mux.Handle("GET /console/findings", h.authed(h.findingsPage))
	h.mux.Handle("GET /console/grants/{id}", h.authed(h.grant))
	h.mux.Handle("POST /console/grants/{id}/approve", h.authed(h.approve))
	h.mux.Handle("POST /console/grants/{id}/deny", h.authed(h.deny))
	h.mux.Handle("POST /console/grants/{id}/revoke", h.authed(h.revoke))
	h.mux.Handle("GET /console/sessions/{id}", h.authed(h.session))
	h.mux.Handle("GET /console/audit", h.authed(h.auditPage))
	h.mux.Handle("POST /console/audit/verify", h.authed(h.verify))
	h.mux.Handle("GET /console/audit/export", h.authed(h.export))
	h.mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, nil, http.StatusNotFound, "There is no such page.")
	})
	return h, nil
}

// Mount returns a handler serving the console under Prefix and api
// everywhere else.
func Mount(api http.Handler, c *Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(Prefix, c)
	mux.Handle("/console", http.RedirectHandler(Prefix, http.StatusSeeOther))
	mux.Handle("/", api)
	return mux
}

// ServeHTTP sets the headers every console answer carries and routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// Nothing but our own script and style; no framing; no caching of
	// pages that show grants.
	hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	if h.cookieSecure(r) && hstsHost(r.Host) {
		// The browser is on https (TLS here, or ended by a proxy in front
		// of an https:// public address): it should never try the
		// console over plain http again, where whoever is on the wire
		// could answer in its place (and a Secure cookie does not stop a
		// page served there from phishing for a key).
		hd.Set("Strict-Transport-Security", hstsValue)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		if err := h.cop.Check(r); err != nil {
			h.logger.Warn("cross-origin form post refused", "remote", r.RemoteAddr, "path", r.URL.Path, "origin", r.Header.Get("Origin"))
			h.fail(w, r, nil, http.StatusForbidden, "This form was posted from another site and was refused.")
			return
		}
	}
	h.mux.ServeHTTP(w, r)
}

// hstsValue is the console's Strict-Transport-Security: a year, for
// this host alone (Airlock speaks for no other name under its own).
const hstsValue = "max-age=31536000"

// hstsHost reports whether Strict-Transport-Security is worth sending to
// a browser that asked for host (a Host header, port and all): not for an
// IP address, which browsers never note as an HSTS host (RFC 6797 8.1),
// nor for localhost, where it would hold on every port (HSTS knows hosts,
// not ports) and turn a developer's other plain-http servers there into
// https for a year.
func hstsHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	return host != "" && net.ParseIP(host) == nil && host != "localhost" && !strings.HasSuffix(host, ".localhost")
}

func staticHandler(fsys fs.FS) http.Handler {
	fsrv := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=300")
		fsrv.ServeHTTP(w, r)
	})
}

// who is the signed-in person of a request.
type who struct {
	id     model.Identity
	ses    *session
	cookie string
}

// authed resolves the session cookie to a person; without one the browser
// is sent to sign in (a JSON endpoint answers 401). The identity is looked
// up again on every request, so a disabled or removed identity, or one no
// longer human, loses its sessions at once, and a session opened with a
// key that has since been replaced ends. Every POST must carry the
// session's CSRF token.
func (h *Handler) authed(fn func(http.ResponseWriter, *http.Request, who)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := h.cookie(r, sessionCookie)
		var ses *session
		if c != nil {
			ses = h.ses.get(c.Value, !isJSON(r))
		}
		var id model.Identity
		if ses != nil {
			var ok bool
			id, ok = h.dir.Lookup(ses.identity)
			switch {
			case !ok || id.Disabled || id.Kind != model.Human:
				h.ses.dropIdentity(ses.identity)
				ses = nil
			case ses.key != "" && ses.key != strings.ToLower(id.KeySHA256):
				// The key this session signed in with was replaced.
				h.logger.Info("console session ended: its key was replaced", "identity", id.Name, "remote", r.RemoteAddr)
				h.ses.drop(c.Value)
				ses = nil
			}
		}
		if ses == nil {
			if r.Method == http.MethodGet && !isJSON(r) {
				http.Redirect(w, r, "/console/login", http.StatusSeeOther)
				return
			}
			h.fail(w, r, nil, http.StatusUnauthorized, "Your session has ended. Sign in again.")
			return
		}
		u := who{id: id, ses: ses, cookie: c.Value}
		if r.Method == http.MethodPost {
			if !tokenOK(ses.csrf, r.PostFormValue("csrf")) {
				h.logger.Warn("console form without a valid CSRF token", "remote", r.RemoteAddr, "path", r.URL.Path, "identity", id.Name)
				h.fail(w, r, &u, http.StatusForbidden, "This form is stale or did not come from this console (bad CSRF token). Reload the page and try again.")
				return
			}
		}
		fn(w, r, u)
	})
}

func isJSON(r *http.Request) bool {
	p := r.URL.Path
	return len(p) > 5 && p[len(p)-5:] == ".json"
}

// setCookie sets a console cookie: HttpOnly, SameSite=Strict, Secure
// (see cookieSecure), named and scoped by cookieName and cookiePath.
func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	h.setCookieSite(w, r, name, value, maxAge, http.SameSiteStrictMode)
}

// setCookieSite is setCookie with the SameSite mode given (the SSO flow's
// cookie must come back on the issuer's cross-site redirect: Lax).
func (h *Handler) setCookieSite(w http.ResponseWriter, r *http.Request, name, value string, maxAge int, site http.SameSite) {
	http.SetCookie(w, &http.Cookie{
		Name: h.cookieName(r, name), Value: value, Path: h.cookiePath(r), MaxAge: maxAge,
		HttpOnly: true, Secure: h.cookieSecure(r), SameSite: site,
	})
}

// cookie returns r's console cookie name, read under the name cookieName
// gives it on r (nil if absent): where cookies are Secure, a cookie under
// the bare name is not read, so one planted without the prefix (which any
// sibling subdomain or plain http:// answer can set) is not taken for the
// console's.
func (h *Handler) cookie(r *http.Request, name string) *http.Cookie {
	c, err := r.Cookie(h.cookieName(r, name))
	if err != nil {
		return nil
	}
	return c
}

// cookieName is the name a console cookie has on r. Where the cookies are
// Secure (over TLS, or behind an https:// public address), it carries the
// __Host- prefix: a browser then accepts the cookie only if it is Secure,
// set from a secure origin, with Path=/ and no Domain, so neither a
// sibling subdomain (a Domain= cookie) nor anyone on a plain http://
// connection to the host can plant or overwrite a session or sign-in
// form cookie of their choosing (session fixation, signing a person in
// as someone else). __Secure- would let the path stay /console/, but it
// only requires Secure: a sibling subdomain could still set one with
// Domain= for the parent, which is the attack that matters here. The
// price of __Host- is Path=/: the cookies also go with requests to the
// JSON API on the same listener, which authenticates by bearer key alone
// and reads no cookie. Over plain http (the demo on loopback) a browser
// drops a __Host- cookie, so the bare name stays there.
func (h *Handler) cookieName(r *http.Request, name string) string {
	if h.cookieSecure(r) {
		return hostPrefix + name
	}
	return name
}

// cookiePath is the path console cookies are scoped to on r: "/" where
// they carry the __Host- prefix (required by it), the console's otherwise.
func (h *Handler) cookiePath(r *http.Request) string {
	if h.cookieSecure(r) {
		return "/"
	}
	return Prefix
}

// cookieSecure reports whether cookies must be Secure: over TLS, and
// always when the browser's side is https (Options.SecureCookies). A
// session cookie without it behind a TLS-ending proxy would also be sent
// on any plain http:// request to the host, to whoever is on the wire.
func (h *Handler) cookieSecure(r *http.Request) bool { return h.secure || r.TLS != nil }

// fail answers with an error page (or JSON for a .json endpoint).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, u *who, status int, msg string) {
	if isJSON(r) {
		writeJSON(w, status, map[string]any{"error": map[string]string{"message": msg}})
		return
	}
	h.render(w, r, u, status, "error", "Error", map[string]any{"Status": status, "StatusText": http.StatusText(status), "Message": msg})
}

// failErr shows a service error as the service worded it, with the field
// at fault when it names one (the API's answer carries it beside the
// message; without it "unknown query parameter" did not say which).
func (h *Handler) failErr(w http.ResponseWriter, r *http.Request, u who, err error) {
	ae := apierr.From(err)
	if ae.Status >= 500 {
		h.logger.Error("console request failed", "path", r.URL.Path, "identity", u.id.Name, "err", err)
	}
	h.fail(w, r, &u, ae.Status, ae.Error())
}
