package sigv4

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// unsignedAmzMap is unsignedAmz as it was, walking the header map itself.
func unsignedAmzMap(h http.Header, signedHeaders []string, lowerSigned bool) []string {
	var out []string
	for k := range h {
		if len(k) < 6 || !strings.EqualFold(k[:6], "x-amz-") {
			continue
		}
		if lowerSigned && isASCII(k) {
			if hasLowerFold(signedHeaders, k, 0) || hasLowerFold(unsignedOK, k, 0) || hasFold(out, k) {
				continue
			}
		} else if hasFold(signedHeaders, k) || hasFold(unsignedOK, k) || hasFold(out, k) {
			continue
		}
		out = append(out, strings.ToLower(k))
	}
	slices.Sort(out)
	return out
}

// checksumHeadersMap is setPayload's scan for checksum headers as it was,
// over the whole header map and the hoisted one.
func checksumHeadersMap(h, hoisted http.Header) []amzHeader {
	var sums []amzHeader
	for _, h := range [...]http.Header{h, hoisted} {
		for k, vs := range h {
			if len(k) <= len(checksumPrefix) || !strings.EqualFold(k[:len(checksumPrefix)], checksumPrefix) {
				continue
			}
			if lower := strings.ToLower(k); isChecksumName(lower) {
				sums = append(sums, amzHeader{lower, vs})
			}
		}
	}
	return sums
}

// sortedSums orders checksum headers by name, then first value (the
// two scans walk maps, in no set order; setPayload's use of them does not
// depend on it: more than one is refused whatever they are).
func sortedSums(s []amzHeader) []amzHeader {
	slices.SortFunc(s, func(a, b amzHeader) int {
		return cmp.Or(strings.Compare(a.k, b.k), strings.Compare(a.vs[0], b.vs[0]))
	})
	return s
}

// headerOf is a header map with one key a line of keys, each valued with
// its line's number.
func headerOf(keys string) http.Header {
	h := http.Header{}
	i := 0
	for k := range strings.SplitSeq(keys, "\n") {
		h[k] = []string{strconv.Itoa(i)}
		i++
	}
	return h
}

// FuzzAmzHeaderPass holds the one pass over a request's x-amz-* headers
// (amzHeaders), shared by unsignedAmz and setPayload's checksum headers,
// to the two walks over the whole header map it replaced: for any header
// keys (any case, non-ASCII bytes, names that only start like x-amz- or
// x-amz-checksum-) and any SignedHeaders list splitSignedHeaders accepts,
// the same unsigned names and the same checksum headers with the same
// values.
func FuzzAmzHeaderPass(f *testing.F) {
	f.Add("X-Amz-Date\nX-Amz-Security-Token\nX-Amz-Content-Sha256\nX-Amz-Checksum-Crc32\nUser-Agent\nHost", "X-Amz-Checksum-Sha256", "host;x-amz-content-sha256;x-amz-date")
	f.Add("x-amz-checksum-crc32\nX-AMZ-CHECKSUM-CRC32\nX-Amz-Checksum-Md5\nx-amz-checksum-\nX-Amz-Meta-\u212a\nx-amz", "", "host;x-amz-date;x-amz-meta-k")
	f.Add("X-Amz-Checksum-Crc64nvme\nX-Amz-Checksum-Sha1\nX-Amz-\u212aeta\nx-amz-\nX-Amz-Date\x80", "x-amz-checksum-crc32c\nX-Amz-Meta-a", "host")
	f.Fuzz(func(t *testing.T, keys, hoistedKeys, list string) {
		signed, msg := splitSignedHeaders(list, nil)
		if msg != "" {
			return
		}
		h, hoisted := headerOf(keys), headerOf(hoistedKeys)
		amz := amzHeaders(h, nil)
		for _, lower := range []bool{true, false} {
			if got, want := unsignedAmz(amz, signed, lower), unsignedAmzMap(h, signed, lower); !slices.Equal(got, want) {
				t.Fatalf("keys %q, list %q, lowerSigned %v: unsigned %q in one pass, %q over the map", keys, list, lower, got, want)
			}
		}
		got, want := sortedSums(checksumHeaders(amz, hoisted, nil)), sortedSums(checksumHeadersMap(h, hoisted))
		if !slices.EqualFunc(got, want, func(a, b amzHeader) bool { return a.k == b.k && slices.Equal(a.vs, b.vs) }) {
			t.Fatalf("keys %q, hoisted %q: checksum headers %q in one pass, %q over the maps", keys, hoistedKeys, got, want)
		}
	})
}

// FuzzLowerPrefixFold holds hasLowerPrefixFold to strings.EqualFold on
// the key's first bytes, for the two prefixes it is given.
func FuzzLowerPrefixFold(f *testing.F) {
	for _, k := range []string{"X-Amz-Date", "x-amz-", "x-amz", "X-AMZ-CHECKSUM-CRC32", "x-amz-chec\u212asum-crc32", "X-Amz-Checkſum-x", "x\x80amz-", "Y-Amz-", ""} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, k string) {
		for _, p := range []string{"x-amz-", checksumPrefix} {
			want := len(k) >= len(p) && strings.EqualFold(k[:len(p)], p)
			if got := hasLowerPrefixFold(k, p); got != want {
				t.Fatalf("hasLowerPrefixFold(%q, %q) = %v, EqualFold %v", k, p, got, want)
			}
		}
	})
}
