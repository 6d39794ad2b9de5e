package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/airlock-dev/airlock/internal/witness/cosig"
)

// Audit configures the audit log beyond its defaults.
type Audit struct {
	// Witnesses receive every new signed checkpoint, so that a copy of the
	// log's newest state lives outside the machine (see package witness).
	Witnesses []Witness `yaml:"witnesses"`
}

// Witness kinds.
const (
	WitnessTlog    = "tlog-witness"
	WitnessPost    = "post"
	WitnessCommand = "command"
)

// Witness is one place checkpoints are published to.
type Witness struct {
	// Name labels it in logs; optional.
	Name string `yaml:"name"`
	// Kind is "tlog-witness" (the C2SP tlog-witness protocol, collecting
	// cosignatures), "post" (an HTTP POST of the signed checkpoint) or
	// "command" (a program given the checkpoint on stdin).
	Kind string `yaml:"kind"`
	// URL is the witness's submission prefix (tlog-witness) or the URL to
	// POST to (post). https://, or http:// to a loopback address only.
	URL string `yaml:"url"`
	// Key is the witness's cosignature/v1 verifier key (tlog-witness):
	// <name>+<key ID>+<base64 key>.
	Key string `yaml:"key"`
	// Command is the program and its arguments (command).
	Command []string `yaml:"command"`
	// Timeout bounds one attempt (default 10s).
	Timeout Duration `yaml:"timeout"`
}

func (d *decoder) audit(n *yaml.Node, path string, a *Audit) {
	d.mapping(n, path, "a mapping of audit settings (witnesses)", []field{
		{"witnesses", func(p string, v *yaml.Node) {
			d.sequence(v, p, "a list of witnesses", func(p string, v *yaml.Node) {
				var w Witness
				if !d.mapping(v, p, "a witness (a mapping with kind, url, key, command, name, timeout)", []field{
					{"name", func(p string, v *yaml.Node) { w.Name = d.str(v, p) }},
					{"kind", func(p string, v *yaml.Node) { w.Kind = d.str(v, p) }},
					{"url", func(p string, v *yaml.Node) { w.URL = d.str(v, p) }},
					{"key", func(p string, v *yaml.Node) { w.Key = d.str(v, p) }},
					{"command", func(p string, v *yaml.Node) { w.Command = d.stringList(v, p) }},
					{"timeout", func(p string, v *yaml.Node) { w.Timeout = d.duration(v, p) }},
				}) && !d.bad[p] {
					d.failAt(v, p, "expected a witness (a mapping with kind, url, key, command, name, timeout), got nothing")
				}
				a.Witnesses = append(a.Witnesses, w)
			})
		}},
	})
}

func (d *decoder) validateAudit(a *Audit) {
	keys := map[string]string{}
	for i := range a.Witnesses {
		w := &a.Witnesses[i]
		path := fmt.Sprintf("audit.witnesses[%d]", i)
		if d.bad[path] {
			continue
		}
		switch w.Kind {
		case WitnessTlog:
			d.checkWitnessURL(w.URL, path+".url")
			switch v, err := cosig.NewVerifier(w.Key); {
			case w.Key == "":
				d.errorf(path+".key", "required for a tlog-witness: its cosignature/v1 verifier key, <name>+<key ID>+<base64 key>")
			case err != nil:
				d.errorf(path+".key", "%v", err)
			default:
				if first, dup := keys[v.Name()]; dup {
					d.errorf(path+".key", "witness %s is listed twice (first at %s)", quote(v.Name()), first)
				}
				keys[v.Name()] = path
			}
			if len(w.Command) > 0 {
				d.errorf(path+".command", "only for kind: command")
			}
		case WitnessPost:
			d.checkWitnessURL(w.URL, path+".url")
			if w.Key != "" {
				d.errorf(path+".key", "only for kind: tlog-witness (a plain POST collects no cosignature)")
			}
			if len(w.Command) > 0 {
				d.errorf(path+".command", "only for kind: command")
			}
		case WitnessCommand:
			if len(w.Command) == 0 || w.Command[0] == "" {
				d.errorf(path+".command", `required: the program and its arguments, e.g. ["/usr/local/bin/ship-checkpoint", "--to", "archive"]`)
			}
			if w.URL != "" {
				d.errorf(path+".url", "only for kinds tlog-witness and post")
			}
			if w.Key != "" {
				d.errorf(path+".key", "only for kind: tlog-witness")
			}
		case "":
			d.errorf(path+".kind", `required: "tlog-witness", "post" or "command"`)
		default:
			d.errorf(path+".kind", `must be "tlog-witness", "post" or "command", got %s`, quote(w.Kind))
		}
	}
}

// checkWitnessURL requires https, or plain http to a loopback address: a
// checkpoint is public, but over plain http anyone on the path could keep
// it from the witness, which is what a witness is there to prevent.
func (d *decoder) checkWitnessURL(raw, path string) {
	if raw == "" {
		d.errorf(path, "required: the witness's https:// URL")
		return
	}
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
	case u.Fragment != "":
		d.errorf(path, "must not have a #fragment")
	case strings.EqualFold(u.Scheme, "http") && !loopbackHost(u.Hostname()):
		d.errorf(path, "plain http:// is allowed only to a loopback address; use https://")
	}
}

// loopbackHost reports whether host is a loopback IP or "localhost".
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
