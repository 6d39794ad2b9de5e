package cli

import (
	"github.com/airlock-dev/airlock/internal/credenv"
	"github.com/airlock-dev/airlock/internal/grants"
)

// envVar is one variable a grant's client needs.
type envVar struct{ name, value string }

// credentialEnv is credenv.Env in the CLI's own type.
func credentialEnv(cr grants.Credentials, caFile string, cc credenv.ClientCert) []envVar {
	var out []envVar
	for _, v := range credenv.Env(cr, caFile, cc) {
		out = append(out, envVar{v.Name, v.Value})
	}
	return out
}

// writeCA is credenv.WriteCA.
func writeCA(cr grants.Credentials) (string, error) { return credenv.WriteCA(cr) }

// shellQuote quotes v for a POSIX shell's export line.
func shellQuote(v string) string {
	safe := v != ""
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '/' || c == ':' || c == '+' || c == '=') {
			safe = false
			break
		}
	}
	if safe {
		return v
	}
	out := []byte{'\''}
	for i := 0; i < len(v); i++ {
		if v[i] == '\'' {
			out = append(out, `'\''`...)
		} else {
			out = append(out, v[i])
		}
	}
	return string(append(out, '\''))
}
