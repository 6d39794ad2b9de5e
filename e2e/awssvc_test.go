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
	cli, logs, e := startLogsEnv(t, `
@id("triage-searches-api-logs")
@approval("auto")
permit (principal in Group::"sre-team", action == Action::"logs:FilterLogEvents", resource == Target::"aws-prod")
when { context.resource like "arn:aws:logs:us-east-1:111122223333:log-group:/app/*" && context.duration_seconds <= 900 };
`)
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
	if len(got) != 1 || got[0].AccessKeyID != logsUpKey || got[0].Operation != "FilterLogEvents" {
		t.Fatalf("the logs upstream saw %+v (rejected %v)", got, logs.Rejected())
	}
	id := grantID(t, ex.stderr)
	show := mustOK(t, airlock(t, e.addr, e.alice.Key, "session", "show", id), "session show")
	for _, want := range []string{"logs:FilterLogEvents arn:aws:logs:us-east-1:111122223333:log-group:/app/api", `filterPattern="ERROR"`, "DENIED logs:FilterLogEvents arn:aws:logs:us-east-1:111122223333:log-group:/app/payments"} {
		if !strings.Contains(show, want) {
			t.Errorf("session show lacks %q:\n%s", want, show)
		}
	}
	if strings.Contains(e.stderr.String(), logsUpSecret) {
		t.Fatal("the server logged the upstream secret")
	}
}

const logsUpKey, logsUpSecret = "AKIDUPSTREAMLOGS", "upstream-logs-secret-never-logged"

// startLogsEnv starts `airlock serve` with the extra policies and an aws
// target whose CloudWatch Logs go to a SigV4-verifying fake (closed when t
// ends); it returns the Debian AWS CLI's path too.
func startLogsEnv(t *testing.T, policies string) (cli string, logs *awsfake.Server, e *env) {
	t.Helper()
	cli = testenv.AWSCLI(t)
	logs = awsfake.Start("logs", "us-east-1", logsUpKey, logsUpSecret)
	t.Cleanup(logs.Close)
	e = writeSetupWith(t, setup{awsListen: testenv.FreeAddr(t), awsKey: logsUpKey, awsSecret: logsUpSecret,
		awsEndpoints: "{ logs: " + logs.URL + " }", policies: policies})
	e.start(t)
	return cli, logs, e
}

// TestLogGroupWithinForbiddenStream: FilterLogEvents on a log group returns
// the events of every stream in it, so a forbid on one stream stops it;
// the stream's siblings stay readable. Through the real airlock binary and
// the Debian AWS CLI against the SigV4-verifying fake, whose
// FilterLogEvents answers with events of streams api-1 and api-2.
func TestLogGroupWithinForbiddenStream(t *testing.T) {
	cli, logs, e := startLogsEnv(t, `
@id("triage-reads-app-logs-api") @approval("auto")
permit (principal in Group::"sre-team", action in [Action::"logs:FilterLogEvents", Action::"logs:GetLogEvents"], resource == Target::"aws-prod")
when { context.resource like "arn:aws:logs:us-east-1:111122223333:log-group:/app/*" };

@id("no-api-2")
forbid (principal, action, resource) when { context.resource == "arn:aws:logs:us-east-1:111122223333:log-group:/app/api:log-stream:api-2" };
`)
	ex := airlock(t, e.addr, e.bot.Key, "exec", "aws-prod", "--allow", "logs:FilterLogEvents arn:aws:logs:us-east-1:111122223333:log-group:/app/api",
		"--for", "5m", "--reason", "checkout errors", "--", "sh", "-c",
		cli+` --endpoint-url "$AWS_ENDPOINT_URL" logs filter-log-events --log-group-name /app/api --query "events[].message" --output text`)
	if ex.code == 0 || strings.Contains(ex.stdout, "order=43") || !strings.Contains(ex.stderr, "no-api-2") {
		t.Fatalf("FilterLogEvents on /app/api under a forbid on its stream api-2: exit %d\nstdout %q\nstderr %s", ex.code, ex.stdout, ex.stderr)
	}
	if got := logs.Requests(); len(got) != 0 {
		t.Fatalf("the logs upstream saw %+v", got)
	}
	ex = airlock(t, e.addr, e.bot.Key, "exec", "aws-prod", "--allow", "logs:GetLogEvents arn:aws:logs:us-east-1:111122223333:log-group:/app/api:log-stream:api-1",
		"--for", "5m", "--reason", "startup", "--", "sh", "-c",
		cli+` --endpoint-url "$AWS_ENDPOINT_URL" logs get-log-events --log-group-name /app/api --log-stream-name api-1 --query "events[].message" --output text`)
	if ex.code != 0 || ex.stdout != "started\n" {
		t.Fatalf("GetLogEvents on api-1: exit %d\nstdout %q\nstderr %s\nserver: %s", ex.code, ex.stdout, ex.stderr, e.stderr)
	}
}
