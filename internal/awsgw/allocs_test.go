package awsgw

import "testing"

// handlerAllocsMax is what one GET 1 KiB allocates through the handler,
// as BenchmarkGatewayHandler/Get1KiB calls it: the benchmark's own
// request clone, in-memory upstream and authority included (about 19 of
// them). Lower it with each cut; a change that adds allocations per call
// fails here.
const handlerAllocsMax = 53

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
