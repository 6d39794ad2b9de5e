package main

import (
	"fmt"
	"os"
	"testing"
)

// runner lets this program reuse internal/testenv, which takes a
// testing.TB, outside a test. The embedded TB is nil: testenv only calls
// the methods defined here, and any other would panic loudly rather than
// misbehave quietly.
type runner struct {
	testing.TB
	cleanups []func()
}

// abort is how Fatal and Skip unwind to main, which recovers it, runs the
// cleanups and exits.
type abort struct {
	msg  string
	skip bool
}

func (r *runner) Helper() {}

func (r *runner) Fatal(args ...any) { panic(abort{msg: fmt.Sprint(args...)}) }

func (r *runner) Fatalf(format string, args ...any) { panic(abort{msg: fmt.Sprintf(format, args...)}) }

func (r *runner) Skip(args ...any) { panic(abort{msg: fmt.Sprint(args...), skip: true}) }

func (r *runner) Skipf(format string, args ...any) {
	panic(abort{msg: fmt.Sprintf(format, args...), skip: true})
}

func (r *runner) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

func (r *runner) Name() string { return "s3bench" }

func (r *runner) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

// TempDir is a fresh directory removed when the run ends.
func (r *runner) TempDir() string {
	d, err := os.MkdirTemp("", "s3bench-")
	if err != nil {
		r.Fatalf("temp dir: %v", err)
	}
	r.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// close runs the cleanups, last registered first, as testing does.
func (r *runner) close() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	r.cleanups = nil
}
