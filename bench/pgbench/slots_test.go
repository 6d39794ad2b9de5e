package main

import (
	"errors"
	"strings"
	"testing"
)

// pgbench's output when PostgreSQL 15 refused its logins, as the direct
// phase printed it (bench/HISTORY.md, "bench/pgbench's direct phase,
// FuzzVerify and the grants' reads"), and the other refusal's wording.
const (
	reservedOut = `pgbench (15.20 (Debian 15.20-0+deb12u1))
pgbench: error: connection to server at "127.0.0.1", port 23400 failed: FATAL:  remaining connection slots are reserved for non-replication superuser connections
pgbench: error: could not create connection for client 7`
	tooManyOut = `pgbench: error: connection to server at "127.0.0.1", port 5432 failed: FATAL:  sorry, too many clients already`
	otherOut   = `pgbench: error: client 3 script 0 aborted in command 1 query 0: ERROR:  permission denied for table pgbench_accounts`
)

func TestSlotsExhausted(t *testing.T) {
	for out, want := range map[string]bool{reservedOut: true, tooManyOut: true, otherOut: false, "": false,
		// PostgreSQL 16's wording.
		"FATAL:  remaining connection slots are reserved for roles with the SUPERUSER attribute": true} {
		if got := slotsExhausted(out); got != want {
			t.Errorf("slotsExhausted(%q) = %t, want %t", out, got, want)
		}
	}
}

// A phase refused for want of slots runs again until it gets them, a
// bounded number of times; any other failure is returned at once.
func TestRetrySlots(t *testing.T) {
	for _, tc := range []struct {
		name    string
		errs    []string // each run's failure, "" for success
		retries int
		wantN   int
		wantErr string
		waits   int
	}{
		{"succeeds after two refusals", []string{reservedOut, tooManyOut, ""}, 6, 2, "", 2},
		{"other failure not retried", []string{otherOut, ""}, 6, 0, "permission denied", 0},
		{"refused every time", []string{reservedOut, reservedOut, reservedOut, reservedOut}, 3, 3, "remaining connection slots", 3},
		{"refused, then another failure", []string{tooManyOut, otherOut, ""}, 6, 1, "permission denied", 1},
		{"no retries allowed", []string{reservedOut, ""}, 0, 0, "remaining connection slots", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runs, waits := 0, 0
			run := func() (phase, error) {
				e := tc.errs[runs]
				runs++
				if e != "" {
					return phase{}, errors.New("pgbench -M simple: exit status 1\n" + e)
				}
				return phase{Transactions: 42}, nil
			}
			p, n, err := retrySlots(run, tc.retries, func(try int, err error) bool {
				waits++
				if try != waits || !slotsExhausted(err.Error()) {
					t.Errorf("wait(%d, %v) on wait %d", try, err, waits)
				}
				return true
			})
			if n != tc.wantN || waits != tc.waits || runs != n+1 {
				t.Errorf("retries %d, waits %d, runs %d; want %d, %d, %d", n, waits, runs, tc.wantN, tc.waits, tc.wantN+1)
			}
			switch {
			case tc.wantErr == "" && (err != nil || p.Transactions != 42):
				t.Errorf("err %v, phase %+v; want the successful run's", err, p)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("err %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// A wait that gives up (the run is being stopped) ends the retries with
// the refusal.
func TestRetrySlotsStopped(t *testing.T) {
	runs := 0
	_, n, err := retrySlots(func() (phase, error) { runs++; return phase{}, errors.New(tooManyOut) }, 6,
		func(int, error) bool { return false })
	if runs != 1 || n != 0 || err == nil || !slotsExhausted(err.Error()) {
		t.Fatalf("runs %d, retries %d, err %v; want 1, 0 and the refusal", runs, n, err)
	}
}

func TestDescribeSlots(t *testing.T) {
	got := describeSlots(100, 3, []slotUser{{"postgres", 60}, {"pgbench_admin_1", 20}})
	for _, want := range []string{"max_connections 100", "3 reserved", ": 80 (postgres 60, pgbench_admin_1 20)"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
}
