package main

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// pgEnv is where a client connects and as whom: what libpq reads from
// PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE and PGSSLMODE.
type pgEnv struct {
	Host     string
	Port     int
	User     string
	Password string
	Database string
	SSLMode  string
}

// environ is this process's environment without any PG* variable, plus
// e's: pgbench then connects exactly where e says.
func (e pgEnv) environ() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			out = append(out, kv)
		}
	}
	out = append(out, "PGHOST="+e.Host, "PGPORT="+strconv.Itoa(e.Port), "PGUSER="+e.User, "PGDATABASE="+e.Database, "PGSSLMODE="+e.SSLMode)
	if e.Password != "" {
		out = append(out, "PGPASSWORD="+e.Password)
	}
	return out
}

// dsn is e as a URL for pgx.
func (e pgEnv) dsn() string {
	u := url.URL{Scheme: "postgres", Host: fmt.Sprintf("%s:%d", e.Host, e.Port), Path: "/" + e.Database,
		RawQuery: "sslmode=" + url.QueryEscape(e.SSLMode)}
	if e.Password != "" {
		u.User = url.UserPassword(e.User, e.Password)
	} else {
		u.User = url.User(e.User)
	}
	return u.String()
}

// parseExports reads `airlock credentials` output: export lines whose
// values are bare or single-quoted as a POSIX shell would read them.
func parseExports(out string) map[string]string {
	vars := map[string]string{}
	for line := range strings.SplitSeq(out, "\n") {
		kv, ok := strings.CutPrefix(strings.TrimSpace(line), "export ")
		if !ok {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if strings.HasPrefix(v, "'") {
			v = strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(v, "'"), "'"), `'\''`, "'")
		}
		vars[k] = v
	}
	return vars
}
