package benchkit

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// SyncProbe is the latency of one durable write on the filesystem that
// holds the gateway's journal, measured the way the journal writes: a
// small pwrite into a preallocated, already-synced file, then fdatasync.
//
// The gateways make each call's record durable before forwarding the
// call, so a client with one call in flight waits for at least one such
// write per call, however writes are grouped: the probe's latency sets a
// ceiling on what any gateway with that guarantee can reach here.
type SyncProbe struct {
	Writes int     `json:"writes"`
	P50us  float64 `json:"p50_us"`
	P90us  float64 `json:"p90_us"`
	// CPUus is this process's CPU time per write (user and system).
	CPUus float64 `json:"cpu_us_per_write"`
}

// ProbeSync makes n durable writes of 512 bytes in dir and reports their
// latency.
func ProbeSync(dir string, n int) (SyncProbe, error) {
	if n < 10 {
		return SyncProbe{}, fmt.Errorf("sync probe: %d writes are too few for percentiles", n)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return SyncProbe{}, err
	}
	path := filepath.Join(dir, "sync-probe")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o600)
	if err != nil {
		return SyncProbe{}, fmt.Errorf("sync probe: %w", err)
	}
	defer os.Remove(path)
	defer f.Close()
	// Zeros written and synced first, as the journal preallocates its
	// segments: the probe's writes then change no file metadata.
	if _, err := f.WriteAt(make([]byte, n*512), 0); err != nil {
		return SyncProbe{}, fmt.Errorf("sync probe: %w", err)
	}
	if err := f.Sync(); err != nil {
		return SyncProbe{}, fmt.Errorf("sync probe: %w", err)
	}
	rec := make([]byte, 512)
	for i := range rec {
		rec[i] = byte(i)
	}
	lat := make([]float64, 0, n)
	cpu0 := SelfCPU()
	for i := range n {
		start := time.Now()
		if _, err := f.WriteAt(rec, int64(i)*512); err != nil {
			return SyncProbe{}, fmt.Errorf("sync probe: %w", err)
		}
		if err := fdatasync(f); err != nil {
			return SyncProbe{}, fmt.Errorf("sync probe: %w", err)
		}
		lat = append(lat, float64(time.Since(start).Nanoseconds())/1e3)
	}
	cpu := SelfCPU() - cpu0
	slices.Sort(lat)
	return SyncProbe{Writes: n, P50us: lat[n/2], P90us: lat[n*9/10], CPUus: float64(cpu.Nanoseconds()) / 1e3 / float64(n)}, nil
}

func (p SyncProbe) String() string {
	return fmt.Sprintf("%d writes: p50 %.0f µs, p90 %.0f µs, %.0f µs CPU each", p.Writes, p.P50us, p.P90us, p.CPUus)
}
