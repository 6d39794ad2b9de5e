package benchkit

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
)

// Median is the middle of xs (the mean of the two middle values when
// their number is even), 0 for none.
func Median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// WriteJSON writes v, indented, to path, creating its directory.
func WriteJSON(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// FreeAddr is a loopback address with a port free a moment ago.
func FreeAddr(r *Runner) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Write writes s to path (mode 0600) or ends the run.
func Write(r *Runner, path, s string) {
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		r.Fatal(err)
	}
}
