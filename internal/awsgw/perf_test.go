package awsgw

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/s3iam"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// The request id keeps the format it had when it came from fmt.
func TestAppendRequestID(t *testing.T) {
	for _, seq := range []uint64{0, 1, 0xABC, 1<<48 - 1, 1 << 48, 1<<64 - 1} {
		got := appendRequestID(nil, "0A1B2C3D", seq)
		if want := fmt.Sprintf("%s%012X", "0A1B2C3D", seq); got != want {
			t.Errorf("seq %d: %q, want %q", seq, got, want)
		}
	}
}

// upstreamHeader shares the client's value slices; what it returns must
// still be the client's headers minus the dropped ones, and changing it
// must not change the client's request.
func TestUpstreamHeaderLeavesClientHeaderAlone(t *testing.T) {
	in := http.Header{
		"Authorization":        {"AWS4-HMAC-SHA256 Credential=..."},
		"X-Amz-Content-Sha256": {"UNSIGNED-PAYLOAD"},
		"X-Amz-Meta-A":         {"1", "2"},
		"x-amz-meta-a":         {"3"},
		"Connection":           {"X-Secret-Hop"},
		"X-Secret-Hop":         {"v"},
		"Range":                {"bytes=0-9"},
	}
	before := in.Clone()
	h := upstreamHeader(in, &s3iam.Op{}, &sigv4.Auth{SignedHeaders: []string{"host", "x-amz-meta-a"}})
	for _, k := range []string{"Authorization", "X-Amz-Content-Sha256", "Connection", "X-Secret-Hop"} {
		if _, ok := h[k]; ok {
			t.Errorf("%s went upstream", k)
		}
	}
	if got := h.Values("X-Amz-Meta-A"); len(got) != 3 {
		t.Errorf("X-Amz-Meta-A = %q, want the three values of both spellings", got)
	}
	if got := h.Get("Range"); got != "bytes=0-9" {
		t.Errorf("Range = %q", got)
	}
	h["X-Amz-Meta-A"] = append(h["X-Amz-Meta-A"], "4")
	h["Range"] = append(h["Range"], "x")
	h.Set("X-Amz-Content-Sha256", "abc")
	for k, v := range before {
		if fmt.Sprint(in[k]) != fmt.Sprint(v) {
			t.Errorf("client header %s changed: %q, was %q", k, in[k], v)
		}
	}
	if len(in) != len(before) {
		t.Errorf("client header has %d keys, had %d", len(in), len(before))
	}
}

// redirectUpstream answers every request with S3's PermanentRedirect,
// pointing elsewhere, and counts the requests it got.
type redirectUpstream struct {
	mu   sync.Mutex
	reqs []string
}

func (u *redirectUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	u.mu.Lock()
	u.reqs = append(u.reqs, r.URL.String())
	u.mu.Unlock()
	body := `<Error><Code>PermanentRedirect</Code><Message>use the other endpoint</Message></Error>`
	return &http.Response{StatusCode: http.StatusMovedPermanently, Request: r, ContentLength: int64(len(body)),
		Header: http.Header{"Location": {"http://elsewhere.test/logs/app/x"}, "Content-Length": {strconv.Itoa(len(body))}},
		Body:   io.NopCloser(strings.NewReader(body))}, nil
}

// A redirect from the upstream goes back to the client as it came; the
// gateway never follows it to an endpoint that was not configured.
func TestUpstreamRedirectIsNotFollowed(t *testing.T) {
	up := &redirectUpstream{}
	e := newEnv(t, func(o *Options) { o.Transport = up })
	g := e.grant(walkScope)
	req := e.signed(g, http.MethodGet, "/logs/app/x", nil)
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "http://elsewhere.test/logs/app/x" {
		t.Fatalf("status %d, Location %q: %s", resp.StatusCode, resp.Header.Get("Location"), b)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if len(up.reqs) != 1 || strings.Contains(up.reqs[0], "elsewhere") {
		t.Fatalf("upstream requests: %q", up.reqs)
	}
	if r := e.results(g, 1); r[0].Status != "301" || r[0].Error != "PermanentRedirect" {
		t.Fatalf("result: %+v", r[0])
	}
}

// Results share a context, but each record still gets at least half of
// recordTimeout, and a context that has ended is never handed out again.
func TestResultContext(t *testing.T) {
	s := &session{}
	ctx := s.resultContext()
	dl, ok := ctx.Deadline()
	if !ok || time.Until(dl) > recordTimeout || time.Until(dl) < recordTimeout-time.Second {
		t.Fatalf("deadline %v away, want about %v", time.Until(dl), recordTimeout)
	}
	if s.resultContext() != ctx {
		t.Fatal("a fresh result context was not shared")
	}
	s.resMu.Lock()
	s.resDeadline = time.Now().Add(recordTimeout/2 - time.Second) // as if time had passed
	s.resMu.Unlock()
	renewed := s.resultContext()
	if renewed == ctx {
		t.Fatal("a result context with less than half of recordTimeout left was handed out")
	}
	if ctx.Err() != nil {
		t.Fatal("renewing cancelled the context records may still be using")
	}
	s.releaseResultContext()
	if renewed.Err() == nil {
		t.Fatal("release left the context's timer running")
	}
	if c := s.resultContext(); c.Err() != nil {
		t.Fatal("an ended result context was handed out")
	}
	s.releaseResultContext()
}
