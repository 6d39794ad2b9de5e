// Package testenv finds and starts the real external parts that
// integration tests run against: versitygw (an S3-compatible server that
// verifies SigV4), the AWS CLI, psql and pgbench, and the PostgreSQL DSN.
//
// A part that is missing skips the test with a message saying how to get
// it — except under CI (CI=true), where .ci/run installs every part, so a
// missing one fails the test instead of quietly skipping it.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// missing skips or, under CI, fails t.
func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI installs it: see .ci/run)", msg)
	}
	t.Skip(msg)
}

// Tool returns the path of an external program, looking in PATH and in
// GOPATH/bin (where `go install` puts versitygw).
func Tool(t testing.TB, name, howto string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(string(trimNL(gopath)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	missing(t, "%s not found; %s", name, howto)
	return ""
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// AWSCLI is the Debian AWS CLI (apt-get install awscli).
func AWSCLI(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/aws"); err == nil {
		return "/usr/bin/aws"
	}
	return Tool(t, "aws", "install it with: apt-get install awscli")
}

// AWSCLIv1 is the AWS CLI v1 that this project's machine image ships with
// its Python (pip's awscli under pyenv). Unlike Debian's v2 2.9, it reads
// AWS_ENDPOINT_URL, as `airlock exec` sets it.
func AWSCLIv1(t testing.TB) string {
	t.Helper()
	var dirs []string
	if root := os.Getenv("PYENV_ROOT"); root != "" {
		dirs = append(dirs, filepath.Join(root, "shims"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".pyenv", "shims"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "aws")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("aws"); err == nil && p != "/usr/bin/aws" {
		return p
	}
	missing(t, "the AWS CLI v1 (pip's awscli, shipped with the machine image's Python) is not installed")
	return ""
}

// PostgresDSN is the DSN of a PostgreSQL server tests may create databases
// and roles on, from AIRLOCK_TEST_PG_DSN.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("AIRLOCK_TEST_PG_DSN")
	if dsn == "" {
		missing(t, "AIRLOCK_TEST_PG_DSN is not set; set it to a superuser DSN such as postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable to run the PostgreSQL tests")
	}
	return dsn
}

// S3 is a running versitygw.
type S3 struct {
	// URL is its endpoint, http://127.0.0.1:PORT.
	URL string
	// AccessKeyID and SecretAccessKey are its root account's keys.
	AccessKeyID, SecretAccessKey string
	// Dir is the directory it stores buckets in.
	Dir string
}

// Versity starts versitygw on a free loopback port with a posix backend in
// a temporary directory, waits until it answers, and stops it when t ends.
func Versity(t testing.TB) *S3 {
	t.Helper()
	return versity(t, false)
}

// VersityVersioned is Versity with bucket versioning available (posix
// --versioning-dir): a bucket's versioning can then be enabled.
func VersityVersioned(t testing.TB) *S3 {
	t.Helper()
	return versity(t, true)
}

func versity(t testing.TB, versioning bool) *S3 {
	t.Helper()
	bin := Tool(t, "versitygw", "install it with: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
	addr := FreeAddr(t)
	s := &S3{URL: "http://" + addr, AccessKeyID: "VGWROOT" + randHex(6), SecretAccessKey: randHex(20), Dir: t.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	args := []string{"--access", s.AccessKeyID, "--secret", s.SecretAccessKey, "--port", addr, "--quiet", "posix"}
	if versioning {
		args = append(args, "--versioning-dir", t.TempDir())
	}
	cmd := exec.CommandContext(ctx, bin, append(args, s.Dir)...)
	out := &LockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID=", "ROOT_SECRET_ACCESS_KEY=")
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting versitygw: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.URL + "/")
		if err == nil {
			resp.Body.Close()
			return s // any HTTP answer (403 without a signature) means it is up
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("versitygw did not come up on %s: %s", addr, out.String())
	return nil
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
