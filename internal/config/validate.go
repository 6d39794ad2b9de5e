package config

import (
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/airlock-dev/airlock/internal/fsperm"
)

var (
	// nameRE is the shape of identity, group and target names. They appear
	// in Cedar entity ids, CLI arguments and URLs, so they are kept to
	// characters that need no quoting anywhere.
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	// envRE is the shape of a portable environment variable name.
	envRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// accessKeyRE matches an AWS access key ID, which is what someone who
	// misread "access_key_id_env" would paste.
	accessKeyRE = regexp.MustCompile(`^(AKIA|ASIA)[A-Z0-9]{16}$`)
	// roleARNRE matches an IAM role ARN in any partition.
	roleARNRE = regexp.MustCompile(`^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]+$`)
	// regionRE is deliberately loose: S3-compatible servers accept made-up
	// region names.
	regionRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
)

const nameRule = "must be 1-63 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"

// validate checks what the decoder cannot see field by field, applies
// defaults and resolves paths against base, the configuration file's
// directory.
func (d *decoder) validate(c *Config, base string) {
	if c.DataDir == "" {
		d.errorf("data_dir", "required: the directory for Airlock's database, signing key and recordings")
	} else {
		c.DataDir = resolvePath(base, c.DataDir)
	}

	if c.Policies == "" {
		d.errorf("policies", "required: the directory of *.cedar policy files")
	} else {
		c.Policies = resolvePath(base, c.Policies)
		switch fi, err := os.Stat(c.Policies); {
		case errors.Is(err, fs.ErrNotExist):
			d.errorf("policies", "directory %s does not exist", strconv.Quote(c.Policies))
		case err != nil:
			d.errorf("policies", "cannot read directory %s: %v", strconv.Quote(c.Policies), errors.Unwrap(err))
		case !fi.IsDir():
			d.errorf("policies", "%s is not a directory", strconv.Quote(c.Policies))
		case fsperm.OthersMayWrite(fi):
			// Even with the sticky bit anyone could add a file, and the
			// next SIGHUP would load their permit.
			d.errorf("policies", "directory %s may be written by anyone (mode %s), who could add a policy permitting themselves; chmod o-w it",
				strconv.Quote(c.Policies), fsperm.Mode(fi.Mode()))
		}
	}

	if c.Store != "" {
		d.checkStore(c.Store, "store")
	}
	if c.Listen.API == "" && !d.bad["listen.api"] {
		c.Listen.API = DefaultAPIAddr
	}
	d.validateListen(&c.Listen, listenPaths)
	d.validatePublic(&c.Listen)
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		d.errorf("tls", "cert_file and key_file go together: give both, or neither for a certificate from Airlock's own CA")
	}
	if sso := c.SSO; sso != nil {
		for _, f := range []struct{ key, v string }{{"issuer", sso.Issuer}, {"client_id", sso.ClientID}, {"client_secret_env", sso.ClientSecretEnv}} {
			if f.v == "" {
				d.errorf("sso."+f.key, "required when sso is set")
			}
		}
		if sso.Issuer != "" {
			d.checkIssuer(sso.Issuer, "sso.issuer")
		}
		if sso.ClientSecretEnv != "" {
			d.checkEnvName(sso.ClientSecretEnv, "sso.client_secret_env", "")
		}
		if sso.IdentityClaim == "" {
			sso.IdentityClaim = "email"
		}
		switch {
		case len(sso.RequiredGroups) > 0 && sso.GroupsClaim == "":
			sso.GroupsClaim = "groups"
		case len(sso.RequiredGroups) == 0 && sso.GroupsClaim != "":
			// Alone it would admit everyone as before: whoever wrote it
			// meant to restrict sign-in, or took it for where policies
			// find people's groups.
			d.errorf("sso.groups_claim", "only used with sso.required_groups, to admit only people whose ID token lists one of them; "+
				"policies never see the provider's groups, only those in this file")
		}
	}
	for _, f := range []struct {
		path string
		p    *string
	}{{"tls.cert_file", &c.TLS.CertFile}, {"tls.key_file", &c.TLS.KeyFile},
		{"keys.credential_key_file", &c.Keys.CredentialKeyFile}, {"keys.log_signing_key_file", &c.Keys.LogSigningKeyFile}} {
		if *f.p == "" {
			continue
		}
		*f.p = resolvePath(base, *f.p)
		if _, err := os.Stat(*f.p); err != nil {
			d.errorf(f.path, "cannot read %s: %v", strconv.Quote(*f.p), errors.Unwrap(err))
		}
	}
	d.checkKeyPair(c.TLS)

	names := map[string]string{} // identity name → path of its first use
	keys := map[string]string{}  // key hash → path of its first use
	for i := range c.Identities {
		d.validateIdentity(&c.Identities[i], fmt.Sprintf("identities[%d]", i), names, keys, c.SSO != nil)
	}
	d.validateEmails(c.Identities)
	targets := map[string]string{}
	for i := range c.Targets {
		d.validateTarget(&c.Targets[i], fmt.Sprintf("targets[%d]", i), targets)
	}

	d.validateAudit(&c.Audit)
	d.validateNotify(c)
	d.validateWorkload(c)

	g := &c.Grants
	if g.MaxDuration.Duration == 0 {
		g.MaxDuration.Duration = DefaultMaxDuration
	}
	if g.PendingTimeout.Duration == 0 {
		g.PendingTimeout.Duration = DefaultPendingTimeout
	}
	if g.RequireReason == nil {
		t := true
		g.RequireReason = &t
	}
}

// checkKeyPair loads the configured certificate and key as the listeners
// will. Left to them, a file that holds no PEM certificate, a directory, or
// a key of another certificate stopped serve with crypto/tls's own words
// ("tls: tls: private key does not match public key") and no file named; it
// is a configuration problem like any other, reported with its place.
func (d *decoder) checkKeyPair(t TLS) {
	if t.CertFile == "" || t.KeyFile == "" {
		return
	}
	usable := true
	for _, f := range []struct{ path, file string }{{"tls.cert_file", t.CertFile}, {"tls.key_file", t.KeyFile}} {
		switch fi, err := os.Stat(f.file); {
		case err != nil:
			usable = false // reported by validate
		case fi.IsDir():
			d.errorf(f.path, "%s is a directory, not a PEM file", strconv.Quote(f.file))
			usable = false
		}
	}
	if !usable {
		return
	}
	if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
		// The message never carries key material, only what is wrong.
		d.errorf("tls.cert_file", "%s with tls.key_file %s is not a usable certificate and key: %s",
			strconv.Quote(t.CertFile), strconv.Quote(t.KeyFile), strings.TrimPrefix(err.Error(), "tls: "))
	}
}

// resolvePath makes p absolute against base; an absolute p is only cleaned.
func resolvePath(base, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(base, p)
}

// listenPaths names the api, aws and postgres listeners in messages.
var listenPaths = [3]string{"listen.api", "listen.aws", "listen.postgres"}

// validateListen checks the listener addresses, named in messages by paths
// (the file's keys, or the command-line flags that replaced them).
func (d *decoder) validateListen(l *Listen, paths [3]string) {
	type listener struct{ path, addr, host, port string }
	var ok []listener
	for _, ln := range []listener{{path: paths[0], addr: l.API}, {path: paths[1], addr: l.AWS}, {path: paths[2], addr: l.Postgres}} {
		if ln.addr == "" {
			continue
		}
		host, port, err := net.SplitHostPort(ln.addr)
		if err != nil {
			d.errorf(ln.path, "%s is not host:port (e.g. 127.0.0.1:8700)", quote(ln.addr))
			continue
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil {
			d.errorf(ln.path, "port in %s must be a number from 0 to 65535", quote(ln.addr))
			continue
		} else if n == 0 {
			continue // an ephemeral port never collides
		}
		ln.host, ln.port = host, port
		for _, prev := range ok {
			if prev.port == ln.port && (prev.host == ln.host || wildcard(prev.host) || wildcard(ln.host)) {
				d.errorf(ln.path, "%s collides with %s (%s); each listener needs its own address", quote(ln.addr), prev.path, quote(prev.addr))
			}
		}
		ok = append(ok, ln)
	}
}

// wildcard reports whether host means every local address.
func wildcard(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::"
}

func (d *decoder) validateIdentity(id *Identity, path string, names, keys map[string]string, sso bool) {
	if d.bad[path] {
		return
	}
	d.checkName(id.Name, path+".name", "identity", names)

	switch id.Kind {
	case "agent":
		if id.Owner == "" {
			d.errorf(path+".owner", "required for an agent: the group (team) answerable for it")
		}
	case "human":
		if id.Owner != "" {
			// Policies give only an agent its owner (principal.owner, and
			// membership of Group::"<owner>"); a person's would show in the
			// review without meaning anything to policy.
			d.errorf(path+".owner", "only agents have an owner; put a person in groups instead")
		}
	case "":
		d.errorf(path+".kind", `required: "agent" or "human"`)
	default:
		d.errorf(path+".kind", `must be "agent" or "human", got %s`, quote(id.Kind))
	}
	if id.Owner != "" && !nameRE.MatchString(id.Owner) {
		d.errorf(path+".owner", "group name %s %s", quote(id.Owner), nameRule)
	}
	for j, g := range id.Groups {
		p := fmt.Sprintf("%s.groups[%d]", path, j)
		if g == "" {
			d.errorf(p, "group name is empty")
		} else if !nameRE.MatchString(g) {
			d.errorf(p, "group name %s %s", quote(g), nameRule)
		}
	}

	// The value is never echoed: it is easy to paste the key itself here.
	switch k := id.KeySHA256; {
	case k == "" && id.OIDC != nil:
		// A workload-token agent needs no key.
	case k == "" && id.Kind == "human" && sso:
		// A person may sign in with SSO alone (the console's "Sign in
		// with SSO"), as DESIGN has it: "SSO or an API key".
	case k == "":
		d.errorf(path+".key_sha256", "required: the hex SHA-256 of the identity's API key (printf %%s \"$KEY\" | sha256sum), or for an agent an oidc binding, or for a person an sso section to sign in with")
	case len(k) != 64 || !isHex(k):
		d.errorf(path+".key_sha256", "must be 64 hex characters, the SHA-256 of the key (not the key itself); got %d characters", len(k))
	default:
		id.KeySHA256 = strings.ToLower(k)
		// Two identities sharing a key could not be told apart, which is
		// exactly the shared identity Airlock exists to prevent.
		if first, dup := keys[id.KeySHA256]; dup {
			d.errorf(path+".key_sha256", "same key as %s; every identity needs its own key", first)
		} else {
			keys[id.KeySHA256] = path
		}
	}
}

// validateEmails checks the people's email addresses, which map an SSO
// sign-in to a person (sso.identity_claim: email). An address is a
// person's only, and one person's: the console matches it without regard
// to case, so two people with one address would sign in as whichever the
// file lists last.
func (d *decoder) validateEmails(ids []Identity) {
	seen := map[string]string{}
	for i, id := range ids {
		p := fmt.Sprintf("identities[%d].email", i)
		if id.Email == "" || d.bad[fmt.Sprintf("identities[%d]", i)] {
			continue
		}
		if id.Kind != "human" {
			d.errorf(p, "only people sign in with SSO; %s is not a human identity", quote(id.Name))
			continue
		}
		if !isEmail(id.Email) {
			// The console looks a claim up among the emails first: an
			// "email" such as another person's name would sign them in
			// as this one.
			d.errorf(p, "%s is not an email address (name@domain)", quote(id.Email))
			continue
		}
		key := strings.ToLower(id.Email)
		if first, dup := seen[key]; dup {
			d.errorf(p, "email %s is already %s's; one address is one person", quote(id.Email), first)
			continue
		}
		seen[key] = fmt.Sprintf("identities[%d] (%s)", i, id.Name)
	}
}

// isEmail reports whether s is shaped like an address: one "@" with
// something on both sides, and no spaces or control characters. Names
// cannot contain "@" (nameRE), so no email is also a name.
func isEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// checkName validates a unique name and records it in seen.
func (d *decoder) checkName(name, path, what string, seen map[string]string) {
	switch {
	case name == "":
		d.errorf(path, "required: the %s's unique name", what)
	case !nameRE.MatchString(name):
		d.errorf(path, "%s %s", quote(name), nameRule)
	default:
		if first, dup := seen[name]; dup {
			d.errorf(path, "%s name %s is already used by %s", what, quote(name), parent(first))
		} else {
			seen[name] = path
		}
	}
}

func (d *decoder) validateTarget(t *Target, path string, names map[string]string) {
	if d.bad[path] {
		return
	}
	d.checkName(t.Name, path+".name", "target", names)
	if t.Account == "" {
		d.errorf(path+".account", "required: the AWS account ID or environment label reviewers filter grants on")
	}
	label := "target"
	if t.Name != "" {
		label = "target " + quote(t.Name)
	}

	switch t.Kind {
	case "aws":
		if t.Region == "" {
			if !d.bad[path+".region"] {
				t.Region = DefaultRegion
			}
		} else if !regionRE.MatchString(t.Region) {
			d.errorf(path+".region", "%s is not a region name such as us-east-1", quote(t.Region))
		}
		if t.Endpoint != "" {
			// The gateway's signed S3 calls and every object's bytes go
			// there: as for endpoints, plain http only where nobody is
			// on the path.
			d.checkEndpoint(t.Endpoint, path+".endpoint")
		}
		d.checkEndpoints(t.Endpoints, path+".endpoints")
		if t.Upstream != "" {
			d.errorf(path+".upstream", "only postgres targets have an upstream; an aws target uses region and, optionally, endpoint")
		}
		if t.PasswordEnv != "" {
			d.errorf(path+".password_env", "only postgres targets have an admin password")
		}
		if t.RedactParameters {
			d.errorf(path+".redact_parameters", "only postgres targets record bound parameters")
		}
		if t.MaxSessionsPerGrant != 0 {
			d.errorf(path+".max_sessions_per_grant", "only postgres targets have sessions; an aws target's calls are bounded by listen.max_connections")
		}
		if t.STSEndpoint != "" {
			// AssumeRole's answer holds the role's temporary secret key
			// and session token: plain http only where nobody is on the
			// path.
			d.checkEndpoint(t.STSEndpoint, path+".sts_endpoint")
			if t.Credentials != nil && t.Credentials.RoleARN == "" {
				d.errorf(path+".sts_endpoint", "only used with credentials.role_arn")
			}
		}
		d.checkCredentials(t.Credentials, path+".credentials", label)
	case "postgres":
		if t.Upstream == "" {
			d.errorf(path+".upstream", "required for a postgres target: postgres://USER@HOST:PORT/DATABASE")
		} else {
			d.checkUpstream(t.Upstream, t.PasswordEnv, path+".upstream")
		}
		if t.PasswordEnv != "" {
			// CheckEnv names the variable in its messages: a password
			// pasted here must be refused before it gets there.
			d.checkEnvName(t.PasswordEnv, path+".password_env", "")
		}
		if t.Region != "" {
			d.errorf(path+".region", "only aws targets have a region")
		}
		if t.Endpoint != "" {
			d.errorf(path+".endpoint", "only aws targets have an endpoint; a postgres target uses upstream")
		}
		if len(t.Endpoints) > 0 {
			d.errorf(path+".endpoints", "only aws targets have endpoints; a postgres target uses upstream")
		}
		if t.Credentials != nil {
			d.errorf(path+".credentials", "postgres %s must not have credentials; the database user is part of upstream", label)
		}
		if t.STSEndpoint != "" {
			d.errorf(path+".sts_endpoint", "only aws targets use STS")
		}
	case "":
		d.errorf(path+".kind", `required: "aws" or "postgres"`)
	default:
		d.errorf(path+".kind", `must be "aws" or "postgres", got %s`, quote(t.Kind))
	}
}

// checkEndpoint checks an http(s) URL the gateway sends calls signed with
// the target's own credentials to (endpoint, sts_endpoint): https://, or
// plain http:// to a loopback address only (an emulator on the same
// machine), as for endpoints.
func (d *decoder) checkEndpoint(endpoint, path string) {
	u, err := url.Parse(endpoint)
	switch {
	case !hasScheme(endpoint, "http", "https"):
		// Checked first: without a scheme, url.Parse's complaint about
		// "127.0.0.1:7070" is baffling.
		d.errorf(path, "must be an http:// or https:// URL, such as http://127.0.0.1:7070")
	case err != nil:
		d.errorf(path, "not a URL: %v", urlErr(err))
	case u.Host == "" || u.Hostname() == "":
		d.errorf(path, "%s has no host", quote(shownURL(u)))
	case u.User != nil:
		d.errorf(path, "must not contain credentials; put them in the target's credentials")
	case strings.EqualFold(u.Scheme, "http") && !loopbackHost(u.Hostname()):
		d.errorf(path, "plain http:// is allowed only to a loopback address; use https://")
	}
}

// checkUpstream checks a postgres target's upstream URL: one database, no
// password, and TLS that verifies a server off this machine
// (checkPostgresTLS).
func (d *decoder) checkUpstream(upstream, passwordEnv, path string) {
	u, err := url.Parse(upstream)
	switch {
	case !hasScheme(upstream, "postgres", "postgresql"):
		// The value is not echoed: it may be a DSN with a password in it.
		d.errorf(path, "must be a postgres:// or postgresql:// URL, such as postgres://USER@HOST:5432/DATABASE")
	case err != nil:
		d.errorf(path, "not a URL: %v", urlErr(err))
	case u.Host == "" || u.Hostname() == "":
		d.errorf(path, "%s has no host", quote(shownURL(u)))
	case hasPassword(u):
		// The admin role's password would sit in a file that is seldom
		// kept secret (it is shared, copied, committed).
		d.errorf(path, "must not contain a password; name the environment variable that holds it with password_env, or use a password file (PGPASSFILE or ~/.pgpass)")
	default:
		db := strings.TrimPrefix(u.Path, "/")
		switch {
		case db == "" || strings.Contains(db, "/"):
			d.errorf(path, "%s must name one database, as in postgres://USER@HOST:PORT/DATABASE", quote(shownURL(u)))
		case passwordEnv != "" && u.User.Username() == "":
			// The gateway puts the password in the URL's user part:
			// without a user it would be dropped without a word.
			d.errorf(path, "must name the admin role, as in postgres://USER@HOST:PORT/DATABASE, for password_env's password to be used")
		default:
			d.checkPostgresTLS(upstream, path)
		}
	}
}

// checkStore checks the store's PostgreSQL URL. A password is refused, in
// the user part or as a parameter: the configuration file is not the place
// for it, and pgx reads PGPASSWORD or ~/.pgpass by itself. A host off this
// machine needs TLS that verifies the server (checkPostgresTLS).
func (d *decoder) checkStore(dsn, path string) {
	u, err := url.Parse(dsn)
	switch {
	case !hasScheme(dsn, "postgres", "postgresql"):
		// The value is not echoed: it may be a DSN with a password in it.
		d.errorf(path, "must be a postgres:// or postgresql:// URL, such as postgres://airlock@db.internal:5432/airlock")
	case err != nil:
		d.errorf(path, "not a URL: %v", urlErr(err))
	case u.Host == "" || u.Hostname() == "":
		d.errorf(path, "%s has no host", quote(shownURL(u)))
	case hasPassword(u):
		d.errorf(path, "must not contain a password; set PGPASSWORD in airlock's environment, or use a password file (PGPASSFILE or ~/.pgpass)")
	default:
		db := strings.TrimPrefix(u.Path, "/")
		if db == "" || strings.Contains(db, "/") {
			d.errorf(path, "%s must name one database, as in postgres://airlock@db.internal:5432/airlock", quote(shownURL(u)))
		} else {
			d.checkPostgresTLS(dsn, path)
		}
	}
}

func hasPassword(u *url.URL) bool {
	if _, ok := u.User.Password(); ok {
		return true
	}
	for k := range u.Query() {
		// sslpassword unlocks the client certificate's key.
		if strings.EqualFold(k, "password") || strings.EqualFold(k, "sslpassword") {
			return true
		}
	}
	return false
}

// shownURL is u as messages may echo it: without the password in its user
// part (url.Redacted) and without its query and fragment, which Redacted
// keeps and where libpq reads password and sslpassword. Messages echo a
// URL to point at its host or path, which this keeps.
func shownURL(u *url.URL) string {
	c := *u
	c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = "", false, "", ""
	return c.Redacted()
}

// hasScheme reports whether rawURL starts with one of the schemes and "://".
func hasScheme(rawURL string, schemes ...string) bool {
	for _, s := range schemes {
		if len(rawURL) > len(s)+3 && strings.EqualFold(rawURL[:len(s)+3], s+"://") {
			return true
		}
	}
	return false
}

// urlErr strips the URL itself from a parse error: it may hold a password.
func urlErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// checkCredentials requires an aws target to say how the gateway signs in:
// an access key pair from the environment, a role to assume, or both (the
// keys then being the ones the role is assumed with).
func (d *decoder) checkCredentials(c *Credentials, path, label string) {
	if c == nil || (c.AccessKeyIDEnv == "" && c.SecretAccessKeyEnv == "" && c.RoleARN == "") {
		d.errorf(path, "aws %s needs credentials (access_key_id_env and secret_access_key_env, or role_arn)", label)
		return
	}
	if (c.AccessKeyIDEnv == "") != (c.SecretAccessKeyEnv == "") {
		missing := "access_key_id_env"
		if c.SecretAccessKeyEnv == "" {
			missing = "secret_access_key_env"
		}
		d.errorf(path+"."+missing, "required with %s: access_key_id_env and secret_access_key_env go together",
			map[string]string{"access_key_id_env": "secret_access_key_env", "secret_access_key_env": "access_key_id_env"}[missing])
	}
	for _, v := range []struct{ key, name string }{
		{"access_key_id_env", c.AccessKeyIDEnv},
		{"secret_access_key_env", c.SecretAccessKeyEnv},
	} {
		// The value is never echoed: a secret pasted here must not end up
		// in a terminal or a log.
		switch {
		case v.name == "":
		case accessKeyRE.MatchString(v.name):
			d.errorf(path+"."+v.key, "looks like an access key ID itself; give the name of the environment variable that holds it")
		case !envRE.MatchString(v.name):
			d.errorf(path+"."+v.key, "must be the name of an environment variable (letters, digits and _), not its value")
		}
	}
	if c.RoleARN != "" && !roleARNRE.MatchString(c.RoleARN) {
		d.errorf(path+".role_arn", "%s is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/NAME)", quote(c.RoleARN))
	}
}

// checkIssuer requires an OpenID issuer to be https://, or plain http://
// to a loopback address (a provider run on the machine, as in tests):
// discovery, keys and the code exchange with the client secret all go to
// the issuer, and over plain http anyone on the path could read the
// secret or swap the keys that sign ID tokens. OpenID Connect Discovery
// forbids a query or fragment in an issuer.
func (d *decoder) checkIssuer(raw, path string) {
	u, err := url.Parse(raw)
	switch {
	case !hasScheme(raw, "http", "https"):
		d.errorf(path, "must be an https:// URL (http:// only to a loopback address)")
	case err != nil:
		d.errorf(path, "not a URL: %v", urlErr(err))
	case u.Hostname() == "":
		d.errorf(path, "has no host")
	case u.User != nil:
		d.errorf(path, "must not contain credentials")
	case u.RawQuery != "" || u.Fragment != "":
		d.errorf(path, "must not have a ?query or #fragment")
	case strings.EqualFold(u.Scheme, "http") && !loopbackHost(u.Hostname()):
		d.errorf(path, "plain http:// is allowed only to a loopback address; use https://")
	}
}
