//go:build !linux

package testenv

import "time"

// ThreadCPU is unknown outside Linux: -1.
func ThreadCPU() time.Duration { return -1 }
