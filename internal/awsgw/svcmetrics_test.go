package awsgw

import (
	"net/http"
	"testing"

	"github.com/airlock-dev/airlock/internal/awsfake"
)

// TestServiceMetricDataLinkedAccount: a GetMetricData query's AccountId
// reads another (linked) account's metrics, beyond the grant's target
// account. The Query protocol's list may be numbered with or without
// ".member." (the mapper reads both); the AccountId of either must be the
// target's, or the call is refused before it reaches the upstream.
func TestServiceMetricDataLinkedAccount(t *testing.T) {
	cw := awsfake.Start("monitoring", testRegion, upstreamAK, upstreamSK)
	t.Cleanup(cw.Close)
	e := newSvcEnv(t, func(o *Options) { o.Targets[0].Endpoints["monitoring"] = cw.URL })
	e.fakes["monitoring"] = cw
	g := e.grant("cloudwatch:GetMetricData *")
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded; charset=utf-8"}}
	const q = "Action=GetMetricData&Version=2010-08-01&StartTime=2026-01-01T00%3A00%3A00Z&EndTime=2026-01-01T01%3A00%3A00Z&MetricDataQueries."
	for _, body := range []string{
		q + "member.1.Id=q1&MetricDataQueries.member.1.Expression=SUM(METRICS())&MetricDataQueries.member.1.AccountId=444455556666",
		q + "1.Id=q1&MetricDataQueries.1.Expression=SUM(METRICS())&MetricDataQueries.1.AccountId=444455556666",
	} {
		if status, _, b := e.rawCall(t, g, "monitoring", testRegion, "", form, []byte(body)); status != http.StatusForbidden {
			t.Fatalf("%s: status %d (%s), want 403", body, status, b)
		}
		if rec := e.lastRequest(t, g); rec.Allowed {
			t.Fatalf("%s: recorded as allowed: %+v", body, rec)
		}
	}
	e.upstreamSaw(t, "monitoring", 0)
	// The target's own account is the grant's: forwarded.
	if status, _, b := e.rawCall(t, g, "monitoring", testRegion, "", form, []byte(q+"1.Id=q1&MetricDataQueries.1.Expression=SUM(METRICS())&MetricDataQueries.1.AccountId="+testAccount)); status == http.StatusForbidden {
		t.Fatalf("own account: status %d (%s)", status, b)
	}
	e.upstreamSaw(t, "monitoring", 1)
}
