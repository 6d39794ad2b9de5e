package health

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadiness(t *testing.T) {
	var storeErr atomic.Value
	storeErr.Store(errors.New("ok"))
	var calls atomic.Int32
	c := New(nil,
		Check{Name: "store", Failing: "unreachable", Run: func(ctx context.Context) error {
			calls.Add(1)
			if err := storeErr.Load().(error); err.Error() != "ok" {
				return err
			}
			return nil
		}},
		Check{Name: "log", Failing: "cannot write", Run: func(ctx context.Context) error { return nil }},
	)
	c.ttl = 0
	probe := func() (int, string) {
		w := httptest.NewRecorder()
		c.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
		return w.Code, w.Body.String()
	}
	if code, body := probe(); code != 200 || body != `{"status":"ready","checks":{"log":"ok","store":"ok"}}`+"\n" {
		t.Fatalf("ready: %d %q", code, body)
	}
	storeErr.Store(errors.New("failed to connect to host=db.internal user=airlock password=hunter2"))
	code, body := probe()
	if code != http.StatusServiceUnavailable || body != `{"status":"not ready","checks":{"log":"ok","store":"unreachable"}}`+"\n" {
		t.Fatalf("store down: %d %q", code, body)
	}
	if strings.Contains(body, "hunter2") || strings.Contains(body, "db.internal") {
		t.Fatalf("the probe leaks the error: %s", body)
	}

	// A hanging check is cut off by the timeout.
	c = New(nil, Check{Name: "store", Failing: "unreachable", Run: func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}})
	c.timeout = 50 * time.Millisecond
	start := time.Now()
	if rep := c.Check(context.Background()); rep.Ready() || time.Since(start) > 5*time.Second {
		t.Fatalf("hanging check: %+v after %v", rep, time.Since(start))
	}

	// Probes within the cache interval reach the checks once.
	calls.Store(0)
	storeErr.Store(errors.New("ok"))
	c = New(nil, Check{Name: "store", Failing: "unreachable", Run: func(ctx context.Context) error { calls.Add(1); return nil }})
	c.ttl = time.Hour
	for range 10 {
		c.Check(context.Background())
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("10 probes ran the check %d times, want 1", n)
	}
}
