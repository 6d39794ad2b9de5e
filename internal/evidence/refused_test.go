package evidence

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/review"
)

// checkRefusedRow checks gD's row as every format's rows are derived: the INSERT
// PostgreSQL refused is denied and not scope used, the SELECT is used.
func checkRefusedRow(t *testing.T, res Result) {
	t.Helper()
	i := slices.IndexFunc(res.Rows, func(r review.Row) bool { return r.Grant == gD })
	if i < 0 {
		t.Fatalf("no row of %s: %+v", gD, res.Rows)
	}
	r := res.Rows[i]
	if r.Calls != 1 || r.DeniedCalls != 1 || !slices.Equal(r.ScopeUsed, []string{"pg:select orders"}) {
		t.Fatalf("%s: %d calls, %d denied, scope used %q; want 1, 1, [pg:select orders]", gD, r.Calls, r.DeniedCalls, r.ScopeUsed)
	}
}

// withEntry returns b with the entry of type typ holding from replaced
// by to (in its decoded bytes), as a forger would edit it.
func withEntry(t *testing.T, b Bundle, from, to string) Bundle {
	t.Helper()
	c := b
	c.Entries = slices.Clone(b.Entries)
	n := 0
	for i, e := range c.Entries {
		data, err := b64.DecodeString(e.Data)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(from)) {
			c.Entries[i].Data = b64.EncodeToString(bytes.Replace(data, []byte(from), []byte(to), 1))
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d entries hold %q", n, from)
	}
	return c
}

// TestBundleV4Refused: a bundle exported now says v5, whose documented
// derivation has the refused rule as v4's does (a verifier written
// against v3's text derives other rows from a refused result), and
// verifies with no warning; the refused mark cannot be taken off, moved or added, nor
// the rows changed to what the entries would say without it, nor the
// bundle relabelled v3 (whose verifier would then report a mismatch
// instead of a forgery).
func TestBundleV4Refused(t *testing.T) {
	tl := newTestLog(t)
	appendRefused(t, tl)
	file := tl.export(t, account, tuesday)
	if !bytes.HasPrefix(file, []byte(`{"format":"airlock-evidence-bundle/v5",`)) {
		t.Fatalf("the export is not v5: %.60s", file)
	}
	res, err := Verify(file, tl.v, testOrigin)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if res.Format != "airlock-evidence-bundle/v5" || !res.EntriesSigned || len(res.Warnings) != 0 || len(res.Rows) != 2 {
		t.Fatalf("result: %+v", res)
	}
	checkRefusedRow(t, res)

	b := decode(t, file)
	const mark = `"refused":true,`
	cases := map[string]Bundle{
		"the refused mark taken off":    withEntry(t, b, mark, ""),
		"the refused mark moved":        withEntry(t, withEntry(t, b, mark, ""), `"params":{"n":"2"},`, `"params":{"n":"2"},`+mark),
		"the refused mark turned false": withEntry(t, b, mark, `"refused":false,`),
	}
	// The rows the entries would imply without the rule.
	noRule := b
	noRule.Rows = slices.Clone(b.Rows)
	for i := range noRule.Rows {
		if noRule.Rows[i].Grant == gD {
			noRule.Rows[i].Calls, noRule.Rows[i].DeniedCalls = 2, 0
			noRule.Rows[i].ScopeUsed = []string{"pg:insert orders", "pg:select orders"}
		}
	}
	cases["the rows derived without the rule"] = noRule
	v3 := b
	v3.Format = FormatV3
	cases["relabelled v3"] = v3
	for name, c := range cases {
		if _, err := Verify(reencode(t, c), tl.v, testOrigin); err == nil {
			t.Errorf("%s: the bundle verifies", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestBundleV3Refused: v3 bundles exported before the refused rule hold
// no refused result and verify as they did, without a warning
// (testdata/bundle-v3.json); those the release that added the rule
// exported (testdata/bundle-v3-refused.json, written by 0c2218d) were
// derived with it: they verify, derived with it, and the result warns
// that a verifier written against the v3 text reports their rows as a
// mismatch. Neither can be relabelled v4 or v5.
func TestBundleV3Refused(t *testing.T) {
	old, v := fixture(t, "bundle-v3")
	res, err := Verify(old, v, testOrigin)
	if err != nil || res.Format != FormatV3 || !res.EntriesSigned || len(res.Warnings) != 0 {
		t.Fatalf("a v3 bundle without refused results: %+v, %v", res, err)
	}
	file, v := fixture(t, "bundle-v3-refused")
	res, err = Verify(file, v, testOrigin)
	if err != nil {
		t.Fatalf("a v3 bundle holding a refused result: %v", err)
	}
	if res.Format != FormatV3 || !res.EntriesSigned || len(res.Warnings) != 1 || res.Warnings[0] != RefusedWarning {
		t.Fatalf("a v3 bundle holding a refused result: %+v", res)
	}
	if !strings.Contains(RefusedWarning, "airlock-evidence-bundle/v4") {
		t.Fatalf("the warning does not name the format to export: %s", RefusedWarning)
	}
	checkRefusedRow(t, res)
	for _, f := range []string{FormatV4, Format} {
		b := decode(t, file)
		b.Format = f
		if _, err := Verify(reencode(t, b), v, testOrigin); err == nil {
			t.Fatalf("a v3 bundle relabelled %s verifies", f)
		}
	}
}
