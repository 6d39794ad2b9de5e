package cli

import (
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
)

func TestDiagnostic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "heap.prof")
	heap := func(w io.Writer) error { return pprof.Lookup("heap").WriteTo(w, 0) }
	stop, err := diagnostic("AIRLOCK_MEMPROFILE", path, func(io.Writer) error { return nil }, heap)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("before stop: %v, %v; want an empty file", fi, err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Errorf("after stop: %v, %v; want the heap profile", fi, err)
	}

	_, err = diagnostic("AIRLOCK_TRACE", filepath.Join(t.TempDir(), "no", "such", "dir"), func(io.Writer) error { return nil }, heap)
	if err == nil || !strings.HasPrefix(err.Error(), "AIRLOCK_TRACE: ") {
		t.Errorf("unwritable path: err = %v, want one naming AIRLOCK_TRACE", err)
	}
}
