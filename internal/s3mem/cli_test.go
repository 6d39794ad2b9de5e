package s3mem

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// cliRunner runs the real AWS CLI against the fixture, isolated from any
// configuration on the machine: its own HOME, config and credentials.
type cliRunner struct {
	t   *testing.T
	f   *fixture
	env []string
	dir string
	bin string // the AWS CLI
}

func newCLI(t *testing.T, f *fixture, ak, sk string) *cliRunner {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping the AWS CLI, whose start-up takes seconds")
	}
	bin := testenv.AWSCLI(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	if err := os.WriteFile(cfg, []byte("[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"HOME=" + dir, "PATH=" + os.Getenv("PATH"),
		"AWS_CONFIG_FILE=" + cfg, "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(dir, "credentials"),
		"AWS_ACCESS_KEY_ID=" + ak, "AWS_SECRET_ACCESS_KEY=" + sk,
		"AWS_EC2_METADATA_DISABLED=true", "AWS_PAGER=", "AWS_MAX_ATTEMPTS=1",
	}
	return &cliRunner{t: t, f: f, env: env, dir: dir, bin: bin}
}

// run runs the CLI with args and returns stdout, stderr and whether it
// exited 0.
func (c *cliRunner) run(args ...string) (string, string, bool) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"--endpoint-url", c.f.url, "--no-cli-pager"}, args...)...)
	cmd.Env = c.env
	cmd.Dir = c.dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err == nil
}

func (c *cliRunner) mustRun(args ...string) string {
	c.t.Helper()
	out, errOut, ok := c.run(args...)
	if !ok {
		c.t.Fatalf("aws %s failed: %s%s", strings.Join(args, " "), out, errOut)
	}
	return out
}

func TestAWSCLI(t *testing.T) {
	t.Parallel() // the CLI's start-up dominates; overlap it with other tests
	f := newFixture(t)
	cli := newCLI(t, f, testAK, testSK)
	f.srv.Put("logs", "app/x.log", []byte("line one\nline two\n"))
	f.srv.Put("logs", "app/2024/old.log", []byte("old"))
	f.srv.Put("logs", "app/with space.log", []byte("spaced"))
	f.srv.Put("logs", "db/other.log", []byte("not listed"))

	ls := cli.mustRun("s3", "ls", "s3://logs/app/")
	for _, want := range []string{"PRE 2024/", " 18 x.log", " 6 with space.log"} {
		if !strings.Contains(ls, want) {
			t.Errorf("aws s3 ls output lacks %q:\n%s", want, ls)
		}
	}
	if strings.Contains(ls, "other.log") {
		t.Errorf("aws s3 ls listed outside the prefix:\n%s", ls)
	}

	meta := cli.mustRun("s3api", "get-object", "--bucket", "logs", "--key", "app/with space.log", filepath.Join(cli.dir, "sp.log"))
	if !strings.Contains(meta, `"ContentLength": 6`) || !strings.Contains(meta, etagOf([]byte("spaced"))[1:33]) {
		t.Errorf("get-object output:\n%s", meta)
	}
	if got, _ := os.ReadFile(filepath.Join(cli.dir, "sp.log")); string(got) != "spaced" {
		t.Errorf("get-object wrote %q", got)
	}

	// 20 MiB is over the CLI's 8 MiB multipart threshold, both ways.
	big := pattern(20<<20, 9)
	up := filepath.Join(cli.dir, "big.bin")
	if err := os.WriteFile(up, big, 0o600); err != nil {
		t.Fatal(err)
	}
	cli.mustRun("s3", "cp", up, "s3://logs/up/big.bin")
	stored, ok := f.srv.Get("logs", "up/big.bin")
	if !ok || !bytes.Equal(stored, big) {
		t.Fatalf("uploaded object: present %v, %d bytes, equal %v", ok, len(stored), bytes.Equal(stored, big))
	}
	if o, _ := f.srv.st.get("logs", "up/big.bin"); !strings.HasSuffix(o.etag, `-3"`) {
		t.Errorf("ETag %s: the CLI did not upload in 3 parts", o.etag)
	}
	back := filepath.Join(cli.dir, "back.bin")
	cli.mustRun("s3", "cp", "s3://logs/up/big.bin", back)
	if got, _ := os.ReadFile(back); !bytes.Equal(got, big) {
		t.Fatalf("downloaded %d bytes, not the uploaded 20 MiB", len(got))
	}
}

func TestAWSCLIRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.srv.Put("logs", "app/x.log", []byte("x"))
	for _, tc := range []struct{ name, ak, sk, code string }{
		{"wrong secret", testAK, "wrong-secret-wrong-secret-wrong-secret-00", "SignatureDoesNotMatch"},
		{"unknown key", "AKIANOTKNOWN00000000", testSK, "InvalidAccessKeyId"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli := newCLI(t, f, tc.ak, tc.sk)
			out, errOut, ok := cli.run("s3api", "get-object", "--bucket", "logs", "--key", "app/x.log", filepath.Join(cli.dir, "x"))
			if ok || !strings.Contains(errOut, tc.code) {
				t.Fatalf("exit ok=%v, stderr %q, stdout %q; want %s", ok, errOut, out, tc.code)
			}
		})
	}
	if f.srv.Requests() != 0 {
		t.Fatalf("%d refused requests counted as authenticated", f.srv.Requests())
	}
}
