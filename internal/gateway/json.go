package gateway

import (
	"fmt"
	"slices"
	"strings"

	"github.com/airlock-dev/airlock/internal/jsonw"
)

// AppendJSON appends c as encoding/json would encode it (the same members,
// order and escaping), without reflection: every gateway call is encoded
// once on its way into the log, and reflection was a tenth of the
// PostgreSQL gateway's CPU per statement. Its Pairs are encoded as if they
// were in Params: the bytes are encoding/json's of c.WithPairsInParams().
func (c Call) AppendJSON(b []byte) ([]byte, error) {
	// The members' names are written as the literal bytes they encode to
	// (none needs escaping), not through jsonw.Key: about a tenth of a
	// call's encoding went to escaping them.
	b = append(b, `{"kind":`...)
	b = jsonw.String(b, c.Kind)
	b = append(b, `,"action":`...)
	b = jsonw.String(b, c.Action)
	if c.Resource != "" {
		b = append(b, `,"resource":`...)
		b = jsonw.String(b, c.Resource)
	}
	if len(c.Also) > 0 {
		b = append(b, `,"also":[`...)
		for i, s := range c.Also {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonw.String(b, s)
		}
		b = append(b, ']')
	}
	b = append(b, `,"allowed":`...)
	b = jsonw.Bool(b, c.Allowed)
	if c.Refused {
		b = append(b, `,"refused":true`...)
	}
	if len(c.Params)+len(c.Pairs) > 0 {
		b = append(b, `,"params":{`...)
		// The pairs, not the keys alone, so that no value is looked up
		// again: a lookup cost about as much as writing a short value.
		var pb [16]Param // on the stack for the usual handful
		ps := append(pb[:0], c.Pairs...)
		for k, v := range c.Params {
			ps = append(ps, Param{k, v})
		}
		sortParams(ps) // encoding/json sorts map keys
		for i, p := range ps {
			if i > 0 && p.Key == ps[i-1].Key {
				// Not a map's encoding: Pairs repeat a key, or one of
				// Params' (see Call.Pairs).
				return nil, fmt.Errorf("gateway: the call's parameter %q is given twice", p.Key)
			}
			b = jsonw.Key(b, p.Key)
			b = jsonw.String(b, p.Value)
		}
		b = append(b, '}')
	}
	for _, m := range [...]struct {
		key string // `,"name":`
		v   string
	}{{`,"status":`, c.Status}, {`,"error":`, c.Error}} {
		if m.v != "" {
			b = append(b, m.key...)
			b = jsonw.String(b, m.v)
		}
	}
	for _, m := range [...]struct {
		key string
		v   int64
	}{{`,"bytes_in":`, c.BytesIn}, {`,"bytes_out":`, c.BytesOut}, {`,"rows":`, c.Rows}, {`,"duration_ns":`, int64(c.Duration)}} {
		if m.v != 0 {
			b = append(b, m.key...)
			b = jsonw.Int(b, m.v)
		}
	}
	return append(b, '}'), nil
}

// sortParams sorts ps by key: by insertion for the handful a call
// carries, slices.SortFunc beyond.
func sortParams(ps []Param) {
	if len(ps) > 12 {
		slices.SortFunc(ps, func(a, b Param) int { return strings.Compare(a.Key, b.Key) })
		return
	}
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].Key < ps[j-1].Key; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}
