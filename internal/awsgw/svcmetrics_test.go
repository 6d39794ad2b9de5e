package awsgw

import (
	"bytes"
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

	// RPC v2 CBOR: the query's map behind a tag (55799, self-described
	// CBOR, which decoders skip) hid its AccountId from the check.
	text := func(s string) []byte { return append([]byte{0x60 | byte(len(s))}, s...) }
	body := append([]byte{0xa1, 0x71}, "MetricDataQueries"...)
	body = append(body, 0x81, 0xd9, 0xd9, 0xf7, 0xa2)
	body = append(append(append(body, text("Id")...), text("q1")...), text("AccountId")...)
	body = append(body, text("444455556666")...)
	cbor := http.Header{"Content-Type": {"application/cbor"}, "Smithy-Protocol": {"rpc-v2-cbor"}}
	if status, _, b := e.rawRequest(t, g, "POST", "/service/GraniteServiceVersion20100801/operation/GetMetricData", "monitoring", testRegion, "", cbor, body); status != http.StatusBadRequest || !bytes.Contains(b, []byte("SerializationException")) {
		t.Fatalf("tagged CBOR query: status %d (%q), want 400 SerializationException", status, b)
	}
	if rec := e.lastRequest(t, g); rec.Allowed {
		t.Fatalf("tagged CBOR query recorded as allowed: %+v", rec)
	}
	e.upstreamSaw(t, "monitoring", 1)

	// A path naming two operations: the mapper read the last, a router
	// may take the first.
	own := append([]byte{0xa1, 0x71}, "MetricDataQueries"...)
	own = append(own, 0x81, 0xa1)
	own = append(append(own, text("Id")...), text("q1")...)
	if status, _, b := e.rawRequest(t, g, "POST", "/service/GraniteServiceVersion20100801/operation/DeleteAlarms/service/GraniteServiceVersion20100801/operation/GetMetricData", "monitoring", testRegion, "", cbor, own); status != http.StatusBadRequest || !bytes.Contains(b, []byte("SerializationException")) {
		t.Fatalf("path naming two operations: status %d (%q), want 400 SerializationException", status, b)
	}
	e.upstreamSaw(t, "monitoring", 1)
	if status, _, b := e.rawRequest(t, g, "POST", "/service/GraniteServiceVersion20100801/operation/GetMetricData", "monitoring", testRegion, "", cbor, own); status == http.StatusForbidden || bytes.Contains(b, []byte("SerializationException")) {
		t.Fatalf("plain CBOR GetMetricData: status %d (%q)", status, b)
	}
	e.upstreamSaw(t, "monitoring", 2) // forwarded (awsfake has no GetMetricData to answer it with)
}
