package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"log/slog"
	"net"
	"net/url"
	"os"

	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/notify"
)

// startNotify starts Slack approvals and lifecycle webhooks (notify:), or
// returns nil if none are configured. Secrets come from the environment
// (CheckEnv made sure they are set); the Slack callback, and the webhooks'
// decisions when a webhook may decide, are mounted on api. credKey is the
// credential key, from which the key that signs Slack buttons is derived.
func startNotify(cfg *config.Config, svc *grants.Service, dir *authn.Directory, s *Server, api *httpapi.Handler, credKey []byte, logger *slog.Logger) (*notify.Notifier, error) {
	n := cfg.Notify
	if n.Slack == nil && len(n.Webhooks) == 0 {
		return nil, nil
	}
	o := notify.Options{Service: svc, Lookup: dir.Lookup, Log: s.log, Logger: logger}
	if n.Slack != nil {
		users := map[string]string{}
		for _, id := range cfg.Identities {
			if id.SlackUser != "" {
				users[id.SlackUser] = id.Name
			}
		}
		o.Slack = &notify.Slack{
			WebhookURL: os.Getenv(n.Slack.WebhookURLEnv), SigningSecret: []byte(os.Getenv(n.Slack.SigningSecretEnv)),
			Channel: n.Slack.Channel, Users: users, TeamID: n.Slack.TeamID,
			ButtonKey: slackButtonKey(credKey),
		}
		// A response_url on loopback only makes sense when the incoming
		// webhook is there too: a local stand-in for Slack.
		o.AllowLoopbackResponseURL = loopbackURL(o.Slack.WebhookURL)
	}
	for _, w := range n.Webhooks {
		o.Webhooks = append(o.Webhooks, notify.Webhook{URL: w.URL, Secret: []byte(os.Getenv(w.SecretEnv)), Decisions: w.Decisions})
	}
	nt, err := notify.New(o)
	if err != nil {
		return nil, err
	}
	if n.Slack != nil {
		api.SetSlackActions(nt.Actions())
	}
	if nt.DecidesByWebhook() {
		api.SetWebhookActions(nt.WebhookActions())
	}
	return nt, nil
}

// slackButtonKey derives the key that signs the values of the buttons
// posted to Slack (notify.Slack.ButtonKey) from the credential key: every
// replica sharing a store holds the same credential key (serverkeys checks
// it against the store), so a message one replica posted is taken by any,
// and by this one after a restart; the label keeps it apart from the key's
// other uses. Whoever holds the credential key can already make grant
// credentials, so it gives them nothing more.
func slackButtonKey(credKey []byte) []byte {
	m := hmac.New(sha256.New, credKey)
	m.Write([]byte("airlock slack button key v1"))
	return m.Sum(nil)
}

// loopbackURL reports whether raw is a plain-http URL to a loopback address.
func loopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
