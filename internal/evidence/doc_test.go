package evidence

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
)

// TestDocNamesRowKeysInOrder: docs/evidence-bundle.md is the
// specification an independent verifier is written from, and a bundle is
// in canonical form, so a row's keys must be listed there in the order
// review.Row encodes them. The list stopped at bytes_out while every v4
// row also carries auth and findings, which such a verifier would reject
// or re-encode without.
func TestDocNamesRowKeysInOrder(t *testing.T) {
	b, err := os.ReadFile("../../docs/evidence-bundle.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "`Row` is the review row")
	if start < 0 {
		t.Fatal("docs/evidence-bundle.md no longer says \"`Row` is the review row\": the test does not find the list")
	}
	list := doc[start:]
	list = list[:strings.Index(list, "(`log_mismatch` never appears")]

	// Left out of a bundle's rows (deriveRows), as the page says after the list.
	notInBundle := map[string]bool{"log_mismatch": true, "approved_auth": true, "ended_auth": true}
	inOrder(t, "Row", list, jsonKeys(reflect.TypeFor[review.Row]()), notInBundle)
	if i := strings.Index(list, "`findings`"); i >= 0 {
		inOrder(t, "a finding", list[i:], jsonKeys(reflect.TypeFor[model.Finding]()), nil)
	}
}

// jsonKeys are the names encoding/json gives typ's fields, in order.
func jsonKeys(typ reflect.Type) []string {
	var keys []string
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			keys = append(keys, name)
		}
	}
	return keys
}

// inOrder checks that text names each key, in backquotes, in keys' order.
func inOrder(t *testing.T, what, text string, keys []string, skip map[string]bool) {
	t.Helper()
	at := 0
	for _, k := range keys {
		if skip[k] {
			continue
		}
		i := strings.Index(text[at:], "`"+k+"`")
		if i < 0 {
			t.Errorf("docs/evidence-bundle.md: %s's keys leave out %q, or name it out of order (want %v)", what, k, keys)
			return
		}
		at += i + len(k) + 2
	}
}
