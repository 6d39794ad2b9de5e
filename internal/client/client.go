// Package client is a Go client for Airlock's HTTP API, used by the CLI.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
)

// DefaultAddr is where the CLI looks for the server when AIRLOCK_ADDR is unset.
const DefaultAddr = "http://127.0.0.1:8700"

// Client talks to one Airlock server as one identity.
type Client struct {
	Addr  string
	Token string
	HTTP  *http.Client

	// setupErr is a configuration problem (TrustCA, UseClientCert) every
	// call returns.
	setupErr error
	// tls is the TLS configuration of the client's own transport, once
	// TrustCA or UseClientCert made one (tlsConfig).
	tls *tls.Config
}

// New returns a client; addr defaults to DefaultAddr.
func New(addr, token string) *Client {
	// Spaces and line ends around either (a value pasted, or read from a
	// file with its newline) are never part of one.
	addr, token = strings.TrimSpace(addr), strings.TrimSpace(token)
	if addr == "" {
		addr = DefaultAddr
	}
	c := &Client{Addr: strings.TrimRight(addr, "/"), Token: token, HTTP: &http.Client{Timeout: 90 * time.Second, CheckRedirect: noRedirects}}
	if strings.IndexFunc(token, func(r rune) bool { return r <= ' ' || r >= 0x7f }) >= 0 {
		// Go refused to send such a header, and the error said only that
		// Airlock could not be reached. The key is not echoed.
		c.setupErr = fmt.Errorf("AIRLOCK_TOKEN holds a space, a control character or a non-ASCII character: a key is one word (alk_…); set it to the key alone")
	}
	scheme, rest, ok := strings.Cut(addr, "://")
	switch {
	case strings.Contains(c.Addr, "@") && (!ok || !strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https")):
		// Not echoed: what precedes the @ may be a password.
		c.Addr = "(AIRLOCK_ADDR)"
		c.setupErr = fmt.Errorf("AIRLOCK_ADDR is not an http:// or https:// address, and holds an @: give the address alone, as https://HOST:PORT (the key goes in AIRLOCK_TOKEN)")
		return c
	case !ok:
		// "127.0.0.1:8700" failed with Go's "first path segment in URL
		// cannot contain colon", "localhost:8700" with "unsupported
		// protocol scheme \"localhost\"".
		c.setupErr = fmt.Errorf("AIRLOCK_ADDR %q has no scheme: use http://%s for a server on this machine, or https://%s", c.Addr, c.Addr, c.Addr)
		return c
	case !strings.EqualFold(scheme, "http") && !strings.EqualFold(scheme, "https"):
		c.setupErr = fmt.Errorf("AIRLOCK_ADDR %q: the scheme must be http:// or https://, not %s://", c.Addr, scheme)
		return c
	case rest == "" || strings.HasPrefix(rest, "/"):
		c.setupErr = fmt.Errorf("AIRLOCK_ADDR %q names no host: use %s://HOST:PORT", c.Addr, scheme)
		return c
	}
	if u, err := url.Parse(c.Addr); err == nil && u.User != nil {
		// A user name or password in the address is never used (the key
		// is the bearer token) and would be echoed by every error that
		// names the address: refuse it, and keep only the redacted form.
		c.Addr = u.Redacted()
		c.setupErr = fmt.Errorf("AIRLOCK_ADDR %s holds a user name or password; give the address alone (the key goes in AIRLOCK_TOKEN)", c.Addr)
	}
	return c
}

// noRedirects keeps the client from following redirects: Go's client
// would send the Authorization header on to any host with the same name
// (another port, or http:// after https://) or a subdomain, and the API
// never redirects. The 3xx comes back to doLimit, which reports it.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// maxResponse bounds the response the client reads; maxExportResponse
// that of an evidence export, whose bundle (up to evidence.MaxSize, 256
// MiB) comes quoted in a JSON string, which may double its size.
var maxResponse int64 = 64 << 20

const maxExportResponse = 2*(256<<20) + 1<<20

// maxForeignError is how much of an error response that is not Airlock's
// JSON the client keeps for its message.
const maxForeignError = 512

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	return c.doLimit(ctx, method, path, in, out, maxResponse)
}

// doLimit is do reading at most limit bytes of the response: a longer one
// is refused, not decoded cut short.
func (c *Client) doLimit(ctx context.Context, method, path string, in, out any, limit int64) error {
	if c.setupErr != nil {
		return c.setupErr
	}
	// An id or name of "." or ".." (url.PathEscape leaves both alone)
	// would make the server clean the path into another route and
	// redirect, which the client does not follow: the user saw a
	// misleading "redirect" error about AIRLOCK_ADDR.
	// An empty one (airlock approve "") made "//" or a trailing "/",
	// with the same redirect, or "no such endpoint".
	p, _, _ := strings.Cut(path, "?")
	for i, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return &apierr.Error{Status: http.StatusBadRequest, Code: apierr.CodeInvalid, Message: fmt.Sprintf("%q is not an id", seg)}
		}
		if seg == "" && i > 0 {
			return &apierr.Error{Status: http.StatusBadRequest, Code: apierr.CodeInvalid, Message: "an id is required (got an empty one)"}
		}
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Addr+path, body)
	if err != nil {
		return fmt.Errorf("bad AIRLOCK_ADDR %q: %w", c.Addr, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach Airlock at %s: %w", c.Addr, explainTLS(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fmt.Errorf("reading response: %w", err)
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("the response (status %d) is larger than %d bytes, more than this client reads", resp.StatusCode, limit)
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		return &apierr.Error{Status: resp.StatusCode, Code: "http_" + fmt.Sprint(resp.StatusCode),
			Message: fmt.Sprintf("the server at %s answered with a redirect (to %q), which this client does not follow: set AIRLOCK_ADDR to the API's own address", c.Addr, truncate(resp.Header.Get("Location"), 200))}
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error *apierr.Error `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != nil {
			e.Error.Status = resp.StatusCode
			return e.Error
		}
		// Not Airlock's error (a proxy's page, or another of Airlock's
		// listeners, such as the AWS gateway's XML): its start, on one
		// line, is enough to tell what answered, and the rest is not
		// printed. Its first line alone ("<?xml version=…>") told nothing.
		body := truncate(strings.Join(strings.Fields(truncate(string(data), 4*maxForeignError)), " "), maxForeignError)
		return &apierr.Error{Status: resp.StatusCode, Code: "http_" + fmt.Sprint(resp.StatusCode),
			Message: fmt.Sprintf("the server at %s answered HTTP %d, not with Airlock's API (is AIRLOCK_ADDR the address of listen.api?): %s", c.Addr, resp.StatusCode, body)}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding response: %w", err)
		}
	}
	return nil
}

// WhoAmI returns the caller's identity.
func (c *Client) WhoAmI(ctx context.Context) (model.Identity, error) {
	var id model.Identity
	return id, c.do(ctx, "GET", "/v1/whoami", nil, &id)
}

// Request asks for a grant.
func (c *Client) Request(ctx context.Context, in grants.RequestInput) (model.Grant, error) {
	var r httpapi.GrantResponse
	return r.Grant, c.do(ctx, "POST", "/v1/grants", in, &r)
}

// Grant returns one grant.
func (c *Client) Grant(ctx context.Context, id string) (model.Grant, error) {
	var r httpapi.GrantResponse
	return r.Grant, c.do(ctx, "GET", "/v1/grants/"+url.PathEscape(id), nil, &r)
}

// Wait long-polls until the grant leaves pending or max passes.
func (c *Client) Wait(ctx context.Context, id string, max time.Duration) (model.Grant, error) {
	var r httpapi.GrantResponse
	return r.Grant, c.do(ctx, "GET", "/v1/grants/"+url.PathEscape(id)+"?wait="+max.String(), nil, &r)
}

// GrantsPage reads one page of the review query with q's filters
// (account, target, identity, status, day, since, until): after the cursor
// after (a previous page's Next) if not empty, at most limit grants (the
// server's default if 0).
func (c *Client) GrantsPage(ctx context.Context, q url.Values, after string, limit int) (httpapi.ListResponse, error) {
	var r httpapi.ListResponse
	err := c.do(ctx, "GET", pagePath("/v1/grants", q, after, limit), nil, &r)
	return r, err
}

// Grants runs the whole review query with q's filters a page of
// grants.MaxGrantsPage at a time, following each page's cursor, and hands
// each page to fn as it comes: the caller holds one page at a time,
// however many grants match.
func (c *Client) Grants(ctx context.Context, q url.Values, fn func([]model.Grant) error) error {
	return follow(func(after string) ([]model.Grant, string, error) {
		r, err := c.GrantsPage(ctx, q, after, grants.MaxGrantsPage)
		return r.Grants, r.Next, err
	}, fn)
}

// History returns a grant's whole history, read a page at a time; its
// problems (each page's LogMismatch) are not returned: EachHistoryPage has
// them.
func (c *Client) History(ctx context.Context, id string) ([]httpapi.Event, error) {
	var all []httpapi.Event
	err := c.EachHistoryPage(ctx, id, 0, func(r httpapi.HistoryResponse) error {
		all = append(all, r.Events...)
		return nil
	})
	return all, err
}

// HistoryPage reads one page of a grant's log entries: after the cursor
// after (a previous page's Next) if not empty, at most limit of them (the
// server's default if 0).
func (c *Client) HistoryPage(ctx context.Context, id, after string, limit int) (httpapi.HistoryResponse, error) {
	var r httpapi.HistoryResponse
	err := c.do(ctx, "GET", pagePath("/v1/grants/"+url.PathEscape(id)+"/history", nil, after, limit), nil, &r)
	return r, err
}

// EachHistoryPage reads a grant's whole history a page of limit entries at
// a time (grants.MaxEventsPage if 0), following each page's cursor, and
// hands each page to fn as it comes: the caller holds one page at a time,
// however long the grant.
func (c *Client) EachHistoryPage(ctx context.Context, id string, limit int, fn func(httpapi.HistoryResponse) error) error {
	if limit <= 0 {
		limit = grants.MaxEventsPage
	}
	return follow(func(after string) ([]httpapi.HistoryResponse, string, error) {
		r, err := c.HistoryPage(ctx, id, after, limit)
		return []httpapi.HistoryResponse{r}, r.Next, err
	}, func(rs []httpapi.HistoryResponse) error {
		return fn(rs[0])
	})
}

// SessionsPage reads one page of a grant's sessions: after the cursor
// after (a previous page's Next) if not empty, at most limit of them (the
// server's default if 0).
func (c *Client) SessionsPage(ctx context.Context, id, after string, limit int) (httpapi.SessionsResponse, error) {
	var r httpapi.SessionsResponse
	err := c.do(ctx, "GET", pagePath("/v1/grants/"+url.PathEscape(id)+"/sessions", nil, after, limit), nil, &r)
	return r, err
}

// Sessions returns every session of a grant, read a page of
// grants.MaxSessionsPage at a time.
func (c *Client) Sessions(ctx context.Context, id string) ([]model.Session, error) {
	var all []model.Session
	err := c.EachSession(ctx, id, func(ss []model.Session) error {
		all = append(all, ss...)
		return nil
	})
	return all, err
}

// EachSession reads every session of a grant a page of
// grants.MaxSessionsPage at a time, following each page's cursor, and
// hands each page to fn as it comes: the caller holds one page at a time,
// however many sessions the grant holds.
func (c *Client) EachSession(ctx context.Context, id string, fn func([]model.Session) error) error {
	return follow(func(after string) ([]model.Session, string, error) {
		r, err := c.SessionsPage(ctx, id, after, grants.MaxSessionsPage)
		return r.Sessions, r.Next, err
	}, fn)
}

// Session returns one session's record and the first page of its
// recording (the server's default page): its Next, when set, is where
// SessionEventsPage goes on.
func (c *Client) Session(ctx context.Context, id string) (httpapi.SessionResponse, error) {
	return c.SessionEventsPage(ctx, id, "", 0)
}

// SessionEventsPage reads one session's record and a page of its
// recording: after the cursor after (a previous page's Next) if not
// empty, at most limit events (the server's default if 0).
func (c *Client) SessionEventsPage(ctx context.Context, id, after string, limit int) (httpapi.SessionResponse, error) {
	var r httpapi.SessionResponse
	err := c.do(ctx, "GET", pagePath("/v1/sessions/"+url.PathEscape(id), nil, after, limit), nil, &r)
	return r, err
}

// EachSessionPage reads one session's whole recording a page of limit
// events at a time (grants.MaxEventsPage if 0), following each page's
// cursor, and hands each page (the session's record and its events) to fn
// as it comes: the caller holds one page at a time, however long the
// session.
func (c *Client) EachSessionPage(ctx context.Context, id string, limit int, fn func(httpapi.SessionResponse) error) error {
	if limit <= 0 {
		limit = grants.MaxEventsPage
	}
	return follow(func(after string) ([]httpapi.SessionResponse, string, error) {
		r, err := c.SessionEventsPage(ctx, id, after, limit)
		return []httpapi.SessionResponse{r}, r.Next, err
	}, func(rs []httpapi.SessionResponse) error {
		return fn(rs[0])
	})
}

func (c *Client) decide(ctx context.Context, id, verb string, in httpapi.DecisionInput) (model.Grant, error) {
	var r httpapi.GrantResponse
	return r.Grant, c.do(ctx, "POST", "/v1/grants/"+url.PathEscape(id)+"/"+verb, in, &r)
}

// Approve approves a pending grant.
func (c *Client) Approve(ctx context.Context, id, comment string) (model.Grant, error) {
	return c.decide(ctx, id, "approve", httpapi.DecisionInput{Comment: comment})
}

// Deny denies a pending grant.
func (c *Client) Deny(ctx context.Context, id, reason string) (model.Grant, error) {
	return c.decide(ctx, id, "deny", httpapi.DecisionInput{Reason: reason})
}

// Revoke cuts an active grant off.
func (c *Client) Revoke(ctx context.Context, id, reason string) (model.Grant, error) {
	return c.decide(ctx, id, "revoke", httpapi.DecisionInput{Reason: reason})
}

// End gives a grant up.
func (c *Client) End(ctx context.Context, id, comment string) (model.Grant, error) {
	return c.decide(ctx, id, "end", httpapi.DecisionInput{Comment: comment})
}

// Credentials fetches an active grant's credentials.
func (c *Client) Credentials(ctx context.Context, id string) (grants.Credentials, error) {
	var r grants.Credentials
	return r, c.do(ctx, "POST", "/v1/grants/"+url.PathEscape(id)+"/credentials", nil, &r)
}

// PendingPage reads one page of the requests the caller may decide:
// after the cursor after (a previous page's Next) if not empty, at most
// limit of them (the server's default if 0). A page may hold fewer than
// limit, even none, and still have a Next.
func (c *Client) PendingPage(ctx context.Context, after string, limit int) (httpapi.ListResponse, error) {
	var r httpapi.ListResponse
	err := c.do(ctx, "GET", pagePath("/v1/pending", nil, after, limit), nil, &r)
	return r, err
}

// Pending reads every request the caller may decide a page of
// grants.MaxPendingPage at a time, following each page's cursor, and
// hands each page to fn as it comes.
func (c *Client) Pending(ctx context.Context, fn func([]model.Grant) error) error {
	return follow(func(after string) ([]model.Grant, string, error) {
		r, err := c.PendingPage(ctx, after, grants.MaxPendingPage)
		return r.Grants, r.Next, err
	}, fn)
}

// Identities lists identities.
func (c *Client) Identities(ctx context.Context) ([]model.Identity, error) {
	var r httpapi.IdentitiesResponse
	return r.Identities, c.do(ctx, "GET", "/v1/identities", nil, &r)
}

// AddAgent creates an agent and returns its key.
func (c *Client) AddAgent(ctx context.Context, in httpapi.AgentInput) (httpapi.AgentResponse, error) {
	var r httpapi.AgentResponse
	return r, c.do(ctx, "POST", "/v1/agents", in, &r)
}

// DisableAgent disables an agent.
func (c *Client) DisableAgent(ctx context.Context, name, reason string) (model.Identity, error) {
	var r httpapi.IdentityResponse
	return r.Identity, c.do(ctx, "POST", "/v1/agents/"+url.PathEscape(name)+"/disable", httpapi.DecisionInput{Reason: reason}, &r)
}

// Verify asks the server to verify the whole log.
func (c *Client) Verify(ctx context.Context) (auditlog.Report, error) {
	var r auditlog.Report
	return r, c.do(ctx, "GET", "/v1/audit/verify", nil, &r)
}

// Checkpoint returns the newest signed checkpoint.
func (c *Client) Checkpoint(ctx context.Context) (string, error) {
	var r httpapi.CheckpointResponse
	return r.Checkpoint, c.do(ctx, "GET", "/v1/audit/checkpoint", nil, &r)
}

// Export returns an evidence bundle's exact bytes and the server's warnings.
func (c *Client) Export(ctx context.Context, account, day string) ([]byte, []string, error) {
	var r httpapi.ExportResponse
	q := url.Values{"account": {account}, "day": {day}}
	err := c.doLimit(ctx, "GET", "/v1/audit/export?"+q.Encode(), nil, &r, maxExportResponse)
	return []byte(r.Bundle), r.Warnings, err
}

// Consistency returns the newest checkpoint and the proof that the log of
// old entries is a prefix of it.
func (c *Client) Consistency(ctx context.Context, old int64) (httpapi.ConsistencyResponse, error) {
	var r httpapi.ConsistencyResponse
	return r, c.do(ctx, "GET", "/v1/audit/consistency?old="+strconv.FormatInt(old, 10), nil, &r)
}

// Targets lists the targets the caller may request, with matching permit policies.
func (c *Client) Targets(ctx context.Context) ([]grants.TargetInfo, error) {
	var r httpapi.TargetsResponse
	return r.Targets, c.do(ctx, "GET", "/v1/targets", nil, &r)
}

// Approvers names who may decide a pending grant.
func (c *Client) Approvers(ctx context.Context, id string) ([]string, error) {
	var r httpapi.ApproversResponse
	return r.Approvers, c.do(ctx, "GET", "/v1/grants/"+url.PathEscape(id)+"/approvers", nil, &r)
}

// RecordCommand records a command line the holder is about to run under a
// grant, and where it is run from (grants.CommandViaMCP, CommandViaExec).
func (c *Client) RecordCommand(ctx context.Context, id string, argv []string, via string) error {
	return c.do(ctx, "POST", "/v1/grants/"+url.PathEscape(id)+"/commands", httpapi.CommandInput{Argv: argv, Via: via}, nil)
}

// FindingsPage reads one page of findings: raised on day (YYYY-MM-DD) if
// not empty, after the cursor after (a previous page's Next) if not empty,
// at most limit of them (the server's default if 0).
func (c *Client) FindingsPage(ctx context.Context, day, after string, limit int) (httpapi.FindingsResponse, error) {
	q := url.Values{}
	if day != "" {
		q.Set("day", day)
	}
	var r httpapi.FindingsResponse
	err := c.do(ctx, "GET", pagePath("/v1/findings", q, after, limit), nil, &r)
	return r, err
}

// Findings reads every finding (raised on day if not empty) a page of
// grants.MaxFindingsPage at a time, following each page's cursor, and
// hands each page to fn as it comes: the caller holds one page at a time,
// however many findings the log holds.
func (c *Client) Findings(ctx context.Context, day string, fn func([]model.Finding) error) error {
	return follow(func(after string) ([]model.Finding, string, error) {
		r, err := c.FindingsPage(ctx, day, after, grants.MaxFindingsPage)
		return r.Findings, r.Next, err
	}, fn)
}

// pagePath is path with the query q (nil for none) and a page's
// parameters: after if not empty, limit if positive.
func pagePath(path string, q url.Values, after string, limit int) string {
	q = maps.Clone(q)
	if q == nil {
		q = url.Values{}
	}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return path
}

// follow reads a list a page at a time: page reads the page after a
// cursor ("" for the first) and returns it with the cursor of the next
// ("" on the last); fn takes each page as it comes.
func follow[T any](page func(after string) ([]T, string, error), fn func([]T) error) error {
	after := ""
	for {
		items, next, err := page(after)
		if err != nil {
			return err
		}
		if err := fn(items); err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		if next == after {
			// A server that hands back the cursor it was given would have
			// this loop ask for the same page forever.
			return fmt.Errorf("the server answered the page after %s with the same cursor", after)
		}
		after = next
	}
}

// truncate cuts s to at most n bytes, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
