package testenv

import (
	"time"

	"golang.org/x/sys/unix"
)

// ThreadCPU is the CPU time the calling OS thread has used
// (clock_gettime(CLOCK_THREAD_CPUTIME_ID)), or -1 if unknown. A test that
// times a computation against another by CPU rather than by the clock is
// not misled by a loaded machine, where a longer run is more often
// descheduled: callers lock the goroutine to its thread
// (runtime.LockOSThread) around the two readings.
//
// Not getrusage(RUSAGE_THREAD): it samples the thread at the scheduler's
// ticks (4 ms here), so a 2 ms computation read as 0 or as 4.4 ms, more
// than the clock; this clock counts the scheduler's own nanoseconds.
func ThreadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return -1
	}
	return time.Duration(ts.Nano())
}
