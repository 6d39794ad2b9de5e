package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The direct path is the only one that needs new server connections in
// every phase: PgBouncer keeps its pool and the gateway its grant's
// upstream connections (internal/pggw/reuse.go) between phases, while
// each direct run logs pgbench's clients in afresh. On a server that
// other programs share (the tests of a CI run), the direct phase is
// then the one refused when they hold nearly every connection slot,
// and it failed the whole run ("remaining connection slots are reserved
// for non-replication superuser connections"; bench/HISTORY.md,
// "bench/pgbench's direct phase, FuzzVerify and the grants' reads").
// Such a refusal is the server's load, not the path's: the phase is run
// again after a pause, a few times, and a run that still cannot get its
// connections says who holds the slots.

// slotRetries and slotWait bound the retries of a phase refused for
// want of connection slots: half a minute in all.
const (
	slotRetries = 6
	slotWait    = 5 * time.Second
)

// slotsExhausted reports whether pgbench's output (or an error holding
// it) says PostgreSQL refused a login for want of connection slots
// (SQLSTATE 53300): "sorry, too many clients already", or the slots left
// being reserved for superusers (PostgreSQL 15's wording, and 16's for
// roles with SUPERUSER or pg_use_reserved_connections).
func slotsExhausted(out string) bool {
	return strings.Contains(out, "too many clients already") ||
		strings.Contains(out, "remaining connection slots are reserved")
}

// slotUse says how the server's connection slots are used: its
// max_connections, the reserved ones, and the client backends by role,
// most first. It is for the messages of a refused phase; a failure to
// ask is said instead.
func slotUse(ctx context.Context, superDSN string) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, superDSN)
	if err != nil {
		return fmt.Sprintf("could not ask the server how its slots are used: %v", err)
	}
	defer c.Close(context.Background())
	var max, reserved int
	if err := c.QueryRow(ctx, `SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int`).Scan(&max, &reserved); err != nil {
		return fmt.Sprintf("could not ask the server how its slots are used: %v", err)
	}
	rows, err := c.Query(ctx, `SELECT coalesce(usename, '?'), count(*) FROM pg_stat_activity
		WHERE backend_type = 'client backend' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 8`)
	if err != nil {
		return fmt.Sprintf("could not ask the server how its slots are used: %v", err)
	}
	uses, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (slotUser, error) {
		var u slotUser
		return u, r.Scan(&u.role, &u.n)
	})
	if err != nil {
		return fmt.Sprintf("could not ask the server how its slots are used: %v", err)
	}
	return describeSlots(max, reserved, uses)
}

// slotUser is a role and how many client backends it has.
type slotUser struct {
	role string
	n    int
}

// describeSlots is slotUse's sentence.
func describeSlots(max, reserved int, uses []slotUser) string {
	var parts []string
	total := 0
	for _, u := range uses {
		total += u.n
		parts = append(parts, fmt.Sprintf("%s %d", u.role, u.n))
	}
	return fmt.Sprintf("max_connections %d, %d reserved for superusers; client backends of the top roles: %d (%s)", max, reserved, total, strings.Join(parts, ", "))
}

// retrySlots runs run, and runs it again while it fails for want of
// connection slots, at most retries more times, each after wait (which
// is told the retry's number and the refusal, and returns false to give
// up: the run is being stopped). It returns the last run's phase and
// error and how many times it ran again. Any other failure is returned
// at once: a path that fails must not be retried until it looks fine.
func retrySlots(run func() (phase, error), retries int, wait func(try int, err error) bool) (phase, int, error) {
	p, err := run()
	n := 0
	for err != nil && slotsExhausted(err.Error()) && n < retries {
		if !wait(n+1, err) {
			break
		}
		n++
		p, err = run()
	}
	return p, n, err
}
