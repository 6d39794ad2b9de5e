package auditlog

import "testing"

// BenchmarkAppend8 is BenchmarkAppend with 8 callers, the concurrency of
// the gateway benchmarks (8 clients each waiting for its record).
func BenchmarkAppend8(b *testing.B) { benchAppend(b, 8) }
