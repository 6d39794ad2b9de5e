//go:build !linux

package benchkit

import (
	"os/exec"
	"time"
)

// startWithSlack is cmd.Start: timer slack is Linux's.
func startWithSlack(cmd *exec.Cmd, _ time.Duration) error { return cmd.Start() }
