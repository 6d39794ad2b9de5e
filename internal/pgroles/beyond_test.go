package pgroles

import (
	"testing"
	"time"
)

// TestRoleBeyondItsGrants pins what a grant role can do besides its
// GRANTs, as the README states it: what PUBLIC (or any role) may do is
// allowed, and dies with the role; nothing else is.
func TestRoleBeyondItsGrants(t *testing.T) {
	need(t)
	ctx := testCtx(t)
	m := newManager(t)
	admin, err := m.pool.acquire(ctx) // a session of another role, with a query text
	if err != nil {
		t.Fatal(err)
	}
	defer m.pool.release(admin, false)
	if _, err := admin.Exec(ctx, "SELECT 'admin secret query text'"); err != nil {
		t.Fatal(err)
	}
	r, err := m.Ensure(ctx, newGrant(t, "beyond", time.Hour, "pg:select %s.public.ev*"))
	if err != nil {
		t.Fatal(err)
	}
	su := superConn(t, env.db)
	if _, err := su.Exec(ctx, "CREATE TABLE public.ev_later (x int); ALTER TABLE public.ev_later OWNER TO "+env.admin); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { superConn(t, env.db).Exec(testCtx(t), "DROP TABLE IF EXISTS public.ev_later") })
	c := connectAs(t, r)
	for _, tc := range []struct{ sql, want string }{
		{"SELECT * FROM events", ""},
		{"SELECT * FROM ev_later", denied},                  // the pattern was expanded at activation
		{"SELECT nextval('events_id_seq')", denied},         // select only: no sequence
		{"SELECT * FROM events FOR UPDATE", denied},         // row locks need UPDATE
		{"CREATE TEMP TABLE scratch (x int)", ""},           // PUBLIC's TEMP on the database
		{"SELECT pg_read_file('/etc/hostname')", denied},    // server files: pg_read_server_files
		{"COPY events TO '/tmp/airlock_pgroles_x'", denied}, // likewise
		{"CREATE SCHEMA mine", denied},                      // CREATE on the database is not PUBLIC's
	} {
		check(t, c, tc.sql, tc.want)
	}
	var visible int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE pid = $1 AND query <> '<insufficient privilege>'`, admin.PgConn().PID()).Scan(&visible); err != nil {
		t.Fatal(err)
	}
	if visible != 0 {
		t.Error("the grant role reads another role's query text in pg_stat_activity")
	}
	// Any role may create large objects; they are the role's and go with it.
	var lo uint32
	if err := c.QueryRow(ctx, "SELECT lo_from_bytea(0, 'kept?')").Scan(&lo); err != nil {
		t.Fatal(err)
	}
	if err := m.Drop(ctx, grantID("beyond")); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := su.QueryRow(ctx, "SELECT count(*) FROM pg_largeobject_metadata WHERE oid = $1", lo).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("large object %d outlived the grant's role", lo)
	}
}
