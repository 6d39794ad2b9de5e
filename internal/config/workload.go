package config

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// OIDCIssuer is one issuer whose workload tokens (OIDC JWTs) agents may
// present as their bearer token.
type OIDCIssuer struct {
	// Issuer is the iss of its tokens: an https:// URL, or http:// on a
	// loopback address only.
	Issuer string `yaml:"issuer"`
	// Audience is the aud its tokens must carry.
	Audience string `yaml:"audience"`
	// JWKSURL is where its keys are; OpenID discovery finds them if unset.
	JWKSURL string `yaml:"jwks_url"`
	// InstanceClaims name the claims (paths with "/" between nested keys)
	// that tell one running instance from another, e.g.
	// kubernetes.io/pod/name or run_id; they join the instance fingerprint.
	InstanceClaims []string `yaml:"instance_claims"`
	// MaxTokenLifetime caps its tokens' lifetime (exp − iat, or exp − now
	// for a token without iat); DefaultMaxTokenLifetime if unset.
	MaxTokenLifetime Duration `yaml:"max_token_lifetime"`
}

// Workload token lifetime bounds.
const (
	// DefaultMaxTokenLifetime is an issuer's max_token_lifetime unless
	// set: 48 hours accepts the real workload tokens (GitHub Actions
	// tokens live minutes, a Kubernetes projected token an hour by default and
	// up to 48 hours where a cluster allows it, EKS IRSA's 24 hours)
	// and refuses one good for months or years.
	DefaultMaxTokenLifetime = 48 * time.Hour
	// MaxMaxTokenLifetime bounds max_token_lifetime: a bearer token good
	// for longer than a week is a long-lived credential, better an API
	// key, which the configuration can replace.
	MaxMaxTokenLifetime = 7 * 24 * time.Hour
)

// TokenLifetime is the issuer's max_token_lifetime, or the default.
func (is OIDCIssuer) TokenLifetime() time.Duration {
	if is.MaxTokenLifetime.Duration > 0 {
		return is.MaxTokenLifetime.Duration
	}
	return DefaultMaxTokenLifetime
}

// IdentityOIDC binds workload tokens to an agent: the token's issuer must be
// Issuer, its sub Subject (if given), and each of Claims must have the value
// given (claim names are paths, as in OIDCIssuer.InstanceClaims).
type IdentityOIDC struct {
	Issuer  string            `yaml:"issuer"`
	Subject string            `yaml:"subject"`
	Claims  map[string]string `yaml:"claims"`
}

// Identity binding settings.
const (
	BindingRecord = "record"
	BindingRefuse = "refuse"
	// DefaultFindingsWindow is how long an instance of an identity counts
	// as active for the shared-identity finding.
	DefaultFindingsWindow = 10 * time.Minute
	// MinFindingsWindow is the shortest findings window: a gateway session
	// shows its instance active once a minute while its calls go on
	// (sessions.Recorder's ActiveEvery), so in a shorter window an instance
	// working only through a gateway would drop out between two showings,
	// and a second instance of the identity would then go unseen.
	MinFindingsWindow = 2 * time.Minute
)

// Window is the findings window, DefaultFindingsWindow unless set.
func (c *Config) Window() time.Duration {
	if c.FindingsWindow.Duration > 0 {
		return c.FindingsWindow.Duration
	}
	return DefaultFindingsWindow
}

// Binding returns the identity_binding that applies to identity name.
func (c *Config) Binding(name string) string {
	for _, id := range c.Identities {
		if id.Name == name && id.IdentityBinding != "" {
			return id.IdentityBinding
		}
	}
	if c.IdentityBinding == "" {
		return BindingRecord
	}
	return c.IdentityBinding
}

func (d *decoder) oidcIssuers(n *yaml.Node, path string, c *Config) {
	d.sequence(n, path, "a list of issuers", func(p string, v *yaml.Node) {
		var is OIDCIssuer
		if !d.mapping(v, p, "an issuer (a mapping with issuer, audience, jwks_url, instance_claims, max_token_lifetime)", []field{
			{"issuer", func(p string, v *yaml.Node) { is.Issuer = d.str(v, p) }},
			{"audience", func(p string, v *yaml.Node) { is.Audience = d.str(v, p) }},
			{"jwks_url", func(p string, v *yaml.Node) { is.JWKSURL = d.str(v, p) }},
			{"instance_claims", func(p string, v *yaml.Node) { is.InstanceClaims = d.stringList(v, p) }},
			{"max_token_lifetime", func(p string, v *yaml.Node) { is.MaxTokenLifetime = d.duration(v, p) }},
		}) && !d.bad[p] {
			d.failAt(v, p, "expected an issuer (a mapping with issuer, audience, jwks_url, instance_claims, max_token_lifetime), got nothing")
		}
		c.OIDC = append(c.OIDC, is)
	})
}

func (d *decoder) identityOIDC(n *yaml.Node, path string) *IdentityOIDC {
	var o IdentityOIDC
	if !d.mapping(n, path, "a token binding (a mapping with issuer, subject, claims)", []field{
		{"issuer", func(p string, v *yaml.Node) { o.Issuer = d.str(v, p) }},
		{"subject", func(p string, v *yaml.Node) { o.Subject = d.str(v, p) }},
		{"claims", func(p string, v *yaml.Node) {
			r := resolve(v)
			if isNull(r) {
				return
			}
			if r.Kind != yaml.MappingNode {
				d.failAt(v, p, "expected a mapping of claim names to values, got %s", what(r))
				return
			}
			o.Claims = map[string]string{}
			for i := 0; i+1 < len(r.Content); i += 2 {
				if !d.spend(r.Content[i], p) {
					break
				}
				k := resolve(r.Content[i])
				kp := join(p, k.Value)
				if _, dup := o.Claims[k.Value]; dup {
					d.failAt(r.Content[i], kp, "duplicate claim %s", quote(k.Value))
					continue
				}
				d.pos[kp] = position{r.Content[i+1].Line, r.Content[i+1].Column}
				o.Claims[k.Value] = d.str(r.Content[i+1], kp)
			}
		}},
	}) {
		return nil
	}
	return &o
}

// issuerURLOK checks an issuer or JWKS URL: https, or http to loopback.
func (d *decoder) checkIssuerURL(raw, path string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		d.errorf(path, "not a URL: %v", urlErr(err))
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "":
		d.errorf(path, "%s must be an https:// URL with a host and no credentials, query or fragment", quote(shownURL(u)))
	case u.Scheme == "https":
	case u.Scheme == "http":
		ip := net.ParseIP(u.Hostname())
		if u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
			d.errorf(path, "plain http:// is allowed only for a loopback issuer (127.0.0.1, ::1, localhost); use https://")
		}
	default:
		d.errorf(path, "must be an https:// URL (http:// only on loopback)")
	}
}

func (d *decoder) validateWorkload(c *Config) {
	if w := c.FindingsWindow.Duration; w > 0 && w < MinFindingsWindow {
		d.errorf("findings_window", "must be at least %s, got %q: a gateway session shows its instance active once a minute, so in a shorter window an agent working only through a gateway would drop out between two showings and a second instance of its identity would go unseen", MinFindingsWindow, w)
	}
	issuers := map[string]string{}
	for i := range c.OIDC {
		is := &c.OIDC[i]
		p := fmt.Sprintf("oidc[%d]", i)
		if d.bad[p] {
			continue
		}
		if is.Issuer == "" {
			d.errorf(p+".issuer", "required: the issuer URL, exactly as its tokens' iss claim")
		} else {
			d.checkIssuerURL(is.Issuer, p+".issuer")
			if first, dup := issuers[is.Issuer]; dup {
				d.errorf(p+".issuer", "issuer %s is already listed at %s", quote(is.Issuer), first)
			}
			issuers[is.Issuer] = p
		}
		if is.Audience == "" {
			d.errorf(p+".audience", "required: the aud the issuer's tokens for Airlock carry")
		} else if sso := c.SSO; sso != nil && sso.ClientID == is.Audience && sameIssuer(sso.Issuer, is.Issuer) {
			// The console's ID tokens carry aud = client_id: a person's
			// would pass as an agent's workload token wherever a binding
			// matches its subject or claims.
			d.errorf(p+".audience", "%s is also sso.client_id at the same issuer: a person's ID token from the console's sign-in carries that aud and would be accepted as an agent's workload token; give workload tokens an audience of their own (e.g. airlock-agents)", quote(is.Audience))
		}
		if is.JWKSURL != "" {
			d.checkIssuerURL(is.JWKSURL, p+".jwks_url")
		}
		if l := is.MaxTokenLifetime.Duration; l > MaxMaxTokenLifetime {
			d.errorf(p+".max_token_lifetime", "at most 168h (7 days), got %q: a bearer token good for longer is a long-lived credential; give the agent an API key instead, which this file can replace", l)
		}
		for j, cl := range is.InstanceClaims {
			if cl == "" {
				d.errorf(fmt.Sprintf("%s.instance_claims[%d]", p, j), "claim name is empty")
			}
		}
	}

	switch c.IdentityBinding {
	case "", BindingRecord, BindingRefuse:
	default:
		d.errorf("identity_binding", `must be "record" or "refuse", got %s`, quote(c.IdentityBinding))
	}

	bindings := map[string]string{}
	for i := range c.Identities {
		id := &c.Identities[i]
		p := fmt.Sprintf("identities[%d]", i)
		if d.bad[p] {
			continue
		}
		switch id.IdentityBinding {
		case "", BindingRecord, BindingRefuse:
		default:
			d.errorf(p+".identity_binding", `must be "record" or "refuse", got %s`, quote(id.IdentityBinding))
		}
		o := id.OIDC
		if o == nil {
			continue
		}
		p += ".oidc"
		if id.Kind == "human" {
			// People sign in with SSO or a key; a workload token says what
			// runs, not who decides.
			d.errorf(p, "only agents authenticate with workload tokens; people sign in with SSO or an API key")
			continue
		}
		if o.Issuer == "" {
			d.errorf(p+".issuer", "required: one of the issuers under oidc")
		} else if _, ok := issuers[o.Issuer]; !ok {
			d.errorf(p+".issuer", "issuer %s is not listed under oidc", quote(o.Issuer))
		}
		if o.Subject == "" && len(o.Claims) == 0 && !d.badUnder(p) {
			d.errorf(p, "give a subject or claims: a binding on the issuer alone would let every token it signs act as %s", quote(id.Name))
			continue
		}
		for k, v := range o.Claims {
			if k == "" || v == "" {
				d.errorf(p+".claims", "claim names and values must not be empty")
			}
		}
		key := bindingKey(o)
		if first, dup := bindings[key]; dup {
			d.errorf(p, "same token binding as %s; every agent needs its own", first)
		} else {
			bindings[key] = fmt.Sprintf("identities[%d]", i)
		}
	}
}

// sameIssuer reports whether two issuer URLs name one issuer, a trailing
// slash aside.
func sameIssuer(a, b string) bool {
	return a != "" && strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}

// badUnder reports whether path or a field below it failed to decode, so
// that a misspelt key is not reported again as a missing one.
func (d *decoder) badUnder(path string) bool {
	for p := range d.bad {
		if p == path || strings.HasPrefix(p, path+".") {
			return true
		}
	}
	return false
}

func bindingKey(o *IdentityOIDC) string {
	keys := make([]string, 0, len(o.Claims))
	for k := range o.Claims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	fmt.Fprintf(&sb, "%q %q", o.Issuer, o.Subject)
	for _, k := range keys {
		fmt.Fprintf(&sb, " %q=%q", k, o.Claims[k])
	}
	return sb.String()
}
