package evidence

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// fixture reads a kept bundle and its verifier key from testdata.
func fixture(t testing.TB, name string) ([]byte, note.Verifier) {
	t.Helper()
	file, err := os.ReadFile("testdata/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile("testdata/" + name + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(pub)))
	if err != nil {
		t.Fatal(err)
	}
	return file, v
}

// FuzzVerify feeds verify-bundle's parser arbitrary files, seeded with a
// v3 and a v2 bundle (and a v4 one, and a v5 one carrying a log.refused
// entry) and variations of them: it must never panic, and whatever
// verifies must be what the log's key signed. A v3 or v5 bundle
// verifies only as the exact file exported (the statement names every
// entry, the proofs are determined by the checkpoint and the index, and
// the encoding is canonical); a v2 bundle only with the rows exported.
// The seeds (f.Add and testdata/fuzz/FuzzVerify) run as regression tests
// with every go test.
//
// Fuzz it with a minimization bounded by count, as make fuzz does
// (-fuzzminimizetime=200x): an input here is a whole bundle, 8-22 KB,
// which Go's minimizer (each byte, then each span) never finishes
// shrinking, so each new input, frequent early in a run, held its
// worker for the whole time bound (60 s by default) while nothing was
// fuzzed. Each execution is a fraction of a millisecond.
func FuzzVerify(f *testing.F) {
	v3, k3 := fixture(f, "bundle-v3")
	v2, k2 := fixture(f, "bundle-v2")
	f.Add(v3)
	f.Add(v2)
	v4, _ := fixture(f, "bundle-v4")
	f.Add(v4)
	v5, k5 := fixture(f, "bundle-v5")
	f.Add(v5)
	f.Add(bytes.Replace(v5, []byte(`,"refusals":[`), []byte(`,"refusals":[{"index":0,"data":"","proof":[]},`), 1))
	f.Add(bytes.Replace(v5, []byte(`,"refusals":[`), []byte(`,"refusals":[{},`), 1))
	f.Add(bytes.Replace(v5, []byte(`"airlock-evidence-bundle/v5"`), []byte(`"airlock-evidence-bundle/v4"`), 1))
	f.Add([]byte{})
	f.Add([]byte("{}\n"))
	f.Add([]byte("null\n"))
	f.Add([]byte(`{"format":"airlock-evidence-bundle/v3"}` + "\n"))
	f.Add(v3[:len(v3)/2])
	f.Add(bytes.Replace(v3, []byte(`"index":`), []byte(`"index":-`), 1))
	f.Add(bytes.Replace(v3, []byte(`"index":1,`), []byte(`"index":99999999999,`), 1))
	f.Add(bytes.Replace(v3, []byte(`"proof":[`), []byte(`"proof":["AAAA",`), 1))
	f.Add(bytes.Replace(v3, []byte(`"entries":[`), []byte(`"entries":[{"index":0,"data":"","proof":[]},`), 1))
	f.Add(bytes.Replace(v2, []byte(`"rows":[{`), []byte(`"rows":[{"findings":null,`), 1))
	// Lists decoded only once bounded (TestVerifyMemoryBoundedOnHostileBundle).
	f.Add(bytes.Replace(v3, []byte(`"rows":[`), []byte(`"rows":[{},{},`), 1))
	f.Add(bytes.Replace(v3, []byte(`"entries":[`), []byte(`"entries":[{},`), 1))
	f.Add(bytes.Replace(v3, []byte(`"proof":[`), []byte(`"proof":["","",`), 1))
	f.Add([]byte(`{"format":"airlock-evidence-bundle/v3","rows":[],"entries":null}` + "\n"))
	want2 := rowsOf(f, v2)
	f.Fuzz(func(t *testing.T, file []byte) {
		if res, err := Verify(file, k3, testOrigin); err == nil && !bytes.Equal(file, v3) {
			t.Fatalf("a file other than the exported one verifies: %+v", res)
		}
		if res, err := Verify(file, k5, testOrigin); err == nil && !bytes.Equal(file, v5) {
			t.Fatalf("a file other than the exported v5 one verifies: %+v", res)
		}
		if res, err := Verify(file, k2, testOrigin); err == nil {
			if res.EntriesSigned || !bytes.Equal(rowsOf(t, file), want2) {
				t.Fatalf("a changed v2 bundle verifies: %+v", res)
			}
		}
	})
}

func rowsOf(t testing.TB, file []byte) []byte {
	var b struct {
		Rows json.RawMessage `json:"rows"`
	}
	if err := json.Unmarshal(file, &b); err != nil {
		t.Fatal(err)
	}
	return b.Rows
}

// TestKeptBundles: the kept bundles verify, so that a change to the
// format or its checks that would refuse bundles already handed to
// auditors fails here first.
func TestKeptBundles(t *testing.T) {
	// bundle-v4 and bundle-v3-refused hold gD's refused INSERT besides
	// gA; bundle-v3-refused was exported by the release that added the
	// refused rule, before v4 named it (RefusedWarning). bundle-v5 holds
	// gE too, whose second call a log.refused entry it carries names
	// (appendVoided): its row counts two calls.
	for _, c := range []struct {
		name          string
		signed        bool
		rows, entries int
		warnings      int
		refusals      int
	}{{"bundle-v5", true, 3, 29, 0, 1}, {"bundle-v4", true, 2, 21, 0, 0}, {"bundle-v3-refused", true, 2, 21, 1, 0}, {"bundle-v3", true, 1, 12, 0, 0}, {"bundle-v2", false, 1, 12, 1, 0}} {
		file, v := fixture(t, c.name)
		res, err := Verify(file, v, testOrigin)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if res.EntriesSigned != c.signed || len(res.Rows) != c.rows || res.Rows[0].Grant != gA || res.Entries != c.entries || len(res.Warnings) != c.warnings ||
			res.Refusals != c.refusals || len(res.Void) != c.refusals {
			t.Fatalf("%s: %+v", c.name, res)
		}
		if c.refusals > 0 {
			if r := rowOf(t, res.Rows, gE); r.Calls != 2 || r.BytesOut != 20 {
				t.Fatalf("%s: %s counts %d calls, %d bytes out; want 2, 20", c.name, gE, r.Calls, r.BytesOut)
			}
		}
	}
}
