package server

import (
	"context"
	"io"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestReadyz: /readyz answers 200 while the PostgreSQL store answers, 503
// naming the store (and nothing about the error) while the database refuses
// connections, and 200 again by itself once it accepts them.
func TestReadyz(t *testing.T) {
	dsn := pgDatabase(t)
	s := openServer(t, pgConfig(t, dsn))
	defer s.Close()
	u, _ := url.Parse(dsn)
	db := pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()
	ctx := context.Background()
	su, err := pgx.Connect(ctx, testenv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	t.Cleanup(func() { su.Exec(ctx, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS true") })

	probe := func() (int, string) {
		w := httptest.NewRecorder()
		s.Handler.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
		b, _ := io.ReadAll(w.Body)
		return w.Code, string(b)
	}
	// until probes for at most 10 s until want is answered.
	until := func(want int, wantBody string) {
		t.Helper()
		var code int
		var body string
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if code, body = probe(); code == want && strings.Contains(body, wantBody) {
				return
			}
		}
		t.Fatalf("/readyz: %d %s, want %d with %s", code, body, want, wantBody)
	}
	until(200, `"status":"ready"`)
	if code, body := probe(); !strings.Contains(body, `"store":"ok"`) || code != 200 {
		t.Fatalf("/readyz: %d %s", code, body)
	}

	for _, q := range []string{
		"ALTER DATABASE " + db + " ALLOW_CONNECTIONS false",
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + strings.TrimPrefix(u.Path, "/") + "'",
	} {
		if _, err := su.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	until(503, `"store":"unreachable"`)
	if _, body := probe(); strings.Contains(body, "127.0.0.1") || strings.Contains(body, "postgres") {
		t.Fatalf("/readyz leaks the error: %s", body)
	}
	if _, err := su.Exec(ctx, "ALTER DATABASE "+db+" ALLOW_CONNECTIONS true"); err != nil {
		t.Fatal(err)
	}
	until(200, `"store":"ok"`)
	// Liveness never depended on the store.
	w := httptest.NewRecorder()
	s.Handler.ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
	if w.Code != 200 {
		t.Fatalf("/healthz: %d", w.Code)
	}
}
