package procpolicy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// slackChildEnv names the directory of a child run of this test binary
// that calls ExecWithTimerSlack (TestMain): each run of it appends a line
// to runs there, and the run that goes on writes each of its threads'
// timer slack to slacks.
const slackChildEnv = "AIRLOCK_TEST_TIMERSLACK_CHILD"

// childSlack is the slack the child asks for: neither the kernel's nor
// TimerSlack, so that only ExecWithTimerSlack can have set it.
const childSlack = 300 * time.Microsecond

func TestMain(m *testing.M) {
	if dir := os.Getenv(slackChildEnv); dir != "" {
		os.Exit(slackChild(dir))
	}
	os.Exit(m.Run())
}

func slackChild(dir string) int {
	f, err := os.OpenFile(filepath.Join(dir, "runs"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err == nil {
		_, err = f.WriteString("run\n")
		f.Close()
	}
	if err == nil {
		err = ExecWithTimerSlack(childSlack)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var b strings.Builder
	for _, task := range tasks {
		s, err := os.ReadFile("/proc/" + task.Name() + "/timerslack_ns")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintf(&b, "%s %s", task.Name(), s)
	}
	if err := os.WriteFile(filepath.Join(dir, "slacks"), []byte(b.String()), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestExecWithTimerSlack: a process on the kernel's timer slack runs
// again, once, and then every one of its threads (sysmon's among them,
// which the runtime starts before any of the program's code) has the
// slack asked for; a process given a slack by its operator is left as it
// is.
func TestExecWithTimerSlack(t *testing.T) {
	for _, c := range []struct {
		name  string
		start time.Duration // the slack the child starts with
		runs  int
		want  time.Duration
	}{
		{"the kernel's slack", kernelSlack, 2, childSlack},
		{"an operator's slack", 120 * time.Microsecond, 1, 120 * time.Microsecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), slackChildEnv+"="+dir)
			if out, err := startWithSlack(cmd, c.start); err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			runs, err := os.ReadFile(filepath.Join(dir, "runs"))
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(string(runs), "\n"); n != c.runs {
				t.Errorf("the child ran %d times, want %d", n, c.runs)
			}
			slacks, err := os.ReadFile(filepath.Join(dir, "slacks"))
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(string(slacks)), "\n")
			// The main thread, sysmon and at least one more.
			if len(lines) < 3 {
				t.Fatalf("the child had %d threads: %q", len(lines), slacks)
			}
			for _, l := range lines {
				if want := fmt.Sprint(c.want.Nanoseconds()); !strings.HasSuffix(l, " "+want) {
					t.Errorf("thread %s: slack %s ns, want %s", strings.Fields(l)[0], strings.Fields(l)[1], want)
				}
			}
		})
	}
}

// startWithSlack runs cmd from a thread whose timer slack is slack, which
// the child inherits, and returns its output.
func startWithSlack(cmd *exec.Cmd, slack time.Duration) ([]byte, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(slack), 0, 0, 0); err != nil {
		return nil, err
	}
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, 0, 0, 0, 0)
	return cmd.CombinedOutput()
}
