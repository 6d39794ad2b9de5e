package e2e

import (
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/awsfake"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestAWSLogTriage is the README's log-triage walkthrough through the real
// airlock binary: a target whose endpoints: sends CloudWatch Logs to a
// SigV4-verifying fake (internal/awsfake), `airlock exec` with a scope on
// one log group, the Debian AWS CLI searching it and refused another.
func TestAWSLogTriage(t *testing.T) {
	cli := testenv.AWSCLI(t)
	const upKey, upSecret = "AKIDUPSTREAMLOGS", "upstream-logs-secret-never-logged"
	logs := awsfake.Start("logs", "us-east-1", upKey, upSecret)
	defer logs.Close()
	e := writeSetupWith(t, setup{awsListen: freePort(t), awsKey: upKey, awsSecret: upSecret,
		awsEndpoints: "{ logs: " + logs.URL + " }",
		policies: `
@id("triage-searches-api-logs")
@approval("auto")
permit (principal in Group::"sre-team", action == Action::"logs:FilterLogEvents", resource == Target::"aws-prod")
when { context.resource like "arn:aws:logs:us-east-1:111122223333:log-group:/app/*" && context.duration_seconds <= 900 };
`})
	e.start(t)
	ex := airlock(t, e.addr, e.bot.Key, "exec", "aws-prod", "--allow", "logs:FilterLogEvents arn:aws:logs:us-east-1:111122223333:log-group:/app/api",
		"--for", "10m", "--reason", "checkout errors", "--", "sh", "-c",
		cli+` --endpoint-url "$AWS_ENDPOINT_URL" logs filter-log-events --log-group-name /app/api --filter-pattern ERROR --query "events[].message" --output text
`+cli+` --endpoint-url "$AWS_ENDPOINT_URL" logs filter-log-events --log-group-name /app/payments --filter-pattern ERROR`)
	if ex.code != 254 || ex.stdout != "ERROR payment timeout order=42 (/app/api)\tERROR payment timeout order=43\n" ||
		!strings.Contains(ex.stderr, "An error occurred (AccessDeniedException) when calling the FilterLogEvents operation: logs FilterLogEvents needs logs:FilterLogEvents on arn:aws:logs:us-east-1:111122223333:log-group:/app/payments, which is outside grant g_") ||
		!strings.Contains(ex.stderr, "ended (command exited with status 254)") {
		t.Fatalf("exec: exit %d\nstdout %q\nstderr %s\nserver: %s", ex.code, ex.stdout, ex.stderr, e.stderr)
	}
	got := logs.Requests()
	if len(got) != 1 || got[0].AccessKeyID != upKey || got[0].Operation != "FilterLogEvents" {
		t.Fatalf("the logs upstream saw %+v (rejected %v)", got, logs.Rejected())
	}
	id := grantID(t, ex.stderr)
	show := mustOK(t, airlock(t, e.addr, e.alice.Key, "session", "show", id), "session show")
	for _, want := range []string{"logs:FilterLogEvents arn:aws:logs:us-east-1:111122223333:log-group:/app/api", `filterPattern="ERROR"`, "DENIED logs:FilterLogEvents arn:aws:logs:us-east-1:111122223333:log-group:/app/payments"} {
		if !strings.Contains(show, want) {
			t.Errorf("session show lacks %q:\n%s", want, show)
		}
	}
	if strings.Contains(e.stderr.String(), upSecret) {
		t.Fatal("the server logged the upstream secret")
	}
}
