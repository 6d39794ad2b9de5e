// Package benchkit is what the benchmark programs under bench/ share: a
// testing.TB stand-in so that they can use internal/testenv outside a
// test, the real `airlock serve` run as a subprocess and driven through
// its CLI, and readings of a process's CPU and memory from /proc.
package benchkit

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// Runner lets a benchmark program reuse internal/testenv, which takes a
// testing.TB, outside a test. The embedded TB is nil: testenv only calls
// the methods defined here, and any other would panic loudly rather than
// misbehave quietly.
type Runner struct {
	testing.TB
	name     string
	cleanups []func()
}

// abort is how Fatal and Skip unwind to Main, which recovers it, runs the
// cleanups and exits.
type abort struct {
	msg  string
	skip bool
}

// Helper does nothing; it is there for testenv.
func (r *Runner) Helper() {}

// Fatal ends the run with a failure, after the cleanups.
func (r *Runner) Fatal(args ...any) { panic(abort{msg: fmt.Sprint(args...)}) }

// Fatalf ends the run with a failure, after the cleanups.
func (r *Runner) Fatalf(format string, args ...any) { panic(abort{msg: fmt.Sprintf(format, args...)}) }

// Skip ends the run without a failure (a tool is missing), after the cleanups.
func (r *Runner) Skip(args ...any) { panic(abort{msg: fmt.Sprint(args...), skip: true}) }

// Skipf ends the run without a failure, after the cleanups.
func (r *Runner) Skipf(format string, args ...any) {
	panic(abort{msg: fmt.Sprintf(format, args...), skip: true})
}

// Logf writes a line on stderr.
func (r *Runner) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

// Name is the program's name.
func (r *Runner) Name() string { return r.name }

// Cleanup registers f to run when the run ends, last registered first.
func (r *Runner) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

// TempDir is a fresh directory removed when the run ends.
func (r *Runner) TempDir() string {
	d, err := os.MkdirTemp("", r.name+"-")
	if err != nil {
		r.Fatalf("temp dir: %v", err)
	}
	r.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Close runs the cleanups, last registered first, as testing does. Main
// calls it; a program calls it earlier to report after cleaning up.
func (r *Runner) Close() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	r.cleanups = nil
}

// Main runs body with a Runner named name and a context cancelled on
// SIGINT or SIGTERM, then the cleanups, and returns the exit code: 0, or
// 1 after Fatal (the message on stderr), or 0 after Skip (also noted).
func Main(name string, body func(ctx context.Context, r *Runner)) (code int) {
	r := &Runner{name: name}
	defer r.Close()
	defer func() {
		if v := recover(); v != nil {
			a, ok := v.(abort)
			if !ok {
				panic(v)
			}
			if a.skip {
				fmt.Fprintln(os.Stderr, name+": skipped:", a.msg)
				code = 0
				return
			}
			fmt.Fprintln(os.Stderr, name+":", a.msg)
			code = 1
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	body(ctx, r)
	return 0
}

var began = time.Now()

// Progress notes a step on stderr with the time since the run began.
func Progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%5.1fs] %s\n", time.Since(began).Seconds(), fmt.Sprintf(format, args...))
}
