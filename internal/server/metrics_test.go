package server

import (
	"context"
	"io"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/grants"
)

// GET /metrics serves the log's figures and the runtime's in Prometheus's
// format to a person's key, refuses an agent's, and asks for a key; the
// figures count the batches the server's log wrote.
func TestMetricsForPeopleOnly(t *testing.T) {
	cfg, botKey, aliceKey := auditConfigKeys(t, "")
	s := openServer(t, cfg)
	defer s.Close()
	ctx := context.Background()
	// Two sessions through the gateways' recorder, one still open: an
	// allowed call, a denied one and a result (not a call).
	gg := metricsGrant(t, s)
	for i := range 2 {
		ses, err := s.Service.Authority().StartSession(ctx, gg, "test-client")
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []gateway.Call{
			{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a.log", Allowed: true},
			{Kind: "request", Action: "s3:DeleteObject", Resource: "arn:aws:s3:::logs/app/a.log", Allowed: false},
			{Kind: "result", Action: "s3:GetObject", BytesOut: 7},
		} {
			if err := gatewaytest.Record(ctx, ses, c); err != nil {
				t.Fatal(err)
			}
		}
		if i == 0 {
			if err := ses.End(ctx); err != nil {
				t.Fatal(err)
			}
		} else {
			defer ses.End(ctx)
		}
	}
	get := func(key string) (int, string) { return scrapeMetrics(s, key) }
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
	for _, name := range []string{
		`airlock_gateway_sessions_started_total{gateway="aws"} 2`, `airlock_gateway_sessions_open{gateway="aws"} 1`,
		`airlock_gateway_calls_total{gateway="aws",outcome="allowed"} 2`, `airlock_gateway_calls_total{gateway="aws",outcome="denied"} 2`,
		"airlock_log_wait_seconds_bucket", "airlock_log_batch_write_seconds_sum",
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
	if strings.Contains(body, "log-triage-bot") || strings.Contains(body, "aws-prod") || strings.Contains(body, "logs/app") {
		t.Fatal("metrics name an identity or a target")
	}
}

// A statement the grant's scope allowed and the upstream refused for lack
// of privilege (a result marked Refused, as pggw records PostgreSQL's
// 42501) counts under outcome "refused", not "allowed": the review counts
// it as denied, and it was counted as allowed when its request was
// recorded. Requests whose outcome is their result's
// (gateway.Call.OutcomeAtResult) are counted once their result is; the
// others at their request, as before.
func TestMetricsRefusedStatement(t *testing.T) {
	cfg, _, aliceKey := auditConfigKeys(t, "")
	s := openServer(t, cfg)
	defer s.Close()
	ctx := context.Background()
	ses, err := s.Service.Authority().StartSession(ctx, metricsGrant(t, s), "test-client")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []gateway.Call{
		// A statement refused, one that ran, and a call counted at its
		// request.
		{Kind: "request", Action: "s3:PutObject", Resource: "arn:aws:s3:::logs/app/a.log", Allowed: true, OutcomeAtResult: true},
		{Kind: "result", Action: "s3:PutObject", Resource: "arn:aws:s3:::logs/app/a.log", Allowed: true, Refused: true, OutcomeAtResult: true, Error: "42501 permission denied"},
		{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a.log", Allowed: true, OutcomeAtResult: true},
		{Kind: "result", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a.log", Allowed: true, OutcomeAtResult: true},
		{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/b.log", Allowed: true},
	} {
		if err := gatewaytest.Record(ctx, ses, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := ses.End(ctx); err != nil { // the results land before the end
		t.Fatal(err)
	}
	_, body := scrapeMetrics(s, aliceKey)
	for _, want := range []string{
		`airlock_gateway_calls_total{gateway="aws",outcome="allowed"} 2`,
		`airlock_gateway_calls_total{gateway="aws",outcome="refused"} 1`,
		`airlock_gateway_calls_total{gateway="aws",outcome="denied"} 0`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// metricsGrant is an active grant of the test configuration's aws target,
// as the gateways see it.
func metricsGrant(t *testing.T, s *Server) *gateway.Grant {
	t.Helper()
	g, err := s.Service.Request(context.Background(), bot, grants.RequestInput{Target: "aws-prod",
		Scope: []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, Duration: "10m", Reason: "metrics"})
	if err != nil {
		t.Fatal(err)
	}
	gg, err := s.Service.Authority().Lookup(g.CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	return gg
}

// scrapeMetrics is GET /metrics with key (none if empty): the status and
// the body.
func scrapeMetrics(s *Server, key string) (int, string) {
	r := httptest.NewRequest("GET", "/metrics", nil)
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	w := httptest.NewRecorder()
	s.Handler.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Body)
	return w.Code, string(b)
}
