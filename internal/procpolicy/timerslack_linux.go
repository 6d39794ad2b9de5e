package procpolicy

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// kernelSlack is Linux's timer slack for a thread of normal priority: a
// process still on it was given none by its operator (systemd's
// TimerSlackNSec=, prctl in a wrapper).
const kernelSlack = 50 * time.Microsecond

// ExecWithTimerSlack makes every thread of the process sleep with timer
// slack slack, sysmon's included, by setting the calling thread's and
// replacing the process with a new run of the same binary, same arguments
// and environment (execve keeps the caller's slack; every thread the
// runtime then starts inherits it from the thread that starts it, and
// sysmon is started before any of the program's code runs, so no later
// call could reach it). Call it first thing, before anything that a
// restart would repeat. It returns only when it did not replace the
// process: nil when the slack is in place (the second run) or the
// operator's is (anything but the kernel's 50 µs), else why it could not.
func ExecWithTimerSlack(slack time.Duration) error {
	cur, err := timerSlack()
	if err != nil {
		return err
	}
	if cur == slack || cur != kernelSlack {
		return nil
	}
	// prctl and execve on one thread: the slack is the thread's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, uintptr(slack), 0, 0, 0); err != nil {
		return fmt.Errorf("setting the timer slack: %w", err)
	}
	err = syscall.Exec("/proc/self/exe", os.Args, os.Environ())
	// Still here: this thread goes back to the process's slack.
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 0, 0, 0, 0)
	return fmt.Errorf("running again with the timer slack: %w", err)
}

// timerSlack is the process's main thread's timer slack.
func timerSlack() (time.Duration, error) {
	b, err := os.ReadFile("/proc/self/timerslack_ns")
	if err != nil {
		return 0, err
	}
	ns, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	return time.Duration(ns), err
}
