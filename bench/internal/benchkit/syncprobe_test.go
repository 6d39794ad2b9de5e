package benchkit

import (
	"os"
	"testing"
)

func TestProbeSync(t *testing.T) {
	dir := t.TempDir()
	p, err := ProbeSync(dir, 20)
	if err != nil {
		t.Fatal(err)
	}
	if p.Writes != 20 || p.P50us <= 0 || p.P90us < p.P50us {
		t.Errorf("probe = %+v: want 20 writes, 0 < p50 <= p90", p)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("the probe left %d files behind", len(left))
	}
	if _, err := ProbeSync(dir, 3); err == nil {
		t.Error("3 writes: want an error, too few for percentiles")
	}
}
