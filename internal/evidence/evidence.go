// Package evidence writes and checks evidence bundles: one file holding an
// access review (the rows of one account's grants on one day), every log
// entry those rows are derived from, an RFC 6962 inclusion proof for each
// entry against one signed checkpoint, and the name of the key that signed
// it. Verify checks a bundle with nothing but the pinned verifier key: no
// server, no data directory. docs/evidence-bundle.md specifies the format
// for independent verifiers.
package evidence

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
)

// Format is the bundle's format tag. v1 bundles did not bind their day
// (nor their account) to a signature: a grant live on two days verified
// under either, so a v1 bundle's day could be changed unnoticed. They are
// refused; export again. v2 bundles (FormatV2) signed the rows but not the
// entry list: an entry that changes no row (a command run under the grant,
// a session's end, the issue of credentials) could be left out of one and
// it still verified. v3 (FormatV3) signs the list (see statementText).
// v4 has v3's file and statement; what changed is the derivation of the
// rows, which the format names so that a verifier implementing the
// documented derivation of one format never meets rows derived by
// another: a result marked refused (a statement PostgreSQL refused for
// lack of privilege, gateway.Call.Refused) counts its call as denied and
// not as scope used (review.Count). v3 bundles were exported both before
// that rule (they hold no refused result, and the rule changes nothing)
// and, by the release that added it, after: see FormatV3.
//
// v5 carries the log.refused entries that name entries of the bundle
// (Bundle.Refusals), each with its inclusion proof, and its statement
// signs their list as it signs the entries': the rows leave out the
// entries they name (their callers were told the call failed, and no
// record counts them), as the grant's and session's pages do. Before v5 a
// bundle's rows counted them: a row cannot leave out an entry on the word
// of a log.refused entry the bundle does not carry and prove.
const Format = "airlock-evidence-bundle/v5"

// FormatV4 is the format before v5: its file carries no log.refused
// entries, and its rows count the entries those name. Verify still
// accepts it, derived as it always was.
const FormatV4 = "airlock-evidence-bundle/v4"

// FormatV3 is the previous format: its documented derivation has no
// refused rule, but the release that introduced the rule wrote v3 bundles
// whose rows were derived with it. Verify derives every bundle's rows with
// the rule (for a bundle with no refused result it changes nothing, so
// v3 bundles exported before it verify as they did), and warns
// (RefusedWarning) about a v3 bundle whose rows it changed, which a
// verifier written against the v3 text would report as a mismatch.
const FormatV3 = "airlock-evidence-bundle/v3"

// FormatV2 is the format before v3, whose statement does not sign the
// entry list. Verify still accepts it, for bundles exported before v3,
// with Result.EntriesSigned false and a warning saying what it cannot
// prove.
const FormatV2 = "airlock-evidence-bundle/v2"

// V2Warning is what Verify warns about a v2 bundle.
const V2Warning = "this is a " + FormatV2 + " bundle: its signed statement does not list its entries, so entries that change no row " +
	"(commands run under a grant, session ends, credential issues) may have been left out of it undetected; " +
	"the rows themselves are proven. Export the account and day again for a bundle whose entry list is signed"

// RefusedWarning is what Verify warns about a bundle of a format before
// v4 whose rows the refused rule changed (see FormatV3).
const RefusedWarning = "this bundle's format predates the documented rule for results marked refused " +
	"(a statement the upstream refused for lack of privilege counts as denied, not as scope used: " + FormatV4 + " on), " +
	"but its rows were derived with it, as this verifier derives them: a verifier written against the older format's text " +
	"reports its rows as a mismatch. Export the account and day again for a " + Format + " bundle"

// MaxSize bounds a bundle Verify reads, and so one Build writes.
const MaxSize = 256 << 20

// maxSize is MaxSize, which tests lower.
var maxSize = MaxSize

// Bundle is the file's content. Field order is the file's key order.
type Bundle struct {
	Format     string `json:"format"`
	Account    string `json:"account"`
	Day        string `json:"day"`
	KeyName    string `json:"key_name"`
	Checkpoint string `json:"checkpoint"`
	// Statement is a note signed by the log's key (the checkpoint's)
	// saying which account and day the bundle is the review of, over
	// which checkpoint and rows (see statementText).
	Statement string       `json:"statement"`
	Rows      []review.Row `json:"rows"`
	Entries   []Entry      `json:"entries"`
	// Refusals (v5) are the log.refused entries up to the checkpoint
	// that name at least one of Entries, by increasing index, each with
	// its proof: the rows leave out the entries they name. Omitted when
	// empty, as in every bundle before v5.
	Refusals []Entry `json:"refusals,omitempty"`
}

// statementText is the text of a bundle's signed statement: a first line
// no checkpoint's text can begin with (a checkpoint's second line is its
// size), then the format, account and day, the SHA-256 (base64) of the
// checkpoint note and of the rows' canonical encoding, (from v3) the
// number of entries and the digest of their list (entriesDigest), and
// (from v5) the number and digest of the log.refused entries' list. The
// account and day are printable (checked before), so no line can be
// forged across.
func statementText(b Bundle) (string, error) {
	rows, err := json.Marshal(b.Rows)
	if err != nil {
		return "", err
	}
	text := statementHead(b, rows)
	if b.Format == FormatV2 {
		return text, nil
	}
	es, err := entriesDigest(b.Entries)
	if err != nil {
		return "", err
	}
	text += "entries " + strconv.Itoa(len(b.Entries)) + " " + b64.EncodeToString(es[:]) + "\n"
	if b.Format != Format {
		return text, nil
	}
	rs, err := entriesDigest(b.Refusals)
	if err != nil {
		return "", err
	}
	return text + "refusals " + strconv.Itoa(len(b.Refusals)) + " " + b64.EncodeToString(rs[:]) + "\n", nil
}

// statementHead is the statement's text up to and including its rows
// line, for b's format, account, day and checkpoint, and the rows encoded
// as rows.
func statementHead(b Bundle, rows []byte) string {
	cp := sha256.Sum256([]byte(b.Checkpoint))
	rs := sha256.Sum256(rows)
	return "airlock evidence bundle statement\n" + b.Format + "\naccount " + b.Account + "\nday " + b.Day +
		"\ncheckpoint " + b64.EncodeToString(cp[:]) + "\nrows " + b64.EncodeToString(rs[:]) + "\n"
}

// rawBundle is a Bundle with its rows and entries not yet decoded.
type rawBundle struct {
	Format     string          `json:"format"`
	Account    string          `json:"account"`
	Day        string          `json:"day"`
	KeyName    string          `json:"key_name"`
	Checkpoint string          `json:"checkpoint"`
	Statement  string          `json:"statement"`
	Rows       json.RawMessage `json:"rows"`
	Entries    json.RawMessage `json:"entries"`
	Refusals   json.RawMessage `json:"refusals"`
}

// maxProof bounds an entry's proof as it stands in the file: an RFC 6962
// inclusion proof has at most 63 hashes (one per level of a tree of fewer
// than 2^63 entries), each 44 base64 characters quoted, and commas.
const maxProof = 2 + 63*(44+3)

// decodeEntries decodes a bundle's entry list one entry at a time, each
// in canonical form (as encode writes it) and with a proof of at most
// maxProof bytes, so that the list takes memory in proportion to the
// file: a hostile "entries":[{},{},…] or "proof":["",…] is refused at its
// first element instead of being decoded whole first.
func decodeEntries(raw json.RawMessage) ([]Entry, error) { return decodeList("entries", raw) }

// decodeList is decodeEntries of the list named key (entries, refusals).
func decodeList(key string, raw json.RawMessage) ([]Entry, error) {
	out := []Entry{}
	bad := func(format string, args ...any) ([]Entry, error) {
		return nil, fmt.Errorf("evidence: not a bundle: "+key+": "+format, args...)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		return bad("not a list")
	}
	type rawEntry struct {
		Index int64           `json:"index"`
		Data  string          `json:"data"`
		Proof json.RawMessage `json:"proof"`
	}
	for dec.More() {
		start := dec.InputOffset()
		var re rawEntry
		if err := dec.Decode(&re); err != nil {
			return bad("%v", err)
		}
		if len(re.Proof) > maxProof {
			return bad("entry %d: a proof of %d bytes", re.Index, len(re.Proof))
		}
		e := Entry{Index: re.Index, Data: re.Data}
		if err := json.Unmarshal(re.Proof, &e.Proof); err != nil {
			return bad("entry %d: proof: %v", re.Index, err)
		}
		canon, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		if got := bytes.TrimPrefix(raw[start:dec.InputOffset()], []byte(",")); !bytes.Equal(got, canon) {
			return nil, errors.New("evidence: the file is not in canonical form (altered after export?)")
		}
		out = append(out, e)
	}
	if t, err := dec.Token(); err != nil || t != json.Delim(']') {
		return bad("not a list")
	}
	return out, nil
}

// entriesDigest is the SHA-256 of the bundle's entry list: for each entry
// in the bundle's order, its index as 8 bytes big-endian followed by its
// RFC 6962 leaf hash, SHA-256(0x00 || data). The proofs are not in it:
// the checkpoint and the index determine them.
func entriesDigest(es []Entry) ([sha256.Size]byte, error) {
	h := sha256.New()
	var buf [8 + tlog.HashSize]byte
	for _, e := range es {
		data, err := b64.DecodeString(e.Data)
		if err != nil {
			return [sha256.Size]byte{}, fmt.Errorf("evidence: entry %d: data is not base64", e.Index)
		}
		binary.BigEndian.PutUint64(buf[:8], uint64(e.Index))
		leaf := tlog.RecordHash(data)
		copy(buf[8:], leaf[:])
		h.Write(buf[:])
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out, nil
}

// plainLine reports whether s can stand on one line of a statement.
func plainLine(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// Entry is one log entry with its inclusion proof.
type Entry struct {
	Index int64    `json:"index"`
	Data  string   `json:"data"`  // base64 of the exact entry bytes
	Proof []string `json:"proof"` // base64 hashes, leaf to root
}

var b64 = base64.StdEncoding.Strict()

// Build makes the bundle for the grants gs (their ids, in review order)
// from their log entries (entries of each grant, in Seq order), with
// proofs from tree. refused are log.refused entries of the log (every one
// the caller met: Build keeps those up to the checkpoint that name an
// entry of the bundle, and the rows leave out the entries they name; one
// whose bytes are not a valid log.refused entry voids nothing, as on the
// pages). Entries past the tree's checkpoint are left out, and the rows
// are derived from the entries included, so the bundle is self-consistent
// by construction; Verify checks it again.
func Build(account, day string, tree *auditlog.ProofTree, signer note.Signer, grantIDs []string, entries map[string][]store.LogEntry, refused []store.LogEntry) ([]byte, error) {
	if !plainLine(account) || !plainLine(day) {
		return nil, errors.New("evidence: the account or day holds a control character")
	}
	b := Bundle{Format: Format, Account: account, Day: day, KeyName: signer.Name(), Checkpoint: string(tree.Checkpoint.Note),
		Rows: []review.Row{}, Entries: []Entry{}}
	var all []store.LogEntry
	for _, id := range grantIDs {
		for _, e := range entries[id] {
			if e.Seq < tree.Size() {
				all = append(all, e)
			}
		}
	}
	slices.SortFunc(all, func(a, b store.LogEntry) int { return compare(a.Seq, b.Seq) })
	all = slices.CompactFunc(all, func(a, b store.LogEntry) bool { return a.Seq == b.Seq })
	for _, e := range all {
		p, err := tree.Inclusion(e.Seq)
		if err != nil {
			return nil, fmt.Errorf("evidence: proof of entry %d: %w", e.Seq, err)
		}
		b.Entries = append(b.Entries, Entry{Index: e.Seq, Data: b64.EncodeToString(e.Data), Proof: hashes(p)})
	}
	refused = slices.Clone(refused)
	slices.SortFunc(refused, func(a, b store.LogEntry) int { return compare(a.Seq, b.Seq) })
	refused = slices.CompactFunc(refused, func(a, b store.LogEntry) bool { return a.Seq == b.Seq })
	void := &review.Void{}
	for _, e := range refused {
		if e.Seq >= tree.Size() {
			continue
		}
		seq, rs, err := review.RefusedRanges(e.Data)
		if err != nil || seq != e.Seq || !namesAny(b.Entries, rs) {
			continue
		}
		p, err := tree.Inclusion(e.Seq)
		if err != nil {
			return nil, fmt.Errorf("evidence: proof of entry %d: %w", e.Seq, err)
		}
		b.Refusals = append(b.Refusals, Entry{Index: e.Seq, Data: b64.EncodeToString(e.Data), Proof: hashes(p)})
		void.Add(rs)
	}
	rows, _, err := deriveRows(b.Entries, void)
	if err != nil {
		return nil, err
	}
	b.Rows = rows
	text, err := statementText(b)
	if err != nil {
		return nil, err
	}
	st, err := note.Sign(&note.Note{Text: text}, signer)
	if err != nil {
		return nil, fmt.Errorf("evidence: signing the statement: %w", err)
	}
	b.Statement = string(st)
	out, err := encode(b)
	if err != nil {
		return nil, err
	}
	if len(out) > maxSize {
		// verify-bundle would refuse it: say so now, not to the auditor.
		return nil, fmt.Errorf("evidence: the bundle would be %d bytes, more than the %d verify-bundle reads", len(out), maxSize)
	}
	return out, nil
}

func compare(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func hashes(p []tlog.Hash) []string {
	out := make([]string, len(p))
	for i, h := range p {
		out[i] = b64.EncodeToString(h[:])
	}
	return out
}

// encode is the canonical encoding: encoding/json, no white space, one
// trailing newline.
func encode(b Bundle) ([]byte, error) {
	out, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// namesAny reports whether ranges rs ([from, to) each) name an entry of
// es, which is sorted by index.
func namesAny(es []Entry, rs [][2]int64) bool {
	for _, r := range rs {
		i, _ := slices.BinarySearchFunc(es, r[0], func(e Entry, x int64) int { return compare(e.Index, x) })
		if i < len(es) && es[i].Index < r[1] {
			return true
		}
	}
	return false
}

// deriveRows derives the review rows from the entries, in the order the
// grants were requested in the log, leaving out those void names (the
// entries a bundle's log.refused entries name: nil before v5), and
// counts the calls refused results moved to the denied (the rule v4
// documents).
func deriveRows(es []Entry, void *review.Void) ([]review.Row, int64, error) {
	d := review.NewDeriver()
	// The log.refused entries themselves are not applied: the bundle
	// carries them apart, and Verify checks their ranges.
	d.SetVoid(void, nil)
	for _, e := range es {
		data, err := b64.DecodeString(e.Data)
		if err != nil {
			return nil, 0, fmt.Errorf("entry %d: data is not base64", e.Index)
		}
		if err := d.Add(data); err != nil {
			return nil, 0, fmt.Errorf("entry %d: %w", e.Index, err)
		}
	}
	rows := []review.Row{}
	var refusals int64
	for _, id := range d.GrantIDs() {
		g, _, _ := d.Grant(id)
		if ps := d.Problems(id); len(ps) > 0 {
			return nil, 0, fmt.Errorf("grant %s: %s", id, ps[0])
		}
		refusals += d.GrantRefusals(id)
		r := review.FromGrant(g)
		// The credentials people decided with stay in the entries (each
		// approval's and end's "auth"), not in the rows: a bundle's rows
		// are signed in canonical form, and a verifier built before the
		// rows had these fields would not read its own encoding back
		// from a bundle that carried them.
		r.ApprovedAuth, r.EndedAuth = "", ""
		rows = append(rows, r)
	}
	return rows, refusals, nil
}

// Result is what Verify proved.
//
// airlock audit verify-bundle -o json prints it, so its JSON names are
// snake_case as every other JSON Airlock emits (its rows are the review's).
type Result struct {
	Format   string       `json:"format"`
	Account  string       `json:"account"`
	Day      string       `json:"day"`
	Rows     []review.Row `json:"rows"`
	Entries  int          `json:"entries"`
	TreeSize int64        `json:"tree_size"`
	Root     string       `json:"root"`
	// EntriesSigned reports whether the signed statement lists the
	// entries (v3 and v4), so that none was left out or added; false for
	// a v2 bundle, whose Warnings say so. Warnings also name a bundle of
	// a format before v4 whose rows the refused rule changed
	// (RefusedWarning).
	EntriesSigned bool `json:"entries_signed"`
	// Refusals is the number of log.refused entries the bundle carries
	// (v5), and Void the indexes of the entries they name, which the
	// rows leave out (their callers were told the calls failed).
	Refusals int      `json:"refusals"`
	Void     []int64  `json:"void,omitempty"`
	Warnings []string `json:"warnings"`
}

// Verify checks a bundle with the pinned verifier key v alone:
//
//   - the file is the canonical encoding of a bundle of this format (so no
//     byte of it can change without failing); its rows are decoded only
//     once the statement is found to sign them, and its entries one at a
//     time, each in canonical form, so that a hostile file of MaxSize
//     bytes takes memory in proportion to it;
//   - the statement, signed by v, names the bundle's account, day,
//     checkpoint, rows, (v3 on) entries and (v5) log.refused entries:
//     none can be added, left out, reordered or replaced;
//   - the checkpoint is signed by v, whose name is the bundle's key_name,
//     and names the log origin (the log's key may sign more than one log:
//     a bundle of another log's review says nothing about this one; an
//     empty origin is refused);
//   - every entry's inclusion proof leads from SHA-256(0x00 || entry) to
//     the checkpoint's root, at the entry's index; indexes increase;
//   - each entry's own sequence number is its index, and it belongs to a
//     grant of the bundle's rows;
//   - (v5) each log.refused entry is proven likewise, is a valid one (it
//     names entries before itself) and names at least one entry of the
//     bundle;
//   - the rows are exactly what the entries imply, less those the
//     log.refused entries name (void: their callers were told the calls
//     failed), and all of the bundle's account.
func Verify(file []byte, v note.Verifier, origin string) (Result, error) {
	if origin == "" {
		return Result{}, errors.New("evidence: no log origin to check the bundle's checkpoint against")
	}
	if len(file) > maxSize {
		return Result{}, fmt.Errorf("evidence: bundle larger than %d bytes", maxSize)
	}
	// The rows and entries are decoded only once they are known to be
	// bounded: a hostile file's "rows":[{},{},…] decoded up front took
	// some 190 bytes of memory per byte of file (a 50 MB file, 24 GB),
	// before any check could refuse it.
	// (An unknown key, or a known one twice or in another case, fails
	// the canonical form below.)
	var top rawBundle
	if err := json.Unmarshal(file, &top); err != nil {
		return Result{}, fmt.Errorf("evidence: not a bundle: %w", err)
	}
	if top.Format != Format && top.Format != FormatV4 && top.Format != FormatV3 && top.Format != FormatV2 {
		return Result{}, fmt.Errorf("evidence: format %q, want %q (or %q, %q or %q)", top.Format, Format, FormatV4, FormatV3, FormatV2)
	}
	if top.KeyName != v.Name() {
		return Result{}, fmt.Errorf("evidence: the bundle names key %q, the pinned key is %q", top.KeyName, v.Name())
	}
	// The account, the day, the checkpoint and the rows are what the
	// log's key signed for this export.
	st, err := note.Open([]byte(top.Statement), note.VerifierList(v))
	if err != nil {
		return Result{}, fmt.Errorf("evidence: the statement is not signed by the pinned key: %w", err)
	}
	if err := canonicalSignatures(top.Statement); err != nil {
		return Result{}, err
	}
	if !plainLine(top.Account) || !plainLine(top.Day) {
		return Result{}, errors.New("evidence: the account or day holds a control character")
	}
	b := Bundle{Format: top.Format, Account: top.Account, Day: top.Day, KeyName: top.KeyName, Checkpoint: top.Checkpoint, Statement: top.Statement}
	// The rows as they stand in the file must be those whose digest the
	// key signed (in canonical form, the file's bytes are their
	// encoding, checked below), so they are decoded only if they are.
	if !strings.HasPrefix(st.Text, statementHead(b, top.Rows)) {
		return Result{}, errors.New("evidence: the signed statement is not this bundle's account, day, checkpoint and rows")
	}
	if err := json.Unmarshal(top.Rows, &b.Rows); err != nil {
		return Result{}, fmt.Errorf("evidence: not a bundle: rows: %w", err)
	}
	if b.Entries, err = decodeEntries(top.Entries); err != nil {
		return Result{}, err
	}
	if top.Refusals != nil {
		if b.Format != Format {
			return Result{}, fmt.Errorf("evidence: a %s bundle carries no log.refused entries (%s does)", b.Format, Format)
		}
		if b.Refusals, err = decodeList("refusals", top.Refusals); err != nil {
			return Result{}, err
		}
	}
	canon, err := encode(b)
	if err != nil {
		return Result{}, err
	}
	if !bytes.Equal(canon, file) {
		return Result{}, errors.New("evidence: the file is not in canonical form (altered after export?)")
	}
	want, err := statementText(b)
	if err != nil {
		return Result{}, err
	}
	if st.Text != want {
		if b.Format == FormatV2 {
			return Result{}, errors.New("evidence: the signed statement is not this bundle's account, day, checkpoint and rows")
		}
		if b.Format == Format {
			return Result{}, errors.New("evidence: the signed statement is not this bundle's account, day, checkpoint, rows, entries and log.refused entries (an entry added, left out or changed?)")
		}
		return Result{}, errors.New("evidence: the signed statement is not this bundle's account, day, checkpoint, rows and entries (an entry added, left out or changed?)")
	}
	size, root, err := auditlog.OpenCheckpoint([]byte(b.Checkpoint), v)
	if err != nil {
		return Result{}, fmt.Errorf("evidence: checkpoint: %w", err)
	}
	if o := auditlog.CheckpointOrigin([]byte(b.Checkpoint)); o != origin {
		return Result{}, fmt.Errorf("evidence: the checkpoint is of the log %q, not %q: the bundle is not a review of this log", o, origin)
	}
	last := int64(-1)
	grants := map[string]bool{}
	for _, e := range b.Entries {
		if e.Index <= last || e.Index >= size {
			return Result{}, fmt.Errorf("evidence: entry index %d out of order or outside the checkpoint (size %d)", e.Index, size)
		}
		last = e.Index
		data, err := proven(e, "entry", size, root)
		if err != nil {
			return Result{}, err
		}
		pe, err := review.Parse(data)
		if err != nil {
			return Result{}, fmt.Errorf("evidence: entry %d: %w", e.Index, err)
		}
		if pe.Seq != e.Index {
			return Result{}, fmt.Errorf("evidence: entry %d holds sequence number %d", e.Index, pe.Seq)
		}
		grants[pe.Grant] = true
	}
	// The log.refused entries (v5): each in the signed log, a valid one
	// (naming entries before itself), and naming an entry of the bundle.
	// The entries they name are void: the rows leave them out.
	void := &review.Void{}
	last = -1
	for _, e := range b.Refusals {
		if e.Index <= last || e.Index >= size {
			return Result{}, fmt.Errorf("evidence: log.refused entry index %d out of order or outside the checkpoint (size %d)", e.Index, size)
		}
		last = e.Index
		data, err := proven(e, "log.refused entry", size, root)
		if err != nil {
			return Result{}, err
		}
		seq, rs, err := review.RefusedRanges(data)
		if err != nil {
			return Result{}, fmt.Errorf("evidence: log.refused entry %d: %w", e.Index, err)
		}
		if seq != e.Index {
			return Result{}, fmt.Errorf("evidence: log.refused entry %d holds sequence number %d", e.Index, seq)
		}
		if !namesAny(b.Entries, rs) {
			return Result{}, fmt.Errorf("evidence: log.refused entry %d names entries %v, none of them in the bundle: it voids nothing of this review and has no place in it", e.Index, rs)
		}
		void.Add(rs)
	}
	var voided []int64
	for _, e := range b.Entries {
		if void.Contains(e.Index) {
			voided = append(voided, e.Index)
		}
	}
	// Every format's rows are derived with the refused rule: a bundle
	// without a refused result derives as before it, and one with them
	// was exported by a release that applied it (see FormatV3).
	rows, refusals, err := deriveRows(b.Entries, void)
	if err != nil {
		return Result{}, fmt.Errorf("evidence: %w", err)
	}
	wantRows, _ := json.Marshal(rows)
	got, _ := json.Marshal(b.Rows)
	if !bytes.Equal(wantRows, got) {
		return Result{}, rowsMismatch(b, voided, got, wantRows)
	}
	day, err := time.Parse("2006-01-02", b.Day)
	if err != nil || day.Format("2006-01-02") != b.Day {
		return Result{}, fmt.Errorf("evidence: day %q is not a date", b.Day)
	}
	for _, r := range b.Rows {
		if r.Account != b.Account {
			return Result{}, fmt.Errorf("evidence: grant %s is for account %q, the bundle for %q", r.Grant, r.Account, b.Account)
		}
		if !liveOn(r, day) {
			return Result{}, fmt.Errorf("evidence: grant %s was not live on %s", r.Grant, b.Day)
		}
		delete(grants, r.Grant)
	}
	if len(grants) > 0 {
		return Result{}, errors.New("evidence: entries of grants the rows do not show")
	}
	res := Result{Format: b.Format, Account: b.Account, Day: b.Day, Rows: b.Rows, Entries: len(b.Entries), TreeSize: size, Root: root.String(),
		EntriesSigned: b.Format != FormatV2, Refusals: len(b.Refusals), Void: voided}
	if !res.EntriesSigned {
		res.Warnings = append(res.Warnings, V2Warning)
	}
	if (b.Format == FormatV3 || b.Format == FormatV2) && refusals > 0 {
		res.Warnings = append(res.Warnings, RefusedWarning)
	}
	return res, nil
}

// proven decodes entry e (what names it in errors) and checks its
// inclusion proof against the checkpoint of size and root.
func proven(e Entry, what string, size int64, root tlog.Hash) ([]byte, error) {
	data, err := b64.DecodeString(e.Data)
	if err != nil {
		return nil, fmt.Errorf("evidence: %s %d: data is not base64", what, e.Index)
	}
	p := make(tlog.RecordProof, len(e.Proof))
	for i, s := range e.Proof {
		h, err := b64.DecodeString(s)
		if err != nil || len(h) != tlog.HashSize {
			return nil, fmt.Errorf("evidence: %s %d: proof hash %d is not a base64 SHA-256", what, e.Index, i)
		}
		p[i] = tlog.Hash(h)
	}
	if err := tlog.CheckRecord(p, size, root, e.Index, tlog.RecordHash(data)); err != nil {
		return nil, fmt.Errorf("evidence: %s %d is not in the signed log: %w", what, e.Index, err)
	}
	return data, nil
}

// rowsMismatch is the error of a bundle whose rows (got, encoded) are not
// want, those its entries imply less the voided ones. Rows that count the
// voided entries are said to: a summary that counts a call its callers
// were told failed.
func rowsMismatch(b Bundle, voided []int64, got, want []byte) error {
	if len(voided) > 0 {
		if rows, _, err := deriveRows(b.Entries, nil); err == nil {
			if all, _ := json.Marshal(rows); bytes.Equal(all, got) {
				return fmt.Errorf("evidence: the rows count the entries %v, which the bundle's log.refused entries void (their callers were told they failed):\n bundle: %s\n   log: %s", voided, got, want)
			}
		}
	}
	if b.Format == Format {
		less := "none of which a log.refused entry the bundle carries voids"
		if len(voided) > 0 {
			less = fmt.Sprintf("less %v, which the log.refused entries the bundle carries void", voided)
		}
		return fmt.Errorf("evidence: the rows are not what the entries imply, %s "+
			"(a row fails that leaves out an entry no carried log.refused entry names, or counts one that one names):\n bundle: %s\n   log: %s", less, got, want)
	}
	return fmt.Errorf("evidence: the rows are not what the entries imply:\n bundle: %s\n   log: %s", got, want)
}

// liveOn reports whether the grant of row r was live at some time on the
// UTC day starting at day: requested before the day ends, and not ended
// (or expired) before it began. A pending grant's deadline is not in the
// row, so a pending grant counts as live from its request on.
func liveOn(r review.Row, day time.Time) bool {
	end := day.Add(24 * time.Hour)
	if !r.RequestedAt.Before(end) {
		return false
	}
	var deadline time.Time
	switch {
	case !r.EndedAt.IsZero():
		deadline = r.EndedAt
	case r.Status == "active":
		deadline = r.ExpiresAt
	}
	return deadline.IsZero() || !deadline.Before(day)
}

// canonicalSignatures refuses a statement whose signature lines are not in
// canonical base64. note.Open decodes them leniently: the last character
// before the padding carries bits that the signature does not use, so
// '0', '4' and '8' there could be bumped by one and the bundle would still
// verify. Every other byte of a bundle is bound by the signature or by a
// digest in it; these bits were the one place where two different files
// verified as the same bundle, so a verifier that compares files (or a
// test that flips bytes) could be told that an edited file is intact.
func canonicalSignatures(statement string) error {
	i := strings.LastIndex(statement, "\n\n")
	if i < 0 {
		return errors.New("evidence: the statement has no signature lines")
	}
	for _, line := range strings.Split(strings.TrimSuffix(statement[i+2:], "\n"), "\n") {
		f := strings.Fields(strings.TrimPrefix(line, "\u2014 "))
		if len(f) != 2 {
			return errors.New("evidence: a signature line of the statement is malformed")
		}
		if _, err := base64.StdEncoding.Strict().DecodeString(f[1]); err != nil {
			return errors.New("evidence: a signature of the statement is not in canonical base64")
		}
	}
	return nil
}
