package awsgw

import (
	"fmt"
	"net/http"
	"testing"

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
	h := upstreamHeader(in, &s3iam.Op{}, &sigv4.Auth{})
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
