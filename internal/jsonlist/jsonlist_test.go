package jsonlist

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestAsEncoder: the array written a page at a time is what the Encoder
// writes of the whole slice, whatever the pages: as the whole document,
// and (Prefix "  ") as a member of a top-level object.
func TestAsEncoder(t *testing.T) {
	type row struct {
		A string `json:"a"`
		B []int  `json:"b,omitempty"`
	}
	all := []row{{A: "<x>"}, {A: "y", B: []int{1, 2}}, {A: "z\n"}}
	for _, nested := range []bool{false, true} {
		for _, pages := range [][][]row{{}, {nil}, {all[:0]}, {all}, {all[:1], nil, all[1:]}, {all[:2], all[2:]}} {
			var got bytes.Buffer
			w := Writer[row]{W: &got}
			if nested {
				got.WriteString("{\n  \"first\": 1,\n  \"rows\": ")
				w.Prefix = "  "
			}
			flat := []row{}
			for _, p := range pages {
				if err := w.Add(p); err != nil {
					t.Fatal(err)
				}
				flat = append(flat, p...)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			var whole any = flat
			if nested {
				got.WriteString("\n}\n")
				whole = map[string]any{"first": 1, "rows": flat}
			}
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetIndent("", "  ")
			if err := enc.Encode(whole); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("nested %v, pages %v:\n%s\nwant\n%s", nested, pages, got.String(), want.String())
			}
		}
	}
}
