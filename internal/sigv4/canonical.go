package sigv4

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// canonicalURI is the request's path exactly as the client sent it. S3
// signs the path without normalising it (no dot-segment removal, no
// collapsing of slashes) and without encoding it a second time, and a
// client signs the very bytes it puts on the request line. Go's server
// decodes r.URL.Path and keeps RawPath only when it differs from Go's own
// encoding, so the request line itself (r.RequestURI) is the faithful
// source; requests built in-process have no RequestURI and use the URL's
// escaped path.
func canonicalURI(r *http.Request) string {
	p := ""
	if ru := r.RequestURI; len(ru) > 0 && ru[0] == '/' {
		p = ru
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p = p[:i]
		}
	} else if r.URL.Opaque != "" {
		p = opaquePath(r.URL.Opaque)
	} else {
		p = r.URL.EscapedPath()
	}
	if p == "" {
		return "/"
	}
	return p
}

// appendCanonicalPath appends the canonical URI of a request whose path is
// p as sent. S3 signs the path as it is; every other service signs it
// escaped once more (SigV4's "URI-encode each path segment twice"), which
// is what the SDKs do: every byte but the unreserved ones and '/' is
// percent-encoded again, so "%3A" in the path is signed as "%253A".
func appendCanonicalPath(b []byte, p, service string) []byte {
	if service == "s3" {
		return append(b, p...)
	}
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(p); i++ {
		c := p[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || c == '/' {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
	}
	return b
}

// opaquePath extracts the path from an opaque URL such as
// "//host/bucket/key", which clients use to send a path verbatim.
func opaquePath(o string) string {
	if i := strings.IndexByte(o, '?'); i >= 0 {
		o = o[:i]
	}
	o = strings.TrimPrefix(o, "//")
	if i := strings.IndexByte(o, '/'); i >= 0 {
		return o[i:]
	}
	return ""
}

// queryPair is one query parameter, decoded and re-encoded.
type queryPair struct {
	key, value       string // decoded
	encKey, encValue string // AWS-encoded
}

// parseQuery splits a raw query string into pairs, decoding each name and
// value the way Go's url.ParseQuery does ("+" is a space), so that what is
// signed is what a handler reading r.URL.Query() acts on. A malformed
// escape is an error: Go would drop that pair silently, and a parameter
// the signature covers but the handler never sees is a confusion worth
// refusing.
func parseQuery(raw string, dst []queryPair) ([]queryPair, bool) {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, err := unescapeQuery(k)
		if err != nil {
			return dst, false
		}
		dv, err := unescapeQuery(v)
		if err != nil {
			return dst, false
		}
		dst = append(dst, queryPair{key: dk, value: dv, encKey: awsEscape(dk), encValue: awsEscape(dv)})
	}
	return dst, true
}

func unescapeQuery(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, nil
	}
	return url.QueryUnescape(s)
}

// appendCanonicalQuery writes the pairs sorted by encoded name, then
// value, as name=value joined by "&", leaving out the one named skip
// (X-Amz-Signature for a presigned URL).
func appendCanonicalQuery(b []byte, pairs []queryPair, skip string) []byte {
	slices.SortFunc(pairs, func(x, y queryPair) int {
		if c := strings.Compare(x.encKey, y.encKey); c != 0 {
			return c
		}
		return strings.Compare(x.encValue, y.encValue)
	})
	first := true
	for _, p := range pairs {
		if skip != "" && p.key == skip {
			continue
		}
		if !first {
			b = append(b, '&')
		}
		first = false
		b = append(b, p.encKey...)
		b = append(b, '=')
		b = append(b, p.encValue...)
	}
	return b
}

// awsEscape percent-encodes every byte except the unreserved characters
// A-Z a-z 0-9 - _ . ~, with uppercase hex, as SigV4 requires. It returns s
// itself, without allocating, when nothing needs encoding.
func awsEscape(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexUpper = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', hexUpper[c>>4], hexUpper[c&15])
		}
	}
	return string(b)
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// headerValues returns the values of the signed header named lower (a
// lowercase name), and whether the request has it at all. Go's server
// moves Host out of the header map and may drop Content-Length and
// Transfer-Encoding into fields, so those come from the fields.
func headerValues(r *http.Request, lower string, canon []byte) ([]string, bool) {
	switch lower {
	case "host":
		h := r.Host
		if h == "" {
			h = r.URL.Host
		}
		return []string{h}, h != ""
	}
	vs, ok := r.Header[string(canonicalKey(canon[:0], lower))]
	if ok {
		return vs, true
	}
	switch lower {
	case "content-length":
		if r.ContentLength > 0 {
			return []string{strconv.FormatInt(r.ContentLength, 10)}, true
		}
	case "transfer-encoding":
		if len(r.TransferEncoding) > 0 {
			return []string{strings.Join(r.TransferEncoding, ",")}, true
		}
	}
	return nil, false
}

// canonicalKey is textproto.CanonicalMIMEHeaderKey for a lowercase name,
// written into dst so that the map lookup with string(dst) does not
// allocate. It copies the name whole and then raises, in place, the first
// byte and those after a '-': appending byte by byte cost about 16
// instructions a byte, some 1,600 a GET over its six names
// (bench/HISTORY.md, "S3 GET 1 KiB: the signed names' keys, their byte
// check and the unsigned-header check's compares").
func canonicalKey(dst []byte, lower string) []byte {
	n := len(dst)
	dst = append(dst, lower...)
	b := dst[n:]
	upper := true
	for i, c := range b {
		if upper && 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
		upper = c == '-'
	}
	return dst
}

// appendHeaderValue writes the values joined by ",", each trimmed and with
// inner runs of spaces collapsed to one, as the AWS signers do.
func appendHeaderValue(b []byte, values []string) []byte {
	for i, v := range values {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendOneValue(b, v)
	}
	return b
}

// appendOneValue appends one header value, trimmed, with every run of
// spaces in it as one space.
func appendOneValue(b []byte, v string) []byte {
	v = strings.TrimSpace(v)
	// Nearly always there is nothing to collapse, and most values (dates,
	// digests, ids, the session token) have no space at all: IndexByte
	// finds that for about a third of what strings.Contains(v, "  ")
	// cost, and a run of spaces can start no sooner than the first space.
	if i := strings.IndexByte(v, ' '); i < 0 || !strings.Contains(v[i:], "  ") {
		return append(b, v...)
	}
	space := false
	for j := 0; j < len(v); j++ {
		c := v[j]
		if c == ' ' {
			if space {
				continue
			}
			space = true
		} else {
			space = false
		}
		b = append(b, c)
	}
	return b
}
