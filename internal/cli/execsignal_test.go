//go:build unix

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
)

// envChildArgs makes the test binary run the CLI (as cmd/airlock does)
// with these JSON-encoded arguments instead of the tests: a test that must
// see how the real process meets a signal runs it as a child.
const envChildArgs = "AIRLOCK_CLI_TEST_ARGS"

func TestMain(m *testing.M) {
	if js := os.Getenv(envChildArgs); js != "" {
		var args []string
		if err := json.Unmarshal([]byte(js), &args); err != nil {
			os.Stderr.WriteString("bad " + envChildArgs + ": " + err.Error() + "\n")
			os.Exit(2)
		}
		os.Exit(Main(context.Background(), args, os.Stdout, os.Stderr, os.Getenv))
	}
	os.Exit(m.Run())
}

// TestExecSurvivesSignalWhileEnding: a signal that arrives while exec ends
// its grant after CMD exited (a second Ctrl-C, the terminal closing) does
// not kill exec before the grant is ended. Before, exec stopped catching
// signals when CMD exited, so the default action killed it mid-request and
// left the grant active until it expired. The API is reached through a
// proxy that holds exec's end request until the signal has had its chance.
func TestExecSurvivesSignalWhileEnding(t *testing.T) {
	l := startServer(t, nil)
	target, err := url.Parse("http://" + l.apiAddr)
	if err != nil {
		t.Fatal(err)
	}
	endSeen, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/end") {
			once.Do(func() { close(endSeen) })
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	args, _ := json.Marshal([]string{"exec", "aws-prod", "--allow", "s3:GetObject arn:aws:s3:::logs/app/*", "--for", "5m",
		"--reason", "second signal", "--", "true"})
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envChildArgs+"="+string(args), EnvAddr+"=http://"+ln.Addr().String(), EnvToken+"="+l.botKey)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited, waited := make(chan error, 1), make(chan struct{})
	go func() { exited <- cmd.Wait(); close(waited) }()
	defer func() {
		cmd.Process.Kill() // fails harmlessly once it has exited
		<-waited
	}()

	select {
	case <-endSeen:
	case err := <-exited:
		t.Fatalf("exec exited before ending its grant: %v\n%s", err, errOut.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("exec never tried to end its grant:\n%s", errOut.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	// Killed by the signal, exec exits at once; give it a second to.
	select {
	case err := <-exited:
		close(release)
		g := l.grantOf(errOut.String())
		t.Fatalf("exec exited on SIGINT while ending its grant (%v); the grant is left %s", err, g.Status)
	case <-time.After(time.Second):
	}
	close(release)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exec: %v\n%s", err, errOut.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("exec did not return once its end request went through:\n%s", errOut.String())
	}
	if g := l.grantOf(errOut.String()); g.Status != model.Ended || !strings.Contains(g.EndComment, "command exited with status 0") {
		t.Fatalf("grant after exec: status %s, comment %q", g.Status, g.EndComment)
	}
}
