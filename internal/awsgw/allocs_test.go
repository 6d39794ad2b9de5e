package awsgw

import (
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/sigv4"
)

// handlerAllocsMax is what one GET 1 KiB allocates through the handler,
// as BenchmarkGatewayHandler/Get1KiB calls it: the benchmark's own
// request clone, in-memory upstream and authority included (about 19 of
// them). Lower it with each cut; a change that adds allocations per call
// fails here. The bound on the upstream's answer (answerwait.go) costs
// none: its timer is kept from an earlier call; nor do the records'
// parameters (their Pairs, in the call and its exchange; Op.Params is
// made only for a parameter besides those, and a GetObject has none),
// nor the upstream request, built in the exchange (upstreamRequest), nor
// the call's context, held there too (callCtx: the benchmark's request
// context never ends, so nothing is registered on it).
const handlerAllocsMax = 21

func TestGatewayHandlerAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation bounds hold only without the race detector")
	}
	serve, _ := handlerBench(t, false, 1<<10)
	boundAllocs(t, "a GET 1 KiB through the handler", handlerAllocsMax, serve)
}

// boundAllocs fails t if f, once run, then allocates more than max
// times a run.
func boundAllocs(t *testing.T, what string, max int, f func()) {
	t.Helper()
	f()
	if n := testing.AllocsPerRun(200, f); n > float64(max) {
		t.Errorf("%s allocates %v times, want at most %d", what, n, max)
	} else {
		t.Logf("%s: %v allocations", what, n)
	}
}

// scopeServiceSplit is scopeService as it was, with strings.Split.
func scopeServiceSplit(cred string) string {
	parts := strings.Split(strings.TrimSpace(cred), "/")
	if len(parts) != 5 || !sigv4.ValidService(parts[3]) {
		return ""
	}
	return parts[3]
}

func FuzzScopeService(f *testing.F) {
	for _, s := range []string{
		"AKID/20260101/us-east-1/s3/aws4_request", " AKID/20260101/us-east-1/sts/aws4_request ",
		"AKID/20260101/us-east-1/s3", "AKID/20260101/us-east-1/s3/aws4_request/x", "////", "a/b/c//e",
		"AKID/20260101/us-east-1/S3/aws4_request", "", "/", "AKID/2026/r/s3 /aws4_request",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cred string) {
		if got, want := scopeService(cred), scopeServiceSplit(cred); got != want {
			t.Fatalf("scopeService(%q) = %q, strings.Split's way %q", cred, got, want)
		}
	})
}

// TestStatusText: a result's Status is the code's decimal text, as
// strconv.Itoa gave it, for every code.
func TestStatusText(t *testing.T) {
	for code := -1; code < 1000; code++ {
		if got, want := statusText(code), strconv.Itoa(code); got != want {
			t.Fatalf("statusText(%d) = %q, want %q", code, got, want)
		}
	}
}

// versitygwGetHeader is a GetObject answer's header from versitygw as Go's
// client reads it (canonical names; the x-amz-* ones S3 sends in lower
// case), with a user metadata name besides.
func versitygwGetHeader() http.Header {
	return http.Header{
		"Server": {"VERSITYGW"}, "Date": {"Sun, 06 Dec 2026 17:23:41 GMT"}, "Content-Type": {"binary/octet-stream"},
		"Content-Length": {"1024"}, "X-Amz-Request-Id": {"NN1TRTKG5QFL3B8O"}, "X-Amz-Id-2": {"1pdCOg79wmOOe+1hcE+5BA=="},
		"X-Amz-Storage-Class": {"STANDARD"}, "X-Amz-Checksum-Type": {"FULL_OBJECT"}, "X-Amz-Checksum-Crc32": {"8CvoKA=="},
		"Accept-Ranges": {"bytes"}, "Last-Modified": {"Sun, 06 Dec 2026 17:23:37 GMT"}, "Etag": {`"a8fe23839cdc365fb85c9f122ec94100"`},
	}
}

// TestCopyResponseHeaderAllocs: the x-amz-* names of a common answer are
// written in S3's spelling without allocating (amzLower); only the map's
// own growth allocates, and here the map has room.
func TestCopyResponseHeaderAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation bounds hold only without the race detector")
	}
	from := versitygwGetHeader()
	h := make(http.Header, 32)
	if n := testing.AllocsPerRun(100, func() { clear(h); copyResponseHeader(h, from) }); n != 0 {
		t.Errorf("copying a GetObject answer's headers allocates %v times, want 0", n)
	}
}

// TestCopyResponseHeaderSpelling: copyResponseHeader writes every x-amz-*
// name lower-cased, listed in amzLower or not, and every other name as it
// came; a name set earlier under its canonical key is replaced.
func TestCopyResponseHeaderSpelling(t *testing.T) {
	from := versitygwGetHeader()
	from["X-Amz-Meta-Owner"] = []string{"ops"}
	from["X-Amz-Server-Side-Encryption"] = []string{"AES256"}
	h := http.Header{"X-Amz-Request-Id": {"stale"}}
	copyResponseHeader(h, from)
	want := http.Header{}
	for k, v := range from {
		if strings.HasPrefix(strings.ToLower(k), "x-amz-") {
			k = strings.ToLower(k)
		}
		want[k] = v
	}
	if !maps.EqualFunc(h, want, slices.Equal[[]string]) {
		t.Errorf("copied\n%v\nwant\n%v", h, want)
	}
	for canon, lower := range amzLower {
		if canon != http.CanonicalHeaderKey(lower) || lower != strings.ToLower(canon) || !strings.HasPrefix(lower, "x-amz-") {
			t.Errorf("amzLower[%q] = %q", canon, lower)
		}
	}
}

// handlerH1AllocsMax is what one GET 1 KiB allocates through the handler
// and awsgw's own HTTP/1 client to cannedUpstream, as
// BenchmarkGatewayHandler/Get1KiB-h1 calls it: handlerAllocsMax's, less
// the in-memory upstream's, plus the client's (the answer as net/http
// reads it). The cut is the call's context's own (callCtx.watchConn), no
// registration. The upstream request's header map is kept between calls
// (releaseUpstreamHeader), and the answer's fixedBody is in its h1Body.
const handlerH1AllocsMax = 21

func TestGatewayHandlerH1Allocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation bounds hold only without the race detector")
	}
	boundAllocs(t, "a GET 1 KiB through the handler and h1Transport", handlerH1AllocsMax, handlerBenchH1(t))
}

// keepingUpstream is memUpstream that keeps each request's header map, as
// a RoundTripper writing on a goroutine of its own may go on using it.
type keepingUpstream struct {
	memUpstream
	kept []http.Header
}

func (k *keepingUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	k.kept = append(k.kept, r.Header)
	return k.memUpstream.RoundTrip(r)
}

// TestUpstreamHeaderKeptOnlyFromOwnClient: the upstream request's header
// map goes back for reuse only from awsgw's own HTTP/1 client
// (releaseUpstreamHeader); a request another RoundTripper sent keeps its
// header, whole, after the call.
func TestUpstreamHeaderKeptOnlyFromOwnClient(t *testing.T) {
	up := &keepingUpstream{memUpstream: memUpstream{body: make([]byte, 1<<10)}}
	serve := handlerBenchVia(t, false, 1<<10, "http://upstream.test", up, func() int64 { return up.lastIn })
	for range 3 {
		serve()
	}
	for i, h := range up.kept {
		if h.Get("Authorization") == "" || h.Get("X-Amz-Date") == "" || h.Get("User-Agent") == "" {
			t.Errorf("call %d's upstream header was emptied or reused after the call: %v", i, h)
		}
	}
	for i := range up.kept {
		for j := range i {
			if reflect.ValueOf(up.kept[i]).UnsafePointer() == reflect.ValueOf(up.kept[j]).UnsafePointer() {
				t.Errorf("calls %d and %d sent one header map", j, i)
			}
		}
	}
}
