package config

import (
	"net"
	"net/url"
	"strconv"
	"strings"
)

// validatePublic checks listen.public: URLs for the API and the AWS
// gateway (normalised without a trailing slash), host:port for the
// PostgreSQL gateway, each only for a listener that is configured.
func (d *decoder) validatePublic(l *Listen) {
	p := &l.Public
	for _, u := range []struct {
		path string
		v    *string
		on   bool
	}{{"listen.public.api", &p.API, true}, {"listen.public.aws", &p.AWS, l.AWS != ""}} {
		if *u.v == "" || d.bad[u.path] {
			continue
		}
		if !u.on {
			d.errorf(u.path, "is set but listen.aws is not: there is no AWS gateway to reach")
			continue
		}
		norm, ok := publicURL(*u.v)
		if !ok {
			// Not echoed: a user part or query may hold a secret.
			d.errorf(u.path, "must be an http:// or https:// URL with a host and no path, query or user (e.g. https://airlock.example.com)")
			continue
		}
		*u.v = norm
	}
	if p.Postgres != "" && !d.bad["listen.public.postgres"] {
		switch host, port, err := net.SplitHostPort(p.Postgres); {
		case l.Postgres == "":
			d.errorf("listen.public.postgres", "is set but listen.postgres is not: there is no PostgreSQL gateway to reach")
		case err != nil || host == "" || strings.ContainsAny(host, "/ "):
			d.errorf("listen.public.postgres", "%s is not host:port (e.g. pg.airlock.example.com:5432)", quote(p.Postgres))
		default:
			if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
				d.errorf("listen.public.postgres", "port in %s must be a number from 1 to 65535", quote(p.Postgres))
			}
		}
	}
}

// publicURL checks and normalises a public URL: scheme http or https, a
// host (and port, if any, a number), nothing else.
func publicURL(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || (u.Path != "" && u.Path != "/") || strings.HasSuffix(u.Host, ":") {
		return "", false
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return "", false
		}
	}
	return u.Scheme + "://" + u.Host, true
}
