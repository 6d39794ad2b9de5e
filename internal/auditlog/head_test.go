package auditlog

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"
)

// TestSharedLogHeadSignature: a replica continues from another's
// checkpoint only if the log's key signed it. A head that carries a MAC as
// releases of December 2026 wrote it (HMAC-SHA256 under a key derived from
// the credential key, which every replica and the operator hold) but whose
// note is not signed by the log's key is refused: with the MAC taken alone,
// whoever held the credential key could make the replicas sign on top of a
// tree of their own. A head without a MAC is checked the same way, and one
// whose frontier was changed is refused because it does not hash to the
// signed root.
func TestSharedLogHeadSignature(t *testing.T) {
	const newest = `(SELECT MAX(id) FROM log_checkpoints)`
	for _, tc := range []struct {
		name   string
		tamper func(v note.Verifier, cp checkpointRow) string // SQL run on the newest checkpoint
		refuse string                                         // wanted in the error, "" if the append must succeed
	}{
		{name: "valid MAC, unsigned note", tamper: func(v note.Verifier, cp checkpointRow) string {
			return fmt.Sprintf(`UPDATE log_checkpoints SET note = 'not a signed note', head_mac = '\x%x' WHERE id = %s`, oldHeadMAC(v, cp), newest)
		}, refuse: "not validly signed"},
		{name: "valid MAC, note signed by another key", tamper: func(v note.Verifier, cp checkpointRow) string {
			other, _ := testKey(t)
			msg, err := note.Sign(&note.Note{Text: cp.text}, other)
			if err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf(`UPDATE log_checkpoints SET note = '\x%x', head_mac = '\x%x' WHERE id = %s`, msg, oldHeadMAC(v, cp), newest)
		}, refuse: "not validly signed"},
		{name: "no MAC, signed", tamper: func(note.Verifier, checkpointRow) string {
			return `UPDATE log_checkpoints SET head_mac = NULL WHERE id = ` + newest
		}},
		{name: "no MAC, unsigned note", tamper: func(note.Verifier, checkpointRow) string {
			return `UPDATE log_checkpoints SET head_mac = NULL, note = 'not a signed note' WHERE id = ` + newest
		}, refuse: "not validly signed"},
		{name: "frontier changed", tamper: func(note.Verifier, checkpointRow) string {
			return `UPDATE log_checkpoints SET frontier = set_byte(frontier, 0, get_byte(frontier, 0) # 1) WHERE id = ` + newest
		}, refuse: "hashes to"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := pgDatabase(t)
			dir := t.TempDir()
			ctx := context.Background()
			s, v := testKey(t)
			a := openLog(t, openPG(t, dsn), s, replicaOptions(dir, v, 0))
			b := openLog(t, openPG(t, dsn), s, replicaOptions(dir, v, 1))
			for range 3 {
				if err := a.Append(ctx, Event{Type: "test.append"}); err != nil {
					t.Fatal(err)
				}
			}
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var cp checkpointRow
			var msg []byte
			if err := conn.QueryRow(ctx, `SELECT size, root, frontier, note FROM log_checkpoints ORDER BY id DESC LIMIT 1`).Scan(&cp.size, &cp.root, &cp.frontier, &msg); err != nil {
				t.Fatal(err)
			}
			if cp.text, err = unverifiedText(msg); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, tc.tamper(v, cp)); err != nil {
				t.Fatal(err)
			}
			err = b.Append(ctx, Event{Type: "test.append"})
			switch {
			case tc.refuse == "" && err != nil:
				t.Fatalf("append: %v", err)
			case tc.refuse == "" && b.Size() != 4:
				t.Fatalf("size %d after the append, want 4", b.Size())
			case tc.refuse != "" && (err == nil || !strings.Contains(err.Error(), tc.refuse)):
				t.Fatalf("append: %v, want an error containing %q", err, tc.refuse)
			}
		})
	}
}

// checkpointRow is what the test reads of the newest checkpoint.
type checkpointRow struct {
	size           int64
	root, frontier []byte
	text           string // the note's text, without signatures
}

// oldHeadMAC is the head MAC releases of December 2026 wrote and took in
// place of the signature (airlock serve's key: HMAC-SHA256 of "airlock
// shared log head v1" under the credential key; here the tests' key).
func oldHeadMAC(v note.Verifier, cp checkpointRow) []byte {
	m := hmac.New(sha256.New, []byte("0123456789abcdef0123456789abcdef"))
	m.Write([]byte("airlock log head v1\n"))
	m.Write([]byte("airlock/test\n"))
	fmt.Fprintf(m, "%s+%08x\n", v.Name(), v.KeyHash())
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(cp.size)))
	m.Write(cp.root)
	m.Write(cp.frontier)
	return m.Sum(nil)
}
