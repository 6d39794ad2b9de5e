package server

import (
	"context"
	"io"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/grants"
)

// GET /metrics serves the log's figures and the runtime's in Prometheus's
// format to a person's key, refuses an agent's, and asks for a key; the
// figures count the batches the server's log wrote.
func TestMetricsForPeopleOnly(t *testing.T) {
	cfg, botKey, aliceKey := auditConfigKeys(t, "")
	s := openServer(t, cfg)
	defer s.Close()
	if _, err := s.Service.Request(context.Background(), bot, grants.RequestInput{Target: "aws-prod",
		Scope: []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, Duration: "10m", Reason: "metrics"}); err != nil {
		t.Fatal(err)
	}
	get := func(key string) (int, string) {
		r := httptest.NewRequest("GET", "/metrics", nil)
		if key != "" {
			r.Header.Set("Authorization", "Bearer "+key)
		}
		w := httptest.NewRecorder()
		s.Handler.ServeHTTP(w, r)
		b, _ := io.ReadAll(w.Body)
		return w.Code, string(b)
	}
	if code, body := get(""); code != 401 {
		t.Fatalf("without a key: %d %s", code, body)
	}
	if code, body := get(botKey); code != 403 || strings.Contains(body, "airlock_log") {
		t.Fatalf("with an agent's key: %d %s", code, body)
	}
	code, body := get(aliceKey)
	if code != 200 {
		t.Fatalf("with a person's key: %d %s", code, body)
	}
	for _, name := range []string{"airlock_log_wait_seconds_bucket", "airlock_log_batch_write_seconds_sum",
		"airlock_log_batch_calls_count", "airlock_log_failed_batches_total 0", "airlock_log_entries", "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(body, name) {
			t.Errorf("metrics lack %s", name)
		}
	}
	m := regexp.MustCompile(`(?m)^airlock_log_batches_total (\d+)$`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no airlock_log_batches_total in\n%s", body)
	}
	if n, _ := strconv.Atoi(m[1]); n < 1 {
		t.Fatalf("airlock_log_batches_total %d after a request was logged", n)
	}
	if strings.Contains(body, "log-triage-bot") || strings.Contains(body, "aws-prod") {
		t.Fatal("metrics name an identity or a target")
	}
}
