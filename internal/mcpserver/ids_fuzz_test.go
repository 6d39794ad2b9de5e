package mcpserver

import (
	"encoding/json"
	"math/big"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// FuzzRequestIDAgreesWithSDK checks the guard in front of the SDK
// (notJSON and requestIDProblem, as both transports use them) against the SDK's own
// decoder, the peer whose reading counts: whatever request the SDK would
// run under an id, the guard must have read that same message, and the id
// the SDK answers with must be the one the client sent, exactly. A message
// the guard cannot read but the SDK can would slip past it, and its call
// be answered under another id (or none) while it still runs.
func FuzzRequestIDAgreesWithSDK(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":"a","method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":1.5,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1e23,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":null,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":-0,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1,"id":2.5,"method":"ping"}`,
		`{"jsonrpc":"2.0","ID":2.5,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":2.5,"method":"ping"} `,
		`{"jsonrpc":"2.0","id":2.5,"id":1,"method":"ping"}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"\ud800"}}`,
		`{"jsonrpc":"2.0","id":1,"result":{}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) > 1<<12 {
			return
		}
		why := notJSON(msg)
		if why == "" {
			why, _ = requestIDProblem(msg)
		}
		m, err := jsonrpc.DecodeMessage(msg)
		if err != nil {
			return // refused by the SDK itself
		}
		r, ok := m.(*jsonrpc.Request)
		if !ok || !r.ID.IsValid() {
			return // a response, or a notification: nothing is answered
		}
		if why != "" {
			return // refused before the SDK sees it
		}
		var sent map[string]json.RawMessage
		if err := json.Unmarshal(msg, &sent); err != nil {
			t.Fatalf("the SDK runs %q under id %v, but the guard cannot read it: %v", msg, r.ID.Raw(), err)
		}
		raw, has := sent["id"]
		if !has {
			t.Fatalf("the SDK runs %q under id %v, but the guard sees no id", msg, r.ID.Raw())
		}
		answered, err := json.Marshal(r.ID.Raw())
		if err != nil {
			t.Fatal(err)
		}
		if !sameJSONValue(raw, answered) {
			t.Fatalf("request %q is answered under id %s, not the %s it was sent with", msg, answered, raw)
		}
	})
}

// sameJSONValue reports whether a and b are the same JSON string, or
// numbers of exactly the same value.
func sameJSONValue(a, b json.RawMessage) bool {
	var sa, sb string
	if json.Unmarshal(a, &sa) == nil && json.Unmarshal(b, &sb) == nil {
		return sa == sb
	}
	fa, _, errA := big.ParseFloat(string(a), 10, 1000, big.ToNearestEven)
	fb, _, errB := big.ParseFloat(string(b), 10, 1000, big.ToNearestEven)
	return errA == nil && errB == nil && fa.Cmp(fb) == 0
}
