package awsgw

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestServiceJSSDK drives every service through the gateway with the AWS
// SDK for JavaScript v3's clients (e2e/js/services.mjs, npm ci).
func TestServiceJSSDK(t *testing.T) {
	node := testenv.Tool(t, "node", "install it with: apt-get install nodejs npm")
	dir, err := filepath.Abs("../../e2e/js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@aws-sdk", "client-dynamodb")); err != nil {
		testenv.Tool(t, "e2e/js/node_modules/@aws-sdk/client-dynamodb", "run: (cd e2e/js && npm ci)")
	}
	e := newSvcEnv(t)
	arn := svcARN
	g := e.grant(
		"logs:FilterLogEvents "+arn("logs", "log-group:/app/api"),
		"ssm:GetParameter,ssm:GetParameters "+arn("ssm", "parameter/app/db/*"),
		"lambda:InvokeFunction "+arn("lambda", "function:triage-helper"),
		"ec2:DescribeInstances *",
		"sts:GetCallerIdentity *",
		"sqs:SendMessage "+arn("sqs", "jobs"),
		"dynamodb:GetItem "+arn("dynamodb", "table/orders"),
	)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "services.mjs")
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "GW=" + e.srv.URL, "AWS_REGION=" + testRegion, "ACCOUNT=" + testAccount,
		"AWS_ACCESS_KEY_ID=" + g.CredentialID, "AWS_SECRET_ACCESS_KEY=" + g.Secret, "AWS_SESSION_TOKEN=" + g.SessionToken}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node services.mjs: %v\n%s%s", err, out, stderr.Bytes())
	}
	type step struct {
		Step, Code, Message, Value string
		OK                         bool
	}
	steps := map[string]step{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var s step
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("node printed %q: %v", line, err)
		}
		steps[s.Step] = s
	}
	for name, want := range map[string]string{
		"logs": "ERROR payment timeout", "ssm": "value-of-/app/db/url", "lambda": `"received":12`, "ec2": "i-1234567890abcdef0",
		"sts": testAccount + " " + g.ID + " arn:aws:sts::" + testAccount + ":assumed-role/airlock/log-triage-bot",
		"sqs": "5fea7756", "dynamodb": "shipped",
	} {
		if s := steps[name]; !s.OK || !strings.Contains(s.Value, want) {
			t.Errorf("%s: %+v, want a value with %q", name, s, want)
		}
	}
	for _, name := range []string{"logs-denied", "ssm-denied", "dynamodb-denied"} {
		if s := steps[name]; s.OK || s.Code != "AccessDeniedException" || !strings.Contains(s.Message, "outside grant "+g.ID) {
			t.Errorf("%s: %+v", name, s)
		}
	}
	// Refused unsigned, in the service's shape with its code for a call
	// with no credentials: the SDK reads the code.
	for name, code := range map[string]string{"sts-unsigned": "MissingAuthenticationToken", "ec2-unsigned": "MissingAuthenticationToken",
		"dynamodb-unsigned": "MissingAuthenticationTokenException"} {
		if s := steps[name]; s.OK || s.Code != code || !strings.Contains(s.Message, "Anonymous access is not allowed") {
			t.Errorf("%s: %+v", name, s)
		}
	}
	e.upstreamSaw(t, "sts", 0)
}
