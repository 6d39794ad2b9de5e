package config

import (
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/airlock-dev/airlock/internal/awsops"
)

// An aws target's endpoints: setting names, per AWS service other than S3,
// the base URL the gateway forwards that service's calls to instead of
// AWS's own https://SERVICE.REGION.amazonaws.com:
//
//	endpoints: { dynamodb: http://127.0.0.1:8000, logs: https://vpce-0abc.logs.us-east-1.vpce.amazonaws.com }
//
// The key is the service's SigV4 signing name, as in the credential scope
// the agent's SDK signs with. The URL is https://, or plain http:// to a
// loopback address only (an emulator on the same machine): the gateway
// re-signs every call with the target's own credentials, and over plain
// http on a network anyone on the path could replay them. S3 keeps its own
// key, endpoint.

// serviceRE is a SigV4 signing name (sigv4.ValidService).
var serviceRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)

// maxEndpoints bounds the mapping (AWS has a few hundred services).
const maxEndpoints = 256

// endpoints decodes the endpoints: mapping, service name to URL.
func (d *decoder) endpoints(n *yaml.Node, path string) map[string]string {
	if isNull(n) {
		return nil
	}
	at := n
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		d.failAt(at, path, "expected a mapping of service name to URL, such as { dynamodb: http://127.0.0.1:8000 }, got %s", what(n))
		return nil
	}
	out := map[string]string{}
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !d.spend(n.Content[i], path) {
			break
		}
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.failAt(n.Content[i], path, "expected a service name, got %s", what(k))
			continue
		}
		child := join(path, k.Value)
		if first, dup := lines[k.Value]; dup {
			d.failAt(n.Content[i], child, "duplicate key %s (first given at line %d)", quote(k.Value), first)
			continue
		}
		lines[k.Value] = k.Line
		d.pos[child] = position{v.Line, v.Column}
		out[k.Value] = d.str(v, child)
	}
	return out
}

// checkEndpoints validates an aws target's endpoints: mapping.
func (d *decoder) checkEndpoints(eps map[string]string, path string) {
	if len(eps) > maxEndpoints {
		d.errorf(path, "more than %d services", maxEndpoints)
		return
	}
	for _, svc := range slices.Sorted(maps.Keys(eps)) {
		raw, p := eps[svc], join(path, svc)
		switch {
		case svc == "s3":
			d.errorf(p, "S3's endpoint is the target's endpoint key, not endpoints.s3")
			continue
		case !serviceRE.MatchString(svc):
			d.errorf(p, "%s is not an AWS service signing name (lowercase letters, digits and hyphens, such as dynamodb or logs)", quote(svc))
			continue
		case !slices.Contains(awsops.Services(), svc):
			// The gateway refuses calls to a service it does not map, so
			// the setting could only be a typo ("dynamodbb") that leaves
			// the service it meant on AWS's own endpoint.
			msg := fmt.Sprintf("%s is not a service the AWS gateway serves", quote(svc))
			if s := suggest(svc, awsops.Services()); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.errorf(p, "%s; it serves %s", msg, strings.Join(awsops.Services(), ", "))
			continue
		}
		u, err := url.Parse(raw)
		switch {
		case !hasScheme(raw, "http", "https"):
			d.errorf(p, "must be an https:// URL (http:// only to a loopback address), such as http://127.0.0.1:8000")
		case err != nil:
			d.errorf(p, "not a URL: %v", urlErr(err))
		case u.Hostname() == "":
			d.errorf(p, "%s has no host", quote(shownURL(u)))
		case u.User != nil:
			d.errorf(p, "must not contain credentials; put them in the target's credentials")
		case u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
			d.errorf(p, "must be a base URL, scheme://host[:port], without a path, ?query or #fragment")
		case strings.EqualFold(u.Scheme, "http") && !loopbackHost(u.Hostname()):
			d.errorf(p, "plain http:// is allowed only to a loopback address; use https://")
		}
	}
}
