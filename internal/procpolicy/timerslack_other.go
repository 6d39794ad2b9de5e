//go:build !linux

package procpolicy

import "time"

// ExecWithTimerSlack does nothing here: timer slack is Linux's.
func ExecWithTimerSlack(time.Duration) error { return nil }
