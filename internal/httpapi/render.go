package httpapi

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
)

// The console and airlock's grant show and session show render the same
// log entries, and must read alike: these are the renderings they share,
// each laying them out its own way (HTML, a terminal line).
// EntrySummary renders an entry's actor and data compactly, on one line:
// "by <actor>" (or "by -") and its data's non-empty fields as key=JSON in
// key order. It is for the console's and airlock's listings of entries
// that are not calls, which must read alike; an entry that is not JSON is
// shown as it is.
func EntrySummary(raw json.RawMessage) string {
	var e struct {
		Actor string         `json:"actor"`
		Data  map[string]any `json:"data"`
	}
	if json.Unmarshal(raw, &e) != nil {
		return string(raw)
	}
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		v := e.Data[k]
		if v == nil || v == "" {
			continue
		}
		b, _ := json.Marshal(v)
		parts = append(parts, k+"="+string(b))
	}
	actor := e.Actor
	if actor == "" {
		actor = "-"
	}
	s := "by " + actor
	if len(parts) > 0 {
		s += "  " + strings.Join(parts, " ")
	}
	return s
}

// RequestText renders a request: its main text (the SQL statement,
// trimmed, when it has one, and then sql is set; else its action and
// resource) and its details: its other parameters in key order as
// key="value", its other checks ("also …": a copy's source, every table
// of a batch or transaction, the statements past the 64th; parameters are
// cut to a bound, these are not), and a denied call's error in
// parentheses, joined by two spaces.
func RequestText(c gateway.Call) (text string, sql bool, details string) {
	params := maps.Clone(c.Params)
	if stmt, ok := params["statement"]; ok {
		delete(params, "statement")
		text, sql = strings.TrimSpace(stmt), true
	} else {
		text = c.Action + " " + c.Resource
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(params)) {
		parts = append(parts, k+"="+strconv.Quote(params[k]))
	}
	for _, a := range c.Also {
		parts = append(parts, "also "+a)
	}
	if !c.Allowed && c.Error != "" {
		parts = append(parts, "("+c.Error+")")
	}
	return text, sql, strings.Join(parts, "  ")
}

// ResultText renders a result: its status, rows, bytes, duration, error
// and an upstream's refusal, those it has, joined by commas.
func ResultText(c gateway.Call) string {
	var parts []string
	if c.Status != "" {
		parts = append(parts, c.Status)
	}
	if c.Rows != 0 {
		parts = append(parts, fmt.Sprintf("%d rows", c.Rows))
	}
	if c.BytesIn != 0 || c.BytesOut != 0 {
		parts = append(parts, fmt.Sprintf("%d B in, %d B out", c.BytesIn, c.BytesOut))
	}
	if c.Duration != 0 {
		parts = append(parts, c.Duration.Round(time.Microsecond).String())
	}
	if c.Error != "" {
		parts = append(parts, "error: "+c.Error)
	}
	if c.Refused {
		// Counted as denied, not as scope used (review.Count).
		parts = append(parts, "✗ DENIED by the upstream")
	}
	return strings.Join(parts, ", ")
}
