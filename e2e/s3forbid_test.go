package e2e

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestForbidReloadS3PartOfScope: a forbid on a part of what is granted or
// asked for, loaded with SIGHUP during an incident. Through the real
// airlock binary, its S3 gateway, the real AWS CLI and versitygw:
//
//   - a grant on logs/app/* can read logs/app/secret/ until the forbid on
//     logs/app/secret/* is loaded; then it is revoked by policy, naming the
//     forbid, and its credentials read nothing, the secrets included
//     (the forbid matches part of what it grants, as a request for
//     logs/app/* made now would be refused);
//   - a grant on logs/app/2026/*, which the forbid does not touch, reads on;
//   - a request for logs/*, waiting for alice, is denied by policy naming
//     the forbid: it leaves `airlock pending`, and her approval is refused.
//     Before, it stayed in her queue as approvable until its deadline.
//
// The log and the rows still verify.
func TestForbidReloadS3PartOfScope(t *testing.T) {
	cli := testenv.AWSCLI(t)
	s3 := testenv.Versity(t)
	root := []string{"AWS_ACCESS_KEY_ID=" + s3.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + s3.SecretAccessKey, "AWS_DEFAULT_REGION=us-east-1"}
	mustOK(t, awsRun(t, cli, root, "--endpoint-url", s3.URL, "s3", "mb", "s3://logs"), "make bucket")
	seed := filepath.Join(t.TempDir(), "seed")
	for key, body := range map[string]string{
		"app/2026/12/01/api.log":  "GET /checkout 500\n",
		"app/secret/db-token.txt": "token-never-to-leave\n",
	} {
		write(t, seed, body)
		mustOK(t, awsRun(t, cli, root, "--endpoint-url", s3.URL, "s3", "cp", seed, "s3://logs/"+key), "seed "+key)
	}
	e := writeSetupWith(t, setup{awsListen: testenv.FreeAddr(t), awsEndpoint: s3.URL, awsKey: s3.AccessKeyID, awsSecret: s3.SecretAccessKey})
	e.start(t)

	request := func(scope, dur, reason string) string {
		return grantID(t, mustOK(t, airlock(t, e.addr, e.bot.Key, "request", "aws-prod", "--allow", scope, "--for", dur, "--reason", reason), "request "+scope))
	}
	reader := func(id string) func(key string) result {
		creds := credsEnv(t, mustOK(t, airlock(t, e.addr, e.bot.Key, "credentials", id), "credentials"))
		return func(key string) result {
			return awsRun(t, cli, creds, "--endpoint-url", envValue(creds, "AWS_ENDPOINT_URL"), "s3", "cp", "s3://logs/"+key, "-")
		}
	}
	wide := request("s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*", "10m", "triage checkout errors")
	narrow := request("s3:GetObject arn:aws:s3:::logs/app/2026/*", "10m", "the day's api logs")
	readWide, readNarrow := reader(wide), reader(narrow)
	if got := mustOK(t, readWide("app/secret/db-token.txt"), "read under the wide grant"); got != "token-never-to-leave\n" {
		t.Fatalf("read %q", got)
	}
	out := mustOK(t, airlock(t, e.addr, e.bot.Key, "request", "aws-prod", "--allow", "s3:GetObject arn:aws:s3:::logs/*",
		"--for", "30m", "--reason", "billing errors too"), "request for a person")
	pending := grantID(t, out)
	if !strings.Contains(out, " pending ") {
		t.Fatalf("request for logs/*: %q, want pending", out)
	}
	if q := mustOK(t, airlock(t, e.addr, e.alice.Key, "pending"), "pending"); !strings.Contains(q, pending) {
		t.Fatalf("alice's queue lacks %s:\n%s", pending, q)
	}

	write(t, filepath.Join(e.dir, "policies", "incident.cedar"), `@id("freeze-app-secrets")
forbid (principal, action, resource) when { context.resource like "arn:aws:s3:::logs/app/secret/*" };
`)
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	var show string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		show = mustOK(t, airlock(t, e.addr, e.alice.Key, "grant", "show", wide), "grant show")
		if strings.Contains(show, "revoked") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the grant on logs/app/* was not revoked within 30s of the forbid's reload:\n%s\nserver log:\n%s", show, e.stderr)
		}
	}
	if !strings.Contains(show, "by policy") || !strings.Contains(show, `"freeze-app-secrets"`) {
		t.Fatalf("grant show does not say the policy set revoked it, naming the forbid:\n%s", show)
	}
	for _, key := range []string{"app/secret/db-token.txt", "app/2026/12/01/api.log"} {
		if r := readWide(key); r.code == 0 || strings.Contains(r.stdout, "token-never-to-leave") {
			t.Errorf("the revoked grant still reads %s: exit %d, %q", key, r.code, r.stdout)
		}
	}
	if got := mustOK(t, readNarrow("app/2026/12/01/api.log"), "read under the grant the forbid does not touch"); got != "GET /checkout 500\n" {
		t.Errorf("read %q", got)
	}

	show = mustOK(t, airlock(t, e.addr, e.alice.Key, "grant", "show", pending), "grant show")
	if !strings.Contains(show, "denied") || !strings.Contains(show, "by policy") || !strings.Contains(show, `"freeze-app-secrets"`) {
		t.Fatalf("grant show does not say the policy set denied the request, naming the forbid:\n%s", show)
	}
	if q := mustOK(t, airlock(t, e.addr, e.alice.Key, "pending"), "pending"); strings.Contains(q, pending) {
		t.Errorf("alice's queue still offers the forbidden request:\n%s", q)
	}
	if r := airlock(t, e.addr, e.alice.Key, "approve", pending, "--comment", "ok"); r.code == 0 {
		t.Errorf("the forbidden request was approved: %s", r.stdout)
	}
	if r := airlock(t, e.addr, e.alice.Key, "audit", "verify"); r.code != 0 {
		t.Fatalf("audit verify: %s %s", r.stdout, r.stderr)
	}
}
