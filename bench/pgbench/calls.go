package main

import "fmt"

// pgbenchStartupQueries is how many statements pgbench (13 and later)
// sends through a path before its clients start, on a connection of its
// own: `select count(*) from pgbench_branches`, for the scale the built-in
// scripts use, and a pg_catalog query for whether pgbench_accounts is
// partitioned. They are calls of the grant like any other, but not
// transactions: traced with `airlock session show GRANT -o json` after a
// run (pgbench 15, 2026-12-03), every recorded call beyond the
// transactions was one of these or the idle phase's SELECT 1.
const pgbenchStartupQueries = 2

// gatewayCalls is what the benchmark sent through the gateway, as the
// review should count it.
type gatewayCalls struct {
	// Transactions is the sum of pgbench's transactions (one SELECT each
	// with -S), warm-up included.
	Transactions int64 `json:"transactions"`
	// Runs is how many pgbench runs went through the gateway, each with
	// pgbenchStartupQueries before its transactions.
	Runs int64 `json:"pgbench_runs"`
	// IdleQueries is the idle-memory phase's SELECT 1 on its first
	// connection (0 if the phase did not run).
	IdleQueries int64 `json:"idle_queries"`
}

// total is every call the review should count for the grant.
func (c gatewayCalls) total() int64 {
	return c.Transactions + c.Runs*pgbenchStartupQueries + c.IdleQueries
}

// explain says what the review's count n is made of; a count above the
// total is named, since nothing the benchmark did explains it.
func (c gatewayCalls) explain(n float64) string {
	s := fmt.Sprintf("made up of %d pgbench transactions, %d pgbench start-up queries (%d in each of %d runs) and %d SELECT 1 of the idle phase",
		c.Transactions, c.Runs*pgbenchStartupQueries, pgbenchStartupQueries, c.Runs, c.IdleQueries)
	if extra := int64(n) - c.total(); extra > 0 {
		s += fmt.Sprintf("; the review counts %d more, which none of these explains", extra)
	}
	return s
}
