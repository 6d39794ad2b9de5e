package config

import (
	"strings"
	"testing"
)

// TestEnvNamesNotSecrets: every *_env key names an environment variable.
// A secret pasted in its place (the easy mistake) is refused when the file
// is loaded, and the message never repeats it, nor does CheckEnv's.
func TestEnvNamesNotSecrets(t *testing.T) {
	const (
		hook   = "https://hooks.slack.com/services/T0G9PQBBK/B0HOOK/s3cretHookToken"
		secret = "s3cret-Pa55word!"
	)
	for _, tc := range []struct{ name, yaml, field string }{
		{"slack webhook url", quickstartYAML() + "notify:\n  slack:\n    webhook_url_env: \"" + hook + "\"\n    signing_secret_env: SLACK_SIGNING\n",
			"notify.slack.webhook_url_env"},
		{"slack signing secret", quickstartYAML() + "notify:\n  slack:\n    webhook_url_env: HOOK\n    signing_secret_env: \"" + secret + "\"\n",
			"notify.slack.signing_secret_env"},
		{"webhook secret", quickstartYAML() + "notify:\n  webhooks:\n    - {url: \"https://hooks.example.com/a\", secret_env: \"" + secret + "\"}\n",
			"notify.webhooks[0].secret_env"},
		{"sso client secret", quickstartYAML() + "sso:\n  issuer: https://login.example.com\n  client_id: airlock\n  client_secret_env: \"" + secret + "\"\n",
			"sso.client_secret_env"},
		{"postgres admin password", "data_dir: d\npolicies: policies\ntargets:\n  - {name: db, kind: postgres, account: dev, upstream: \"postgres://admin@db/orders\", password_env: \"" + secret + "\"}\n",
			"targets[0].password_env"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inConfigDir(t)
			c, err := Parse("airlock.yaml", []byte(tc.yaml))
			if err == nil {
				// What CheckEnv would then say names the variable, that is
				// the secret.
				err = c.CheckEnv(func(string) string { return "" })
				t.Fatalf("Parse accepted a secret as a variable name; CheckEnv then says: %v", err)
			}
			if !strings.Contains(err.Error(), tc.field) || !strings.Contains(err.Error(), "environment variable") {
				t.Fatalf("Parse: %v, want a problem with %s", err, tc.field)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("the error repeats the secret: %v", err)
			}
		})
	}
}
