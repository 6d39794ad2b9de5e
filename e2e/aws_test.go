package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// awsRun runs the real AWS CLI with env (and nothing else of AWS's from
// this process's environment), returning stdout, stderr and the exit code.
func awsRun(t *testing.T, cli string, env []string, args ...string) result {
	t.Helper()
	return runCmd(t, append(cleanEnv(), env...), cli, args...)
}

// cleanEnv is this process's environment without AWS settings, and with a
// private HOME so no ~/.aws of the machine's leaks in.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "HOME="+os.TempDir(), "AWS_EC2_METADATA_DISABLED=true")
}

// credsEnv turns `airlock credentials --format env` output into KEY=VALUE.
func credsEnv(t *testing.T, out string) []string {
	t.Helper()
	var env []string
	for _, line := range strings.Split(out, "\n") {
		if kv, ok := strings.CutPrefix(line, "export "); ok {
			env = append(env, kv)
		}
	}
	if len(env) < 4 {
		t.Fatalf("credentials env output too short:\n%s", out)
	}
	return env
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// TestAWSWalkthrough is DESIGN.md's walkthrough through the real gateway:
// the real airlock binary, the Debian AWS CLI unmodified as the agent's
// client, versitygw (which verifies SigV4) as the upstream.
func TestAWSWalkthrough(t *testing.T) {
	cli := testenv.AWSCLI(t)
	s3 := testenv.Versity(t)
	root := []string{"AWS_ACCESS_KEY_ID=" + s3.AccessKeyID, "AWS_SECRET_ACCESS_KEY=" + s3.SecretAccessKey, "AWS_DEFAULT_REGION=us-east-1"}
	seed := filepath.Join(t.TempDir(), "seed")
	for _, obj := range []struct{ key, body string }{
		{"app/2026/12/01/api.log", "GET /checkout 500\n"},
		{"app/2026/12/01/worker.log", "retry 3\n"},
		{"billing/invoices.csv", "secret,numbers\n"},
	} {
		write(t, seed, obj.body)
		if obj.key == "app/2026/12/01/api.log" {
			mustOK(t, awsRun(t, cli, root, "--endpoint-url", s3.URL, "s3", "mb", "s3://logs"), "make bucket")
		}
		mustOK(t, awsRun(t, cli, root, "--endpoint-url", s3.URL, "s3", "cp", seed, "s3://logs/"+obj.key), "seed "+obj.key)
	}

	// A large object, whose download through the gateway's own listener
	// moves by splice over plain HTTP and by copy over TLS
	// (internal/awsgw/splice.go): both must arrive byte for byte.
	big := make([]byte, 3<<20+7)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	bigSeed := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(bigSeed, big, 0o600); err != nil {
		t.Fatal(err)
	}
	mustOK(t, awsRun(t, cli, root, "--endpoint-url", s3.URL, "s3", "cp", bigSeed, "s3://logs/app/2026/12/01/big.bin"), "seed big.bin")

	e := writeSetupWith(t, setup{awsListen: testenv.FreeAddr(t), awsEndpoint: s3.URL, awsKey: s3.AccessKeyID, awsSecret: s3.SecretAccessKey})
	e.start(t)

	out := mustOK(t, airlock(t, e.addr, e.bot.Key, "request", "aws-prod", "--allow", "s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*",
		"--for", "10m", "--reason", "triage checkout errors"), "request")
	id := grantID(t, out)
	creds := credsEnv(t, mustOK(t, airlock(t, e.addr, e.bot.Key, "credentials", id), "credentials"))
	endpoint := envValue(creds, "AWS_ENDPOINT_URL")
	if !strings.HasPrefix(endpoint, "http://127.0.0.1:") || envValue(creds, "AWS_SESSION_TOKEN") == "" {
		t.Fatalf("credentials env lacks the gateway endpoint or session token: %v\nserver: %s", creds, e.stderr)
	}
	if envValue(creds, "AWS_ACCESS_KEY_ID") == s3.AccessKeyID || strings.Contains(strings.Join(creds, " "), s3.SecretAccessKey) {
		t.Fatal("the agent was handed the gateway's own upstream keys")
	}
	aws := func(args ...string) result {
		return awsRun(t, cli, creds, append([]string{"--endpoint-url", endpoint}, args...)...)
	}

	ls := mustOK(t, aws("s3", "ls", "s3://logs/app/2026/12/01/"), "ls inside the prefix")
	if !strings.Contains(ls, "api.log") || !strings.Contains(ls, "worker.log") {
		t.Fatalf("listing: %s", ls)
	}
	if got := mustOK(t, aws("s3", "cp", "s3://logs/app/2026/12/01/api.log", "-"), "read inside the prefix"); got != "GET /checkout 500\n" {
		t.Fatalf("read %q", got)
	}
	denied := aws("s3api", "get-object", "--bucket", "logs", "--key", "billing/invoices.csv", filepath.Join(t.TempDir(), "out"))
	if denied.code == 0 || !strings.Contains(denied.stderr, "AccessDenied") {
		t.Fatalf("a read outside the prefix: exit %d, stderr %s", denied.code, denied.stderr)
	}
	if r := aws("s3", "ls", "s3://logs/"); r.code == 0 {
		t.Fatalf("listing the whole bucket should be denied: %s", r.stdout)
	}

	// The same port speaks TLS, with a certificate from Airlock's own CA
	// (data_dir/ca.pem): trusted with the CA, refused without it.
	caFile := filepath.Join(e.dir, "airlock-data", "ca.pem")
	tlsEndpoint := strings.Replace(endpoint, "http://", "https://", 1)
	if got := mustOK(t, awsRun(t, cli, creds, "--endpoint-url", tlsEndpoint, "--ca-bundle", caFile, "s3", "cp", "s3://logs/app/2026/12/01/api.log", "-"), "read over TLS"); got != "GET /checkout 500\n" {
		t.Fatalf("read over TLS %q", got)
	}
	for _, via := range []struct {
		name string
		args []string
	}{
		{"plain HTTP", []string{"--endpoint-url", endpoint}},
		{"TLS", []string{"--endpoint-url", tlsEndpoint, "--ca-bundle", caFile}},
	} {
		got := filepath.Join(t.TempDir(), "big.bin")
		mustOK(t, awsRun(t, cli, creds, append(via.args, "s3", "cp", "s3://logs/app/2026/12/01/big.bin", got)...), "download big.bin over "+via.name)
		if b, err := os.ReadFile(got); err != nil || !bytes.Equal(b, big) {
			t.Fatalf("big.bin over %s: %d bytes (%v), not the %d put", via.name, len(b), err, len(big))
		}
	}
	if r := awsRun(t, cli, creds, "--endpoint-url", tlsEndpoint, "s3", "ls", "s3://logs/app/2026/12/01/"); r.code == 0 || !strings.Contains(strings.ToLower(r.stderr), "ssl") {
		t.Fatalf("TLS without trusting Airlock's CA: exit %d, stderr %s", r.code, r.stderr)
	}

	// The recording shows the objects read, and the denied call.
	rec := mustOK(t, airlock(t, e.addr, e.alice.Key, "session", "show", id), "session show")
	for _, want := range []string{"arn:aws:s3:::logs/app/2026/12/01/api.log", "arn:aws:s3:::logs/billing/invoices.csv"} {
		if !strings.Contains(rec, want) {
			t.Errorf("recording lacks %s:\n%s", want, rec)
		}
	}
	if strings.Contains(rec, s3.SecretAccessKey) || strings.Contains(rec, envValue(creds, "AWS_SECRET_ACCESS_KEY")) ||
		strings.Contains(rec, envValue(creds, "AWS_SESSION_TOKEN")) {
		t.Fatal("a secret is in the recording")
	}

	// credential_process: the unmodified CLI fetches the grant's
	// credentials through `airlock credentials --format process`.
	cfgFile := filepath.Join(t.TempDir(), "config")
	write(t, cfgFile, "[profile airlock]\nregion = us-east-1\ncredential_process = "+airlockBin+" credentials "+id+" --format process\n")
	viaProcess := awsRun(t, cli, []string{"AWS_CONFIG_FILE=" + cfgFile, "AWS_PROFILE=airlock", "AIRLOCK_ADDR=" + e.addr, "AIRLOCK_TOKEN=" + e.bot.Key},
		"--endpoint-url", endpoint, "s3", "cp", "s3://logs/app/2026/12/01/worker.log", "-")
	if mustOK(t, viaProcess, "credential_process read") != "retry 3\n" {
		t.Fatalf("credential_process read %q", viaProcess.stdout)
	}

	// The review row counts the calls and shows the scope actually used.
	var rows []map[string]any
	if err := json.Unmarshal([]byte(mustOK(t, airlock(t, e.addr, e.alice.Key, "grants", "--account", "111122223333",
		"--day", time.Now().UTC().Format("2006-01-02"), "-o", "json"), "grants")), &rows); err != nil {
		t.Fatal(err)
	}
	var row map[string]any
	for _, r := range rows {
		if r["grant"] == id {
			row = r
		}
	}
	if row == nil {
		t.Fatalf("grant %s not in the review: %v", id, rows)
	}
	if calls, _ := row["calls"].(float64); calls < 4 {
		t.Errorf("review calls = %v, want at least 4", row["calls"])
	}
	used, _ := json.Marshal(row["scope_used"])
	if !strings.Contains(string(used), "s3:GetObject arn:aws:s3:::logs/app/2026/12/01/api.log") || strings.Contains(string(used), "billing") {
		t.Errorf("review scope_used = %s: want the object read, and not the denied one", used)
	}
	if d, _ := row["denied_calls"].(float64); d < 2 {
		t.Errorf("review denied_calls = %v, want at least 2 (row %v)", row["denied_calls"], row)
	}

	// Revoked: the very next call fails, even with a correct signature.
	mustOK(t, airlock(t, e.addr, e.alice.Key, "revoke", id, "--reason", "incident closed"), "revoke")
	after := aws("s3", "cp", "s3://logs/app/2026/12/01/api.log", "-")
	if after.code == 0 {
		t.Fatal("revoked credentials still read")
	}

	// airlock exec: request, run the CLI with the credentials in its
	// environment, end the grant with the command's exit status.
	ex := airlock(t, e.addr, e.bot.Key, "exec", "aws-prod", "--allow", "s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*",
		"--for", "5m", "--reason", "exec walkthrough", "--", "sh", "-c",
		cli+` --endpoint-url "$AWS_ENDPOINT_URL" s3 cp s3://logs/app/2026/12/01/api.log - && exit 3`)
	if ex.code != 3 || ex.stdout != "GET /checkout 500\n" {
		t.Fatalf("exec: exit %d stdout %q stderr %s", ex.code, ex.stdout, ex.stderr)
	}
	execID := grantID(t, ex.stderr)
	show := mustOK(t, airlock(t, e.addr, e.alice.Key, "grant", "show", execID), "grant show")
	if !strings.Contains(show, "ended") || !strings.Contains(show, "command exited with status 3") {
		t.Fatalf("exec's grant does not record the exit status:\n%s", show)
	}

	if r := airlock(t, e.addr, e.alice.Key, "audit", "verify"); r.code != 0 {
		t.Fatalf("audit verify: %s %s", r.stdout, r.stderr)
	}
	for what, secret := range map[string]string{"the upstream secret": s3.SecretAccessKey,
		"a grant secret": envValue(creds, "AWS_SECRET_ACCESS_KEY"), "a session token": envValue(creds, "AWS_SESSION_TOKEN")} {
		if strings.Contains(e.stderr.String(), secret) {
			t.Fatalf("the server logged %s", what)
		}
	}
}
