package awsgw

import (
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/s3iam"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// upstreamHeaderLookup is upstreamHeader's copy loop as it was, looking
// every key up in what it has copied so far, to merge keys that
// canonicalise alike.
func upstreamHeaderLookup(in http.Header, auth *sigv4.Auth) http.Header {
	h := make(http.Header, len(in))
	for k, v := range in {
		ck := canonicalHeaderKey(k)
		if clientOnly(ck) || !signedAmz(ck, auth) || underscored(ck) && !strings.HasPrefix(ck, "X-Amz-Meta-") {
			continue
		}
		v = slices.Clip(v)
		if prev, ok := h[ck]; ok {
			v = append(prev, v...)
		}
		h[ck] = v
	}
	dropNominated(h, in)
	return h
}

// headerFromText reads "name:value" lines into a header as a client's
// request may hold it: names as given, in any case, repeated or not.
func headerFromText(s string) http.Header {
	h := http.Header{}
	for line := range strings.SplitSeq(s, "\n") {
		k, v, _ := strings.Cut(line, ":")
		if k != "" {
			h[k] = append(h[k], v)
		}
	}
	return h
}

// sameHeaderValues compares two headers key by key with each key's values
// as a multiset: the order in which values merged under one name takes
// follows the map's iteration order, in either version.
func sameHeaderValues(a, b http.Header) bool {
	return maps.EqualFunc(a, b, func(x, y []string) bool {
		return slices.Equal(slices.Sorted(slices.Values(x)), slices.Sorted(slices.Values(y)))
	})
}

var mergeAuth = &sigv4.Auth{SignedHeaders: []string{"host", "x-amz-meta-a", "x-amz-checksum-crc32"}}

func checkUpstreamHeaderMerge(t *testing.T, text string) {
	t.Helper()
	in := headerFromText(text)
	for range 8 { // the map's order differs between ranges over it
		got, want := upstreamHeader(in, &s3iam.Op{}, mergeAuth), upstreamHeaderLookup(in, mergeAuth)
		if !sameHeaderValues(got, want) {
			t.Fatalf("upstreamHeader(%q) = %v, looking every key up: %v", in, got, want)
		}
	}
}

// TestUpstreamHeaderMergeOrders: upstreamHeader looks a key up in what it
// has copied only once a key was canonicalised into another; whichever of
// two spellings of a name the map gives first, their values merge as
// they did with a lookup per key.
func TestUpstreamHeaderMergeOrders(t *testing.T) {
	for _, text := range []string{
		"X-Amz-Meta-A:1\nx-amz-meta-a:2\nRange:r",
		"X-Amz-Meta-A:1\nX-AMZ-META-A:2\nx-amz-meta-a:3\nAccept:a\naccept:b\nACCEPT:c",
		"Content-Type:a\ncontent-type:b\nUser-Agent:u\nuser-agent:v\nX-Custom:1\nx-custom:2\nx-CUSTOM:3",
		"bad key:1\nBad key:2\nX-Ok:3\nx-ok:4",
		"Connection:x-hop\nX-Hop:1\nx-hop:2\nKeep:3",
		"Authorization:a\nauthorization:b\nX-Amz-Date:d\nx-amz-date:e\nA:1",
	} {
		for range 50 {
			checkUpstreamHeaderMerge(t, text)
		}
	}
}

func FuzzUpstreamHeaderMerge(f *testing.F) {
	for _, s := range []string{
		"X-Amz-Meta-A:1\nx-amz-meta-a:2", "Accept:a\naccept:b\nACCEPT:c\nRange:r", "a:1\nA:2\nb_c:3\nB_c:4",
		"Connection:x-hop, range\nX-Hop:1\nx-hop:2\nrange:3", "X-Amz-Checksum-Crc32:c\nx-amz-checksum-CRC32:d\nx-amz-unsigned:e",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		checkUpstreamHeaderMerge(t, text)
	})
}
