package sigv4

import (
	"net/http"
	"slices"
	"strings"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// Unsigned x-amz-* headers.
//
// A signature covers only the headers in its SignedHeaders list. S3
// refuses a request carrying any x-amz-* header outside that list, header
// or presigned form alike, with 403 AccessDenied "There were headers
// present in the request which were not signed" and the names in a
// HeadersNotSigned element; otherwise whoever relays a signed request (or
// holds a presigned URL) could add x-amz-copy-source, x-amz-tagging or
// x-amz-meta-* and have them acted on. The AWS SDKs, the CLI (botocore),
// minio-go and s3cmd sign every x-amz-* header they send, and presigners
// hoist the ones they do not sign into the query, where the signature
// covers them.
//
// The one exception is x-amz-content-sha256, which S3 accepts unsigned: in
// header authentication its value is the last line of the canonical
// request, so the signature binds it anyway, and a presigned request whose
// signature does not cover it is treated as UNSIGNED-PAYLOAD whatever it
// says. Headers such as x-amzn-trace-id are not x-amz-* and stay allowed
// unsigned, as in S3.

// maxListedUnsigned bounds the names an error lists.
const maxListedUnsigned = 16

// unsignedOK are the x-amz-* headers S3 accepts without a signature.
// Each starts with amzPrefix, in lower case, as unsignedAmz compares them
// past it (TestUnsignedOKAmz).
var unsignedOK = []string{"x-amz-content-sha256"}

// UnsignedAmzHeaders returns the x-amz-* headers of h, lower case and
// sorted, that signedHeaders (the SignedHeaders list, lower case) does not
// cover, apart from the documented exceptions; nil if there are none.
func UnsignedAmzHeaders(h http.Header, signedHeaders []string) []string {
	return unsignedAmz(amzHeaders(h, nil), signedHeaders, false)
}

// amzHeader is one x-amz-* header of a request, as its map holds it.
type amzHeader struct {
	k  string
	vs []string
}

// amzHeaders appends h's x-amz-* headers (the name's first six bytes
// "x-amz-" in any case) to into. A verification takes them in one pass
// over the request's header map, shared by the payload's checksum headers
// (setPayload) and the unsigned-header check (unsignedAmz), which each
// walked the whole map (bench/HISTORY.md, "S3 GET 1 KiB: one pass over
// the x-amz-* headers, one timer for both watches, one clock read less").
func amzHeaders(h http.Header, into []amzHeader) []amzHeader {
	for k, vs := range h {
		if hasLowerPrefixFold(k, amzPrefix) {
			into = append(into, amzHeader{k, vs})
		}
	}
	return into
}

// hasLowerPrefixFold reports whether k starts with prefix, ASCII lower
// case, in any case. It is strings.EqualFold(k[:len(prefix)], prefix)
// without its rune decoding: a byte of k's first len(prefix) that is not
// ASCII leaves them fewer runes than prefix has (a rune that folds onto
// ASCII, as the Kelvin sign onto k, takes three bytes), so EqualFold
// could not match them either.
func hasLowerPrefixFold(k, prefix string) bool {
	if len(k) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if c := k[i]; c != prefix[i] && ('A' > c || c > 'Z' || c+('a'-'A') != prefix[i]) {
			return false
		}
	}
	return true
}

// unsignedAmz is UnsignedAmzHeaders over a request's x-amz-* headers
// (amzHeaders). lowerSigned says that signedHeaders is a list
// splitSignedHeaders has passed, as every verified list is: ASCII lower
// case and sorted. Then a key is looked for only among the list's x-amz-*
// names, which sort together (amzRun), by length and then byte by byte
// past the "x-amz-" both share (hasLowerFold). That test matches only an
// ASCII key, for which it agrees with strings.EqualFold, so a key it
// finds needs no check for other bytes; a key with another byte (which
// EqualFold may fold onto ASCII at another length, as the Kelvin sign
// onto k) takes EqualFold as before. Each SDK request's x-amz-* keys
// against all its signed names, from their first byte, after a scan for
// non-ASCII bytes, cost about 1,500 instructions (bench/HISTORY.md, "S3
// GET 1 KiB: the signed names' keys, their byte check and the
// unsigned-header check's compares"); before that, strings.EqualFold
// against every name cost about 2,000.
func unsignedAmz(amz []amzHeader, signedHeaders []string, lowerSigned bool) []string {
	var out []string
	var signedAmz []string
	if lowerSigned {
		signedAmz = amzRun(signedHeaders)
	}
	for _, h := range amz {
		k := h.k
		if lowerSigned && hasLowerFold(signedAmz, k, len(amzPrefix)) {
			continue
		}
		if lowerSigned && isASCII(k) {
			if hasLowerFold(unsignedOK, k, len(amzPrefix)) || hasFold(out, k) {
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

// amzPrefix is what every x-amz-* name starts with, in lower case.
const amzPrefix = "x-amz-"

// amzRun is the run of names starting with amzPrefix in sorted, a sorted
// list: the only names an x-amz-* key can match.
func amzRun(sorted []string) []string {
	i, _ := slices.BinarySearch(sorted, amzPrefix)
	j := i
	for j < len(sorted) && strings.HasPrefix(sorted[j], amzPrefix) {
		j++
	}
	return sorted[i:j]
}

// hasLowerFold reports whether list, of ASCII lower-case names, holds the
// name k in any case, comparing bytes from from on: the caller knows that
// k's first from bytes match every name's of the same length in some case
// (unsignedAmz passes an x-amz-* key, amzHeaders' own test, and names
// starting with amzPrefix). A byte of k that is not ASCII matches no byte
// of a name, so only an ASCII k is found.
func hasLowerFold(list []string, k string, from int) bool {
next:
	for _, s := range list {
		if len(s) != len(k) {
			continue
		}
		for i := from; i < len(k); i++ {
			if c := k[i]; c != s[i] && ('A' > c || c > 'Z' || c+('a'-'A') != s[i]) {
				continue next
			}
		}
		return true
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// hasFold reports whether list holds name, ignoring case (no allocation:
// this runs on every request).
func hasFold(list []string, name string) bool {
	for _, s := range list {
		if strings.EqualFold(s, name) {
			return true
		}
	}
	return false
}

// headersNotSigned is S3's refusal of a request with unsigned x-amz-*
// headers, naming at most maxListedUnsigned of them (each clipped).
func headersNotSigned(names []string) *s3err.Error {
	listed := names
	if len(listed) > maxListedUnsigned {
		listed = listed[:maxListedUnsigned]
	}
	clipped := make([]string, len(listed))
	for i, n := range listed {
		clipped[i] = clip(printable(n))
	}
	e := s3err.New(s3err.AccessDenied, "There were headers present in the request which were not signed")
	e.HeadersNotSigned = strings.Join(clipped, ", ")
	return e
}

// allSigned wraps a verification of r: a request whose signature holds
// but whose x-amz-* headers are not all signed is refused. Only a caller
// who proved the secret gets this far, so only such a caller learns about
// the headers. sc.amz holds r's x-amz-* headers once a verification
// succeeds (verifyHeader and verifyPresigned take them before the payload).
func allSigned(sc *scratch) func(*Auth, error) (*Auth, error) {
	return func(a *Auth, err error) (*Auth, error) {
		if err != nil {
			return nil, err
		}
		// splitSignedHeaders has passed every name of a.SignedHeaders: ASCII
		// lower case.
		if names := unsignedAmz(sc.amz, a.SignedHeaders, true); len(names) > 0 {
			return nil, headersNotSigned(names)
		}
		return a, nil
	}
}

// printable replaces bytes that are not visible ASCII (a header map built
// by hand may hold any), so a name cannot forge output where it is shown.
func printable(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] <= ' ' || b[j] >= 0x7f {
					b[j] = '?'
				}
			}
			return string(b)
		}
	}
	return s
}
