package console

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/findings"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/jsonlist"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/textesc"
)

// funcs are the templates' helpers. Everything that came from a request
// or a recording is shown through esc (one line) or text (multi-line: a
// SQL statement, the checkpoint), which write control characters as
// visible escapes; html/template then escapes the HTML.
var funcs = template.FuncMap{
	"esc":  func(v any) string { return textesc.String(fmt.Sprint(v)) },
	"text": func(v any) string { return textesc.Text(fmt.Sprint(v)) },
	"ts":   fmtTime,
	"join": func(ss []string) string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = textesc.String(s)
		}
		return strings.Join(out, "; ")
	},
	// capped marks a scope used that may be cut at review.MaxUsed.
	"capped":  review.UsedMayBeCapped,
	"capnote": func() string { return review.UsedCapNote },
	"row":     func(g model.Grant, csrf string) map[string]any { return map[string]any{"G": g, "CSRF": csrf} },
	"dash": func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	},
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// page is what every template gets.
type page struct {
	Title string
	Nav   string
	Who   string
	CSRF  string
	Data  any
}

// render executes template name into a buffer first, so that a template
// error is a clean 500 and not half a page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, u *who, status int, name, title string, data any) {
	p := page{Title: title, Nav: name, Data: data}
	if u != nil {
		p.Who, p.CSRF = u.id.Name, u.ses.csrf
	}
	var buf bytes.Buffer
	if err := h.tmpl.ExecuteTemplate(&buf, name, p); err != nil {
		h.logger.Error("rendering a console page", "page", name, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// --- sign-in ---

func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if c := h.cookie(r, sessionCookie); c != nil && h.ses.get(c.Value, false) != nil {
		http.Redirect(w, r, "/console/queue", http.StatusSeeOther)
		return
	}
	tok := randomToken()
	h.setCookie(w, r, preCookie, tok, 3600)
	h.render(w, r, nil, http.StatusOK, "login", "Sign in", map[string]any{"Token": tok, "SSO": h.sso != nil})
}

// loginKey signs a person in with their API key. Only a human identity
// may sign in; the key itself is never logged.
func (h *Handler) loginKey(w http.ResponseWriter, r *http.Request) {
	pre := h.cookie(r, preCookie)
	if pre == nil || !tokenOK(pre.Value, r.PostFormValue("csrf")) {
		h.logger.Warn("console sign-in without a valid CSRF token", "remote", r.RemoteAddr)
		h.fail(w, r, nil, http.StatusForbidden, "This sign-in form is stale or did not come from this console. Reload the page and try again.")
		return
	}
	id, ok := h.dir.Authenticate(strings.TrimSpace(r.PostFormValue("key")))
	if !ok {
		h.logger.Warn("console sign-in with an unknown or disabled key", "remote", r.RemoteAddr)
		h.fail(w, r, nil, http.StatusUnauthorized, "That key is not valid, or its identity is disabled.")
		return
	}
	if id.Kind != model.Human {
		h.logger.Warn("console sign-in refused: not a person", "remote", r.RemoteAddr, "identity", id.Name, "kind", id.Kind)
		h.fail(w, r, nil, http.StatusForbidden, fmt.Sprintf("%s is an %s identity; only people sign in to the console.", id.Name, id.Kind))
		return
	}
	h.startSession(w, r, id)
}

// startSession opens a key sign-in's session, bound to the key's hash,
// in place of the one the browser held, if any (endPrevious).
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, id model.Identity) {
	h.endPrevious(r)
	cookie, _ := h.ses.create(id.Name, "key", id.KeySHA256, time.Time{}, model.SignIn{Method: model.SignInAPIKey, KeyID: authn.KeyID(id.KeySHA256)})
	h.setCookie(w, r, sessionCookie, cookie, int(h.ses.ttl/time.Second))
	h.setCookie(w, r, preCookie, "", -1)
	h.logger.Info("console sign-in", "identity", id.Name, "via", "key", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/console/queue", http.StatusSeeOther)
}

// endPrevious ends the session whose cookie r carries, if any: a new
// sign-in replaces it. Left alive until idle, it stayed usable for an
// hour (eight, if something kept using it) by whoever had a copy of its
// cookie, after its owner had signed in afresh (or as someone else, on a
// shared machine) and believed it gone.
func (h *Handler) endPrevious(r *http.Request) {
	if c := h.cookie(r, sessionCookie); c != nil && c.Value != "" {
		h.ses.drop(c.Value)
	}
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, u who) {
	h.ses.drop(u.cookie)
	h.setCookie(w, r, sessionCookie, "", -1)
	http.Redirect(w, r, "/console/login", http.StatusSeeOther)
}

// --- queue ---

type queueData struct {
	Rows []model.Grant
	// Next is the link to the next page of the queue (after= its cursor),
	// "" on the last. Already encoded, as reviewData's.
	Next template.URL
	CSRF string
}

// maxQueueRows bounds the queue: an agent may ask for as many grants as it
// likes, each waiting for a person, and every open queue page rendered
// every one of them again every two seconds (3,000 requests: a 6 MB
// answer and half a second of the server's time per poll, per page).
// The oldest come first, those closest to their deadline; the rest are a
// link away, a page at a time, as GET /v1/pending pages, and show here as
// these are decided.
const maxQueueRows = 200

// pending is a page of the queue: the requests u may decide from the
// cursor of the query's after (the first maxQueueRows unless it names a
// limit), read exactly as GET /v1/pending reads it, and the link to the
// next page. Each poll reads the page again: it costs a page, not the
// whole queue, which the count of those beyond the page read every time.
func (h *Handler) pending(r *http.Request, u who) ([]model.Grant, template.URL, error) {
	q := r.URL.Query()
	pq, err := httpapi.ParsePendingQuery(q)
	if err != nil {
		return nil, "", err
	}
	if pq.Limit == 0 {
		pq.Limit = maxQueueRows
	}
	page, err := h.svc.Pending(r.Context(), u.id, pq)
	if err != nil || page.Next == "" {
		return page.Grants, "", err
	}
	next := url.Values{"after": {page.Next}}
	if v := q.Get("limit"); v != "" {
		next.Set("limit", v)
	}
	return page.Grants, template.URL(next.Encode()), nil
}

func (h *Handler) queue(w http.ResponseWriter, r *http.Request, u who) {
	gs, next, err := h.pending(r, u)
	if err != nil {
		h.failErr(w, r, u, err)
		return
	}
	h.render(w, r, &u, http.StatusOK, "queue", "Queue", queueData{Rows: gs, Next: next, CSRF: u.ses.csrf})
}

// queueRow is one pending request, rendered, for the page's script.
type queueRow struct {
	ID   string `json:"id"`
	HTML string `json:"html"`
}

// queueJSON is what the queue page polls: the pending requests the person
// may decide, each rendered as the page renders it, so the script adds
// and removes rows without rebuilding the ones being typed into.
//
// It takes the page's query (after, limit), so a page after the first
// stays that page; "next" is the query of the page after it ("" on the
// last), for the page's link.
func (h *Handler) queueJSON(w http.ResponseWriter, r *http.Request, u who) {
	gs, next, err := h.pending(r, u)
	if err != nil {
		h.failErr(w, r, u, err)
		return
	}
	rows := []queueRow{}
	for _, g := range gs {
		var buf bytes.Buffer
		if err := h.tmpl.ExecuteTemplate(&buf, "queue-row", map[string]any{"G": g, "CSRF": u.ses.csrf}); err != nil {
			h.failErr(w, r, u, err)
			return
		}
		rows = append(rows, queueRow{ID: g.ID, HTML: buf.String()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"rows": rows, "next": string(next)})
}

// --- decisions ---

// decider is the signed-in person as a decision's record names them: with
// the instance the decision came from (address, user agent), as the API's
// decisions carry, so that a console approval says where it was made too,
// and the credential the session was opened with (the key's id, or the
// SSO issuer and subject), so that it says which credential decided.
func decider(r *http.Request, u who) model.Identity {
	id := u.id
	inst := findings.FromRequest(r)
	id.Instance = &inst
	signIn := u.ses.signIn
	id.SignIn = &signIn
	return id
}

func (h *Handler) approve(w http.ResponseWriter, r *http.Request, u who) {
	id := r.PathValue("id")
	// The record says where the decision was made (DESIGN: every decision
	// is recorded where it is made), as Slack's and webhooks' do.
	if _, err := h.svc.Approve(grants.WithChannel(r.Context(), "console", ""), decider(r, u), id, r.PostFormValue("comment")); err != nil {
		h.failErr(w, r, u, err)
		return
	}
	http.Redirect(w, r, "/console/grants/"+url.PathEscape(id), http.StatusSeeOther)
}

func (h *Handler) deny(w http.ResponseWriter, r *http.Request, u who) {
	id := r.PathValue("id")
	if _, err := h.svc.Deny(grants.WithChannel(r.Context(), "console", ""), decider(r, u), id, r.PostFormValue("reason")); err != nil {
		h.failErr(w, r, u, err)
		return
	}
	http.Redirect(w, r, "/console/grants/"+url.PathEscape(id), http.StatusSeeOther)
}

func (h *Handler) revoke(w http.ResponseWriter, r *http.Request, u who) {
	id := r.PathValue("id")
	if _, err := h.svc.Revoke(grants.WithChannel(r.Context(), "console", ""), decider(r, u), id, r.PostFormValue("reason")); err != nil {
		h.failErr(w, r, u, err)
		return
	}
	http.Redirect(w, r, "/console/grants/"+url.PathEscape(id), http.StatusSeeOther)
}

// --- review ---

// reviewQuery is the review's filter: the query string as given, or today
// (UTC) when the page is opened with none.
func (h *Handler) reviewQuery(r *http.Request) url.Values {
	q := r.URL.Query()
	for k, v := range q {
		if len(v) == 0 || v[0] == "" {
			delete(q, k)
		}
	}
	if len(q) == 0 {
		q.Set("day", h.clk.Now().UTC().Format("2006-01-02"))
	}
	return q
}

// query parses the review query exactly as GET /v1/grants does.
func (h *Handler) query(r *http.Request) (url.Values, grants.GrantsQuery, error) {
	q := h.reviewQuery(r)
	gq, err := httpapi.ParseGrantsQuery(q)
	return q, gq, err
}

// reviewRows turns grants into review rows as the CLI does.
func reviewRows(gs []model.Grant) []review.Row {
	rows := make([]review.Row, len(gs))
	for i, g := range gs {
		rows[i] = review.FromGrant(g)
	}
	return rows
}

type reviewData struct {
	Q                                      url.Values
	Account, Day, Target, Identity, Status string
	// Since and Until are the window as typed: an RFC 3339 time, a date,
	// or a time before now (1h, 7d), as `airlock grants --since/--until`
	// and GET /v1/grants take them.
	Since, Until string
	// Error, when the filter was refused, says why (the API's words,
	// naming the field), and Invalid is that field: the form is shown
	// again as typed, with the message beside it, instead of an error
	// page that dropped what the person typed.
	Error, Invalid string
	Rows           []review.Row
	// Next is the link to the next page (the same filter, after= its
	// cursor), "" on the last. Already encoded, as Query.
	Next template.URL
	// Query is the filter as a query string for the download links. It is
	// already encoded (url.Values.Encode), so it is a template.URL: as a
	// string, html/template would escape its "=" and "&" again and the
	// downloads would ignore the filter.
	Query template.URL
}

func (h *Handler) review(w http.ResponseWriter, r *http.Request, u who) {
	q, gq, err := h.query(r)
	d := reviewData{
		Q: q, Account: q.Get("account"), Day: q.Get("day"), Target: q.Get("target"), Identity: q.Get("identity"),
		Status: q.Get("status"), Since: q.Get("since"), Until: q.Get("until"),
	}
	var page grants.GrantsPage
	if err == nil {
		if gq.Limit == 0 {
			gq.Limit = maxReviewRows
		}
		page, err = h.svc.List(r.Context(), u.id, gq)
	}
	if err != nil {
		ae := apierr.From(err)
		if ae.Status != http.StatusBadRequest {
			h.failErr(w, r, u, err)
			return
		}
		// A filter refused (since=yesterday, a day and a window at
		// once): the form again, as typed, with why.
		d.Error, d.Invalid = ae.Error(), ae.Field
		h.render(w, r, &u, http.StatusBadRequest, "review", "Review", d)
		return
	}
	// The downloads and the filter form are the whole query, not this page.
	filter := maps.Clone(q)
	delete(filter, "after")
	delete(filter, "limit")
	d.Rows, d.Query = reviewRows(page.Grants), template.URL(filter.Encode())
	if page.Next != "" {
		next := maps.Clone(q)
		next.Set("after", page.Next)
		d.Next = template.URL(next.Encode())
	}
	h.render(w, r, &u, http.StatusOK, "review", "Review", d)
}

// maxReviewRows bounds the review page: an agent whose requests policy
// approves at once can hold thousands of grants a day, and the page
// rendered a row for each. The rest are a link away, a page at a time, as
// GET /v1/grants pages; the downloads hold every row.
const maxReviewRows = grants.MaxGrantsPage

// eachRow answers the whole review query for a download, a page at a
// time: the first page is read before anything is written, so that a bad
// filter is an error page; a failure after the download has begun aborts
// the connection, so that the browser fails the download rather than keep
// a file that looks whole and is not.
func (h *Handler) eachRow(w http.ResponseWriter, r *http.Request, u who, start func(url.Values), fn func([]review.Row) error) {
	q, gq, err := h.query(r)
	for _, k := range []string{"after", "limit"} {
		if err == nil && q.Has(k) {
			// Not dropped: the file would hold every grant where the
			// link asked for a page.
			err = apierr.Invalid(k, "a download holds every grant of the query, not a page: remove %s", k)
		}
	}
	if err != nil {
		h.failErr(w, r, u, err)
		return
	}
	started := false
	err = h.svc.EachGrant(r.Context(), u.id, gq, func(gs []model.Grant) error {
		if !started {
			start(q)
			started = true
		}
		return fn(reviewRows(gs))
	})
	switch {
	case err != nil && !started:
		h.failErr(w, r, u, err)
	case err != nil:
		h.logger.Warn("review download cut short", "err", err)
		panic(http.ErrAbortHandler)
	}
}

// downloadName is a file name for the review's filter: the account, the
// day or the window (since-7d, until-…), and only safe characters.
func downloadName(q url.Values, prefix, ext string) string {
	parts := []string{prefix}
	for _, k := range []string{"account", "day", "since", "until"} {
		if v := q.Get(k); v != "" {
			if k == "since" || k == "until" {
				v = k + "-" + v
			}
			parts = append(parts, v)
		}
	}
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, strings.Join(parts, "-"))
	if len(name) > 100 {
		name = name[:100]
	}
	return name + "." + ext
}

// reviewCSV is `airlock grants -o csv`, byte for byte.
func (h *Handler) reviewCSV(w http.ResponseWriter, r *http.Request, u who) {
	cw := csv.NewWriter(w)
	h.eachRow(w, r, u, func(q url.Values) {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+downloadName(q, "airlock-grants", "csv")+`"`)
		_ = cw.Write(review.Header)
	}, func(rows []review.Row) error {
		for _, row := range rows {
			_ = cw.Write(row.Record())
		}
		cw.Flush()
		return cw.Error()
	})
}

// reviewJSON is `airlock grants -o json`, byte for byte.
func (h *Handler) reviewJSON(w http.ResponseWriter, r *http.Request, u who) {
	arr := jsonlist.Writer[review.Row]{W: w}
	started := false
	h.eachRow(w, r, u, func(q url.Values) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Disposition", `attachment; filename="`+downloadName(q, "airlock-grants", "json")+`"`)
		started = true
	}, arr.Add)
	if started {
		_ = arr.Close()
	}
}

// --- one grant ---

// maxInline is how many sessions' transcripts the grant page shows
// inline; the rest are a link away.
const maxInline = 5

// How much of a recording one page renders. A session holds as many calls
// as its agent made (an S3 HEAD loop makes thousands a second), and every
// one was rendered: the grant page listed each call twice (its transcript
// and the history) and, buffered whole before it was sent, a grant of a
// million calls took gigabytes to show. Beyond these, a page says what
// it left out and links to the rest; a session page reads its own page
// of events alone.
const (
	maxInlineLines   = 100                  // transcript lines of each inline session on the grant page
	maxPageEvents    = grants.MaxEventsPage // events on one session page (?after= pages on)
	maxHistory       = 1000                 // history rows on one page of the grant's (?after= pages on)
	maxGrantSessions = 200                  // sessions listed on the grant page
)

type sessionView struct {
	Session    model.Session
	Transcript []line
	Inline     bool
	// After is the cursor this page of the session's events starts after
	// (the session page's ?after=), 0 from the start; Next is the cursor
	// of the next page, 0 if this one reaches the end. A page holds at
	// most maxPageEvents events, read alone: a session of millions of
	// statements was read whole for every page.
	After, Next int64
	// More is set on an inline transcript cut short: the session page
	// shows the rest.
	More bool
}

type grantData struct {
	G        model.Grant
	Sessions []sessionView
	// History is one page of the grant's history: its entries (not its
	// sessions') after HistoryAfter (the page's ?after=, 0 from the
	// start), at most maxHistory rows of at most HistoryLimit log entries
	// (?limit=, 0 when not given); HistoryNext is the cursor of the next
	// page, 0 on the last.
	History                   []historyLine
	HistoryAfter, HistoryNext int64
	HistoryLimit              int
	// SessionsMore is how many sessions were left out (maxGrantSessions).
	SessionsMore int
	CSRF         string
}

// HistoryLink is the query of the grant page's history page after cursor
// after, the page's limit kept.
func (d grantData) HistoryLink(after int64) template.URL {
	v := url.Values{}
	if after > 0 {
		v.Set("after", strconv.FormatInt(after, 10))
	}
	if d.HistoryLimit > 0 {
		v.Set("limit", strconv.Itoa(d.HistoryLimit))
	}
	if len(v) == 0 {
		return ""
	}
	return template.URL("?" + v.Encode())
}

func (h *Handler) grant(w http.ResponseWriter, r *http.Request, u who) {
	ctx := r.Context()
	id := r.PathValue("id")
	q, err := httpapi.ParseEventsQuery(r.URL.Query())
	if err != nil {
		h.failErr(w, r, u, err)
		return
	}
	g, err := h.svc.Get(ctx, u.id, id)
	if err != nil {
		h.failErr(w, r, u, err)
		return
	}
	page, err := h.svc.GrantSessions(ctx, u.id, id, grants.SessionsQuery{Limit: maxGrantSessions})
	if err != nil {
		h.failErr(w, r, u, err)
		return
	}
	ss := page.Sessions
	d := grantData{G: g, CSRF: u.ses.csrf, HistoryAfter: q.After, HistoryLimit: q.Limit}
	// One page of the history, proven as the API proves it: the grant's
	// log entries after ?after=, at most ?limit= of them (maxPageEvents by
	// default). Every page of the history was read, and proven, on each
	// view: a grant of a long session holds millions of entries.
	limit := q.Limit
	if limit == 0 {
		limit = maxPageEvents
	}
	hp, err := h.svc.History(ctx, u.id, id, grants.EventsQuery{After: q.After, Limit: limit})
	if err != nil {
		h.failErr(w, r, u, err)
		return
	}
	for _, m := range hp.LogMismatch {
		if !slices.Contains(d.G.LogMismatch, m) {
			d.G.LogMismatch = append(d.G.LogMismatch, m)
		}
	}
	d.History, d.HistoryNext = history(httpapi.Events(hp.Entries, hp.Void)), hp.Next
	if len(d.History) > maxHistory {
		// The next page starts after the last row shown: the entries
		// between it and the page's end are shown there.
		d.History = d.History[:maxHistory]
		d.HistoryNext = d.History[maxHistory-1].Seq
	}
	if page.Next != "" {
		// How many, from the grant's usage (its sessions counted by the
		// store); at least one follows.
		d.SessionsMore = max(int(g.Usage.Sessions)-len(ss), 1)
	}
	for i, s := range ss {
		v := sessionView{Session: s}
		if i < maxInline {
			// One more event than lines shown: each shows at least one
			// line, so a cut transcript is seen cut.
			sp, err := h.svc.Session(ctx, u.id, s.ID, grants.EventsQuery{Limit: maxInlineLines + 1})
			if err != nil {
				h.failErr(w, r, u, err)
				return
			}
			v.Transcript, v.Inline = transcript(httpapi.Events(sp.Entries, sp.Void)), true
			if len(v.Transcript) > maxInlineLines || sp.Next != 0 {
				v.Transcript, v.More = v.Transcript[:min(len(v.Transcript), maxInlineLines)], true
			}
		}
		d.Sessions = append(d.Sessions, v)
	}
	h.render(w, r, &u, http.StatusOK, "grant", "Grant "+g.ID, d)
}

// session shows a page of one session's transcript: maxPageEvents events
// after ?after= (from the start by default), read alone.
func (h *Handler) session(w http.ResponseWriter, r *http.Request, u who) {
	q, err := httpapi.ParseEventsQuery(r.URL.Query())
	if err != nil {
		h.failErr(w, r, u, err)
		return
	}
	if q.Limit == 0 {
		q.Limit = maxPageEvents
	}
	sp, err := h.svc.Session(r.Context(), u.id, r.PathValue("id"), q)
	if err != nil {
		h.failErr(w, r, u, err)
		return
	}
	// The events within pairWindow before and after the page, for the
	// results logged on the next page of requests on this one (shown
	// under them here, not again there).
	var around []httpapi.Event
	for _, aq := range []struct {
		read bool
		q    grants.EventsQuery
	}{
		{q.After > 0, grants.EventsQuery{After: max(q.After-pairWindow, 0), Limit: pairWindow + 1}},
		{sp.Next != 0, grants.EventsQuery{After: sp.Next, Limit: pairWindow + 1}},
	} {
		if !aq.read {
			continue
		}
		ap, err := h.svc.Session(r.Context(), u.id, sp.Session.ID, aq.q)
		if err != nil {
			h.failErr(w, r, u, err)
			return
		}
		around = append(around, httpapi.Events(ap.Entries, ap.Void)...)
	}
	v := sessionView{Session: sp.Session, Transcript: pagedTranscript(httpapi.Events(sp.Entries, sp.Void), around), Inline: true, After: q.After, Next: sp.Next}
	h.render(w, r, &u, http.StatusOK, "session", "Session "+sp.Session.ID, v)
}

// --- audit ---

type auditData struct {
	Checkpoint  string
	Last        *verifyRun
	CanExport   bool
	Account     string
	Day         string
	CSRF        string
	ProblemList []string
}

func (h *Handler) auditPage(w http.ResponseWriter, r *http.Request, u who) {
	d := auditData{CSRF: u.ses.csrf, Day: h.clk.Now().UTC().Format("2006-01-02")}
	if h.audit != nil {
		d.Checkpoint = string(h.audit.Checkpoint())
		_, d.CanExport = h.audit.(Exporter)
	}
	h.verifyMu.Lock()
	if h.lastRun != nil {
		run := *h.lastRun
		d.Last = &run
		for _, p := range run.Report.Problems {
			d.ProblemList = append(d.ProblemList, p.String())
		}
	}
	h.verifyMu.Unlock()
	h.render(w, r, &u, http.StatusOK, "audit", "Audit", d)
}

// verify runs the whole verification now (as `airlock audit verify`
// against the server does) and keeps the outcome for the audit page.
func (h *Handler) verify(w http.ResponseWriter, r *http.Request, u who) {
	if h.audit == nil {
		h.fail(w, r, &u, http.StatusNotFound, "This server does not verify its log.")
		return
	}
	rep, err := h.audit.Verify(r.Context())
	run := &verifyRun{At: h.clk.Now(), By: u.id.Name, Report: rep}
	if err != nil {
		run.Err = err.Error()
	}
	h.verifyMu.Lock()
	h.lastRun = run
	h.verifyMu.Unlock()
	h.logger.Info("audit verification from the console", "identity", u.id.Name, "ok", rep.OK && err == nil, "entries", rep.Entries)
	http.Redirect(w, r, "/console/audit", http.StatusSeeOther)
}

// export downloads the evidence bundle of an account-day, the bytes
// `airlock audit export` writes.
func (h *Handler) export(w http.ResponseWriter, r *http.Request, u who) {
	e, ok := h.audit.(Exporter)
	if !ok {
		h.fail(w, r, &u, http.StatusNotFound, "This server does not export evidence.")
		return
	}
	q := r.URL.Query()
	account, day := q.Get("account"), q.Get("day")
	if account == "" || day == "" {
		h.fail(w, r, &u, http.StatusBadRequest, "An account and a day (YYYY-MM-DD, UTC) are required.")
		return
	}
	b, warnings, err := e.Export(r.Context(), account, day)
	if err != nil {
		h.failErr(w, r, u, err)
		return
	}
	for _, wn := range warnings {
		h.logger.Warn("evidence export: stored row differs from the log (the bundle holds the log's)", "warning", wn)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="`+downloadName(q, "airlock-evidence", "json")+`"`)
	_, _ = w.Write(b)
}

// --- findings ---

type findingsData struct {
	Day  string
	Rows []model.Finding
	// Next is the cursor of the next page (the "after" of its link), 0 on
	// the last.
	Next int64
}

// maxFindingsRows bounds the findings page: an agent that calls from one
// address after another, or changes its user agent, makes a finding of
// each, and the page (all days, or a busy one) rendered them all. The
// rest are a link away, a page at a time, as GET /v1/findings pages.
const maxFindingsRows = grants.MaxFindingsPage

// findingsPage lists the findings of a day (today, UTC, when the page is
// opened without one; all days with an empty day=), as GET /v1/findings
// does, each linking to its grant, a page at a time (after= the cursor).
func (h *Handler) findingsPage(w http.ResponseWriter, r *http.Request, u who) {
	day := h.clk.Now().UTC().Format("2006-01-02")
	q := r.URL.Query()
	if q.Has("day") {
		day = q.Get("day")
	}
	if day != "" {
		if _, err := time.Parse("2006-01-02", day); err != nil {
			h.fail(w, r, &u, http.StatusBadRequest, fmt.Sprintf("%q is not a day (YYYY-MM-DD).", day))
			return
		}
	}
	var after int64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			h.fail(w, r, &u, http.StatusBadRequest, fmt.Sprintf("%q is not a page of findings: follow the page's own link.", v))
			return
		}
		after = n
	}
	page, err := h.svc.Findings(r.Context(), u.id, grants.FindingsQuery{Day: day, After: after, Limit: maxFindingsRows})
	if err != nil {
		h.failErr(w, r, u, err)
		return
	}
	d := findingsData{Day: day, Rows: page.Findings, Next: page.Next}
	h.render(w, r, &u, http.StatusOK, "findings", "Findings", d)
}
