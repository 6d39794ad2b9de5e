package sessions

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/airlock-dev/airlock/internal/gateway"
)

func TestResultsDataAppendJSONMatchesEncodingJSON(t *testing.T) {
	for _, d := range []Results{
		{},
		{Results: []gateway.Call{}},
		{Results: []gateway.Call{{Kind: "result", Action: "pg:select", Params: map[string]string{"n": "1"}, Rows: 3, Duration: time.Millisecond}}, Dropped: 2},
		{Results: []gateway.Call{{Kind: "result"}, {Kind: "result", Error: "<x>"}}},
	} {
		want, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.AppendJSON(nil)
		if err != nil || string(got) != string(want) {
			t.Errorf("AppendJSON(%+v)\n got %s (%v)\nwant %s", d, got, err, want)
		}
	}
}

// TestResultsDataGrowsOnce: a batch of similar results is encoded with one
// growth of the buffer, not a doubling per few results.
func TestResultsDataGrowsOnce(t *testing.T) {
	d := Results{}
	for i := range 64 {
		d.Results = append(d.Results, gateway.Call{Kind: "result", Action: "s3:GetObject", Resource: "arn:aws:s3:::bucket/app/object-" + strconv.Itoa(i),
			Allowed: true, Params: map[string]string{"request_id": strconv.Itoa(i)}, Status: "200", BytesOut: 1024, Duration: time.Duration(i) * time.Microsecond})
	}
	n := testing.AllocsPerRun(20, func() {
		if _, err := d.AppendJSON(make([]byte, 0, 512)); err != nil {
			t.Fatal(err)
		}
	})
	if n > 2 {
		t.Errorf("encoding 64 results: %v allocations, want at most 2", n)
	}
}

// TestStateSize holds a session's running summary to the size class an
// idle session's share was measured in (bench/README.md, "An idle
// session's own objects"): the review's Tally fitted in by making
// dropped an int32 and active a Unix time.
func TestStateSize(t *testing.T) {
	if n := unsafe.Sizeof(state{}); n > 352 {
		t.Errorf("state is %d bytes, more than its 352-byte size class", n)
	}
	if d := addDropped(math.MaxInt32-1, 5); d != math.MaxInt32 {
		t.Errorf("dropped past 2³¹−1 is %d, want it to stay at %d", d, math.MaxInt32)
	}
}
