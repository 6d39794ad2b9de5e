//go:build conformance

// Package conformance runs versitygw's own S3 integration suite
// (`versitygw test full-flow`, from the module of the upstream the tests
// use) twice: directly against a fresh versitygw, and through the AWS
// gateway in front of another fresh versitygw, with a grant whose scope
// names every action the gateway checks. Every test that passes directly
// must pass through the gateway, except those docs/conformance.md lists as
// refused by design, each with why.
//
// Run it with `make conformance` (build tag conformance). It prints the
// counts and the tests that pass directly but fail through the gateway.
package conformance

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/awsgw"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/s3iam"
	"github.com/airlock-dev/airlock/internal/testenv"
)

const (
	upstreamAK = "CONFROOTKEY"
	upstreamSK = "conformance-root-secret"
	target     = "conformance"
	region     = "us-east-1" // the suite's default --region
	// suiteTimeout bounds one run of the suite.
	suiteTimeout = 12 * time.Minute
)

// result is one run of the suite: the tests that passed and, for each
// failed test, its message.
type result struct {
	passed map[string]bool
	failed map[string]string
	ran    int
	tail   string // the last lines of output, for a run that broke
}

var (
	ansi     = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	passLine = regexp.MustCompile(`^PASS\s+(\S+)`)
	failLine = regexp.MustCompile(`^FAIL\s+([^:\s]+):?\s*(.*)$`)
)

// parse reads the suite's output: a "PASS name" or "FAIL name: why" line
// per test.
func parse(out []byte) result {
	r := result{passed: map[string]bool{}, failed: map[string]string{}}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(ansi.ReplaceAllString(sc.Text(), ""))
		lines = append(lines, line)
		if m := passLine.FindStringSubmatch(line); m != nil {
			r.passed[m[1]] = true
			r.ran++
		} else if m := failLine.FindStringSubmatch(line); m != nil {
			r.failed[m[1]] = m[2]
			r.ran++
		}
	}
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	r.tail = strings.Join(lines, "\n")
	return r
}

// startVersity runs a fresh versitygw (posix backend, sidecar metadata)
// on a loopback port and returns its URL.
func startVersity(t *testing.T, bin string) string {
	t.Helper()
	addr := testenv.FreeAddr(t)
	root, side := t.TempDir(), t.TempDir()
	cmd := exec.Command(bin, "--access", upstreamAK, "--secret", upstreamSK, "--port", addr, "--quiet", "posix", "--sidecar", side, root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID=", "ROOT_SECRET_ACCESS_KEY=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting versitygw: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return "http://" + addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not start: %s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runSuite runs `versitygw test full-flow` with the given credentials
// against endpoint. It runs in a directory holding a link to the
// versitygw binary, because the suite's admin tests call ./versitygw.
// It runs on its own goroutine, so it reports with Errorf, never Fatal.
func runSuite(t *testing.T, bin, dir, endpoint, ak, sk string) result {
	return runTests(t, bin, dir, endpoint, ak, sk, "full-flow")
}

// runTests is runSuite for one test of the suite by name, or "full-flow".
func runTests(t *testing.T, bin, dir, endpoint, ak, sk, which string) result {
	if err := os.Symlink(bin, filepath.Join(dir, "versitygw")); err != nil {
		t.Error(err)
		return result{}
	}
	ctx, cancel := context.WithTimeout(context.Background(), suiteTimeout)
	defer cancel()
	args := []string{"test", "-a", ak, "-s", sk, "-e", endpoint, which}
	if one := os.Getenv("CONFORMANCE_TEST"); one != "" {
		// One test by name, with the SDK's request log, to debug it.
		args = []string{"test", "-a", ak, "-s", sk, "-e", endpoint, "--debug", one}
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	// The suite loads the SDK's default configuration: keep the host's
	// AWS settings (a CA bundle, a profile) out of it.
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	r := parse(out)
	if os.Getenv("CONFORMANCE_TEST") != "" {
		t.Logf("against %s:\n%s", endpoint, out)
	}
	if ctx.Err() != nil {
		t.Errorf("the suite against %s did not finish in %s:\n%s", endpoint, suiteTimeout, r.tail)
	} else if r.ran == 0 {
		t.Errorf("the suite against %s ran no test (%v):\n%s", endpoint, err, r.tail)
	}
	return r
}

// byDesign reads docs/conformance.md's table of tests refused by design:
// rows "| `TestName` | why |".
func byDesign(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../docs/conformance.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\|\\s*`([A-Za-z0-9_]+)`\\s*\\|\\s*(.+?)\\s*\\|\\s*$")
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			out[m[1]] = m[2]
		}
	}
	if len(out) == 0 {
		t.Fatal("docs/conformance.md lists no test")
	}
	return out
}

// allActions is a scope that allows every action the gateway checks, on
// every resource, in statements of at most 32 actions.
func allActions() []string {
	acts := s3iam.Actions()
	var stmts []string
	for len(acts) > 0 {
		n := min(len(acts), 32)
		stmts = append(stmts, strings.Join(acts[:n], ",")+" *")
		acts = acts[n:]
	}
	return stmts
}

// maxRetried bounds the tests run again after failing only through the
// gateway (see TestConformance).
const maxRetried = 3

func TestConformance(t *testing.T) {
	bin := testenv.Tool(t, "versitygw", "install it with: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
	documented := byDesign(t)

	// The gateway, in front of its own versitygw, with one grant whose
	// credential needs no session token: the suite cannot send one.
	auth := gatewaytest.New()
	gw, err := awsgw.New(awsgw.Options{
		Authority: auth,
		Targets: []awsgw.Target{{Name: target, Account: "111122223333", Region: region, Endpoint: startVersity(t, bin),
			AccessKeyID: upstreamAK, SecretAccessKey: upstreamSK}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	t.Cleanup(func() {
		srv.Close()
		_ = gw.Close()
	})
	g := auth.Add(gatewaytest.Spec{Identity: "conformance", Target: target, TargetKind: "aws", Account: "111122223333",
		Scope: allActions(), TTL: time.Hour, NoSessionToken: true})

	// Both runs at once: each has its own versitygw.
	directURL := startVersity(t, bin)
	dirA, dirB := t.TempDir(), t.TempDir()
	var direct, through result
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		direct = runSuite(t, bin, dirA, directURL, upstreamAK, upstreamSK)
	}()
	go func() {
		defer wg.Done()
		through = runSuite(t, bin, dirB, srv.URL, g.CredentialID, g.Secret)
	}()
	wg.Wait()
	if t.Failed() {
		return
	}

	var regressions, expected, stale []string
	for name := range direct.passed {
		if through.passed[name] {
			if _, ok := documented[name]; ok {
				stale = append(stale, name)
			}
			continue
		}
		why := through.failed[name]
		if why == "" {
			why = "did not run through the gateway"
		}
		if _, ok := documented[name]; ok {
			expected = append(expected, name+": "+why)
		} else {
			regressions = append(regressions, name+": "+why)
		}
	}
	var gained []string
	for name := range through.passed {
		if !direct.passed[name] {
			gained = append(gained, name)
		}
	}
	// A test that fails through the gateway but not directly is run again
	// through the gateway, alone, up to twice: some of the suite's tests
	// depend on the upstream's timing (ListMultipartUploads orders uploads
	// of one key by their directory's mtime, which ties within the
	// kernel's clock tick, and then by directory order). A gateway
	// regression fails every time; a test that passes on a retry is still
	// named in the output. Only a few are retried: many failures are a
	// regression, not timing.
	var retried []string
	if len(regressions) <= maxRetried {
		kept := regressions[:0]
		for _, r := range regressions {
			name, _, _ := strings.Cut(r, ": ")
			passed := false
			for range 2 {
				again := runTests(t, bin, t.TempDir(), srv.URL, g.CredentialID, g.Secret, name)
				if again.passed[name] {
					passed = true
					break
				}
			}
			if passed {
				retried = append(retried, r)
			} else {
				kept = append(kept, r)
			}
		}
		regressions = kept
	}
	slices.Sort(regressions)
	slices.Sort(retried)
	slices.Sort(expected)
	slices.Sort(stale)
	slices.Sort(gained)

	var b strings.Builder
	fmt.Fprintf(&b, "versitygw full-flow: ran %d directly, %d through the gateway\n", direct.ran, through.ran)
	fmt.Fprintf(&b, "passed directly:             %d\n", len(direct.passed))
	fmt.Fprintf(&b, "passed through the gateway:  %d\n", len(through.passed))
	fmt.Fprintf(&b, "pass directly, fail through the gateway, refused by design (docs/conformance.md): %d\n", len(expected))
	for _, s := range expected {
		fmt.Fprintf(&b, "  - %s\n", s)
	}
	fmt.Fprintf(&b, "pass directly, fail through the gateway, NOT documented: %d\n", len(regressions))
	for _, s := range regressions {
		fmt.Fprintf(&b, "  - %s\n", s)
	}
	if len(retried) > 0 {
		fmt.Fprintf(&b, "failed through the gateway once, passed when run again alone (upstream timing): %d\n", len(retried))
		for _, s := range retried {
			fmt.Fprintf(&b, "  - %s\n", s)
		}
	}
	if len(stale) > 0 {
		fmt.Fprintf(&b, "documented as refused but passing through the gateway now (update docs/conformance.md): %s\n", strings.Join(stale, ", "))
	}
	if len(gained) > 0 {
		fmt.Fprintf(&b, "pass only through the gateway: %s\n", strings.Join(gained, ", "))
	}
	t.Log("\n" + b.String())
	fmt.Print(b.String())
	if len(regressions) > 0 {
		t.Errorf("%d tests pass directly but fail through the gateway and are not documented as refused by design", len(regressions))
	}
}

// TestParse keeps the output parser honest on the suite's format.
func TestParse(t *testing.T) {
	out := "\x1b[36mRUN  \x1b[0mA_one\n\x1b[32mPASS \x1b[0mA_one\n\x1b[36mRUN  \x1b[0mB_two\n" +
		"\x1b[31mFAIL \x1b[0mB_two: expected 403, got 404\n\nRAN: 2 PASS: 1 FAIL: 1 SKIP: 0\n"
	r := parse([]byte(out))
	if r.ran != 2 || !r.passed["A_one"] || r.failed["B_two"] != "expected 403, got 404" {
		t.Fatalf("parse: %+v", r)
	}
}
