package auditlog

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestSharedLogHeadMAC: a replica continues from another's checkpoint on
// its MAC alone (its signature is not checked: a note no key signed is
// taken, which audit verify reports), falls back to the signature for a
// checkpoint without a MAC (one written before there were MACs), and
// refuses a checkpoint whose frontier was changed: the MAC no longer
// matches, and the frontier does not hash to the signed root.
func TestSharedLogHeadMAC(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper string // SQL run on the newest checkpoint
		refuse string // wanted in the error, "" if the append must succeed
	}{
		{name: "valid MAC, note not checked", tamper: `UPDATE log_checkpoints SET note = 'not a signed note' WHERE id = (SELECT MAX(id) FROM log_checkpoints)`},
		{name: "no MAC, signature checked", tamper: `UPDATE log_checkpoints SET head_mac = NULL WHERE id = (SELECT MAX(id) FROM log_checkpoints)`},
		{name: "no MAC, bad note", tamper: `UPDATE log_checkpoints SET head_mac = NULL, note = 'not a signed note' WHERE id = (SELECT MAX(id) FROM log_checkpoints)`, refuse: "not validly signed"},
		{name: "frontier changed", tamper: `UPDATE log_checkpoints SET frontier = set_byte(frontier, 0, get_byte(frontier, 0) # 1) WHERE id = (SELECT MAX(id) FROM log_checkpoints)`, refuse: "hashes to"},
		{name: "MAC changed", tamper: `UPDATE log_checkpoints SET head_mac = set_byte(head_mac, 0, get_byte(head_mac, 0) # 1) WHERE id = (SELECT MAX(id) FROM log_checkpoints)`},
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
			var mac []byte
			if err := conn.QueryRow(ctx, `SELECT head_mac FROM log_checkpoints ORDER BY id DESC LIMIT 1`).Scan(&mac); err != nil || len(mac) != 32 {
				t.Fatalf("newest checkpoint's MAC: %x, %v", mac, err)
			}
			if _, err := conn.Exec(ctx, tc.tamper); err != nil {
				t.Fatal(err)
			}
			err = b.Append(ctx, Event{Type: "test.append"})
			switch {
			case tc.refuse == "" && err != nil:
				t.Fatalf("append after %q: %v", tc.tamper, err)
			case tc.refuse == "" && b.Size() != 4:
				t.Fatalf("size %d after the append, want 4", b.Size())
			case tc.refuse != "" && (err == nil || !strings.Contains(err.Error(), tc.refuse)):
				t.Fatalf("append after %q: %v, want an error containing %q", tc.tamper, err, tc.refuse)
			}
		})
	}
}
