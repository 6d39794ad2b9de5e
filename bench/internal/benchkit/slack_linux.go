package benchkit

import (
	"os/exec"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// startWithSlack starts cmd from a thread whose timer slack is slack, which
// the child inherits. `airlock serve` given its own slack
// (procpolicy.TimerSlack) does not run itself again to set it
// (procpolicy.ExecWithTimerSlack), which under a wrapper (valgrind for
// pgbench -cgdump and s3prof -wrap) would run the server outside it.
func startWithSlack(cmd *exec.Cmd, slack time.Duration) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(slack), 0, 0, 0); err != nil {
		return cmd.Start()
	}
	defer unix.Prctl(unix.PR_SET_TIMERSLACK, 0, 0, 0, 0)
	return cmd.Start()
}
