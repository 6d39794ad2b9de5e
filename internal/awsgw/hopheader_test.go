package awsgw

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// copyResponseHeaderThenDelete is the answer's header copy as it was:
// everything copied, then each of hopHeaders deleted from h.
func copyResponseHeaderThenDelete(h, from http.Header) {
	for k, v := range from {
		if len(k) > 6 && strings.EqualFold(k[:6], "x-amz-") {
			lk, ok := amzLower[k]
			if !ok {
				lk = strings.ToLower(k)
			}
			if lk != k {
				delete(h, k)
			}
			h[lk] = v
			continue
		}
		h[k] = v
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// TestHopHeader: hopHeader finds exactly the names of hopHeaders, as
// delete finds them (no other spelling).
func TestHopHeader(t *testing.T) {
	for _, k := range hopHeaders {
		if !hopHeader(k) {
			t.Errorf("hopHeader(%q) = false", k)
		}
		for _, o := range []string{strings.ToLower(k), strings.ToUpper(k), k + "s", k[:len(k)-1], "X-" + k} {
			if hopHeader(o) != slices.Contains(hopHeaders, o) {
				t.Errorf("hopHeader(%q) = %v", o, hopHeader(o))
			}
		}
	}
	for _, k := range []string{"", "Ta", "Tf", "Trailers", "Upgrades", "Connectiom", "Keep-Alivf", "Content-Length", "X-Amz-Request-Id"} {
		if hopHeader(k) {
			t.Errorf("hopHeader(%q) = true", k)
		}
	}
}

func checkCopyResponseHeader(t *testing.T, pre, from string) {
	t.Helper()
	f := headerFromText(from)
	seen := map[string]bool{}
	for k := range f {
		if len(k) > 6 && strings.EqualFold(k[:6], "x-amz-") {
			l := strings.ToLower(k)
			if seen[l] {
				// Two spellings of one x-amz-* name: either copy keeps the
				// one the map gives last, so two copies need not agree.
				return
			}
			seen[l] = true
		}
	}
	got, want := headerFromText(pre), headerFromText(pre)
	copyResponseHeader(got, f)
	copyResponseHeaderThenDelete(want, f)
	if !maps.EqualFunc(got, want, slices.Equal[[]string]) {
		t.Fatalf("copying %q into %q: %v, copied then deleted: %v", f, pre, got, want)
	}
	for k := range f {
		if hopHeader(k) != slices.Contains(hopHeaders, k) {
			t.Fatalf("hopHeader(%q) = %v", k, hopHeader(k))
		}
	}
}

// TestCopyResponseHeaderHop: the hop-by-hop names skipped in the copy
// leave what copying them and deleting them after left, with or without
// names set in h before the copy.
func TestCopyResponseHeaderHop(t *testing.T) {
	from := "Connection:keep-alive\nKeep-Alive:timeout=5\nTransfer-Encoding:chunked\nTe:trailers\nTrailer:x\nUpgrade:h2c\n" +
		"Proxy-Connection:x\nProxy-Authenticate:Basic\nconnection:lower\nContent-Length:3\nX-Amz-Request-Id:r\nx-amz-id-2:i\nEtag:e"
	for _, pre := range []string{"", "Connection:close", "Te:x\nX-Amz-Request-Id:old\nServer:s", "connection:close\nUpgrade:u"} {
		checkCopyResponseHeader(t, pre, from)
	}
}

func FuzzCopyResponseHeaderHop(f *testing.F) {
	f.Add("", "Connection:close\nTe:x\nX-Amz-Request-Id:r\nEtag:e")
	f.Add("Connection:close", "Keep-Alive:1\nUpgrade:u\nx-amz-meta-a:1\nX-Amz-Meta-B:2")
	f.Add("Trailer:t\nX-Amz-Id-2:old", "Transfer-Encoding:chunked\nX-Amz-Id-2:new\nProxy-Connection:x")
	f.Fuzz(func(t *testing.T, pre, from string) {
		checkCopyResponseHeader(t, pre, from)
	})
}
