package main

import (
	"slices"
	"testing"
)

func TestAttachCommand(t *testing.T) {
	for _, tc := range []struct {
		line     string
		pid, n   int
		wantArgs []string
	}{
		{"perf trace -s -p {pid} -o trace.{calls}", 4242, 500, []string{"perf", "trace", "-s", "-p", "4242", "-o", "trace.500"}},
		{"  /tmp/threads.sh {pid} {calls}  out.{calls}.{pid} ", 7, 10000, []string{"/tmp/threads.sh", "7", "10000", "out.10000.7"}},
		{"strace -f -c -p {pid}", 1, 1, []string{"strace", "-f", "-c", "-p", "1"}},
	} {
		c := attachCommand(tc.line, tc.pid, tc.n)
		if !slices.Equal(c.Args, tc.wantArgs) {
			t.Errorf("attachCommand(%q, %d, %d).Args = %q, want %q", tc.line, tc.pid, tc.n, c.Args, tc.wantArgs)
		}
	}
}
