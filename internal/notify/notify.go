// Package notify tells people and systems about grant lifecycle changes,
// and takes approvals back from Slack and from webhooks' receivers.
//
//   - Slack: a request that waits for a person is posted to the Slack app's
//     incoming webhook with Approve and Deny buttons; a decision made
//     elsewhere is followed up in the channel. A click comes back to
//     Actions (POST /v1/integrations/slack/actions), which verifies Slack's
//     signature, maps the Slack user to a person (identities[].slack_user),
//     checks that the button's value is Airlock's own MAC for that grant,
//     action and request text (button.go) and decides through the same grants.Service calls and approve
//     policies as the CLI, recording the channel in the approval. Anything
//     it refuses is answered with an ephemeral reply and recorded in the
//     log as integration.refused.
//   - Webhooks: every lifecycle change is POSTed as a signed JSON Event to
//     each configured URL (see Sign). A webhook configured to decide may
//     send decisions back, signed the same way (WebhookActions, POST
//     /v1/integrations/webhook/actions).
//
// Nothing here ever blocks or delays the lifecycle: grants.Service hands
// each committed change to OnChange, which only queues it; deliveries run
// on their own goroutines with bounded queues, bounded retries and backoff,
// and a full queue drops (and logs) rather than waits.
package notify

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// Webhook is one generic receiver of lifecycle events.
type Webhook struct {
	URL    string
	Secret []byte
	// Decisions lets the receiver send decisions back, signed with
	// Secret (WebhookActions).
	Decisions bool
}

// Slack is a Slack app: its incoming webhook and its signing secret.
type Slack struct {
	WebhookURL    string
	SigningSecret []byte
	// Channel, if set, overrides the incoming webhook's default channel.
	Channel string
	// Users maps Slack user ids to the names of human identities.
	Users map[string]string
	// TeamID, if set, is the only workspace (T…) or Enterprise Grid
	// organisation (E…) whose clicks are taken; others are refused
	// (wrong_team) before their user is looked up.
	TeamID string
	// ButtonKey signs the values of the buttons Airlock posts, and
	// verifies them on a click (buttonValue); at least 32 bytes, the same
	// on every replica sharing a store, so that a message one posted is
	// taken by any.
	ButtonKey []byte
}

// Options configures a Notifier.
type Options struct {
	Service *grants.Service
	// Lookup finds an identity by name (authn.Directory.Lookup); for Slack
	// and webhooks that may decide.
	Lookup func(name string) (model.Identity, bool)
	// Log records refused Slack and webhook actions.
	Log *auditlog.Log
	// Slack is nil to leave Slack off.
	Slack    *Slack
	Webhooks []Webhook

	// Clock tells the time for signatures and the freshness check; clock.Real if nil.
	Clock clock.Clock
	// Client sends deliveries; one with a 10s timeout if nil.
	Client *http.Client
	// QueueSize bounds each destination's queue (default 256).
	QueueSize int
	// Attempts bounds the tries per delivery (default 6).
	Attempts int
	// RetryBase is the first retry's delay, doubling up to a minute
	// (default 1s).
	RetryBase time.Duration
	// CloseGrace bounds how long Close goes on sending what is queued
	// (default 5s).
	CloseGrace time.Duration
	// AllowLoopbackResponseURL lets Slack's response_url point at plain
	// http on a loopback address (tests stand in for Slack there); https is
	// always required otherwise.
	AllowLoopbackResponseURL bool
	Logger                   *slog.Logger
}

// Notifier is the running notifications; see the package doc.
type Notifier struct {
	o       Options
	clk     clock.Clock
	logger  *slog.Logger
	slack   *sender   // the incoming webhook (nil without Slack)
	replies *sender   // response_url replies (nil without Slack)
	hooks   []*sender // one per webhook
	seen    *replayCache
	refusal *limiter
	// closeOnce stops the senders once.
	closeOnce sync.Once
}

// New starts the senders and subscribes to svc's lifecycle changes.
func New(o Options) (*Notifier, error) {
	if o.Service == nil {
		return nil, errors.New("notify: Service is required")
	}
	if o.Slack != nil && (o.Slack.WebhookURL == "" || len(o.Slack.SigningSecret) == 0 || len(o.Slack.ButtonKey) < 32 || o.Log == nil || o.Lookup == nil) {
		return nil, errors.New("notify: Slack needs its webhook URL, signing secret, a button key of 32 bytes or more, Log and Lookup")
	}
	for i, w := range o.Webhooks {
		if w.Decisions && (len(w.Secret) == 0 || o.Log == nil || o.Lookup == nil) {
			return nil, errors.New("notify: a webhook that may decide needs its secret, Log and Lookup")
		}
		// The secret of a webhook that only receives events authorises
		// nothing: it must not also be the secret of one that may decide,
		// or its receiver could sign decisions as anyone.
		for j, other := range o.Webhooks {
			if w.Decisions && !other.Decisions && hmac.Equal(w.Secret, other.Secret) {
				return nil, fmt.Errorf("notify.webhooks[%d] may decide and has the same secret as notify.webhooks[%d], which only receives events (its receiver could then sign decisions); give each its own secret", i, j)
			}
		}
		// Nor Slack's signing secret, for any webhook: a receiver holds
		// its webhook's secret to verify events, and with Slack's it could
		// sign clicks as any mapped Slack user (even a receiver of events
		// only); and Slack, which holds its secret too, could sign a
		// deciding webhook's decisions, which name any person.
		if o.Slack != nil && hmac.Equal(w.Secret, o.Slack.SigningSecret) {
			return nil, fmt.Errorf("notify.webhooks[%d] has the Slack app's signing secret as its secret (its receiver could then sign Slack clicks, and Slack webhook decisions, as people); give it its own secret", i)
		}
	}
	if o.Clock == nil {
		o.Clock = clock.Real
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second, CheckRedirect: noRedirects}
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 256
	}
	if o.Attempts <= 0 {
		o.Attempts = 6
	}
	if o.RetryBase <= 0 {
		o.RetryBase = time.Second
	}
	if o.CloseGrace <= 0 {
		o.CloseGrace = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	n := &Notifier{o: o, clk: o.Clock, logger: o.Logger, seen: newReplayCache(maxSeen), refusal: &limiter{per: time.Minute, max: maxUnsignedRecords}}
	if o.Slack != nil {
		n.slack = n.newSender("slack", nil)
		n.replies = n.newSender("slack response_url", nil)
	}
	for _, w := range o.Webhooks {
		n.hooks = append(n.hooks, n.newSender("webhook", w.Secret))
	}
	o.Service.OnChange(n.onChange)
	return n, nil
}

// noRedirects keeps a delivery at the address configured: a redirect would
// carry the event, and its signature, somewhere else.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// Close stops the deliveries: what is queued still gets one attempt each,
// within CloseGrace for all destinations together; the rest is dropped
// (and counted in the log).
func (n *Notifier) Close() {
	n.closeOnce.Do(func() {
		all := n.all()
		var wg sync.WaitGroup
		for _, s := range all {
			wg.Go(func() { s.close(n.o.CloseGrace) })
		}
		wg.Wait()
	})
}

func (n *Notifier) all() []*sender {
	var out []*sender
	if n.slack != nil {
		out = append(out, n.slack, n.replies)
	}
	return append(out, n.hooks...)
}

// onChange runs on the lifecycle's path (grants.Service.OnChange): it only
// builds the messages and queues them.
func (n *Notifier) onChange(c grants.Change) {
	if c.Type == "grant.decided" {
		return // the request's own event carries the policy decision
	}
	if len(n.hooks) > 0 {
		ev := newEvent(c, n.clk.Now())
		body, err := marshalEvent(ev)
		if err != nil {
			n.logger.Error("encoding a webhook event", "err", err, "grant", c.Grant.ID)
		} else {
			for i, s := range n.hooks {
				s.enqueue(delivery{url: n.o.Webhooks[i].URL, body: body, event: ev.Type, id: ev.ID})
			}
		}
	}
	if n.slack != nil {
		if msg := slackMessageFor(c, n.o.Slack.Channel, n.o.Slack.ButtonKey); msg != nil {
			n.slack.enqueue(delivery{url: n.o.Slack.WebhookURL, body: msg, event: c.Type, id: c.Grant.ID})
		}
	}
}
