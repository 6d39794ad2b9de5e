//go:build !unix

package procpolicy

import "time"

// cpuTime is not read here: without it, Apply leaves GOMAXPROCS alone.
func cpuTime() (time.Duration, bool) { return 0, false }
