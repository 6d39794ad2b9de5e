package cli

import (
	"encoding/json"
	"regexp"
	"sort"
	"testing"
)

// TestAuditVerifyJSONNames checks that airlock audit verify -o json prints
// the API's report with its snake_case members: it printed the Go field
// names (Entries, OK, Elapsed in nanoseconds), unlike every other -o json.
func TestAuditVerifyJSONNames(t *testing.T) {
	l := startServer(t, nil)
	code, out, errOut := l.as(l.aliceKey, "audit", "verify", "-o", "json")
	if code != 0 {
		t.Fatalf("audit verify -o json: exit %d\n%s%s", code, out, errOut)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	var keys []string
	for k := range rep {
		keys = append(keys, k)
		if !snake.MatchString(k) {
			t.Errorf("member %q is not snake_case", k)
		}
	}
	sort.Strings(keys)
	for _, k := range []string{"entries", "checkpoints", "size", "root", "ok", "problems", "problem_count", "elapsed_ns"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("no member %q (members: %v)", k, keys)
		}
	}
	if rep["ok"] != true {
		t.Errorf("ok = %v, want true", rep["ok"])
	}
}
