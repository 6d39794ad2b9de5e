package awsgw

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// awsCLIs are the AWS CLIs to drive the gateway with, where installed:
// Debian's v2 (which predates AWS_ENDPOINT_URL, so gets --endpoint-url)
// and a newer v1 that reads AWS_ENDPOINT_URL as `airlock exec` sets it.
// The v1 CLI starts slowly, so it runs the short walk only.
var awsCLIs = []struct {
	name        string
	find        func(testing.TB) string
	envEndpoint bool
	short       bool
}{
	{"debian-v2", testenv.AWSCLI, false, false},
	{"pyenv-v1", testenv.AWSCLIv1, true, true},
}

// runCLI runs the CLI with only the grant's credentials in its environment.
func runCLI(t *testing.T, bin string, envEndpoint bool, endpoint string, g *gateway.Grant, args ...string) (string, string, error) {
	t.Helper()
	return runCLIEnv(t, bin, envEndpoint, endpoint, g, nil, args...)
}

// runCLIEnv is runCLI with env added to the CLI's environment.
func runCLIEnv(t *testing.T, bin string, envEndpoint bool, endpoint string, g *gateway.Grant, env []string, args ...string) (string, string, error) {
	t.Helper()
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if !envEndpoint {
		args = append([]string{"--endpoint-url", endpoint}, args...)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = []string{
		"HOME=" + home, "PATH=" + os.Getenv("PATH"),
		"AWS_CONFIG_FILE=" + filepath.Join(home, "config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_ACCESS_KEY_ID=" + g.CredentialID, "AWS_SECRET_ACCESS_KEY=" + g.Secret, "AWS_SESSION_TOKEN=" + g.SessionToken,
		"AWS_DEFAULT_REGION=" + testRegion, "AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=",
	}
	if envEndpoint {
		cmd.Env = append(cmd.Env, "AWS_ENDPOINT_URL="+endpoint)
	}
	cmd.Env = append(cmd.Env, env...)
	if pyenv := os.Getenv("PYENV_ROOT"); pyenv != "" {
		cmd.Env = append(cmd.Env, "PYENV_ROOT="+pyenv)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func TestAWSCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the AWS CLI takes seconds per command")
	}
	for _, cli := range awsCLIs {
		t.Run(cli.name, func(t *testing.T) {
			path := cli.find(t)
			e := newVersityEnv(t)
			g := e.grant(walkScope)
			src := filepath.Join(t.TempDir(), "local.txt")
			if err := os.WriteFile(src, []byte("from the cli\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			run := func(args ...string) (string, string, error) {
				return runCLI(t, path, cli.envEndpoint, e.srv.URL, g, args...)
			}
			if out, errOut, err := run("s3", "cp", src, "s3://logs/app/cli.txt"); err != nil {
				t.Fatalf("aws s3 cp up: %v\n%s%s", err, out, errOut)
			}
			out, errOut, err := run("s3", "ls", "s3://logs/app/")
			if err != nil || !strings.Contains(out, "cli.txt") {
				t.Fatalf("aws s3 ls: %v\n%s%s", err, out, errOut)
			}
			// get-object, not s3 cp: cp starts with a HEAD, whose error
			// has no body to carry Airlock's message.
			_, errOut, err = run("s3api", "get-object", "--bucket", "logs", "--key", "secret.txt", os.DevNull)
			if err == nil || !strings.Contains(errOut, "AccessDenied") || !strings.Contains(errOut, "outside grant "+g.ID) {
				t.Fatalf("read outside the prefix: err %v, stderr %s", err, errOut)
			}
			if cli.short {
				return
			}
			out, errOut, err = run("s3", "cp", "s3://logs/app/cli.txt", "-")
			if err != nil || out != "from the cli\n" {
				t.Fatalf("aws s3 cp down: %v\n%q%s", err, out, errOut)
			}
			_, errOut, err = run("s3", "ls", "s3://logs/")
			if err == nil || !strings.Contains(errOut, "AccessDenied") {
				t.Fatalf("list of the whole bucket: err %v, stderr %s", err, errOut)
			}
			e.auth.End(g, "revoked")
			_, errOut, err = run("s3api", "get-object", "--bucket", "logs", "--key", "app/cli.txt", os.DevNull)
			if err == nil || !strings.Contains(errOut, "was revoked") {
				t.Fatalf("after revoke: err %v, stderr %s", err, errOut)
			}
			if cli.short {
				return
			}
			var used []string
			for _, c := range e.requests(g) {
				if c.Allowed {
					used = append(used, c.Action+" "+c.Resource)
				}
			}
			for _, want := range []string{"s3:PutObject arn:aws:s3:::logs/app/cli.txt", "s3:ListBucket arn:aws:s3:::logs/app/*", "s3:GetObject arn:aws:s3:::logs/app/cli.txt"} {
				if !strings.Contains(strings.Join(used, "\n"), want) {
					t.Errorf("recording lacks %q: %v", want, used)
				}
			}
		})
	}
}
