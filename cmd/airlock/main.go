// Command airlock is the Airlock server and CLI. See the README.
package main

import (
	"context"
	"os"

	"github.com/airlock-dev/airlock/internal/cli"
	"github.com/airlock-dev/airlock/internal/procpolicy"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		// Before anything else: on Linux this runs the server again with
		// its threads' timer slack set (internal/procpolicy), and returns
		// only if it did not. Not doing so costs CPU, not correctness, so
		// the server starts either way.
		_ = procpolicy.ExecWithTimerSlack(procpolicy.TimerSlack)
	}
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}
