package metrics

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
)

// TestReadmeMetricsTableMatchesTheScrape: the README's Metrics table names
// each airlock_* metric a scrape serves, and only those. Operators build
// dashboards and alerts from that table; a metric renamed in code left
// an alert on a name that no longer exists, which never fires.
func TestReadmeMetricsTableMatchesTheScrape(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n### Metrics\n")
	section, _, ok2 := strings.Cut(section, "\n### ")
	if !ok || !ok2 {
		t.Fatal("README.md has no \"### Metrics\" section")
	}
	var documented []string
	cell := regexp.MustCompile("`(airlock_[a-z_]+)`")
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `airlock_") {
			continue
		}
		first := strings.SplitN(line, " | ", 2)[0]
		for _, m := range cell.FindAllStringSubmatch(first, -1) {
			documented = append(documented, m[1])
		}
	}
	slices.Sort(documented)

	// Every metric touched, so that the labelled ones appear too.
	m := New()
	m.LogSize(func() int64 { return 1 })
	m.ObserveBatch(auditlog.BatchStats{Ops: 1, Waits: []time.Duration{0}})
	m.SessionStarted("aws")
	m.CallRecorded("aws", true)
	m.CallRefused("postgres")
	m.Rejected("aws")
	var served []string
	for _, mm := range regexp.MustCompile(`(?m)^# TYPE (airlock_[a-z_]+) `).FindAllStringSubmatch(scrape(t, m), -1) {
		served = append(served, mm[1])
	}
	slices.Sort(served)
	if len(served) < 5 {
		t.Fatalf("the scrape serves %v: the test does not see it", served)
	}
	if !slices.Equal(served, documented) {
		t.Errorf("a scrape serves\n%v\nthe README's Metrics table lists\n%v", served, documented)
	}
}
