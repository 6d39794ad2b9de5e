package httpapi

import (
	"encoding/json"
	"testing"

	"github.com/airlock-dev/airlock/internal/store"
)

// TestEventsMarkVoid: the entries a page names void (a log.refused
// entry's) carry "void": true; the others have no such member.
func TestEventsMarkVoid(t *testing.T) {
	es := []store.LogEntry{{Seq: 3, Data: []byte(`{}`)}, {Seq: 4, Data: []byte(`{}`)}, {Seq: 9, Data: []byte(`{}`)}}
	got := events(es, []int64{4, 9})
	if got[0].Void || !got[1].Void || !got[2].Void {
		t.Fatalf("void marks %v %v %v, want false true true", got[0].Void, got[1].Void, got[2].Void)
	}
	b, err := json.Marshal(got[:2])
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"seq":3,"time":"0001-01-01T00:00:00Z","type":"","entry":{}},{"seq":4,"time":"0001-01-01T00:00:00Z","type":"","void":true,"entry":{}}]`; string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
}
