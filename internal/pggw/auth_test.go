package pggw

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/pgroles"
	"github.com/jackc/pgx/v5"
)

func TestRefusedConnections(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	ended := e.grant(time.Hour, "pg:select %s.public.customers")
	e.auth.End(ended, "revoked")
	aws := e.auth.Add(gatewaytest.Spec{Target: "aws-prod", TargetKind: "aws", Scope: []string{"s3:GetObject arn:aws:s3:::b/*"}})
	port := e.addr.Port
	tests := []struct {
		name, url, code, msg string
	}{
		{"wrong password", fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", g.CredentialID, "WRONG"+g.Secret[5:], port, e.db),
			"28P01", fmt.Sprintf("password authentication failed for user %q", g.CredentialID)},
		{"unknown user", fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", "AKALNOSUCHCRED00000", g.Secret, port, e.db),
			"28P01", `password authentication failed for user "AKALNOSUCHCRED00000"`},
		{"ended grant", fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", ended.CredentialID, ended.Secret, port, e.db),
			"28P01", "password authentication failed"},
		{"other database", fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/postgres?sslmode=disable", g.CredentialID, g.Secret, port),
			"3D000", fmt.Sprintf("grant %s is for database %q", g.ID, e.db)},
		{"aws grant", fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", aws.CredentialID, aws.Secret, port, e.db),
			"28000", "not a PostgreSQL target"},
		{"channel binding required", e.url(g, "&channel_binding=require"), "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t, 15*time.Second)
			before := len(e.auth.Rejections())
			c, err := pgx.Connect(ctx, tc.url)
			if err == nil {
				c.Close(ctx)
				t.Fatal("connected")
			}
			if tc.code != "" {
				if got := pgCode(err); got != tc.code || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("err = %v (code %q), want %s containing %q", err, got, tc.code, tc.msg)
				}
			}
			if strings.Contains(err.Error(), g.Secret) {
				t.Fatal("the secret is in the error")
			}
			// pgx retries once with another sslmode on some errors; at least one rejection.
			// The client may give up on its own (channel binding), so the
			// gateway's record of it can trail the client's error.
			rej := e.auth.Rejections()
			for deadline := time.Now().Add(3 * time.Second); len(rej) <= before && time.Now().Before(deadline); rej = e.auth.Rejections() {
				time.Sleep(10 * time.Millisecond)
			}
			if len(rej) <= before {
				t.Fatalf("no rejection recorded")
			}
			for _, r := range rej[before:] {
				if r.Gateway != "postgres" || r.Reason == "" || strings.Contains(r.Reason, g.Secret) {
					t.Fatalf("bad rejection %+v", r)
				}
			}
		})
	}
	// No upstream session was opened for any of them.
	if n := len(e.auth.Sessions()); n != 0 {
		t.Fatalf("%d sessions started for refused connections", n)
	}
	var backends int
	// Only this test's grants: other packages' tests run at the same time
	// on the same cluster, with grant roles of their own.
	mine := []string{pgroles.RoleName(g.ID), pgroles.RoleName(ended.ID), pgroles.RoleName(aws.ID)}
	if err := e.admin().QueryRow(ctxT(t, 10*time.Second), "select count(*) from pg_stat_activity where usename = any($1)", mine).Scan(&backends); err != nil {
		t.Fatal(err)
	}
	if backends != 0 {
		t.Fatalf("%d upstream backends left", backends)
	}
}

// A wrong password and an unknown user must look alike to the client.
func TestUnknownUserLooksLikeWrongPassword(t *testing.T) {
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	ctx := ctxT(t, 15*time.Second)
	msg := func(user, pass string) string {
		_, err := pgx.Connect(ctx, fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", user, pass, e.addr.Port, e.db))
		if err == nil {
			t.Fatal("connected")
		}
		return strings.ReplaceAll(err.Error(), user, "USER")
	}
	a, b := msg(g.CredentialID, "nope"), msg("AKALUNKNOWN", "nope")
	if a != b {
		t.Fatalf("errors differ:\n%s\n%s", a, b)
	}
	_ = context.Background
}
