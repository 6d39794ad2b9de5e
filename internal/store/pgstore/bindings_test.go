package pgstore

import "testing"

// TestIdentityBindingsMigration: migration 9 gives the identities a
// bindings column; a row written before it has none recorded (nil, as no
// entry then stated them). (The conformance tests round-trip bindings.)
func TestIdentityBindingsMigration(t *testing.T) {
	dsn := freshDB(t)
	ctx := t.Context()
	// A database at schema version 8 with one identity, as an earlier
	// Airlock left it.
	conn := atVersion(t, dsn, 8)
	if _, err := conn.Exec(ctx, `INSERT INTO identities (name, kind, source) VALUES ('alice', 'human', 'config')`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("Open (migration 9): %v", err)
	}
	t.Cleanup(func() { s.Close() })
	id, err := s.Identity(ctx, "alice")
	if err != nil || id.Bindings != nil {
		t.Fatalf("alice after the migration: %+v (%v), want no bindings recorded", id, err)
	}
}
