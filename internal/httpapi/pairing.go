package httpapi

import (
	"encoding/json"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
)

// PairWindow is how far in the log (sequence numbers) a session's result
// may be logged after its request and still be shown under it, by the
// console and by airlock session show alike (ResultPairer); one logged
// further is shown where its batch was logged. It is one page of events
// (grants.MaxEventsPage) less one: the console reads that many events
// before and after a page to pair across its edges, and a read of a
// page's worth of a session's events spans at least as many sequence
// numbers.
const PairWindow = grants.MaxEventsPage - 1

// ResultPairer pairs a session's results with the requests they answer,
// given the session's events in log order, for the console and airlock
// session show, which must show the same: a result answers the request of
// its pairing key (PairKey) logged last before it, with no request or
// result of the key between them, when it is logged within PairWindow of
// it. That depends on nothing but the events between the two, so a
// reader of a page with the events PairWindow around it decides as a
// reader of the whole session.
type ResultPairer struct {
	// last is, by pairing key, the request of the key logged last, with
	// no request or result of the key since.
	last map[string]int64
}

// PairedResult is one result of a session.results entry.
type PairedResult struct {
	Seq  int64 // the entry's
	Idx  int   // 1-based place in the entry
	Call gateway.Call
	// Answers is the sequence number of the request the result is shown
	// under, 0 for none (it is shown at its batch).
	Answers int64
}

// Add takes the session's next event in log order. For a session.results
// entry (that decodes) it returns its results and true.
func (p *ResultPairer) Add(e Event) ([]PairedResult, bool) {
	if p.last == nil {
		p.last = map[string]int64{}
	}
	if e.Type != "session.results" {
		if c, ok := EntryCall(e.Entry); ok && c.Kind != "result" {
			if k := PairKey(c); k != "" {
				p.last[k] = e.Seq
			}
		}
		return nil, false
	}
	var ent struct {
		Data struct {
			Results []gateway.Call `json:"results"`
		} `json:"data"`
	}
	if json.Unmarshal(e.Entry, &ent) != nil {
		return nil, false
	}
	rs := make([]PairedResult, len(ent.Data.Results))
	for i, c := range ent.Data.Results {
		rs[i] = PairedResult{Seq: e.Seq, Idx: i + 1, Call: c}
		k := PairKey(c)
		if k == "" {
			continue
		}
		if req, ok := p.last[k]; ok && e.Seq-req <= PairWindow {
			rs[i].Answers = req
		}
		delete(p.last, k)
	}
	return rs, true
}

// Awaits reports whether e, an event added, is a request a result logged
// after newest (the last event added) may still answer.
func (p *ResultPairer) Awaits(e Event, newest int64) bool {
	if newest-e.Seq >= PairWindow {
		return false
	}
	c, ok := EntryCall(e.Entry)
	if !ok || c.Kind == "result" {
		return false
	}
	k := PairKey(c)
	req, ok := p.last[k]
	return k != "" && ok && req == e.Seq
}

// Forget drops the requests no result logged after newest can answer.
func (p *ResultPairer) Forget(newest int64) {
	for k, req := range p.last {
		if newest-req >= PairWindow {
			delete(p.last, k)
		}
	}
}

// PairKey is what pairs a result with its request: the statement number
// (PostgreSQL) or the request id (AWS); "" for none.
func PairKey(c gateway.Call) string {
	if n, ok := c.Params["n"]; ok {
		return "n=" + n
	}
	if id, ok := c.Params["request_id"]; ok {
		return "id=" + id
	}
	return ""
}

// EntryCall decodes a session.call entry's call.
func EntryCall(raw json.RawMessage) (gateway.Call, bool) {
	var e struct {
		Type string       `json:"type"`
		Data gateway.Call `json:"data"`
	}
	if json.Unmarshal(raw, &e) != nil || e.Type != "session.call" {
		return gateway.Call{}, false
	}
	return e.Data, true
}
