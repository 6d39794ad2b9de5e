package grants

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
)

func TestResultsDataAppendJSONMatchesEncodingJSON(t *testing.T) {
	for _, d := range []resultsData{
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
