package review

import (
	"fmt"
	"testing"
)

// TestUsedAgreesAtTheCap: a summary cut at MaxUsed may hold a pair the log
// shows used past the cut instead of the log's last one, and nothing else:
// a pair never used, a pair dropped without one in exchange, or any
// difference in a summary that was not cut is still a difference.
func TestUsedAgreesAtTheCap(t *testing.T) {
	pairs := func(n int, last ...string) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("s3:GetObject k%03d", i))
		}
		return append(out, last...)
	}
	logUsed := pairs(MaxUsed-1, "s3:GetObject b")
	capped := Capped{Past: []string{"s3:GetObject a"}, Full: logUsed}
	for _, tc := range []struct {
		name   string
		stored []string
		live   bool
		capped Capped
		want   bool
	}{
		{"the same", logUsed, false, capped, true},
		{"another pair used past the cut", pairs(MaxUsed-1, "s3:GetObject a"), false, capped, true},
		{"while live", pairs(MaxUsed-1, "s3:GetObject a"), true, capped, true},
		{"a pair never used", pairs(MaxUsed-1, "s3:GetObject secret"), false, capped, false},
		{"one pair fewer", pairs(MaxUsed - 1), false, capped, false},
		{"not cut", pairs(MaxUsed-1, "s3:GetObject a"), false, Capped{}, false},
	} {
		if got := usedAgrees(tc.stored, logUsed, tc.live, tc.capped, true); got != tc.want {
			t.Errorf("%s: usedAgrees = %v, want %v", tc.name, got, tc.want)
		}
	}
}
