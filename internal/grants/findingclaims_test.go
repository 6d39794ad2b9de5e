package grants_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
)

// TestFindingOfLongClaimsBounded: an instance's workload claims are the
// token's, and a token may be 16 KiB (workload.MaxTokenLength) of claims
// that whoever runs the workload chose in part (a branch, a workflow
// name). A finding names its instance and up to findings.MaxOthers others
// by their keys, which held each claim whole: one shared-identity finding
// of eleven such instances was some 180 KB in the log, on every open grant
// of the identity, and a page of 1,000 of them (GET /v1/findings) more
// than the CLI reads (64 MiB), so airlock findings could list none of the
// day's findings. Keys (and so findings) now hold a long claim as its
// start and a hash of the whole, so instances still differ by it.
func TestFindingOfLongClaimsBounded(t *testing.T) {
	h := newHarness(t, harnessOptions{Manual: true, FindingsWindow: 10 * time.Minute})
	from := func(ip, ref string) model.Identity {
		id := h.id(bot)
		id.Instance = &model.Instance{IP: ip, Claims: map[string]string{"ref": ref, "run_id": "7"}}
		return id
	}
	long := strings.Repeat("refs/heads/feature-", 800) // 15,200 bytes
	for i := range 12 {
		if err := h.Svc.ObserveCall(h.ctx, from(fmt.Sprintf("10.0.0.%d", i), long+fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	fs := h.sharedFindings()
	if len(fs) != 11 {
		t.Fatalf("%d shared-identity findings, want 11 (one per instance after the first)", len(fs))
	}
	for _, f := range fs {
		b, _ := json.Marshal(f)
		if len(b) > 4096 {
			t.Fatalf("a finding of %d instances is %d bytes in the log; want at most 4 KiB", len(f.Others)+1, len(b))
		}
		if !strings.Contains(f.Instance, "ref=refs/heads/feature-") || !strings.Contains(f.Instance, "run_id=7") {
			t.Errorf("the finding's instance %q does not say which claims it had", f.Instance)
		}
	}
	// Instances that differ only past the part kept are still told apart:
	// the last one's finding names all eleven others.
	if last := fs[len(fs)-1]; !strings.Contains(last.Detail, "from 12 instances") {
		t.Errorf("the last finding: %s; want 12 instances told apart", last.Detail)
	}
}
