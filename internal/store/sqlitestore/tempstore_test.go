package sqlitestore

import (
	"context"
	"testing"
)

// The writer keeps statement journals and temporary tables in memory: a
// batch of log entries copied in one multi-row statement would otherwise
// spill its statement journal to a temporary file, page by page.
func TestWriterTempStoreInMemory(t *testing.T) {
	s, _ := openTemp(t)
	var mode int
	if err := s.w.QueryRowContext(context.Background(), "PRAGMA temp_store").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != 2 { // 2 = MEMORY
		t.Fatalf("temp_store %d, want 2 (MEMORY)", mode)
	}
}
