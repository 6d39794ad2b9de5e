package cli

import (
	"strings"
	"testing"
)

// TestMalformedValueIsAUsageError: a --for, --allow, --reason or
// --comment, or an agent's name, owner or group, that the server's own
// checks refuse whatever its configuration is refused by the CLI itself as
// a usage error (exit 2, as README's exit codes say), with the server's
// reason said of the flag, and nothing is asked of the server. Each was
// sent, refused with a 400, and reported as a command that failed (exit
// 1). A value that only this server refuses (an unknown target, a duration
// over its cap, a grant that does not exist) still fails the command.
func TestMalformedValueIsAUsageError(t *testing.T) {
	l := startServer(t, nil)
	g := l.activeGrant("the grant the decisions name")
	long := strings.Repeat("x", 1025)
	req := func(allow, dur, reason string) []string {
		return []string{"request", "aws-prod", "--allow", allow, "--for", dur, "--reason", reason}
	}
	exec := func(allow, dur, reason string) []string {
		return []string{"exec", "aws-prod", "--allow", allow, "--for", dur, "--reason", reason, "--", "true"}
	}
	const ok = "s3:GetObject arn:aws:s3:::logs/app/*"
	for _, tc := range []struct {
		key  string // whose
		args []string
		want string
	}{
		{l.botKey, req(ok, "10x", "r"), `--for: "10x" is not a duration`},
		{l.botKey, req(ok, "0s", "r"), `--for: must be positive, got "0s"`},
		{l.botKey, req(ok, "-5m", "r"), `--for: must be positive, got "-5m"`},
		{l.botKey, req("GetObject arn:aws:s3:::logs/app/x", "5m", "r"), `--allow "GetObject arn:aws:s3:::logs/app/x": malformed action "GetObject"`},
		{l.botKey, append(req(ok, "5m", "r"), "--allow", "s3:GetObject arn:aws:s3:::logs/*/x"), `--allow "s3:GetObject arn:aws:s3:::logs/*/x": resource "arn:aws:s3:::logs/*/x": '*' is only allowed at the end`},
		{l.botKey, req("s3:getobject arn:aws:s3:::logs/app/x", "5m", "r"), `--allow "s3:getobject arn:aws:s3:::logs/app/x": action "s3:getobject" is spelled s3:GetObject`},
		{l.botKey, req(ok, "5m", "a\x1b[2Jb"), "--reason: contains control characters (U+001B)"},
		{l.botKey, req(ok, "5m", long), "--reason: longer than 1024 bytes"},
		{l.botKey, exec(ok, "ten minutes", "r"), `--for: "ten minutes" is not a duration`},
		{l.botKey, exec("s3:GetObject", "5m", "r"), `--allow "s3:GetObject": `},
		{l.botKey, []string{"end", g, "--comment", "bell\a"}, "--comment: contains control characters (U+0007)"},
		{l.aliceKey, []string{"approve", g, "--comment", long}, "--comment: longer than 1024 bytes"},
		{l.aliceKey, []string{"deny", g, "--reason", "x\u009by"}, "--reason: contains control characters (U+009B)"},
		{l.aliceKey, []string{"revoke", g, "--reason", "x\ny"}, "--reason: contains control characters (U+000A)"},
		{l.aliceKey, []string{"agent", "add", "Deploy Bot", "--owner", "sre-leads"}, `NAME: "Deploy Bot" is not a valid name`},
		{l.aliceKey, []string{"agent", "add", "deploy-bot", "--owner", "SRE"}, "--owner: an agent needs an owner team"},
		{l.aliceKey, []string{"agent", "add", "deploy-bot", "--owner", "sre-leads", "--group", "a b"}, `--group: "a b" is not a valid group name`},
		{l.aliceKey, []string{"agent", "add", "deploy-bot", "--owner", "sre-leads", "--group", "x", "--group", "x"}, `--group: "x" is given twice`},
		{l.aliceKey, []string{"agent", "disable", "log-triage-bot", "--reason", "\x7f"}, "--reason: contains control characters (U+007F)"},
	} {
		code, out, errOut := l.as(tc.key, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and one line with %q", tc.args, code, out, errOut, tc.want)
		}
	}
	// Nothing was asked: no request, no decision, no agent, no disable.
	if code, out, errOut := l.as(l.aliceKey, "grants", "-o", "json"); code != 0 || strings.Count(out, `"grant": "g_`) != 1 || !strings.Contains(out, `"status": "active"`) {
		t.Errorf("grants after the refused commands: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := l.as(l.aliceKey, "agent", "list"); code != 0 || strings.Contains(out, "deploy-bot") || strings.Contains(out, "disabled") {
		t.Errorf("agent list after the refused commands: exit %d\n%s%s", code, out, errOut)
	}

	// What only the server can refuse still fails the command (exit 1),
	// and well-formed values still reach it.
	for _, tc := range []struct {
		key  string
		args []string
		want string
	}{
		{l.botKey, []string{"request", "aws-nope", "--allow", ok, "--for", "5m", "--reason", "r"}, "target: unknown target"},
		{l.botKey, req(ok, "13h", "r"), "duration: 13h0m0s exceeds the cap"},
		{l.botKey, req("pg:select public.orders", "5m", "r"), "scope[0]: "},
		{l.aliceKey, []string{"revoke", "g_nope", "--reason", "r"}, "g_nope"},
	} {
		code, _, errOut := l.as(tc.key, tc.args...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 1 and %q", tc.args, code, errOut, tc.want)
		}
	}
	if code, out, errOut := l.as(l.aliceKey, "revoke", g, "--reason", "done\twith it"); code != 0 || !strings.Contains(out, g+" revoked") {
		t.Errorf("revoke with a tab in the reason: exit %d\n%s%s", code, out, errOut)
	}
}

// TestControlCharacterInAnIDIsAUsageError: a grant or session id, an
// agent's name, a target, or a review filter that holds a control
// character or is not UTF-8 is refused by the CLI itself as a usage error
// (exit 2), with the value escaped; the server refuses every such path
// value and query parameter (httpapi.Plain), and the CLI exited 1 with its
// 400. An id that is well formed but names nothing still fails the
// command.
func TestControlCharacterInAnIDIsAUsageError(t *testing.T) {
	l := startServer(t, nil)
	const bad = "g_\x1b[2Jx"
	for _, tc := range []struct {
		key  string
		args []string
		want string
	}{
		{l.aliceKey, []string{"grant", "show", bad}, `GRANT: "g_\x1b[2Jx" holds a control character`},
		{l.aliceKey, []string{"session", "show", "s_\u0085"}, `SESSION|GRANT: "s_\u0085" holds a control character`},
		{l.botKey, []string{"credentials", bad}, "GRANT: "},
		{l.botKey, []string{"end", bad}, "GRANT: "},
		{l.aliceKey, []string{"approve", bad}, "GRANT: "},
		{l.aliceKey, []string{"deny", bad, "--reason", "r"}, "GRANT: "},
		{l.aliceKey, []string{"revoke", "g_\xff", "--reason", "r"}, `GRANT: "g_\xff" holds a control character or is not UTF-8`},
		{l.aliceKey, []string{"agent", "disable", "bot\x00"}, "NAME: "},
		{l.botKey, []string{"request", "aws\x7fprod", "--allow", "s3:GetObject arn:aws:s3:::logs/app/*", "--for", "5m", "--reason", "r"}, "TARGET: "},
		{l.botKey, []string{"request", "aws-prod", "--allow", "s3:GetObject arn:aws:s3:::logs/app/*", "--for", "5m", "--reason", "r", "--extends", bad}, "--extends: "},
		{l.botKey, []string{"exec", "aws\tprod", "--allow", "s3:GetObject arn:aws:s3:::logs/app/*", "--for", "5m", "--reason", "r", "--", "true"}, "TARGET: "},
		{l.aliceKey, []string{"grants", "--account", "1111\x1b[2K"}, "--account: "},
		{l.aliceKey, []string{"grants", "--target", "aws-prod\r"}, "--target: "},
		{l.aliceKey, []string{"grants", "--identity", "bot\n"}, "--identity: "},
	} {
		code, out, errOut := l.as(tc.key, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.args, code, out, errOut, tc.want)
		}
		checkTerminalSafe(t, strings.Join(tc.args[:2], " "), errOut)
	}
	if code, out, errOut := l.as(l.aliceKey, "grants", "-o", "json"); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("grants after the refused commands: exit %d\n%s%s", code, out, errOut)
	}
	// Well formed, naming nothing: the server's answer, exit 1.
	if code, _, errOut := l.as(l.aliceKey, "grant", "show", "g_nope"); code != 1 || !strings.Contains(errOut, "g_nope") {
		t.Errorf("grant show g_nope: exit %d, stderr %q; want exit 1", code, errOut)
	}
}
