package awsgw

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestRcloneThroughGateway runs rclone, configured only by environment
// variables, through the gateway against versitygw with a grant on a
// prefix: copy, copyto, ls and cat work. Before an upload that did not
// list the destination first, rclone makes sure the bucket exists: recent
// versions ask HeadBucket, which the gateway allows to a grant that may
// list inside the bucket (checked here with the SDK), then try
// CreateBucket, which a prefix grant does not allow; Debian's rclone 1.60
// goes straight to CreateBucket, so `copyto --no-traverse` needs
// --s3-no-check-bucket with it.
func TestRcloneThroughGateway(t *testing.T) {
	bin := testenv.Tool(t, "rclone", "install it with: apt-get install rclone")
	e := newVersityEnv(t)
	// rclone sends x-amz-acl: private with every upload, for which IAM
	// (and so Airlock) asks s3:PutObjectAcl.
	g := e.grant("s3:GetObject,s3:PutObject,s3:PutObjectAcl,s3:ListBucket,s3:DeleteObject arn:aws:s3:::logs/app/*")

	src := t.TempDir()
	files := map[string]string{"a.txt": "alpha\n", "sub/b.txt": "beta beta\n"}
	for name, body := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rclone := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--retries", "1", "--low-level-retries", "1"}, args...)...)
		cmd.Env = []string{
			"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"),
			"RCLONE_CONFIG=" + filepath.Join(t.TempDir(), "none.conf"),
			"RCLONE_CONFIG_GW_TYPE=s3", "RCLONE_CONFIG_GW_PROVIDER=Other", "RCLONE_CONFIG_GW_ENV_AUTH=false",
			"RCLONE_CONFIG_GW_ACCESS_KEY_ID=" + g.CredentialID,
			"RCLONE_CONFIG_GW_SECRET_ACCESS_KEY=" + g.Secret,
			"RCLONE_CONFIG_GW_SESSION_TOKEN=" + g.SessionToken,
			"RCLONE_CONFIG_GW_ENDPOINT=" + e.srv.URL,
			"RCLONE_CONFIG_GW_REGION=" + testRegion,
			"RCLONE_CONFIG_GW_FORCE_PATH_STYLE=true",
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("rclone %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	if _, err := e.client(g).HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String("logs")}); err != nil {
		t.Fatalf("HeadBucket with a grant on logs/app/*: %v", errCode(err))
	}
	if _, err := e.client(g).HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String("other")}); err == nil || !strings.Contains(errCode(err), "Forbidden") { // a HEAD answer has no body: 403 only
		t.Fatalf("HeadBucket on another bucket: %v", errCode(err))
	}

	rclone("copy", src, "gw:logs/app/up")
	// A single file with --no-traverse skips the listing that shows the
	// bucket exists.
	rclone("copyto", "--no-traverse", "--s3-no-check-bucket", filepath.Join(src, "a.txt"), "gw:logs/app/one.txt")
	ls := rclone("ls", "gw:logs/app/up")
	for name, body := range files {
		if !strings.Contains(ls, name) || !strings.Contains(ls, itoaTest(len(body))+" "+name) {
			t.Errorf("rclone ls does not show %s (%d bytes):\n%s", name, len(body), ls)
		}
	}
	if out := rclone("cat", "gw:logs/app/up/sub/b.txt"); !strings.HasSuffix(out, "\n"+files["sub/b.txt"]) && out != files["sub/b.txt"] {
		t.Errorf("rclone cat: %q", out)
	}

	for _, c := range e.requests(g) {
		op := c.Params["operation"]
		if op == "CreateBucket" || (!c.Allowed && op != "HeadBucket") {
			t.Errorf("rclone: %s %s %s allowed=%v %s", op, c.Action, c.Resource, c.Allowed, c.Error)
		}
	}
	if _, err := os.Stat(filepath.Join(src, "a.txt")); err != nil {
		t.Fatal(err)
	}
	if out := rclone("cat", "gw:logs/app/one.txt"); !strings.HasSuffix(out, files["a.txt"]) {
		t.Errorf("rclone cat one.txt: %q", out)
	}
}

func itoaTest(n int) string {
	s := ""
	for {
		s = string(rune('0'+n%10)) + s
		n /= 10
		if n == 0 {
			return s
		}
	}
}
