package mcpserver

import (
	"encoding/json"
	"math"
	"strconv"
)

// maxExactID bounds a numeric request id: the SDK reads every id into a
// float64 and answers with it as an int64, so a fraction was dropped (1.5
// answered as 1), an integer past 2^53 rounded (9007199254740993 as
// ...992) and a larger one overflowed (1e23 as -9223372036854775808):
// the answer went to no request of the client's, or to another one, and
// the call hung until the client gave up.
const maxExactID = 1<<53 - 1

// requestIDProblem says what is wrong with the id of msg (one JSON-RPC
// message, valid JSON), if it is a request with an id the SDK cannot
// answer exactly, and gives the id as sent so that the refusal carries
// it. A null id (which MCP forbids, and which the SDK dropped without a
// word, so the client waited for an answer) is refused too. Anything else
// is left to the SDK.
func requestIDProblem(msg []byte) (string, json.RawMessage) {
	var m map[string]json.RawMessage
	if json.Unmarshal(msg, &m) != nil {
		return "", nil
	}
	raw, hasID := m["id"]
	if _, isRequest := m["method"]; !hasID || !isRequest || len(raw) == 0 {
		return "", nil
	}
	switch c := raw[0]; {
	case string(raw) == "null":
		return "a request's id may not be null: send a string or an integer (a notification has no id)", nil
	case c == '-' || c >= '0' && c <= '9':
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || f != math.Trunc(f) || math.Abs(f) > maxExactID {
			return "a numeric id must be an integer of at most 2^53-1 in magnitude, which the answer can carry exactly; send a string or a smaller integer", raw
		}
	}
	return "", nil
}

// echoID is raw if it is an id an answer may carry (a string or a
// number, as sent), else nil.
func echoID(raw json.RawMessage) json.RawMessage {
	if len(raw) > 0 && (raw[0] == '"' || raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		return raw
	}
	return nil
}
