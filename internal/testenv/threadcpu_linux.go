package testenv

import (
	"syscall"
	"time"
)

// ThreadCPU is the CPU time the calling OS thread has used
// (getrusage(RUSAGE_THREAD)), or -1 if unknown. A test that times a
// computation against another by CPU rather than by the clock is not
// misled by a loaded machine, where a longer run is more often
// descheduled: callers lock the goroutine to its thread
// (runtime.LockOSThread) around the two readings.
func ThreadCPU() time.Duration {
	const rusageThread = 1
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
