//go:build !linux

package policy

import "time"

// threadCPU is unknown outside Linux.
func threadCPU() time.Duration { return -1 }
