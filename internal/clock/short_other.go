//go:build !linux

package clock

import "time"

// preciseSleep is nil where the runtime's timers are used as they are: the
// millisecond lateness AfterShort works around is Linux's epoll timeout.
var preciseSleep func(time.Duration)
