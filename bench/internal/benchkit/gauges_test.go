package benchkit

import (
	"strings"
	"testing"
)

func TestParseGauges(t *testing.T) {
	const scrape = `# HELP go_memstats_heap_inuse_bytes x
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 1.2e+07
go_memstats_heap_inuse_bytes_total 9
go_memstats_stack_inuse_bytes 655360
go_gc_duration_seconds{quantile="0.5"} 0.0001
`
	got, err := ParseGauges(strings.NewReader(scrape), []string{"go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes"})
	if err != nil {
		t.Fatal(err)
	}
	if got["go_memstats_heap_inuse_bytes"] != 1.2e7 || got["go_memstats_stack_inuse_bytes"] != 655360 || len(got) != 2 {
		t.Fatalf("got %v", got)
	}
	if _, err := ParseGauges(strings.NewReader(scrape), []string{"go_memstats_sys_bytes"}); err == nil {
		t.Fatal("a missing gauge was not an error")
	}
}
