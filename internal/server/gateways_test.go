package server

import (
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/config"
)

func TestAdminDSN(t *testing.T) {
	t.Setenv("ORDERS_ADMIN_PW", "p@ss/word")
	for _, tc := range []struct {
		target          config.Target
		wantDB, wantPW  string
		wantErrContains string
	}{
		{target: config.Target{Name: "a", Upstream: "postgres://airlock_admin@127.0.0.1:5432/orders"}, wantDB: "orders"},
		{target: config.Target{Name: "b", Upstream: "postgres://airlock_admin@db:5432/orders?sslmode=verify-full", PasswordEnv: "ORDERS_ADMIN_PW"}, wantDB: "orders", wantPW: "p@ss/word"},
		{target: config.Target{Name: "c", Upstream: "postgres://airlock_admin@db:5432/"}, wantErrContains: "names no database"},
	} {
		dsn, db, err := adminDSN(tc.target)
		if tc.wantErrContains != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErrContains) {
				t.Errorf("%s: err %v, want %q", tc.target.Name, err, tc.wantErrContains)
			}
			continue
		}
		if err != nil || db != tc.wantDB {
			t.Errorf("%s: db %q err %v", tc.target.Name, db, err)
		}
		if tc.wantPW != "" && !strings.Contains(dsn, "p%40ss%2Fword@") {
			t.Errorf("%s: password not in the DSN (escaped): %s", tc.target.Name, dsn)
		}
		if tc.wantPW == "" && strings.Contains(dsn, ":@") {
			t.Errorf("%s: an empty password was added: %s", tc.target.Name, dsn)
		}
	}
}

func TestLoopbackAndClientHost(t *testing.T) {
	for host, want := range map[string]bool{"127.0.0.1": true, "::1": true, "localhost": true, "0.0.0.0": false, "10.1.2.3": false, "gw.example.com": false} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v", host, got)
		}
	}
	if got := clientHost("::1"); got != "[::1]" {
		t.Errorf("clientHost(::1) = %q", got)
	}
	if got := clientHost("127.0.0.1"); got != "127.0.0.1" {
		t.Errorf("clientHost(127.0.0.1) = %q", got)
	}
	if got := clientHost("0.0.0.0"); got == "" || got == "0.0.0.0" {
		t.Errorf("clientHost(0.0.0.0) = %q: clients cannot dial the wildcard", got)
	}
}
