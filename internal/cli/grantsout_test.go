package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/scope"
	"github.com/airlock-dev/airlock/internal/textesc"
)

// grantsServer answers GET /v1/grants with gs, as the API does.
func grantsServer(t *testing.T, gs ...model.Grant) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/grants" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(httpapi.ListResponse{Grants: gs})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func reviewGrant(t *testing.T) model.Grant {
	sc, err := scope.Parse([]string{"s3:GetObject arn:aws:s3:::logs/app/*"})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 3, 14, 2, 0, 0, time.UTC)
	return model.Grant{ID: "g_1", Identity: "log-triage-bot", IdentityKind: model.Agent, Target: "aws-prod", Account: "111122223333",
		RequestedScope: sc, GrantedScope: sc, Reason: "billing errors", Status: model.Revoked, RequestedAt: at, StartedAt: at,
		ExpiresAt: at.Add(time.Hour), EndedAt: at.Add(time.Minute), EndReason: "revoked", EndedBy: "bob"}
}

// TestGrantsUnprovenInEveryFormat: a row the audit log does not prove (its
// stored record was changed: the database says "routine", the log
// "billing errors") fails `airlock grants` in every output format. The
// table did (exit 1, a warning per difference); -o csv and -o json
// printed the database's answers and exited 0, the difference only in the
// log_mismatch column at the end of the row.
func TestGrantsUnprovenInEveryFormat(t *testing.T) {
	g := reviewGrant(t)
	g.Reason = "routine"
	g.LogMismatch = []string{`reason is "routine", log says "billing errors"`}
	addr := grantsServer(t, g)
	for _, format := range []string{"table", "csv", "json"} {
		code, out, errOut := run(t, []string{EnvAddr + "=" + addr, EnvToken + "=k"}, "-o", format, "grants", "--account", "111122223333")
		if code != 1 || !strings.Contains(out, "g_1") || !strings.Contains(out+errOut, `WARNING grant g_1: reason is "routine", log says "billing errors"`) ||
			!strings.Contains(errOut, "differ from the audit log") {
			t.Errorf("-o %s: exit %d\nstdout: %s\nstderr: %s", format, code, out, errOut)
		}
		if format != "table" && strings.Contains(out, "WARNING") {
			t.Errorf("-o %s: a warning in the machine output:\n%s", format, out)
		}
	}
	// Proven rows: exit 0, nothing on stderr.
	addr = grantsServer(t, reviewGrant(t))
	for _, format := range []string{"table", "csv", "json"} {
		if code, _, errOut := run(t, []string{EnvAddr + "=" + addr, EnvToken + "=k"}, "-o", format, "grants"); code != 0 || errOut != "" {
			t.Errorf("-o %s of a proven row: exit %d: %s", format, code, errOut)
		}
	}
}

// TestGrantsCSVEscapes: an S3 key the agent read (allowed by its prefix)
// is in the row's scope used; with a carriage return and ESC[2K in it, -o
// csv printed to a terminal rewrote the line. The CSV escapes it, as the
// table does (-o json keeps it exact).
func TestGrantsCSVEscapes(t *testing.T) {
	g := reviewGrant(t)
	g.Usage.ScopeUsed = []string{"s3:GetObject arn:aws:s3:::logs/app/" + forged}
	g.Reason = hostile
	addr := grantsServer(t, g)
	code, out, errOut := run(t, []string{EnvAddr + "=" + addr, EnvToken + "=k"}, "-o", "csv", "grants")
	if code != 0 {
		t.Fatalf("grants -o csv: exit %d: %s", code, errOut)
	}
	checkTerminalSafe(t, "grants -o csv", out)
	if !strings.Contains(out, textesc.String(forged)) || !strings.Contains(out, textesc.String(hostile)) {
		t.Errorf("the CSV does not show the key and reason escaped:\n%s", out)
	}
	code, out, _ = run(t, []string{EnvAddr + "=" + addr, EnvToken + "=k"}, "-o", "json", "grants")
	var rows []struct {
		ScopeUsed []string `json:"scope_used"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 || rows[0].ScopeUsed[0] != g.Usage.ScopeUsed[0] {
		t.Errorf("-o json does not keep the key exact: %s", out)
	}
}

// TestOutputCSVOnlyForGrants: -o csv is the review query's format only.
// Given to another command it printed that command's table as if the
// format had been honoured (pending, agent list, whoami, credentials…);
// it is now a usage error before anything is sent, and grants still
// takes it.
func TestOutputCSVOnlyForGrants(t *testing.T) {
	env := []string{EnvAddr + "=http://127.0.0.1:1", EnvToken + "=k"}
	for _, args := range [][]string{
		{"-o", "csv", "pending"},
		{"agent", "list", "-o", "csv"},
		{"-o", "csv", "whoami"},
		{"-o", "csv", "keygen"},
		{"-o", "csv", "findings"},
		{"-o", "csv", "grant", "show", "g_x"},
	} {
		code, out, errOut := run(t, env, args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "-o csv is for airlock grants only") {
			t.Errorf("%v: exit %d, want 2 and a usage error\nstdout: %q\nstderr: %q", args, code, out, errOut)
		}
	}
	// grants takes it: it goes on to ask the (absent) server.
	if code, _, errOut := run(t, env, "-o", "csv", "grants"); code == 2 || strings.Contains(errOut, "-o csv is for") {
		t.Errorf("grants -o csv refused as a usage error: exit %d: %s", code, errOut)
	}
}
