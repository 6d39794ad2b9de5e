package evidence

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// TestVerifyMemoryBoundedOnHostileBundle: verify-bundle reads files from
// anyone, up to MaxSize (256 MiB). Decoded whole before any check, a list
// of empty objects took far more memory than the file: each "{}," of
// "rows" a 560-byte review.Row (a 50 MB file took 24 GB), each of
// "entries" an Entry, each "" of a proof a string header (47× to 1569×
// the file's size, here). Each such file must be refused having
// allocated no more than a few times its size.
func TestVerifyMemoryBoundedOnHostileBundle(t *testing.T) {
	file, v := fixture(t, "bundle-v3")
	list := func(item string, n int) string { return strings.TrimSuffix(strings.Repeat(item+",", n), ",") }
	const n = 200_000
	replaceList := func(key string) func(string) []byte {
		return func(items string) []byte {
			i := bytes.Index(file, []byte(`"`+key+`":[`))
			if i < 0 {
				t.Fatalf("no %s in the fixture", key)
			}
			i += len(key) + 4
			j := i + bytes.Index(file[i:], []byte("]"))
			if key == "rows" || key == "entries" {
				// The list ends where the next key begins.
				next := map[string]string{"rows": `],"entries":`, "entries": "]}\n"}[key]
				j = bytes.LastIndex(file, []byte(next))
			}
			return append(append(append([]byte{}, file[:i]...), items...), file[j:]...)
		}
	}
	cases := map[string][]byte{
		"rows of empty objects":    replaceList("rows")(list("{}", n)),
		"entries of empty objects": replaceList("entries")(list("{}", n)),
		"a proof of empty strings": replaceList("proof")(list(`""`, n)),
		"findings of empty objects": bytes.Replace(file, []byte(`"findings":[]`),
			[]byte(`"findings":[`+list("{}", n)+`]`), 1),
	}
	for name, hostile := range cases {
		if len(hostile) < 2*n {
			t.Fatalf("%s: the file was not made (%d bytes)", name, len(hostile))
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Verify(hostile, v, testOrigin)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Fatalf("%s: the bundle verifies", name)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8*uint64(len(hostile)) {
			t.Errorf("%s: verifying a %d-byte file allocated %d bytes (%.0f×) before refusing it: %v", name, len(hostile), alloc, float64(alloc)/float64(len(hostile)), err)
		} else {
			t.Logf("%s: %d bytes, %.1f× allocated: %v", name, len(hostile), float64(alloc)/float64(len(hostile)), err)
		}
	}
}
