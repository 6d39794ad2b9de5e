package clock

import (
	"errors"
	"syscall"
	"time"
)

// preciseSleep sleeps d in nanosleep(2), resumed with what is left after a
// signal interrupts it (the runtime's own signals, a profiler's).
var preciseSleep = func(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for {
		var left syscall.Timespec
		err := syscall.Nanosleep(&ts, &left)
		if !errors.Is(err, syscall.EINTR) {
			return
		}
		ts = left
	}
}
