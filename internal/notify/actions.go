package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

const (
	// maxActionBody bounds a callback body. Slack echoes the message
	// (ours is a few KB) in the payload; nothing legitimate comes near this.
	maxActionBody = 128 << 10
	// window is how far a request's timestamp may be from now (Slack's
	// own recommendation), and how long signatures are remembered.
	window = 5 * time.Minute
	// maxSeen bounds the replay cache; past it, new requests are refused
	// until old entries age out (fail closed rather than forget).
	maxSeen = 10000
	// maxUnsignedRecords bounds how many refusals of unsigned or stale
	// requests per minute are written to the log, so that anyone who can
	// reach the URL cannot fill the log; the rest go to the process log.
	maxUnsignedRecords = 60
)

// Refusal reasons, as recorded in integration.refused entries.
const (
	RefusedBadSignature = "bad_signature"
	RefusedStale        = "stale_timestamp"
	RefusedReplay       = "replay"
	RefusedTooLarge     = "body_too_large"
	RefusedMalformed    = "malformed_payload"
	RefusedUnknownUser  = "unknown_user"
	RefusedWrongTeam    = "wrong_team"
	RefusedDecision     = "decision_refused"
	// RefusedUnverifiedButton: the button's value is not one Airlock
	// signed for this grant and action (a message someone else posted, or
	// one an older Airlock posted before values were signed).
	RefusedUnverifiedButton = "unverified_button"
	// RefusedRequestChanged: the value verifies, but the request no longer
	// reads as the message showed it.
	RefusedRequestChanged = "request_changed"
)

// Actions is the Slack interactivity handler (POST
// /v1/integrations/slack/actions). It needs no bearer key: Slack's
// signature is the authentication.
func (n *Notifier) Actions() http.Handler { return http.HandlerFunc(n.actions) }

// payload is the part of a block_actions payload Airlock reads.
type payload struct {
	Type string `json:"type"`
	User struct {
		ID     string `json:"id"`
		TeamID string `json:"team_id"`
	} `json:"user"`
	Team struct {
		ID string `json:"id"`
	} `json:"team"`
	Enterprise struct {
		ID string `json:"id"`
	} `json:"enterprise"`
	TriggerID   string `json:"trigger_id"`
	ResponseURL string `json:"response_url"`
	Actions     []struct {
		ActionID string `json:"action_id"`
		Value    string `json:"value"`
	} `json:"actions"`
}

// action is a parsed, verified click.
type action struct {
	user, verb, grant, responseURL, trigger string
	// team and enterprise are the workspace the click came from and its
	// Enterprise Grid organisation, if any ("" when Slack sent none).
	team, enterprise string
	// userTeam is the clicking user's own workspace (user.team_id; an
	// Enterprise Grid user's is the organisation's id), "" if not sent.
	userTeam string
	identity string // the mapped person, once known
	// value is the button's value: Airlock's MAC (buttonValue), if the
	// button was Airlock's. Never recorded.
	value string
}

// parsePayload reads the form-encoded body's payload field. It is the
// parser facing the network (FuzzParsePayload).
func parsePayload(body []byte) (action, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return action{}, errors.New("the body is not form-encoded")
	}
	raw := form.Get("payload")
	if raw == "" {
		return action{}, errors.New("no payload field")
	}
	var p payload
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return action{}, errors.New("the payload is not JSON")
	}
	if p.Type != "block_actions" {
		return action{}, fmt.Errorf("payload type %q is not block_actions", trunc(p.Type))
	}
	if len(p.Actions) != 1 {
		return action{}, fmt.Errorf("%d actions, want exactly one", len(p.Actions))
	}
	a := action{user: p.User.ID, responseURL: p.ResponseURL, trigger: p.TriggerID, team: p.Team.ID, enterprise: p.Enterprise.ID, userTeam: p.User.TeamID}
	if a.team == "" {
		// An org-wide app's payload may carry no team; the user's own is there.
		a.team = p.User.TeamID
	}
	if (a.team != "" && !slackID(a.team)) || (a.enterprise != "" && !slackID(a.enterprise)) || (a.userTeam != "" && !slackID(a.userTeam)) {
		return action{}, errors.New("the team or enterprise id is not a Slack id")
	}
	id := p.Actions[0].ActionID
	switch {
	case strings.HasPrefix(id, approvePrefix):
		a.verb, a.grant = "approve", id[len(approvePrefix):]
	case strings.HasPrefix(id, denyPrefix):
		a.verb, a.grant = "deny", id[len(denyPrefix):]
	default:
		return action{}, fmt.Errorf("unknown action %q", trunc(id))
	}
	if !validID(a.grant, "g_") {
		return action{}, errors.New("the action does not name a grant")
	}
	if a.value = p.Actions[0].Value; len(a.value) > maxButtonValue {
		return action{}, errors.New("the button's value is longer than Slack allows")
	}
	if !slackID(a.user) {
		return action{}, errors.New("no valid Slack user id")
	}
	return a, nil
}

// homeTeam reports whether the clicking user belongs to the workspace (or
// Enterprise Grid organisation) the click came from, as far as the payload
// says: a user's id is only promised unique within their own workspace,
// and in a channel shared with another organisation (Slack Connect) a
// member of that organisation clicks in ours, team naming ours and
// user.team_id theirs.
func (a action) homeTeam() bool {
	return a.userTeam == "" || a.userTeam == a.team || a.userTeam == a.enterprise
}

// validID: prefix then lower-case letters and digits, as grants issues them.
func validID(s, prefix string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || rest == "" || len(rest) > 40 {
		return false
	}
	for _, c := range rest {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// slackID: Slack user ids are upper-case letters and digits. Anything else
// is refused before it can reach a log entry or a terminal.
func slackID(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// verify checks Slack's v0 signature over "v0:<timestamp>:<body>" and the
// timestamp's freshness; it returns the refusal reason or "".
func (n *Notifier) verify(h http.Header, body []byte) string {
	tsRaw := h.Get("X-Slack-Request-Timestamp")
	ts, err := strconv.ParseInt(tsRaw, 10, 64)
	if err != nil {
		return RefusedStale
	}
	now := n.clk.Now().Unix()
	if d := now - ts; d > int64(window/time.Second) || d < -int64(window/time.Second) {
		return RefusedStale
	}
	got, ok := strings.CutPrefix(h.Get("X-Slack-Signature"), "v0=")
	sig, err := hex.DecodeString(got)
	if !ok || err != nil {
		return RefusedBadSignature
	}
	m := hmac.New(sha256.New, n.o.Slack.SigningSecret)
	m.Write([]byte("v0:" + tsRaw + ":"))
	m.Write(body)
	if !hmac.Equal(sig, m.Sum(nil)) {
		return RefusedBadSignature
	}
	return ""
}

func (n *Notifier) actions(w http.ResponseWriter, r *http.Request) {
	if n.o.Slack == nil {
		writeEphemeral(w, http.StatusNotFound, "Slack is not configured on this Airlock")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxActionBody))
	if err != nil && !tooLarge(err) {
		// Cut short (the client went away, or sent less than it
		// announced): nothing was asked, so nothing is recorded.
		writeEphemeral(w, http.StatusBadRequest, "The request body could not be read.")
		return
	}
	if err != nil {
		n.refuse(r.Context(), w, http.StatusRequestEntityTooLarge, RefusedTooLarge, action{}, r.RemoteAddr, false, "The request is too large.")
		return
	}
	if why := n.verify(r.Header, body); why != "" {
		n.refuse(r.Context(), w, http.StatusUnauthorized, why, action{}, r.RemoteAddr, false, "Airlock could not verify this request as coming from Slack.")
		return
	}
	// Verified from here on: the payload is Slack's, but still parsed strictly.
	now := n.clk.Now()
	// Remembered by the signature's bytes, not the header's text: hex is
	// read in either case, so "v0=AB…" verifies as "v0=ab…" does and must
	// not count as a new request.
	if !n.seen.add("sig:"+strings.ToLower(r.Header.Get("X-Slack-Signature")), now) {
		n.refuse(r.Context(), w, http.StatusUnauthorized, RefusedReplay, action{}, r.RemoteAddr, false, "This request was already handled.")
		return
	}
	a, err := parsePayload(body)
	if err != nil {
		n.refuse(r.Context(), w, http.StatusBadRequest, RefusedMalformed, action{}, r.RemoteAddr, true, "Airlock did not understand this action: "+err.Error())
		return
	}
	if a.trigger != "" && !n.seen.add("trigger:"+a.trigger, now) {
		n.refuse(r.Context(), w, http.StatusUnauthorized, RefusedReplay, a, r.RemoteAddr, true, "This click was already handled.")
		return
	}
	// The cache above is this process's; the store tells whether another
	// replica, or this one before a restart, handled the request.
	keys := []string{"slack-sig:" + strings.ToLower(r.Header.Get("X-Slack-Signature"))}
	if a.trigger != "" {
		keys = append(keys, "slack-trigger:"+a.trigger)
	}
	ts, _ := strconv.ParseInt(r.Header.Get("X-Slack-Request-Timestamp"), 10, 64) // verified above
	if fresh, err := n.claim(r.Context(), time.Unix(ts, 0), keys...); err != nil {
		n.logger.Error("recording a Slack action as handled", "err", err)
		msg := "Airlock could not record the decision; nothing was changed. Try again or use the CLI."
		n.replyLater(a, msg)
		writeEphemeral(w, http.StatusServiceUnavailable, msg)
		return
	} else if !fresh {
		n.refuse(r.Context(), w, http.StatusUnauthorized, RefusedReplay, a, r.RemoteAddr, true, "This click was already handled.")
		return
	}
	if t := n.o.Slack.TeamID; t != "" && (a.team != t && a.enterprise != t || !a.homeTeam()) {
		n.refuse(r.Context(), w, http.StatusOK, RefusedWrongTeam, a, r.RemoteAddr, true,
			"This Slack workspace is not the one Airlock takes decisions from (notify.slack.team_id).")
		return
	}
	name, ok := n.o.Slack.Users[a.user]
	var who model.Identity
	if ok {
		who, ok = n.o.Lookup(name)
	}
	if !ok || who.Kind != model.Human || who.Disabled {
		n.refuse(r.Context(), w, http.StatusOK, RefusedUnknownUser, a, r.RemoteAddr, true,
			"Your Slack account is not mapped to a person in Airlock (identities[].slack_user), so you cannot decide requests from Slack.")
		return
	}
	ctx := grants.WithChannel(r.Context(), "slack", a.user)
	a.identity = who.Name
	// The request as it stands: what the button's value was signed over,
	// and what an Approve click must have been shown whole.
	cur, err := n.o.Service.Get(r.Context(), who, a.grant)
	if err != nil {
		n.refuseError(r.Context(), w, a, r.RemoteAddr, err)
		return
	}
	// Airlock posts no Approve button for a request whose scope its
	// message cannot show whole (pendingMessage); a click that names one
	// anyway (a message posted through the incoming webhook by whoever
	// holds its URL, with Airlock's action ids under a summary of their
	// own) would approve what nobody was shown.
	if _, whole := requestSummary(cur); a.verb == "approve" && !whole {
		n.refuseDecision(r.Context(), w, a, r.RemoteAddr, apierr.Conflict("grant %s asks for more than a Slack message can show; it is approved with airlock approve or in the console, where the whole request is shown", a.grant),
			"Airlock refused: this request is larger than Slack can show, so it is not approved from Slack. See it whole with airlock grant show "+a.grant+" and approve it there or in the console.")
		return
	}
	// Slack's signature says Slack sent the click, not that the button
	// was on a message Airlock posted: its value must be Airlock's MAC
	// over this grant, this action and the request as it still reads.
	switch checkButton(n.o.Slack.ButtonKey, a, cur) {
	case buttonLegacy:
		n.refuseVerified(r.Context(), w, RefusedUnverifiedButton, a, r.RemoteAddr, "the button's value carries no signature (a message posted by an Airlock before button values were signed, or by someone else)",
			"Airlock refused: this message was posted before Airlock signed its buttons (or not by Airlock), so its buttons are not taken. Decide with airlock approve "+a.grant+" (or airlock deny) or in the console.")
		return
	case buttonForged:
		n.refuseVerified(r.Context(), w, RefusedUnverifiedButton, a, r.RemoteAddr, "the button's value is not one Airlock signed for this grant and action: the message was not Airlock's",
			"Airlock refused: this button is not one Airlock posted for this request, so it is not taken. See the request with airlock grant show "+a.grant+" and decide there or in the console.")
		return
	case buttonChanged:
		n.refuseVerified(r.Context(), w, RefusedRequestChanged, a, r.RemoteAddr, "the request no longer reads as the message showed it",
			"Airlock refused: this request no longer reads as this message showed it. See it with airlock grant show "+a.grant+" and decide there or in the console.")
		return
	}
	var g model.Grant
	if a.verb == "approve" {
		g, err = n.o.Service.Approve(ctx, who, a.grant, "")
	} else {
		// A button carries no text, and a denial needs a reason: say where
		// and by whom it was made.
		g, err = n.o.Service.Deny(ctx, who, a.grant, fmt.Sprintf("denied from Slack by %s (%s)", who.Name, a.user))
	}
	if err != nil {
		n.refuseError(r.Context(), w, a, r.RemoteAddr, err)
		return
	}
	n.logger.Info("decision from Slack", "grant", g.ID, "by", who.Name, "slack_user", a.user, "decision", a.verb)
	if u := n.responseURL(a.responseURL); u != "" {
		if b, err := json.Marshal(decidedMessage(g)); err == nil {
			n.replies.enqueue(delivery{url: u, body: b, event: "decision", id: g.ID})
		}
	}
	w.WriteHeader(http.StatusOK)
}

// responseURL returns u if Airlock may post to it: https, or (in tests)
// plain http to loopback, on the host and port of the app's incoming
// webhook (Slack's: hooks.slack.com, or a local stand-in). Slack signed
// the payload that named it, but a leaked signing secret must not turn
// Airlock into a proxy to anywhere: any https URL, an address inside the
// network included, used to be taken.
func (n *Notifier) responseURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return ""
	}
	if hook, err := url.Parse(n.o.Slack.WebhookURL); err != nil || hostPort(u) != hostPort(hook) {
		return ""
	}
	switch {
	case u.Scheme == "https":
		return raw
	case u.Scheme == "http" && n.o.AllowLoopbackResponseURL && isLoopback(u.Hostname()):
		return raw
	}
	return ""
}

// hostPort is u's host, lower-cased, and port, the scheme's default if
// none is written.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[strings.ToLower(u.Scheme)]
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// refuse answers with an ephemeral reply and records the refusal. Before
// the signature is verified nothing in the body is trusted or recorded, and
// such records are rate-limited (see maxUnsignedRecords).
// tooLarge reports whether err is a body's read stopped at its bound
// (http.MaxBytesReader), rather than cut short by the client.
func tooLarge(err error) bool {
	var mb *http.MaxBytesError
	return errors.As(err, &mb)
}

func (n *Notifier) refuse(ctx context.Context, w http.ResponseWriter, status int, why string, a action, remote string, verified bool, msg string) {
	n.record(ctx, why, a, remote, verified, "")
	if verified {
		n.replyLater(a, msg)
	}
	writeEphemeral(w, status, msg)
}

func (n *Notifier) refuseDecision(ctx context.Context, w http.ResponseWriter, a action, remote string, ae *apierr.Error, msg string) {
	n.refuseVerified(ctx, w, RefusedDecision, a, remote, ae.Message, msg)
}

// refuseError refuses a click for err, what the service answered.
func (n *Notifier) refuseError(ctx context.Context, w http.ResponseWriter, a action, remote string, err error) {
	ae := apierr.From(err)
	msg := "Airlock refused: " + ae.Message
	if ae.Status >= 500 {
		msg = "Airlock could not record the decision; nothing was changed. Try again or use the CLI."
	}
	n.refuseDecision(ctx, w, a, remote, ae, msg)
}

// refuseVerified refuses a verified click for reason why (a button whose value
// Airlock does not take, or a decision refused), recording detail beside it.
func (n *Notifier) refuseVerified(ctx context.Context, w http.ResponseWriter, why string, a action, remote, detail, msg string) {
	n.record(ctx, why, a, remote, true, detail)
	n.replyLater(a, msg)
	writeEphemeral(w, http.StatusOK, msg)
}

// replyLater also posts the ephemeral reply to the response_url: for
// block_actions Slack shows what is posted there, not the HTTP answer.
func (n *Notifier) replyLater(a action, msg string) {
	if u := n.responseURL(a.responseURL); u != "" {
		if b, err := json.Marshal(ephemeral(msg)); err == nil {
			n.replies.enqueue(delivery{url: u, body: b, event: "refusal", id: a.grant})
		}
	}
}

// record writes an integration.refused entry: the reason, the Slack user
// and what they clicked (when verified), the caller's address; never the
// signature or the secret.
func (n *Notifier) record(ctx context.Context, why string, a action, remote string, verified bool, detail string) {
	var extra map[string]any
	if verified {
		extra = map[string]any{"slack_user": a.user, "action": a.verb}
		if a.team != "" {
			extra["slack_team"] = a.team
		}
		if a.userTeam != "" && a.userTeam != a.team {
			extra["slack_user_team"] = a.userTeam
		}
		if a.identity != "" {
			extra["identity"] = a.identity
		}
	}
	n.recordRefusal(ctx, "slack", why, a.grant, remote, verified, extra, detail)
}

func writeEphemeral(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(ephemeral(msg))
}

// claim records keys, the identities of a verified request signed at
// signed, in the store (store.ActionClaimer) until its signature can no
// longer verify anywhere, and reports whether every one was new. Each
// replica's replayCache is its own and forgets at a restart; this is what
// makes any replica refuse a request another one handled. Keys are hashed:
// a signature or a Slack trigger id is stored as nothing a reader could
// present again, and in a bounded size.
func (n *Notifier) claim(ctx context.Context, signed time.Time, keys ...string) (bool, error) {
	now := n.clk.Now()
	// A signature verifies while its timestamp is within a window of the
	// verifier's clock; a second window covers replicas whose clocks
	// disagree by up to that much.
	expires := signed.Add(2 * window)
	fresh := true
	err := n.o.Log.Do(ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
		fresh = true
		c, ok := tx.(store.ActionClaimer)
		if !ok {
			return nil, nil
		}
		for _, k := range keys {
			sum := sha256.Sum256([]byte(k))
			ok, err := c.ClaimAction(ctx, hex.EncodeToString(sum[:]), now, expires)
			if err != nil {
				return nil, err
			}
			fresh = fresh && ok
		}
		return nil, nil
	})
	return fresh, err
}

// replayCache remembers keys until they are a window old. Bounded: when
// full of entries still inside the window, add refuses.
type replayCache struct {
	mu   sync.Mutex
	max  int
	seen map[string]time.Time
}

func newReplayCache(max int) *replayCache {
	return &replayCache{max: max, seen: map[string]time.Time{}}
}

// add records key at now and reports whether it was new (and fitted).
func (c *replayCache) add(key string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if at, ok := c.seen[key]; ok && now.Sub(at) <= 2*window {
		return false
	}
	if len(c.seen) >= c.max {
		for k, at := range c.seen {
			// Twice the window: a timestamp may be up to a window in the
			// future, so its signature stays usable that much longer.
			if now.Sub(at) > 2*window {
				delete(c.seen, k)
			}
		}
		if len(c.seen) >= c.max {
			return false
		}
	}
	c.seen[key] = now
	return true
}

// limiter allows max events per period.
type limiter struct {
	mu    sync.Mutex
	per   time.Duration
	max   int
	start time.Time
	count int
}

func (l *limiter) allow(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= l.per || now.Before(l.start) {
		l.start, l.count = now, 0
	}
	if l.count >= l.max {
		return false
	}
	l.count++
	return true
}
