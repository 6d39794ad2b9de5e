package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Notify configures where lifecycle changes are announced: Slack (with
// Approve and Deny buttons on pending requests) and generic signed
// webhooks.
type Notify struct {
	// Slack is nil unless notify.slack is given.
	Slack *Slack `yaml:"slack"`
	// Webhooks each receive a signed JSON event for every lifecycle change.
	Webhooks []Webhook `yaml:"webhooks"`
}

// Slack is a Slack app's incoming webhook and interactivity.
type Slack struct {
	// WebhookURLEnv names the variable holding the incoming webhook URL
	// (a secret: whoever has it can post to the channel).
	WebhookURLEnv string `yaml:"webhook_url_env"`
	// SigningSecretEnv names the variable holding the app's signing
	// secret, which verifies the button clicks Slack sends back.
	SigningSecretEnv string `yaml:"signing_secret_env"`
	// Channel optionally names the channel to post to. Only legacy incoming
	// webhooks honour it; an app's webhook posts where it was installed.
	Channel string `yaml:"channel"`
	// TeamID optionally names the Slack workspace (T…) or Enterprise Grid
	// organisation (E…) whose clicks count. An app installed in several
	// workspaces signs every workspace's clicks with one secret, and a
	// Slack user id is only promised unique within its workspace: without
	// it, a click from another workspace by a user whose id matches a
	// mapped person's would be taken as that person's. A click in that
	// workspace by a user of another (Slack Connect) is refused too.
	TeamID string `yaml:"team_id"`
}

// Webhook is one generic receiver of lifecycle events.
type Webhook struct {
	// URL is https://, or http:// to a loopback address only.
	URL string `yaml:"url"`
	// SecretEnv names the variable holding the HMAC key events are signed with.
	SecretEnv string `yaml:"secret_env"`
	// Decisions lets the receiver send approvals and denials back (POST
	// /v1/integrations/webhook/actions), signed with the same key. Off by
	// default: a key that only verifies events must not authorise
	// decisions.
	Decisions bool `yaml:"decisions"`
}

// slackUserRE is the shape of a Slack user id (U… or W… for Enterprise Grid).
var slackUserRE = regexp.MustCompile(`^[UW][A-Z0-9]{2,20}$`)

// slackChannelRE is a channel name (#name) or id (C…/G…).
var slackChannelRE = regexp.MustCompile(`^(#[a-z0-9][a-z0-9._-]{0,79}|[CG][A-Z0-9]{2,20})$`)

// slackTeamRE is a workspace id (T…) or an Enterprise Grid organisation's (E…).
var slackTeamRE = regexp.MustCompile(`^[TE][A-Z0-9]{2,20}$`)

func (d *decoder) notify(n *yaml.Node, path string, c *Notify) {
	d.mapping(n, path, "a mapping of notification settings (slack, webhooks)", []field{
		{"slack", func(p string, v *yaml.Node) {
			var s Slack
			if d.mapping(v, p, "a mapping of Slack settings (webhook_url_env, signing_secret_env, channel, team_id)", []field{
				{"webhook_url_env", func(p string, v *yaml.Node) { s.WebhookURLEnv = d.str(v, p) }},
				{"signing_secret_env", func(p string, v *yaml.Node) { s.SigningSecretEnv = d.str(v, p) }},
				{"channel", func(p string, v *yaml.Node) { s.Channel = d.str(v, p) }},
				{"team_id", func(p string, v *yaml.Node) { s.TeamID = d.str(v, p) }},
			}) {
				c.Slack = &s
			}
		}},
		{"webhooks", func(p string, v *yaml.Node) {
			d.sequence(v, p, "a list of webhooks", func(p string, v *yaml.Node) {
				var w Webhook
				if !d.mapping(v, p, "a webhook (a mapping with url, secret_env, decisions)", []field{
					{"url", func(p string, v *yaml.Node) { w.URL = d.str(v, p) }},
					{"secret_env", func(p string, v *yaml.Node) { w.SecretEnv = d.str(v, p) }},
					{"decisions", func(p string, v *yaml.Node) {
						if b := d.boolean(v, p); b != nil {
							w.Decisions = *b
						}
					}},
				}) && !d.bad[p] {
					d.failAt(v, p, "expected a webhook (a mapping with url, secret_env, decisions), got nothing")
				}
				c.Webhooks = append(c.Webhooks, w)
			})
		}},
	})
}

func (d *decoder) validateNotify(c *Config) {
	n := &c.Notify
	if s := n.Slack; s != nil {
		d.checkEnvName(s.WebhookURLEnv, "notify.slack.webhook_url_env", "the variable holding the incoming webhook URL")
		d.checkEnvName(s.SigningSecretEnv, "notify.slack.signing_secret_env", "the variable holding the app's signing secret")
		if s.Channel != "" && !slackChannelRE.MatchString(s.Channel) {
			d.errorf("notify.slack.channel", "%s is not a channel: write #name or a channel id such as C024BE91L", quote(s.Channel))
		}
		if s.TeamID != "" && !slackTeamRE.MatchString(s.TeamID) {
			d.errorf("notify.slack.team_id", "%s is not a Slack workspace or organisation id (T or E followed by letters and digits, e.g. T0G9PQBBK)", quote(s.TeamID))
		}
	}
	for i, w := range n.Webhooks {
		p := fmt.Sprintf("notify.webhooks[%d]", i)
		if d.bad[p] {
			continue
		}
		if msg := checkHookURL(w.URL); msg != "" {
			d.errorf(p+".url", "%s", msg)
		}
		d.checkEnvName(w.SecretEnv, p+".secret_env", "the variable holding the HMAC key events are signed with")
	}
	users := map[string]string{}
	for i, id := range c.Identities {
		if id.SlackUser == "" {
			continue
		}
		p := fmt.Sprintf("identities[%d].slack_user", i)
		switch {
		case id.Kind != "human":
			d.errorf(p, "only people decide from Slack; %s is not a human identity", quote(id.Name))
		case !slackUserRE.MatchString(id.SlackUser):
			d.errorf(p, "%s is not a Slack user id (U or W followed by letters and digits, e.g. U024BE7LH)", quote(id.SlackUser))
		}
		if first, dup := users[id.SlackUser]; dup {
			d.errorf(p, "Slack user %s is already mapped at %s; one Slack user is one person", quote(id.SlackUser), first)
		}
		users[id.SlackUser] = p
	}
}

// checkEnvName requires an environment variable name at path.
func (d *decoder) checkEnvName(name, path, what string) {
	switch {
	case name == "":
		d.errorf(path, "required: %s", what)
	case !envRE.MatchString(name):
		// The value is never echoed: it is most likely the secret itself,
		// pasted where its variable's name belongs.
		d.errorf(path, "must be the name of an environment variable (letters, digits and _), never the secret itself")
	}
}

// checkHookURL returns why raw cannot receive notifications, or "". Only
// https, or plain http to a loopback address: events name who got access to
// what, and a plain-http hop would hand that to anyone on the path. The
// message never repeats the URL, which may embed a token.
func checkHookURL(raw string) string {
	if raw == "" {
		return "required: an https:// URL (http:// only to a loopback address)"
	}
	u, err := url.Parse(raw)
	switch {
	case !hasScheme(raw, "http", "https"):
		return "must be an https:// URL (http:// only to a loopback address)"
	case err != nil:
		return "not a valid URL"
	case u.Hostname() == "":
		return "has no host"
	case u.User != nil:
		return "must not contain credentials"
	case u.Fragment != "":
		return "must not have a #fragment"
	case strings.EqualFold(u.Scheme, "http") && !loopbackHost(u.Hostname()):
		return "plain http:// is allowed only to a loopback address; use https://"
	}
	return ""
}

// checkNotifyEnv is CheckEnv's part for notify: every variable set, and
// the Slack webhook URL (read from the environment) well-formed.
func (c *Config) checkNotifyEnv(getenv func(string) string, add func(path, msg string)) {
	n := c.Notify
	if s := n.Slack; s != nil {
		if s.WebhookURLEnv != "" {
			if v := getenv(s.WebhookURLEnv); v == "" {
				add("notify.slack.webhook_url_env", fmt.Sprintf("environment variable %s is not set or empty; Slack notifications post to the URL it holds", s.WebhookURLEnv))
			} else if msg := checkHookURL(v); msg != "" {
				add("notify.slack.webhook_url_env", fmt.Sprintf("the URL in %s %s", s.WebhookURLEnv, msg))
			}
		}
		if s.SigningSecretEnv != "" && getenv(s.SigningSecretEnv) == "" {
			add("notify.slack.signing_secret_env", fmt.Sprintf("environment variable %s is not set or empty; Slack button clicks are verified with the secret it holds", s.SigningSecretEnv))
		}
	}
	for i, w := range n.Webhooks {
		if w.SecretEnv != "" && getenv(w.SecretEnv) == "" {
			add(fmt.Sprintf("notify.webhooks[%d].secret_env", i), fmt.Sprintf("environment variable %s is not set or empty; webhook events are signed with the key it holds", w.SecretEnv))
		}
	}
}
