package evidence

import (
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlock-dev/airlock/internal/auditlog"
)

// TestBundleVerifies: the test log's Tuesday bundle holds gA (not gB, of
// another account, nor gC, of the next week), with all its entries.
func TestBundleVerifies(t *testing.T) {
	tl := newTestLog(t)
	file := tl.export(t, account, tuesday)
	res, err := Verify(file, tl.v, testOrigin)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if len(res.Rows) != 1 || res.Rows[0].Grant != gA || res.Rows[0].Calls != 1 || res.Rows[0].DeniedCalls != 1 ||
		res.Rows[0].ApprovedBy != "alice" || res.Rows[0].Status != "revoked" || res.Entries != 12 {
		t.Fatalf("result: %+v", res)
	}
}

// TestBundleOmittedEntry: no entry can be left out of a bundle, not even
// one that changes no row (a command run under the grant, a session's end,
// the issue of its credentials, a result that counted no bytes). Before
// the statement signed the entry list, those four verified without their
// entry.
func TestBundleOmittedEntry(t *testing.T) {
	tl := newTestLog(t)
	file := tl.export(t, account, tuesday)
	b := decode(t, file)
	for i, e := range b.Entries {
		c := b
		c.Entries = slices.Delete(slices.Clone(b.Entries), i, i+1)
		if _, err := Verify(reencode(t, c), tl.v, testOrigin); err == nil {
			t.Errorf("the bundle verifies without entry %d (%s)", e.Index, entryType(t, e))
		}
	}
	// A whole session (start, calls, end) left out.
	c := b
	c.Entries = slices.DeleteFunc(slices.Clone(b.Entries), func(e Entry) bool { return strings.HasPrefix(entryType(t, e), "session.") })
	if _, err := Verify(reencode(t, c), tl.v, testOrigin); err == nil {
		t.Error("the bundle verifies without its session")
	}
}

// TestBundleAltered: entries added (of another grant, another account,
// another day), reordered or swapped, the checkpoint replaced by an older
// one (with the proofs for its tree), the statement of another bundle:
// none verifies.
func TestBundleAltered(t *testing.T) {
	tl := newTestLog(t)
	file := tl.export(t, account, tuesday)
	b := decode(t, file)
	other := decode(t, tl.export(t, "444455556666", tuesday))   // gB's
	later := decode(t, tl.export(t, account, "2026-03-10"))     // gC's
	wednesday := decode(t, tl.export(t, account, "2026-03-04")) // gA's again, another day
	if len(other.Entries) == 0 || len(later.Entries) == 0 {
		t.Fatal("no other bundles")
	}
	// An older checkpoint: the log grows, the same review exported again
	// has a newer checkpoint; the old one and its proofs put in it.
	tl.append(t, auditlog.Event{Type: "identity.added", Actor: "airlock", Data: map[string]any{"name": "carol"}})
	newer := decode(t, tl.export(t, account, tuesday))
	if newer.Checkpoint == b.Checkpoint {
		t.Fatal("the log did not grow")
	}
	if _, err := Verify(reencode(t, newer), tl.v, testOrigin); err != nil {
		t.Fatalf("the newer bundle: %v", err)
	}

	sorted := func(es []Entry) []Entry {
		slices.SortFunc(es, func(a, b Entry) int { return int(a.Index - b.Index) })
		return es
	}
	cases := map[string]func(c *Bundle){
		"an entry of another account's grant added": func(c *Bundle) {
			c.Entries = sorted(append(slices.Clone(c.Entries), other.Entries[0]))
		},
		"another day's grant added, with its row": func(c *Bundle) {
			c.Entries = sorted(append(slices.Clone(c.Entries), later.Entries...))
			c.Rows = append(slices.Clone(c.Rows), later.Rows...)
		},
		"two entries swapped": func(c *Bundle) {
			c.Entries = slices.Clone(c.Entries)
			c.Entries[3], c.Entries[4] = c.Entries[4], c.Entries[3]
		},
		"two entries' data swapped": func(c *Bundle) {
			c.Entries = slices.Clone(c.Entries)
			c.Entries[3].Data, c.Entries[4].Data = c.Entries[4].Data, c.Entries[3].Data
		},
		"an entry twice": func(c *Bundle) {
			c.Entries = slices.Insert(slices.Clone(c.Entries), 3, c.Entries[3])
		},
		"the older checkpoint in the newer bundle": func(c *Bundle) {
			*c = newer
			c.Checkpoint = b.Checkpoint
		},
		"the older checkpoint and its proofs in the newer bundle": func(c *Bundle) {
			*c = newer
			c.Checkpoint, c.Entries = b.Checkpoint, b.Entries
		},
		"the newer checkpoint and its proofs under the older statement": func(c *Bundle) {
			c.Checkpoint, c.Entries = newer.Checkpoint, newer.Entries
		},
		"the newer bundle's statement":         func(c *Bundle) { c.Statement = newer.Statement },
		"Wednesday's day, Tuesday's statement": func(c *Bundle) { c.Day = wednesday.Day },
		"the day changed":                      func(c *Bundle) { c.Day = "2026-03-04" },
		"the account changed":                  func(c *Bundle) { c.Account = "444455556666" },
		"the format relabelled v2": func(c *Bundle) {
			c.Format = FormatV2
		},
		"a row's reason changed": func(c *Bundle) {
			c.Rows = slices.Clone(c.Rows)
			c.Rows[0].Reason = "routine"
		},
	}
	// gA was live on Wednesday too: Wednesday's bundle is Tuesday's with
	// another day and statement, and verifies as Wednesday's, not Tuesday's.
	if res, err := Verify(reencode(t, wednesday), tl.v, testOrigin); err != nil || res.Day != "2026-03-04" {
		t.Fatalf("Wednesday's bundle: %+v, %v", res, err)
	}
	for name, change := range cases {
		c := b
		change(&c)
		if _, err := Verify(reencode(t, c), tl.v, testOrigin); err == nil {
			t.Errorf("%s: the bundle verifies", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestBundleV2 keeps a bundle exported by the previous release (format
// v2, testdata/bundle-v2.json, of the test log above): it still verifies,
// with EntriesSigned false and the warning that says what it cannot
// prove; an entry that changes no row can be left out of it, which is why;
// a changed row still fails.
func TestBundleV2(t *testing.T) {
	file, err := os.ReadFile("testdata/bundle-v2.json")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile("testdata/bundle-v2.pub")
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(pub)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Verify(file, v, testOrigin)
	if err != nil {
		t.Fatalf("a v2 bundle no longer verifies: %v", err)
	}
	if res.Format != FormatV2 || res.EntriesSigned || len(res.Warnings) != 1 || res.Warnings[0] != V2Warning || len(res.Rows) != 1 || res.Rows[0].Grant != gA {
		t.Fatalf("v2 result: %+v", res)
	}
	b := decode(t, file)
	c := b
	c.Entries = slices.DeleteFunc(slices.Clone(b.Entries), func(e Entry) bool { return entryType(t, e) == "grant.command" })
	if res, err := Verify(reencode(t, c), v, testOrigin); err != nil || res.EntriesSigned {
		t.Fatalf("v2 without its command: %+v, %v (the limit the warning states)", res, err)
	}
	c = b
	c.Entries = slices.DeleteFunc(slices.Clone(b.Entries), func(e Entry) bool { return entryType(t, e) == "grant.approved" })
	if _, err := Verify(reencode(t, c), v, testOrigin); err == nil {
		t.Fatal("v2 without its approval verifies")
	}
	c = b
	c.Format = Format
	if _, err := Verify(reencode(t, c), v, testOrigin); err == nil {
		t.Fatal("a v2 bundle relabelled v3 verifies")
	}
}

// TestBundleSizeBound: Build refuses to write a bundle larger than
// verify-bundle reads (it wrote one, which no verifier would take), and
// Verify refuses one.
func TestBundleSizeBound(t *testing.T) {
	tl := newTestLog(t)
	file := tl.export(t, account, tuesday)
	defer func(n int) { maxSize = n }(maxSize)
	maxSize = len(file) - 1
	if _, err := Verify(file, tl.v, testOrigin); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("verify of a bundle over the bound: %v", err)
	}
	if b, err := tl.tryExport(t, account, tuesday); err == nil || !strings.Contains(err.Error(), "more than the") {
		t.Fatalf("build of a bundle over the bound: %d bytes, %v", len(b), err)
	}
}

// TestBundleOfAnotherLog: the log's key may sign more than one log (a
// staging copy run with the same key names another origin). A bundle of
// the other log's review, every signature in it the key's, is refused
// naming both origins, and so is any bundle when no origin is given.
// Before, Verify compared no origin and the staging bundle verified.
func TestBundleOfAnotherLog(t *testing.T) {
	tl := newTestLog(t)
	staging := newTestLogOf(t, &testLog{signer: tl.signer, v: tl.v, vkey: tl.vkey, origin: "airlock/staging"})
	file := staging.export(t, account, tuesday)
	if _, err := Verify(file, tl.v, "airlock/staging"); err != nil {
		t.Fatalf("the staging bundle, against its own log: %v", err)
	}
	_, err := Verify(file, tl.v, testOrigin)
	if err == nil || !strings.Contains(err.Error(), `"airlock/staging"`) || !strings.Contains(err.Error(), `"`+testOrigin+`"`) {
		t.Fatalf("a bundle of another log: %v", err)
	}
	if _, err := Verify(tl.export(t, account, tuesday), tl.v, ""); err == nil {
		t.Fatal("a bundle verifies with no origin to check")
	}
}

// TestBundleSignatureNotCanonical: a statement whose signature line is
// re-encoded with the bits that base64 leaves unused set is a different
// file carrying the same signature. note.Open accepts it (it decodes
// leniently), so without the verifier's own strict check this edited file
// verified as the same bundle.
func TestBundleSignatureNotCanonical(t *testing.T) {
	tl := newTestLog(t)
	b := decode(t, tl.export(t, account, tuesday))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	st := strings.TrimSuffix(b.Statement, "\n")
	// The last signature line's base64 encodes 68 bytes: it ends in one
	// '=' and the character before it carries two unused bits.
	if !strings.HasSuffix(st, "=") {
		t.Fatalf("signature line does not end in one pad: %q", st[strings.LastIndex(st, "\n")+1:])
	}
	i := len(st) - 2
	k := strings.IndexByte(alphabet, st[i])
	if k < 0 {
		t.Fatalf("not base64: %q", st[i])
	}
	edited := st[:i] + string(alphabet[k^1]) + st[i+1:] + "\n"
	if edited == b.Statement {
		t.Fatal("nothing edited")
	}
	// The edit is invisible to the note's own (lenient) check.
	if _, err := note.Open([]byte(edited), note.VerifierList(tl.v)); err != nil {
		t.Fatalf("note.Open refuses the edited statement (the test no longer reaches the verifier's check): %v", err)
	}
	c := b
	c.Statement = edited
	_, err := Verify(reencode(t, c), tl.v, testOrigin)
	if err == nil || !strings.Contains(err.Error(), "canonical base64") {
		t.Fatalf("a statement with a non-canonical signature: %v", err)
	}
}
