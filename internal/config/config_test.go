package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// quickstart is the configuration from DESIGN.md, verbatim.
const quickstart = `data_dir: ./airlock-data          # embedded SQLite database, signing key, recordings
listen:
  api: 127.0.0.1:8700             # HTTP API and web console
  aws: 127.0.0.1:8701             # AWS API gateway
  postgres: 127.0.0.1:8702        # PostgreSQL gateway
identities:
  - name: log-triage-bot
    kind: agent
    owner: sre-team
    key_sha256: "<hex SHA-256 of the agent's key>"
  - name: alice
    kind: human
    groups: [sre-leads]
    key_sha256: "<hex SHA-256 of alice's key>"
targets:
  - name: aws-prod
    kind: aws
    account: "111122223333"
    region: us-east-1
    endpoint: http://127.0.0.1:7070     # optional: an S3-compatible endpoint instead of AWS itself
    credentials:                        # the gateway's own upstream credentials
      access_key_id_env: AWS_PROD_ACCESS_KEY_ID
      secret_access_key_env: AWS_PROD_SECRET_ACCESS_KEY
  - name: orders-db
    kind: postgres
    account: "111122223333"
    upstream: postgres://airlock_admin@127.0.0.1:5432/orders
policies: ./policies              # *.cedar files
`

func hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

var (
	botHash   = hash("bot-key")
	aliceHash = hash("alice-key")
)

// quickstartYAML is the quickstart with real key hashes substituted; alice's
// is upper case to show that hashes are stored lower case.
func quickstartYAML() string {
	return strings.NewReplacer(
		"<hex SHA-256 of the agent's key>", botHash,
		"<hex SHA-256 of alice's key>", strings.ToUpper(aliceHash),
	).Replace(quickstart)
}

// inConfigDir makes a temporary directory holding a policies directory,
// changes into it for the rest of the test and returns it, so that tests can
// load "airlock.yaml" by a relative path as users do.
func inConfigDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	// On some systems the temp dir is behind a symlink; use the name the
	// working directory reports so that paths compare equal.
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

func TestQuickstart(t *testing.T) {
	dir := inConfigDir(t)
	if err := os.WriteFile("airlock.yaml", []byte(quickstartYAML()), 0o644); err != nil {
		t.Fatal(err)
	}
	// Load from another directory to show that relative paths follow the
	// file, not the working directory.
	t.Chdir(t.TempDir())
	c, err := Load(filepath.Join(dir, "airlock.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	yes := true
	want := &Config{
		Path:    filepath.Join(dir, "airlock.yaml"),
		DataDir: filepath.Join(dir, "airlock-data"),
		Listen:  Listen{API: "127.0.0.1:8700", AWS: "127.0.0.1:8701", Postgres: "127.0.0.1:8702"},
		Identities: []Identity{
			{Name: "log-triage-bot", Kind: "agent", Owner: "sre-team", KeySHA256: botHash},
			{Name: "alice", Kind: "human", Groups: []string{"sre-leads"}, KeySHA256: aliceHash},
		},
		Targets: []Target{
			{Name: "aws-prod", Kind: "aws", Account: "111122223333", Region: "us-east-1",
				Endpoint: "http://127.0.0.1:7070",
				Credentials: &Credentials{
					AccessKeyIDEnv:     "AWS_PROD_ACCESS_KEY_ID",
					SecretAccessKeyEnv: "AWS_PROD_SECRET_ACCESS_KEY",
				}},
			{Name: "orders-db", Kind: "postgres", Account: "111122223333",
				Upstream: "postgres://airlock_admin@127.0.0.1:5432/orders"},
		},
		Policies: filepath.Join(dir, "policies"),
		Grants: GrantSettings{
			MaxDuration:    Duration{12 * time.Hour},
			PendingTimeout: Duration{time.Hour},
			RequireReason:  &yes,
		},
	}
	got := *c
	got.pos, got.file = nil, "" // internal bookkeeping
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("Load =\n%+v\nwant\n%+v", got, *want)
	}

	if tg, ok := c.Target("orders-db"); !ok || tg.Kind != "postgres" {
		t.Errorf(`Target("orders-db") = %v, %v`, tg, ok)
	}
	if _, ok := c.Target("nope"); ok {
		t.Error(`Target("nope") found something`)
	}
	if !c.Grants.ReasonRequired() {
		t.Error("ReasonRequired() = false by default")
	}
}

func TestDefaultsAndLeniency(t *testing.T) {
	inConfigDir(t)
	c, err := Parse("airlock.yaml", []byte(`
data_dir: /var/lib/airlock
policies: policies
identities:
  - &bot {name: bot, kind: agent, owner: sre, key_sha256: `+botHash+`}
targets:
  - name: s3
    kind: aws
    account: 011122223333    # YAML would read an octal int; the digits must survive
    credentials: {role_arn: "arn:aws:iam::111122223333:role/airlock-gateway"}
  - name: minio
    kind: aws
    account: 42
    region: garage
    credentials:
      role_arn: arn:aws-us-gov:iam::111122223333:role/path/to/role
      access_key_id_env: K
      secret_access_key_env: S
grants:
  max_duration: 90m
  require_reason: no
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/var/lib/airlock" {
		t.Errorf("DataDir = %q", c.DataDir)
	}
	if c.Listen != (Listen{API: DefaultAPIAddr}) {
		t.Errorf("Listen = %+v, want only the API on its default", c.Listen)
	}
	if got := c.Targets[0]; got.Account != "011122223333" || got.Region != DefaultRegion {
		t.Errorf("targets[0] account %q region %q", got.Account, got.Region)
	}
	if got := c.Targets[1]; got.Account != "42" || got.Region != "garage" {
		t.Errorf("targets[1] account %q region %q", got.Account, got.Region)
	}
	if c.Grants.MaxDuration.Duration != 90*time.Minute || c.Grants.PendingTimeout.Duration != DefaultPendingTimeout {
		t.Errorf("Grants = %+v", c.Grants)
	}
	if c.Grants.ReasonRequired() {
		t.Error("require_reason: no gave ReasonRequired() = true")
	}
	if (GrantSettings{}).ReasonRequired() != true {
		t.Error("zero GrantSettings does not require a reason")
	}
}

// loc is one expected problem: its exact "file:line:col: field" prefix and a
// fragment of its message.
type loc struct{ at, msg string }

func TestErrors(t *testing.T) {
	// Each case is a complete file. Lines are counted from the first line
	// after the opening backquote.
	tests := []struct {
		name string
		yaml string
		want []loc
	}{
		{"empty file", ``, []loc{{"airlock.yaml", "the file is empty"}}},
		{"comments only", "# nothing yet\n", []loc{{"airlock.yaml", "the file is empty"}}},
		{"null document", "~\n", []loc{{"airlock.yaml:1:1", "holds no settings"}}},
		{"list document", "- data_dir: x\n", []loc{{"airlock.yaml:1:1", "expected a mapping of settings (data_dir, listen, identities, targets, policies, grants, tls), got a list"}}},
		{"scalar document", "hello\n", []loc{{"airlock.yaml:1:1", `got the value "hello"`}}},
		{"second document", "data_dir: d\npolicies: policies\n---\ndata_dir: e\n", []loc{{"airlock.yaml:3:1", "second YAML document"}}},
		{"syntax error", "data_dir: d\npolicies: [policies\n", []loc{{"airlock.yaml:2", "invalid YAML: did not find expected ',' or ']'"}}},
		{"unclosed flow mapping", "data_dir: d\npolicies: policies\ngrants: {max_duration: 1h\nlisten: {}\n", []loc{{"airlock.yaml:3", "invalid YAML: did not find expected ',' or '}'"}}},
		{"list item in a mapping", "data_dir: d\npolicies: policies\n- x\n", []loc{{"airlock.yaml:3", "invalid YAML: did not find expected key"}}},
		{"bad indentation", "data_dir: d\nidentities:\n  - name: a\n  kind: agent\n", []loc{{"airlock.yaml:4", "invalid YAML: did not find expected '-' indicator"}}},
		{"two colons on line one", "data_dir: d: e\n", []loc{{"airlock.yaml:1", "invalid YAML: mapping values are not allowed in this context"}}},
		{"unterminated string", "data_dir: d\n\npolicies: \"policies\n", []loc{{"airlock.yaml:3", "invalid YAML: found unexpected end of stream"}}},
		{"tab indentation", "data_dir: d\nlisten:\n\tapi: x\n", []loc{{"airlock.yaml:3", "invalid YAML"}}},
		{"unknown anchor", "data_dir: *nope\n", []loc{{"airlock.yaml:1", "invalid YAML: unknown anchor 'nope' referenced"}}},

		{"unknown top-level key", `data_dir: d
policy: policies
`, []loc{
			{"airlock.yaml:1:1: policies", "required"},
			{"airlock.yaml:2:1: policy", `unknown key "policy" (did you mean "policies"?); allowed keys: data_dir, listen, identities, targets, policies, tls, grants`},
		}},
		{"unknown key in listen", `data_dir: d
policies: policies
listen:
  api: 127.0.0.1:8700
  s3: 127.0.0.1:8701
`, []loc{{"airlock.yaml:5:3: listen.s3", `unknown key "s3"; allowed keys: api, aws, postgres`}}},
		{"unknown key in identity", `data_dir: d
policies: policies
identities:
  - name: bot
    kind: agent
    onwer: sre
    key_sha256: ` + botHash + `
`, []loc{
			{"airlock.yaml:4:5: identities[0].owner", "required for an agent"},
			{"airlock.yaml:6:5: identities[0].onwer", `unknown key "onwer" (did you mean "owner"?); allowed keys: name, kind, owner, groups, key_sha256`},
		}},
		{"unknown key in target", `data_dir: d
policies: policies
targets:
  - name: db
    kind: postgres
    account: dev
    upstream: postgres://u@h/db?sslmode=verify-full
    database: db
`, []loc{{"airlock.yaml:8:5: targets[0].database", "allowed keys: name, kind, account, region, endpoint, upstream, password_env, redact_parameters, max_sessions_per_grant, sts_endpoint, endpoints, credentials"}}},
		{"tls half given", `data_dir: d
policies: policies
tls:
  cert_file: policies
`, []loc{{"airlock.yaml:4:3: tls", "cert_file and key_file go together"}}},
		{"tls file missing", `data_dir: d
policies: policies
tls:
  cert_file: nope.pem
  key_file: nope.key
`, []loc{{"airlock.yaml:4:14: tls.cert_file", "cannot read"}, {"airlock.yaml:5:13: tls.key_file", "cannot read"}}},
		{"postgres-only keys on aws", `data_dir: d
policies: policies
targets:
  - name: s3
    kind: aws
    account: "1"
    password_env: X
    redact_parameters: true
    max_sessions_per_grant: 5
    credentials:
      role_arn: arn:aws:iam::111122223333:role/r
`, []loc{{"airlock.yaml:7:19: targets[0].password_env", "only postgres targets"}, {"airlock.yaml:8:24: targets[0].redact_parameters", "only postgres targets"},
			{"airlock.yaml:9:29: targets[0].max_sessions_per_grant", "only postgres targets"}}},
		{"sts_endpoint on postgres", `data_dir: d
policies: policies
targets:
  - name: db
    kind: postgres
    account: dev
    upstream: postgres://u@h/db?sslmode=verify-full
    sts_endpoint: http://127.0.0.1:1
`, []loc{{"airlock.yaml:8:19: targets[0].sts_endpoint", "only aws targets use STS"}}},
		{"unknown key in credentials", `data_dir: d
policies: policies
targets:
  - name: s3
    kind: aws
    account: "1"
    credentials:
      role_arn: arn:aws:iam::111122223333:role/r
      secret_key: hunter2
`, []loc{{"airlock.yaml:9:7: targets[0].credentials.secret_key", "allowed keys: access_key_id_env, secret_access_key_env, role_arn"}}},
		{"unknown key in grants", `data_dir: d
policies: policies
grants:
  max_duraton: 1h
`, []loc{{"airlock.yaml:4:3: grants.max_duraton", `(did you mean "max_duration"?); allowed keys: max_duration, pending_timeout, require_reason`}}},
		{"duplicate key", `data_dir: d
policies: policies
data_dir: e
`, []loc{{"airlock.yaml:3:1: data_dir", `duplicate key "data_dir" (first given at line 1)`}}},
		{"merge key", `data_dir: d
policies: policies
grants:
  <<: {max_duration: 1h}
`, []loc{{"airlock.yaml:4:3: grants.<<", "merge keys (<<) are not supported"}}},

		{"mapping where a string is expected", `data_dir: {path: d}
policies: policies
`, []loc{{"airlock.yaml:1:11: data_dir", "expected a string, got a mapping"}}},
		{"list where a mapping is expected", `data_dir: d
policies: policies
listen: [127.0.0.1:8700]
`, []loc{{"airlock.yaml:3:9: listen", "expected a mapping of listeners (api, aws, postgres, public, max_connections, max_connections_per_host), got a list"}}},
		{"string where a list is expected", `data_dir: d
policies: policies
identities:
  - name: alice
    kind: human
    groups: sre
    key_sha256: ` + aliceHash + `
`, []loc{{"airlock.yaml:6:13: identities[0].groups", "expected a list, got the value \"sre\"; write [sre] for a list of one"}}},
		{"list item of the wrong shape", `data_dir: d
policies: policies
targets:
  - aws-prod
`, []loc{{"airlock.yaml:4:5: targets[0]", `expected a target (a mapping with name, kind, account, ...), got the value "aws-prod"`}}},
		{"empty list item", `data_dir: d
policies: policies
identities:
  -
`, []loc{{"airlock.yaml:4:4: identities[0]", "expected an identity (a mapping with name, kind, owner, groups, key_sha256), got nothing"}}},
		{"non-duration", `data_dir: d
policies: policies
grants:
  max_duration: soon
  pending_timeout: 3600
`, []loc{
			{"airlock.yaml:4:17: grants.max_duration", `invalid duration "soon"; write a Go duration such as 90s, 10m or 12h`},
			{"airlock.yaml:5:20: grants.pending_timeout", `duration "3600" has no unit; write a Go duration such as 3600s`},
		}},
		{"non-positive duration", `data_dir: d
policies: policies
grants:
  max_duration: 0s
  pending_timeout: -5m
`, []loc{
			{"airlock.yaml:4:17: grants.max_duration", `duration must be positive, got "0s"`},
			{"airlock.yaml:5:20: grants.pending_timeout", `duration must be positive, got "-5m"`},
		}},
		{"findings window below the gateways' activity interval", `data_dir: d
policies: policies
findings_window: 30s
`, []loc{{"airlock.yaml:3:18: findings_window", `must be at least 2m0s, got "30s"`}}},
		{"non-boolean", `data_dir: d
policies: policies
grants:
  require_reason: maybe
`, []loc{{"airlock.yaml:4:19: grants.require_reason", `expected true or false, got the value "maybe"`}}},

		{"data_dir and policies missing", `listen:
  api: 127.0.0.1:8700
`, []loc{
			{"airlock.yaml:1:1: data_dir", "required"},
			{"airlock.yaml:1:1: policies", "required: the directory of *.cedar policy files"},
		}},
		{"policies missing on disk", `data_dir: d
policies: ./nope
`, []loc{{"airlock.yaml:2:11: policies", `/nope" does not exist`}}},
		{"policies is a file", `data_dir: d
policies: airlock.yaml
`, []loc{{"airlock.yaml:2:11: policies", `/airlock.yaml" is not a directory`}}},

		{"bad listen addresses", `data_dir: d
policies: policies
listen:
  api: 8700
  aws: 127.0.0.1:http
  postgres: 127.0.0.1:99999
`, []loc{
			{"airlock.yaml:4:8: listen.api", `"8700" is not host:port`},
			{"airlock.yaml:5:8: listen.aws", "must be a number from 0 to 65535"},
			{"airlock.yaml:6:13: listen.postgres", "must be a number from 0 to 65535"},
		}},
		{"listen addresses collide", `data_dir: d
policies: policies
listen:
  api: 127.0.0.1:8700
  aws: 127.0.0.1:8700
  postgres: :8700
`, []loc{
			{"airlock.yaml:5:8: listen.aws", `"127.0.0.1:8700" collides with listen.api`},
			{"airlock.yaml:6:13: listen.postgres", `":8700" collides with listen.api`},
			{"airlock.yaml:6:13: listen.postgres", `":8700" collides with listen.aws`},
		}},
		{"default api collides", `data_dir: d
policies: policies
listen:
  aws: 0.0.0.0:8700
`, []loc{{"airlock.yaml:4:8: listen.aws", `collides with listen.api ("127.0.0.1:8700")`}}},

		{"identity problems", `data_dir: d
policies: policies
identities:
  - kind: agent
    key_sha256: ` + botHash + `
  - name: Log Bot
    kind: robot
    key_sha256: ` + aliceHash + `
  - name: bot2
    kind: agent
    owner: SRE Team
    groups: [ok, "Not OK", ""]
    key_sha256: abc123
  - name: alice
    kind: human
    key_sha256: ` + strings.ToUpper(botHash) + `
  - name: alice
    kind: human
`, []loc{
			{"airlock.yaml:4:5: identities[0].name", "required: the identity's unique name"},
			{"airlock.yaml:4:5: identities[0].owner", "required for an agent"},
			{"airlock.yaml:6:11: identities[1].name", `"Log Bot" must be 1-63 characters of a-z`},
			{"airlock.yaml:7:11: identities[1].kind", `must be "agent" or "human", got "robot"`},
			{"airlock.yaml:11:12: identities[2].owner", `group name "SRE Team" must be 1-63 characters`},
			{"airlock.yaml:12:18: identities[2].groups[1]", `group name "Not OK" must be`},
			{"airlock.yaml:12:28: identities[2].groups[2]", "group name is empty"},
			{"airlock.yaml:13:17: identities[2].key_sha256", "must be 64 hex characters, the SHA-256 of the key (not the key itself); got 6 characters"},
			{"airlock.yaml:16:17: identities[3].key_sha256", "same key as identities[0]; every identity needs its own key"},
			{"airlock.yaml:17:5: identities[4].key_sha256", "required: the hex SHA-256"},
			{"airlock.yaml:17:11: identities[4].name", `identity name "alice" is already used by identities[3]`},
		}},
		{"quickstart placeholder hash", `data_dir: d
policies: policies
identities:
  - name: bot
    kind: agent
    owner: sre
    key_sha256: "<hex SHA-256 of the agent's key>"
`, []loc{{"airlock.yaml:7:17: identities[0].key_sha256", "must be 64 hex characters"}}},

		{"target problems", `data_dir: d
policies: policies
targets:
  - kind: aws
    credentials: {role_arn: "arn:aws:iam::111122223333:role/r"}
  - name: aws-prod
    kind: s3
    account: "1"
  - name: aws-prod
    kind: aws
    account: "1"
    region: US East
    credentials: {role_arn: "arn:aws:iam::1:role/r"}
`, []loc{
			{"airlock.yaml:4:5: targets[0].name", "required: the target's unique name"},
			{"airlock.yaml:4:5: targets[0].account", "required: the AWS account ID or environment label"},
			{"airlock.yaml:7:11: targets[1].kind", `must be "aws" or "postgres", got "s3"`},
			{"airlock.yaml:9:11: targets[2].name", `target name "aws-prod" is already used by targets[1]`},
			{"airlock.yaml:12:13: targets[2].region", `"US East" is not a region name`},
			{"airlock.yaml:13:29: targets[2].credentials.role_arn", `"arn:aws:iam::1:role/r" is not an IAM role ARN`},
		}},
		{"account of the wrong shape", `data_dir: d
policies: policies
targets:
  - name: db
    kind: postgres
    account: [1, 2]
    upstream: postgres://u@h/db?sslmode=verify-full
`, []loc{{"airlock.yaml:6:14: targets[0].account", "expected a string, got a list"}}},
		{"aws target without credentials", `data_dir: d
policies: policies
targets:
  - name: s3
    kind: aws
    account: "111122223333"
  - name: aws-prod
    kind: aws
    account: "111122223333"
    credentials: {}
`, []loc{
			{"airlock.yaml:4:5: targets[0].credentials", `aws target "s3" needs credentials (access_key_id_env and secret_access_key_env, or role_arn)`},
			{"airlock.yaml:10:18: targets[1].credentials", `aws target "aws-prod" needs credentials`},
		}},
		{"half a key pair and pasted secrets", `data_dir: d
policies: policies
targets:
  - name: s3
    kind: aws
    account: "1"
    credentials:
      access_key_id_env: AKIAIOSFODNN7EXAMPLE
  - name: s4
    kind: aws
    account: "1"
    credentials:
      access_key_id_env: KEY
      secret_access_key_env: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
`, []loc{
			{"airlock.yaml:8:7: targets[0].credentials.secret_access_key_env", "required with access_key_id_env"},
			{"airlock.yaml:8:26: targets[0].credentials.access_key_id_env", "looks like an access key ID itself"},
			{"airlock.yaml:14:30: targets[1].credentials.secret_access_key_env", "must be the name of an environment variable"},
		}},
		{"bad endpoints", `data_dir: d
policies: policies
targets:
  - name: a
    kind: aws
    account: "1"
    endpoint: 127.0.0.1:7070
    credentials: {role_arn: "arn:aws:iam::111122223333:role/r"}
  - name: b
    kind: aws
    account: "1"
    endpoint: http:///bucket
    credentials: {role_arn: "arn:aws:iam::111122223333:role/r"}
  - name: c
    kind: aws
    account: "1"
    endpoint: "http://[::1"
    credentials: {role_arn: "arn:aws:iam::111122223333:role/r"}
`, []loc{
			{"airlock.yaml:7:15: targets[0].endpoint", "must be an http:// or https:// URL"},
			{"airlock.yaml:12:15: targets[1].endpoint", `"http:///bucket" has no host`},
			{"airlock.yaml:17:15: targets[2].endpoint", "not a URL: missing ']' in host"},
		}},
		{"postgres problems", `data_dir: d
policies: policies
targets:
  - name: a
    kind: postgres
    account: dev
  - name: b
    kind: postgres
    account: dev
    upstream: mysql://u@h/db
  - name: c
    kind: postgres
    account: dev
    upstream: postgres://admin:hunter2@db.internal:5432
  - name: d
    kind: postgres
    account: dev
    upstream: postgresql://u@h/db?sslmode=verify-full
    region: us-east-1
    credentials: {role_arn: "arn:aws:iam::111122223333:role/r"}
`, []loc{
			{"airlock.yaml:4:5: targets[0].upstream", "required for a postgres target"},
			{"airlock.yaml:10:15: targets[1].upstream", "must be a postgres:// or postgresql:// URL"},
			{"airlock.yaml:14:15: targets[2].upstream", "must not contain a password; name the environment variable that holds it with password_env"},
			{"airlock.yaml:19:13: targets[3].region", "only aws targets have a region"},
			{"airlock.yaml:20:18: targets[3].credentials", `postgres target "d" must not have credentials`},
		}},
		{"upstream on an aws target", `data_dir: d
policies: policies
targets:
  - name: a
    kind: aws
    account: "1"
    upstream: postgres://u@h/db?sslmode=verify-full
    credentials: {role_arn: "arn:aws:iam::111122223333:role/r"}
`, []loc{{"airlock.yaml:7:15: targets[0].upstream", "only postgres targets have an upstream"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inConfigDir(t)
			if err := os.WriteFile("airlock.yaml", []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Load("airlock.yaml")
			if err == nil {
				t.Fatalf("Load succeeded: %+v", c)
			}
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error is %T, not *Errors: %v", err, err)
			}
			checkErrors(t, errs, tt.want)
		})
	}
}

func checkErrors(t *testing.T, errs *Errors, want []loc) {
	t.Helper()
	lines := strings.Split(errs.Error(), "\n")
	if len(lines) != len(errs.List) {
		t.Errorf("Error() has %d lines for %d problems", len(lines), len(errs.List))
	}
	if len(lines) != len(want) {
		t.Errorf("got %d problems, want %d:\n%s", len(lines), len(want), errs)
	}
	for i := range min(len(lines), len(want)) {
		if !strings.HasPrefix(lines[i], want[i].at+": ") || !strings.Contains(lines[i], want[i].msg) {
			t.Errorf("problem %d:\n got  %s\n want %s: …%s…", i, lines[i], want[i].at, want[i].msg)
		}
	}
}

func TestSecretsNotEchoed(t *testing.T) {
	inConfigDir(t)
	const key = "sk_live_0123456789abcdef"
	const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	_, err := Parse("airlock.yaml", []byte(`data_dir: d
policies: policies
identities:
  - {name: bot, kind: agent, owner: sre, key_sha256: `+key+`}
targets:
  - name: s3
    kind: aws
    account: "1"
    credentials: {access_key_id_env: AKIAIOSFODNN7EXAMPLE, secret_access_key_env: "`+secret+`"}
  - name: db
    kind: postgres
    account: dev
    upstream: "postgres://admin:`+secret+`@h:5432/"
`))
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	for _, s := range []string{key, secret, "AKIAIOSFODNN7EXAMPLE"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error message contains %q:\n%s", s, err)
		}
	}
}

func TestCheckEnv(t *testing.T) {
	inConfigDir(t)
	c, err := Parse("airlock.yaml", []byte(quickstartYAML()))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"AWS_PROD_ACCESS_KEY_ID":     "AKIAIOSFODNN7EXAMPLE",
		"AWS_PROD_SECRET_ACCESS_KEY": "",
	}
	getenv := func(k string) string { return env[k] }

	err = c.CheckEnv(getenv)
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("CheckEnv = %v, want *Errors", err)
	}
	checkErrors(t, errs, []loc{{"airlock.yaml:23:30: targets[0].credentials.secret_access_key_env",
		`environment variable AWS_PROD_SECRET_ACCESS_KEY is not set or empty; target "aws-prod" reads its secret access key from it`}})

	delete(env, "AWS_PROD_ACCESS_KEY_ID")
	errs = nil
	if !errors.As(c.CheckEnv(getenv), &errs) || len(errs.List) != 2 {
		t.Fatalf("CheckEnv with both unset = %v, want two problems", errs)
	}
	if strings.Contains(errs.Error(), "AKIA") {
		t.Errorf("CheckEnv leaked a value: %s", errs)
	}

	env["AWS_PROD_ACCESS_KEY_ID"] = "AKIAIOSFODNN7EXAMPLE"
	env["AWS_PROD_SECRET_ACCESS_KEY"] = "secret"
	if err := c.CheckEnv(getenv); err != nil {
		t.Errorf("CheckEnv with everything set = %v", err)
	}

	// A postgres admin password named by password_env must be set.
	pg := &Config{Targets: []Target{{Name: "db", Kind: "postgres", PasswordEnv: "ORDERS_DB_PASSWORD"}}}
	if err := pg.CheckEnv(func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "ORDERS_DB_PASSWORD") {
		t.Errorf("password_env unset: CheckEnv = %v", err)
	}
	if err := pg.CheckEnv(func(string) string { return "pw" }); err != nil {
		t.Errorf("password_env set: CheckEnv = %v", err)
	}

	// A role-only target needs no variables.
	roleOnly := &Config{Targets: []Target{{Name: "r", Kind: "aws", Credentials: &Credentials{RoleARN: "arn:aws:iam::111122223333:role/r"}}}}
	if err := roleOnly.CheckEnv(func(string) string { return "" }); err != nil {
		t.Errorf("role-only CheckEnv = %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	inConfigDir(t)
	_, err := Load("missing.yaml")
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Load(missing) = %v", err)
	}
}

func TestAliases(t *testing.T) {
	inConfigDir(t)
	c, err := Parse("airlock.yaml", []byte(`data_dir: d
policies: policies
targets:
  - name: a
    kind: aws
    account: &acct "111122223333"
    credentials: &creds
      access_key_id_env: K
      secret_access_key_env: S
  - name: b
    kind: aws
    account: *acct
    credentials: *creds
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Targets[1].Account != "111122223333" || c.Targets[1].Credentials.SecretAccessKeyEnv != "S" {
		t.Errorf("aliases not followed: %+v", c.Targets[1])
	}
}

func FuzzParse(f *testing.F) {
	f.Add(quickstartYAML())
	f.Add(quickstart)
	f.Add("")
	f.Add("data_dir: d\npolicies: .\n")
	f.Add("data_dir: d\npolicies: .\ndata_dir: e\n")
	f.Add("data_dir: {a: b}\nlisten: [x]\ngrants: {max_duration: soon, require_reason: maybe}\n")
	f.Add("identities:\n  - name: alice\n    groups: sre\n  -\n  - &a {name: b}\n  - *a\n")
	f.Add("targets:\n  - {name: t, kind: postgres, upstream: \"postgres://u:p@[::1/x\", credentials: {}}\n")
	f.Add("a: &a [x, x]\nb: &b [*a, *a]\ntargets: [*b, *b]\n")
	f.Add("---\n---\n")
	f.Add("<<: {data_dir: d}\n")
	f.Add("data_dir: !!str d\npolicies: !x .\nidentity_binding: !!null refuse\n")
	f.Add("identities: [&a {groups: &g [a, b, c], k1: x, k2: y}, *a, *a, {groups: *g}]\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data string) {
		path := filepath.Join(dir, "airlock.yaml")
		c, err := Parse(path, []byte(data))
		if err == nil {
			if c == nil || c.DataDir == "" || c.Policies == "" || c.Listen.API == "" {
				t.Fatalf("Parse returned an incomplete config without error: %+v", c)
			}
			return
		}
		if c != nil {
			t.Fatalf("Parse returned both a config and an error")
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if !strings.HasPrefix(line, path) {
				t.Fatalf("error line does not start with the file name: %q", line)
			}
		}
	})
}
