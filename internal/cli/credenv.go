package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/airlock-dev/airlock/internal/grants"
)

// envVar is one variable a grant's client needs.
type envVar struct{ name, value string }

// credentialEnv is the environment that points a client at the gateway
// with a grant's credentials: the AWS variables for aws targets, libpq's
// for postgres targets. caFile, if not empty, is the gateway's CA
// certificate written to disk (see writeCA).
func credentialEnv(cr grants.Credentials, caFile string) []envVar {
	vars := []envVar{{"AIRLOCK_GRANT", cr.GrantID}}
	e := cr.Endpoint
	switch cr.TargetKind {
	case "aws":
		vars = append(vars,
			envVar{"AWS_ACCESS_KEY_ID", cr.AccessKeyID},
			envVar{"AWS_SECRET_ACCESS_KEY", cr.SecretAccessKey},
			envVar{"AWS_SESSION_TOKEN", cr.SessionToken})
		if e != nil {
			if e.URL != "" {
				vars = append(vars, envVar{"AWS_ENDPOINT_URL", e.URL})
			}
			if e.Region != "" {
				vars = append(vars, envVar{"AWS_REGION", e.Region}, envVar{"AWS_DEFAULT_REGION", e.Region})
			}
		}
		if caFile != "" {
			vars = append(vars, envVar{"AWS_CA_BUNDLE", caFile})
		}
	case "postgres":
		vars = append(vars, envVar{"PGUSER", cr.AccessKeyID}, envVar{"PGPASSWORD", cr.SecretAccessKey})
		if e != nil {
			vars = append(vars, envVar{"PGHOST", e.Host}, envVar{"PGPORT", strconv.Itoa(e.Port)},
				envVar{"PGDATABASE", e.Database}, envVar{"PGSSLMODE", e.SSLMode})
		}
		if caFile != "" {
			vars = append(vars, envVar{"PGSSLROOTCERT", caFile})
		}
	default:
		vars = append(vars, envVar{"AIRLOCK_ACCESS_KEY_ID", cr.AccessKeyID}, envVar{"AIRLOCK_SECRET", cr.SecretAccessKey})
	}
	return vars
}

// writeCA writes the gateway's CA certificate (when Airlock's own CA issued
// the gateway's certificate) to the user's cache directory, named by its
// hash so that concurrent commands agree, and returns the path; "" if there
// is none.
func writeCA(cr grants.Credentials) (string, error) {
	if cr.Endpoint == nil || cr.Endpoint.CAPEM == "" {
		return "", nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, "airlock")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("writing the gateway CA: %w", err)
	}
	sum := sha256.Sum256([]byte(cr.Endpoint.CAPEM))
	path := filepath.Join(dir, "gateway-ca-"+hex.EncodeToString(sum[:6])+".pem")
	if b, err := os.ReadFile(path); err == nil && string(b) == cr.Endpoint.CAPEM {
		return path, nil
	}
	tmp, err := os.CreateTemp(dir, "ca-*.pem")
	if err != nil {
		return "", fmt.Errorf("writing the gateway CA: %w", err)
	}
	if _, err := tmp.WriteString(cr.Endpoint.CAPEM); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

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
