package policy

import (
	"syscall"
	"time"
)

// threadCPU is the CPU time the calling OS thread has used
// (getrusage(RUSAGE_THREAD)), or -1 if unknown.
func threadCPU() time.Duration {
	const rusageThread = 1
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
