package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestNotify(t *testing.T) {
	inConfigDir(t)
	c, err := Parse("airlock.yaml", []byte(`data_dir: d
policies: policies
notify:
  slack:
    webhook_url_env: AIRLOCK_SLACK_WEBHOOK
    signing_secret_env: AIRLOCK_SLACK_SIGNING_SECRET
    channel: "#access"
    team_id: T0G9PQBBK
  webhooks:
    - url: https://hooks.example.com/airlock
      secret_env: AIRLOCK_WEBHOOK_SECRET
identities:
  - {name: alice, kind: human, slack_user: U024BE7LH, key_sha256: "abababababababababababababababababababababababababababababababab"}
`))
	if err != nil {
		t.Fatal(err)
	}
	n := c.Notify
	if n.Slack == nil || n.Slack.WebhookURLEnv != "AIRLOCK_SLACK_WEBHOOK" || n.Slack.SigningSecretEnv != "AIRLOCK_SLACK_SIGNING_SECRET" || n.Slack.Channel != "#access" || n.Slack.TeamID != "T0G9PQBBK" {
		t.Errorf("slack = %+v", n.Slack)
	}
	if len(n.Webhooks) != 1 || n.Webhooks[0].URL != "https://hooks.example.com/airlock" || n.Webhooks[0].SecretEnv != "AIRLOCK_WEBHOOK_SECRET" {
		t.Errorf("webhooks = %+v", n.Webhooks)
	}
	if c.Identities[0].SlackUser != "U024BE7LH" {
		t.Errorf("slack_user = %q", c.Identities[0].SlackUser)
	}

	const hook = "https://hooks.slack.com/services/T000/B000/XXXXsecret"
	env := map[string]string{"AIRLOCK_SLACK_WEBHOOK": "http://hooks.slack.com/services/T000/B000/XXXXsecret"}
	var errs *Errors
	if !errors.As(c.CheckEnv(func(k string) string { return env[k] }), &errs) {
		t.Fatal("CheckEnv passed with two variables unset and a plain-http webhook")
	}
	checkErrors(t, errs, []loc{
		{"airlock.yaml:5:22: notify.slack.webhook_url_env", "the URL in AIRLOCK_SLACK_WEBHOOK plain http:// is allowed only to a loopback address"},
		{"airlock.yaml:6:25: notify.slack.signing_secret_env", "AIRLOCK_SLACK_SIGNING_SECRET is not set"},
		{"airlock.yaml:11:19: notify.webhooks[0].secret_env", "AIRLOCK_WEBHOOK_SECRET is not set"},
	})
	if strings.Contains(errs.Error(), "XXXXsecret") {
		t.Error("CheckEnv echoed the webhook URL")
	}
	env = map[string]string{"AIRLOCK_SLACK_WEBHOOK": hook, "AIRLOCK_SLACK_SIGNING_SECRET": "s", "AIRLOCK_WEBHOOK_SECRET": "w"}
	if err := c.CheckEnv(func(k string) string { return env[k] }); err != nil {
		t.Errorf("CheckEnv with everything set: %v", err)
	}
}

// TestWebhookDecisions: decisions is off unless set, and read as a
// boolean.
func TestWebhookDecisions(t *testing.T) {
	inConfigDir(t)
	c, err := Parse("airlock.yaml", []byte(`data_dir: d
policies: policies
notify:
  webhooks:
    - {url: "https://hooks.example.com/a", secret_env: A}
    - {url: "https://hooks.example.com/b", secret_env: B, decisions: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Notify.Webhooks; len(w) != 2 || w[0].Decisions || !w[1].Decisions {
		t.Fatalf("webhooks = %+v", w)
	}
}

func TestNotifyErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []loc
	}{
		{"unknown keys", `notify:
  slack: {webhook_url: "https://hooks.slack.com/x", signing_secret_env: S}
  webhook: []
`, []loc{
			{"airlock.yaml:4:10: notify.slack.webhook_url_env", "required"},
			{"airlock.yaml:4:11: notify.slack.webhook_url", `unknown key "webhook_url"`},
			{"airlock.yaml:5:3: notify.webhook", `unknown key "webhook" (did you mean "webhooks"?)`},
		}},
		{"webhooks", `notify:
  webhooks:
    - {url: "http://hooks.example.com/a", secret_env: W}
    - {url: "https://u:p@hooks.example.com/a", secret_env: "not a name"}
    - {secret_env: W, token: x}
    - {url: "http://127.0.0.1:9/a"}
`, []loc{
			{"airlock.yaml:5:13: notify.webhooks[0].url", "plain http:// is allowed only to a loopback address"},
			{"airlock.yaml:6:13: notify.webhooks[1].url", "must not contain credentials"},
			{"airlock.yaml:6:60: notify.webhooks[1].secret_env", "must be the name of an environment variable"},
			{"airlock.yaml:7:7: notify.webhooks[2].url", "required"},
			{"airlock.yaml:7:23: notify.webhooks[2].token", `unknown key "token"`},
			{"airlock.yaml:8:7: notify.webhooks[3].secret_env", "required"},
		}},
		{"decisions", `notify:
  webhooks:
    - {url: "https://hooks.example.com/a", secret_env: W, decisions: "yes please"}
`, []loc{
			{"airlock.yaml:5:70: notify.webhooks[0].decisions", "expected true or false"},
		}},
		{"slack users", `notify:
  slack: {webhook_url_env: H, signing_secret_env: S, channel: "access", team_id: acme}
identities:
  - {name: bot, kind: agent, owner: sre, slack_user: U1234567, key_sha256: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}
  - {name: alice, kind: human, slack_user: alice, key_sha256: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}
  - {name: bob, kind: human, slack_user: U024BE7LH, key_sha256: "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"}
  - {name: carol, kind: human, slack_user: U024BE7LH, key_sha256: "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"}
`, []loc{
			{"airlock.yaml:4:63: notify.slack.channel", "is not a channel"},
			{"airlock.yaml:4:82: notify.slack.team_id", "is not a Slack workspace or organisation id"},
			{"airlock.yaml:6:54: identities[0].slack_user", "only people decide from Slack"},
			{"airlock.yaml:7:44: identities[1].slack_user", "is not a Slack user id"},
			{"airlock.yaml:9:44: identities[3].slack_user", "already mapped at identities[2].slack_user"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inConfigDir(t)
			if err := os.WriteFile("airlock.yaml", []byte("data_dir: d\npolicies: policies\n"+tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load("airlock.yaml")
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load = %+v, %v", c, err)
			}
			checkErrors(t, errs, tt.want)
			if strings.Contains(errs.Error(), "u:p@") {
				t.Error("credentials echoed")
			}
		})
	}
}
