// Command airlock is the Airlock server and CLI. See the README.
package main

import (
	"context"
	"os"

	"github.com/airlock-dev/airlock/internal/cli"
)

func main() {
	os.Exit(cli.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}
