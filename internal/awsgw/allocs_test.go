package awsgw

import (
	"strconv"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/sigv4"
)

// handlerAllocsMax is what one GET 1 KiB allocates through the handler,
// as BenchmarkGatewayHandler/Get1KiB calls it: the benchmark's own
// request clone, in-memory upstream and authority included (about 19 of
// them). Lower it with each cut; a change that adds allocations per call
// fails here. The bound on the upstream's answer (answerwait.go) costs
// none: its timer is kept from an earlier call; nor does the result's
// parameters (its Pairs, in the exchange).
const handlerAllocsMax = 30

func TestGatewayHandlerAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation bounds hold only without the race detector")
	}
	serve, _ := handlerBench(t, false, 1<<10)
	serve()
	if n := testing.AllocsPerRun(200, serve); n > handlerAllocsMax {
		t.Errorf("a GET 1 KiB through the handler allocates %v times, want at most %d", n, handlerAllocsMax)
	} else {
		t.Logf("%v allocations per GET 1 KiB", n)
	}
}

// scopeServiceSplit is scopeService as it was, with strings.Split.
func scopeServiceSplit(cred string) string {
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) != 5 || !sigv4.ValidService(parts[3]) {
		return ""
	}
	return parts[3]
}

func FuzzScopeService(f *testing.F) {
	for _, s := range []string{
		"AKID/20260101/us-east-1/s3/aws4_request", " AKID/20260101/us-east-1/sts/aws4_request ",
		"AKID/20260101/us-east-1/s3", "AKID/20260101/us-east-1/s3/aws4_request/x", "////", "a/b/c//e",
		"AKID/20260101/us-east-1/S3/aws4_request", "", "/", "AKID/2026/r/s3 /aws4_request",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cred string) {
		if got, want := scopeService(cred), scopeServiceSplit(cred); got != want {
			t.Fatalf("scopeService(%q) = %q, strings.Split's way %q", cred, got, want)
		}
	})
}

// TestStatusText: a result's Status is the code's decimal text, as
// strconv.Itoa gave it, for every code.
func TestStatusText(t *testing.T) {
	for code := -1; code < 1000; code++ {
		if got, want := statusText(code), strconv.Itoa(code); got != want {
			t.Fatalf("statusText(%d) = %q, want %q", code, got, want)
		}
	}
}
