// Package config loads and validates airlock.yaml, the file that tells
// `airlock serve` where to keep its data, where to listen, who the
// identities are, which targets sit behind the gateway and where the Cedar
// policies live.
//
// Loading is strict: unknown keys, duplicate keys, values of the wrong shape
// and settings that cannot work are all errors, and every one of them is
// reported with its file, line, column and field path (see Errors). A gateway
// that guards access must not start on a configuration it half understood.
//
// Policy file contents are not checked here, only that the policies
// directory exists.
package config

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/airlock-dev/airlock/internal/fsperm"
)

// Config is a loaded, validated airlock.yaml with defaults applied.
type Config struct {
	// Path is the absolute path of the file the configuration came from.
	Path string `yaml:"-"`
	// DataDir holds the database, the signing key and the recordings. It is
	// absolute, resolved against the configuration file's directory (not
	// the working directory) so that the file means the same thing wherever
	// `airlock serve` is started from.
	DataDir string `yaml:"data_dir"`
	// Listen is where the API and the gateways listen.
	Listen Listen `yaml:"listen"`
	// Identities are the agents and people that may authenticate.
	Identities []Identity `yaml:"identities"`
	// Targets are the upstreams behind the gateway.
	Targets []Target `yaml:"targets"`
	// Policies is the absolute path of the directory of *.cedar files,
	// resolved like DataDir.
	Policies string `yaml:"policies"`
	// Grants holds the limits every grant is held to.
	Grants GrantSettings `yaml:"grants"`
	// TLS configures the gateway listeners' certificate.
	TLS TLS `yaml:"tls"`
	// Audit configures where the log's checkpoints are published.
	Audit Audit `yaml:"audit"`
	// Notify configures Slack approvals and lifecycle webhooks.
	Notify Notify `yaml:"notify"`
	// Store, when set, is the postgres:// URL of a PostgreSQL database that
	// holds grants, sessions and the log instead of the embedded SQLite
	// database in DataDir. It carries no password: pgx reads PGPASSWORD or
	// the PGPASSFILE/~/.pgpass file; TLS options (sslmode, sslrootcert, …)
	// go in its query, and to a host off this machine they must verify the
	// server (pgtls.go).
	Store string `yaml:"store"`
	// Keys, when set, names files holding the server's secret keys instead
	// of the ones in DataDir, so that replicas can share them.
	Keys Keys `yaml:"keys"`
	// OIDC lists the issuers whose workload tokens agents may present.
	OIDC []OIDCIssuer `yaml:"oidc"`
	// IdentityBinding is what a finding (shared identity, moved
	// credential) gets: BindingRecord (default) or BindingRefuse.
	IdentityBinding string `yaml:"identity_binding"`
	// FindingsWindow is how long an identity's instance counts as active
	// for the shared-identity finding (default DefaultFindingsWindow).
	FindingsWindow Duration `yaml:"findings_window"`
	// SSO, if set, lets people sign in to the web console with OpenID
	// Connect.
	SSO *SSO `yaml:"sso"`

	// pos records where each field path was written, so that problems found
	// after loading (CheckEnv) can still point into the file.
	pos map[string]position
	// file is the path as the caller gave it, for messages.
	file string
}

// Listen holds the listener addresses, each host:port. An empty AWS or
// Postgres address leaves that gateway off.
type Listen struct {
	// API serves the HTTP API and web console; it defaults to
	// DefaultAPIAddr, the address the CLI uses when AIRLOCK_ADDR is unset.
	API string `yaml:"api"`
	// AWS serves the AWS API gateway.
	AWS string `yaml:"aws"`
	// Postgres serves the PostgreSQL gateway.
	Postgres string `yaml:"postgres"`
	// MaxConnections bounds the connections the API and the AWS gateway
	// each hold open at once (idle keep-alive ones included);
	// MaxConnectionsPerHost those from one client address (an IPv4
	// address, an IPv6 /64). Beyond either a new connection is closed at
	// once. 0 (unset) means sniff.DefaultMaxConns and
	// sniff.DefaultMaxConnsPerSource (4096 and 256), -1 (none) no cap.
	MaxConnections        int `yaml:"max_connections"`
	MaxConnectionsPerHost int `yaml:"max_connections_per_host"`
	// Public are the addresses clients use instead, when they reach the
	// listeners through something else (a load balancer in front of
	// several replicas).
	Public Public `yaml:"public"`
}

// Public holds the addresses handed to agents and people in place of the
// listeners' own: behind a load balancer, credentials from any replica must
// name the balancer, or a client would follow them to the one replica that
// issued them. Each is optional; an empty one means the listener's own
// address, as without a balancer.
type Public struct {
	// API is the API's URL (http or https, no path), e.g.
	// https://airlock.example.com: what AIRLOCK_ADDR should be.
	API string `yaml:"api"`
	// AWS is the AWS gateway's URL (http or https, no path), handed out as
	// AWS_ENDPOINT_URL; its host is also a name calls to the AWS gateway
	// may be signed for.
	AWS string `yaml:"aws"`
	// Postgres is the PostgreSQL gateway's host:port, handed out as PGHOST
	// and PGPORT.
	Postgres string `yaml:"postgres"`
}

// TLS is the gateway listeners' TLS. Both gateways always offer TLS: with
// the certificate named here, or else with one issued by Airlock's own CA in
// data_dir (its certificate, ca.pem, is what clients trust). Plaintext is
// accepted only from clients on a loopback address unless AllowPlaintext.
type TLS struct {
	// CertFile and KeyFile are PEM files, both or neither, resolved like
	// DataDir.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// AllowPlaintext accepts plaintext connections from clients that are not
	// on a loopback address. Grant credentials and, for AWS, session tokens
	// would then cross the network in clear: never set it outside a lab.
	AllowPlaintext bool `yaml:"allow_plaintext"`
}

// Identity is one agent or person that may authenticate to Airlock.
type Identity struct {
	// Name is unique across identities.
	Name string `yaml:"name"`
	// Kind is "agent" or "human".
	Kind string `yaml:"kind"`
	// Owner is the group (team) answerable for an agent; required for agents.
	Owner string `yaml:"owner"`
	// Groups are the groups the identity is a member of, for policies.
	Groups []string `yaml:"groups"`
	// KeySHA256 is the hex SHA-256 of the identity's API key, lower case.
	// The key itself is never stored.
	KeySHA256 string `yaml:"key_sha256"`
	// SlackUser is the person's Slack user id (people only), which maps a
	// click on a Slack Approve or Deny button to this identity.
	SlackUser string `yaml:"slack_user"`
	// OIDC binds workload tokens to this identity (agents only).
	OIDC *IdentityOIDC `yaml:"oidc"`
	// IdentityBinding overrides the global identity_binding for this
	// identity ("" means the global setting).
	IdentityBinding string `yaml:"identity_binding"`
	// Email is a person's address, matched against the SSO identity claim.
	Email string `yaml:"email"`
}

// SSO configures sign-in to the web console with OpenID Connect
// (authorization code flow with PKCE).
type SSO struct {
	Issuer   string `yaml:"issuer"`
	ClientID string `yaml:"client_id"`
	// ClientSecretEnv names the environment variable holding the client
	// secret.
	ClientSecretEnv string `yaml:"client_secret_env"`
	// IdentityClaim is the ID token claim whose value is a human
	// identity's name or email (default "email").
	IdentityClaim string `yaml:"identity_claim"`
	// RedirectURL is the callback URL registered with the issuer; by
	// default it is derived from the request (…/console/sso/callback).
	RedirectURL string `yaml:"redirect_url"`
	// GroupsClaim and RequiredGroups, if set, admit only people whose ID
	// token lists one of RequiredGroups in that claim (in addition to
	// being a configured person). Policies still use the groups in this
	// file, never the provider's.
	GroupsClaim    string   `yaml:"groups_claim"`
	RequiredGroups []string `yaml:"required_groups"`
}

// Target is one upstream behind the gateway.
type Target struct {
	// Name is unique across targets.
	Name string `yaml:"name"`
	// Kind is "aws" or "postgres".
	Kind string `yaml:"kind"`
	// Account is the AWS account ID or environment label reviewers filter
	// grants on. It is kept exactly as written, leading zeros included.
	Account string `yaml:"account"`
	// Region is the AWS region (aws targets; default DefaultRegion).
	Region string `yaml:"region"`
	// Endpoint, if set, is an https:// URL (http:// to a loopback address
	// only) used instead of AWS itself, such as an S3-compatible server (aws
	// targets).
	Endpoint string `yaml:"endpoint"`
	// Endpoints overrides AWS's own endpoint per service for the services
	// other than S3, by signing name ("dynamodb", "logs", …): for tests,
	// emulators and VPC endpoints (aws targets). See endpoints.go.
	Endpoints map[string]string `yaml:"endpoints"`
	// Upstream is the postgres:// URL of the database (postgres targets).
	// Its user is the gateway's admin role, which creates one login role
	// per grant. To a host off this machine it must verify the server's
	// certificate (sslmode=verify-full or verify-ca; pgtls.go).
	Upstream string `yaml:"upstream"`
	// PasswordEnv names the variable holding the admin role's password
	// (postgres targets; optional: PGPASSFILE or trust auth may do). The
	// upstream URL itself must not hold a password.
	PasswordEnv string `yaml:"password_env"`
	// RedactParameters records bound parameter values as their length only
	// (postgres targets).
	RedactParameters bool `yaml:"redact_parameters"`
	// MaxSessionsPerGrant bounds the sessions one grant may hold open at
	// once through each gateway (postgres targets): each holds a
	// connection of the upstream's max_connections. 0 (unset) means
	// pggw.DefaultMaxSessionsPerGrant (10), -1 (none) no bound.
	MaxSessionsPerGrant int `yaml:"max_sessions_per_grant"`
	// STSEndpoint overrides the AWS STS endpoint used with role_arn (aws
	// targets; for testing or a VPC endpoint).
	STSEndpoint string `yaml:"sts_endpoint"`
	// Credentials are the gateway's own upstream credentials (aws targets;
	// required there, not allowed on postgres targets).
	Credentials *Credentials `yaml:"credentials"`
}

// Credentials name where the gateway finds its own AWS credentials. Secrets
// are never written in the file, only the names of the environment
// variables holding them.
type Credentials struct {
	// AccessKeyIDEnv names the variable holding the access key ID.
	AccessKeyIDEnv string `yaml:"access_key_id_env"`
	// SecretAccessKeyEnv names the variable holding the secret access key.
	SecretAccessKeyEnv string `yaml:"secret_access_key_env"`
	// RoleARN is a role the gateway assumes, with the keys above if given,
	// otherwise with the ambient AWS credentials.
	RoleARN string `yaml:"role_arn"`
}

// GrantSettings are the limits applied to every grant.
type GrantSettings struct {
	// MaxDuration is the hard cap on any grant's duration (default 12h).
	MaxDuration Duration `yaml:"max_duration"`
	// PendingTimeout is how long a grant may wait for a decision before it
	// is cancelled (default 1h).
	PendingTimeout Duration `yaml:"pending_timeout"`
	// RequireReason makes a reason mandatory on every request. Nil means
	// the default, true; use ReasonRequired rather than reading it.
	RequireReason *bool `yaml:"require_reason"`
}

// ReasonRequired reports whether requests must carry a reason. It is true
// unless require_reason is explicitly false, because a grant without a why
// leaves one of the five review questions unanswered.
func (g GrantSettings) ReasonRequired() bool {
	return g.RequireReason == nil || *g.RequireReason
}

// Duration is a positive time.Duration written as a Go duration ("90s",
// "10m", "12h").
type Duration struct{ time.Duration }

// Defaults applied by Load and Parse.
const (
	DefaultAPIAddr        = "127.0.0.1:8700"
	DefaultRegion         = "us-east-1"
	DefaultMaxDuration    = 12 * time.Hour
	DefaultPendingTimeout = time.Hour
)

// Load reads, parses and validates the configuration file at path. Problems
// in the file are returned together as *Errors, each naming path (as given),
// line, column and field; a file that cannot be read yields the *fs.PathError.
//
// A file that every user of the machine may write is refused: whoever
// writes it decides who the identities are.
func Load(path string) (*Config, error) {
	// One byte more than Parse accepts, so that it says the file is too big.
	data, err := fsperm.ReadFile(path, maxFileSize+1)
	var we *fsperm.WritableError
	if errors.As(err, &we) {
		return nil, &Errors{List: []*Error{{File: path, Msg: fmt.Sprintf(
			"may be written by anyone (mode %s), who could add an identity with a key of their own; chmod o-w it", fsperm.Mode(we.Mode))}}}
	}
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse is Load for data already read from path. path is used as given in
// messages, and its directory is the base for the relative data_dir and
// policies paths. The policies directory must exist, so Parse does look at
// the file system.
func Parse(path string, data []byte) (*Config, error) {
	d := newDecoder(path)
	c := &Config{file: path}
	if root := d.document(data); root != nil {
		d.config(root, c)
		d.validate(c, baseDir(path))
	}
	if err := d.problems(); err != nil {
		return nil, err
	}
	c.Path = absPath(path)
	c.pos = d.pos
	return c, nil
}

// absPath makes path absolute; if the working directory is unknowable the
// path is kept as given, which is still correct relative to the process.
func absPath(path string) string {
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// baseDir is the directory relative paths in the file are resolved against.
func baseDir(path string) string {
	if path == "" {
		return absPath(".")
	}
	return filepath.Dir(absPath(path))
}

// Target returns the target called name.
func (c *Config) Target(name string) (*Target, bool) {
	for i := range c.Targets {
		if c.Targets[i].Name == name {
			return &c.Targets[i], true
		}
	}
	return nil, false
}

// CheckEnv checks that every environment variable named by a target's
// credentials is set and non-empty, using getenv (os.Getenv in production).
// It is separate from Load so that a file can be validated on a machine that
// does not hold the secrets. Problems are returned as *Errors naming the
// field and the variable, never its value.
func (c *Config) CheckEnv(getenv func(string) string) error {
	file := c.file
	if file == "" { // a Config built in code rather than loaded
		file = c.Path
	}
	var errs Errors
	if c.SSO != nil && c.SSO.ClientSecretEnv != "" && getenv(c.SSO.ClientSecretEnv) == "" {
		at := locate(c.pos, "sso.client_secret_env")
		errs.List = append(errs.List, &Error{
			File: file, Line: at.line, Col: at.col, Field: "sso.client_secret_env",
			Msg: fmt.Sprintf("environment variable %s is not set or empty; the web console's SSO reads its client secret from it", c.SSO.ClientSecretEnv),
		})
	}
	for i, t := range c.Targets {
		if t.PasswordEnv != "" && getenv(t.PasswordEnv) == "" {
			path := fmt.Sprintf("targets[%d].password_env", i)
			at := locate(c.pos, path)
			errs.List = append(errs.List, &Error{
				File: file, Line: at.line, Col: at.col, Field: path,
				Msg: fmt.Sprintf("environment variable %s is not set or empty; target %s reads its admin password from it",
					t.PasswordEnv, quote(t.Name)),
			})
		}
		if t.Credentials == nil {
			continue
		}
		for _, v := range []struct{ key, name, what string }{
			{"access_key_id_env", t.Credentials.AccessKeyIDEnv, "access key ID"},
			{"secret_access_key_env", t.Credentials.SecretAccessKeyEnv, "secret access key"},
		} {
			if v.name == "" || getenv(v.name) != "" {
				continue
			}
			path := fmt.Sprintf("targets[%d].credentials.%s", i, v.key)
			at := locate(c.pos, path)
			errs.List = append(errs.List, &Error{
				File: file, Line: at.line, Col: at.col, Field: path,
				Msg: fmt.Sprintf("environment variable %s is not set or empty; target %s reads its %s from it",
					v.name, quote(t.Name), v.what),
			})
		}
	}
	c.checkNotifyEnv(getenv, func(path, msg string) {
		at := locate(c.pos, path)
		errs.List = append(errs.List, &Error{File: file, Line: at.line, Col: at.col, Field: path, Msg: msg})
	})
	if len(errs.List) > 0 {
		errs.finish()
		return &errs
	}
	return nil
}
