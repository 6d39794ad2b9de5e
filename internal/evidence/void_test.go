package evidence

import (
	"bytes"
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
)

// gE is an S3 grant of the test log's account on Tuesday whose session
// made three calls, the second of which a log.refused entry names (its
// batch's commit outcome was unknown, its caller was told it failed): the
// row counts two. sE is its session.
const (
	gE = "g_eeeeeeeeeeee"
	sE = "s_eeeeeeeeeeee"
)

// voided is what appendVoided appended: the seq of gE's voided call, of
// the log.refused entry naming it (with an entry of gB, of another
// account, in the same batch), and of a second log.refused entry naming
// only gB's entry.
type voided struct {
	call, refusal, other int64
}

// appendVoided appends gE's entries to tl's log, and the log.refused
// entries naming its second call.
func appendVoided(t testing.TB, tl *testLog) voided {
	t.Helper()
	ctx := context.Background()
	grant, ev := autoGrant(t, gE, sE, "aws-prod", "aws", "s3:GetObject arn:aws:s3:::logs/app/*", "read logs", "AKIAEXAMPLE2", "2026-03-03T18:00:00Z")
	call := func(when, obj string) auditlog.Event {
		return ev("session.call", when, map[string]any{"kind": "request", "action": "s3:GetObject", "resource": "arn:aws:s3:::logs/app/" + obj,
			"allowed": true, "bytes_out": 10})
	}
	at, _ := time.Parse(time.RFC3339, "2026-03-03T18:01:02Z")
	tl.append(t, append(grant,
		ev("session.started", "2026-03-03T18:01:00Z", map[string]any{"client": "aws-cli", "target": "aws-prod"}),
		call("2026-03-03T18:01:01Z", "a.log"),
		call("2026-03-03T18:01:02Z", "b.log"),
		auditlog.Event{Type: "grant.command", Time: at, GrantID: gB, Actor: "log-triage-bot", Data: map[string]any{"argv": []string{"true"}, "via": "exec"}},
		call("2026-03-03T18:01:03Z", "c.log"),
	)...)
	var v voided
	es, err := tl.st.LogEntries(ctx, store.LogFilter{GrantID: gE})
	if err != nil {
		t.Fatal(err)
	}
	var calls []int64
	for _, e := range es {
		if e.Type == "session.call" {
			calls = append(calls, e.Seq)
		}
	}
	if len(calls) != 3 || calls[2] != calls[1]+2 {
		t.Fatalf("gE's calls at %v", calls)
	}
	v.call = calls[1]
	// As the next batch appends it once it learns that the batch of the
	// second call (and gB's command) committed.
	tl.append(t, auditlog.Event{Type: auditlog.RefusedType, Actor: "airlock", Data: map[string]any{"entries": [][2]int64{{v.call, v.call + 2}}, "reason": "test"}})
	v.refusal = calls[2] + 1
	tl.append(t, ev("session.ended", "2026-03-03T18:02:00Z", map[string]any{"calls": 2, "bytes_out": 20,
		"used": []string{"s3:GetObject arn:aws:s3:::logs/app/a.log", "s3:GetObject arn:aws:s3:::logs/app/c.log"}}))
	tl.append(t, auditlog.Event{Type: auditlog.RefusedType, Actor: "airlock", Data: map[string]any{"entries": [][2]int64{{v.call + 1, v.call + 2}}, "reason": "test"}})
	v.other = v.refusal + 2
	return v
}

// resign signs b's statement again with tl's key, as only the holder of
// the log's key can: a bundle whose rows or lists were changed then fails
// on what it says, not on its signature.
func (tl *testLog) resign(t testing.TB, b Bundle) []byte {
	t.Helper()
	text, err := statementText(b)
	if err != nil {
		t.Fatal(err)
	}
	st, err := note.Sign(&note.Note{Text: text}, tl.signer)
	if err != nil {
		t.Fatal(err)
	}
	b.Statement = string(st)
	return reencode(t, b)
}

// rowOf is grant id's row of res.
func rowOf(t testing.TB, rows []review.Row, id string) review.Row {
	t.Helper()
	i := slices.IndexFunc(rows, func(r review.Row) bool { return r.Grant == id })
	if i < 0 {
		t.Fatalf("no row of %s: %+v", id, rows)
	}
	return rows[i]
}

// TestBundleVoidedCall: a grant with a call a log.refused entry names is
// exported as v5, carrying that log.refused entry (not the other one,
// which names only another account's entry) with its proof; it verifies,
// and the row leaves the call out (2 calls, 20 bytes, the second
// object's pair not used) as the grant's pages do, while the call's entry
// stays in the bundle.
func TestBundleVoidedCall(t *testing.T) {
	tl := newTestLog(t)
	v := appendVoided(t, tl)
	file := tl.export(t, account, tuesday)
	res, err := Verify(file, tl.v, testOrigin)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if res.Format != Format || res.Refusals != 1 || !slices.Equal(res.Void, []int64{v.call}) || len(res.Warnings) != 0 {
		t.Fatalf("result: format %s, %d refusals, void %v, warnings %q", res.Format, res.Refusals, res.Void, res.Warnings)
	}
	r := rowOf(t, res.Rows, gE)
	if r.Calls != 2 || r.BytesOut != 20 || !slices.Equal(r.ScopeUsed, []string{"s3:GetObject arn:aws:s3:::logs/app/a.log", "s3:GetObject arn:aws:s3:::logs/app/c.log"}) {
		t.Fatalf("%s: %d calls, %d bytes out, used %q; want 2, 20, without b.log", gE, r.Calls, r.BytesOut, r.ScopeUsed)
	}
	b := decode(t, file)
	if len(b.Refusals) != 1 || b.Refusals[0].Index != v.refusal {
		t.Fatalf("refusals %+v, want the one at %d", b.Refusals, v.refusal)
	}
	if !slices.ContainsFunc(b.Entries, func(e Entry) bool { return e.Index == v.call }) {
		t.Fatal("the voided call's entry is not in the bundle")
	}
	// gB's command is gB's entry: its account's bundle carries both
	// log.refused entries, and verifies.
	other := tl.export(t, "444455556666", tuesday)
	if res, err := Verify(other, tl.v, testOrigin); err != nil || res.Refusals != 2 || len(res.Void) != 1 {
		t.Fatalf("gB's bundle: %+v, %v", res, err)
	}
}

// TestBundleVoidedCallTampered: a v5 bundle's log.refused entries and its
// rows cannot be changed apart: its refusal removed (signed again or not),
// its proof altered, its rows counting the voided call (signed again or
// not), a log.refused entry naming no entry of the bundle added, the
// bundle relabelled v4: none verifies, and the rows' failures say which.
func TestBundleVoidedCallTampered(t *testing.T) {
	tl := newTestLog(t)
	v := appendVoided(t, tl)
	file := tl.export(t, account, tuesday)
	b := decode(t, file)

	counted := b
	rows, _, err := deriveRows(b.Entries, nil)
	if err != nil {
		t.Fatal(err)
	}
	counted.Rows = rows
	if r := rowOf(t, rows, gE); r.Calls != 3 {
		t.Fatalf("derived without the void: %d calls", r.Calls)
	}
	noRefusal := b
	noRefusal.Refusals = nil
	badProof := b
	badProof.Refusals = slices.Clone(b.Refusals)
	badProof.Refusals[0].Proof = slices.Clone(b.Refusals[0].Proof)
	badProof.Refusals[0].Proof[0] = b64.EncodeToString(make([]byte, 32))
	tree, err := auditlog.BuildProofTree(context.Background(), tl.st, tl.v)
	if err != nil {
		t.Fatal(err)
	}
	if string(tree.Checkpoint.Note) != b.Checkpoint {
		t.Fatal("the log's checkpoint moved since the export")
	}
	es, err := tl.st.LogEntries(context.Background(), store.LogFilter{Type: review.RefusedType})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(es, func(e store.LogEntry) bool { return e.Seq == v.other })
	if i < 0 {
		t.Fatalf("no log.refused entry at %d", v.other)
	}
	p, err := tree.Inclusion(v.other)
	if err != nil {
		t.Fatal(err)
	}
	outside := b
	outside.Refusals = append(slices.Clone(b.Refusals), Entry{Index: v.other, Data: b64.EncodeToString(es[i].Data), Proof: hashes(p)})
	v4 := b
	v4.Format = FormatV4

	for _, c := range []struct {
		name, want string
		file       []byte
	}{
		{"the refusal removed", "statement", reencode(t, noRefusal)},
		{"the refusal removed, signed again", "none of which a log.refused entry the bundle carries voids", tl.resign(t, noRefusal)},
		{"the refusal's proof altered", "log.refused entry " + itoa(v.refusal) + " is not in the signed log", reencode(t, badProof)},
		{"the refusal's proof altered, signed again", "log.refused entry " + itoa(v.refusal) + " is not in the signed log", tl.resign(t, badProof)},
		{"the rows counting the voided call", "statement", reencode(t, counted)},
		{"the rows counting the voided call, signed again", "the rows count the entries [" + itoa(v.call) + "], which the bundle's log.refused entries void", tl.resign(t, counted)},
		{"a refusal naming no entry of the bundle, signed again", "none of them in the bundle", tl.resign(t, outside)},
		{"relabelled v4, signed again", "carries no log.refused entries", tl.resign(t, v4)},
	} {
		_, err := Verify(c.file, tl.v, testOrigin)
		if err == nil {
			t.Errorf("%s: the bundle verifies", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want it to say %q", c.name, err, c.want)
		}
	}
	if !bytes.Equal(tl.resign(t, b), file) {
		t.Fatal("signing the exported bundle again changes it")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
