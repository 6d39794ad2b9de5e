package pgroles

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRoleFor(t *testing.T) {
	long := "g_" + strings.Repeat("a", 54)
	for _, tc := range []struct {
		id, want string
		ok       bool
	}{
		{"g_abcdefghij234567klmn", "airlock_g_abcdefghij234567klmn", true},
		{"g_a", "airlock_g_a", true},
		{long[:55], "airlock_" + long[:55], true}, // 63 bytes
		{long, "", false},                         // 64 bytes: would be truncated
		{"G_ABC", "", false},                      // upper case would fold onto g_abc
		{"abc", "", false},
		{"g_", "", false},
		{`g_x"; DROP ROLE postgres; --`, "", false},
		{"g_x y", "", false},
		{"g_é", "", false},
	} {
		got, err := roleFor(tc.id)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("roleFor(%q) = %q, %v; want %q, ok=%v", tc.id, got, err, tc.want, tc.ok)
		}
	}
	if RoleName("g_AbC") != "airlock_g_abc" {
		t.Errorf("RoleName does not lower-case")
	}
	for _, tc := range []struct {
		role, id string
		ok       bool
	}{{"airlock_g_abc", "g_abc", true}, {"airlock_admin", "", false}, {"airlock_gx", "", false}, {"postgres", "", false}} {
		id, ok := grantIDOf(tc.role)
		if ok != tc.ok || (ok && id != tc.id) {
			t.Errorf("grantIDOf(%q) = %q, %v; want %q, %v", tc.role, id, ok, tc.id, tc.ok)
		}
	}
}

func TestQuoteLiteral(t *testing.T) {
	for in, want := range map[string]string{
		"orders":      "'orders'",
		"o'rders":     "'o''rders'",
		`back\slash`:  `'back\slash'`,
		"''; DROP --": "'''''; DROP --'",
	} {
		got, err := quoteLiteral(in)
		if err != nil || got != want {
			t.Errorf("quoteLiteral(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := quoteLiteral("a\x00b"); err == nil {
		t.Error("quoteLiteral accepted a NUL byte")
	}
}

// TestRoleHidesPassword checks every way a Role is likely to be printed.
func TestRoleHidesPassword(t *testing.T) {
	r := Role{Name: "airlock_g_x", Password: "s3cret-password-value", ValidUntil: time.Now()}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "role", r)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "role", r)
	for _, s := range []string{fmt.Sprint(r), fmt.Sprintf("%v %+v %#v %s", r, r, r, r), logged.String()} {
		if strings.Contains(s, r.Password) {
			t.Fatalf("password printed: %s", s)
		}
		if !strings.Contains(s, r.Name) {
			t.Fatalf("role name missing from %s", s)
		}
	}
}
