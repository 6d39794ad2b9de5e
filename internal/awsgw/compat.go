package awsgw

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/s3iam"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// What the S3 clients need beyond the mapping: presigned URLs as the SDKs
// make them, S3's spelling of response headers, and a Location that names
// the gateway.

// applyHoisted turns a verified presigned URL into the request it stands
// for. Presigners move x-amz-* headers into the query (the JS SDK v3:
// X-Amz-Content-Sha256, x-amz-sdk-checksum-algorithm, x-amz-checksum-crc32;
// the Go SDK v2: X-Amz-Checksum-Mode), and S3 reads them as those headers.
// So does the gateway: they become headers (signed, as the query is), so
// that the mapper checks them as headers (x-amz-acl asks for
// s3:PutObjectAcl whether it came as a header or in the query) and they go
// upstream as headers; and the presigning parameters, now verified, leave
// the query, which then holds only the operation's own parameters (any
// other one is still refused by the mapper).
func applyHoisted(r *http.Request, auth *sigv4.Auth) *s3err.Error {
	if !auth.Presigned {
		return nil
	}
	for k, vs := range auth.Hoisted {
		if _, dup := r.Header[k]; dup {
			return s3err.New(s3err.InvalidArgument, "%s is given both as a header and in the presigned URL's query", strings.ToLower(k))
		}
		r.Header[k] = vs
		auth.SignedHeaders = append(auth.SignedHeaders, strings.ToLower(k))
	}
	r.URL.RawQuery = stripSigning(r.URL.RawQuery)
	return nil
}

// stripSigning removes the presigning and hoisted parameters from a raw
// query, leaving the others as the client encoded them.
func stripSigning(raw string) string {
	if raw == "" {
		return raw
	}
	kept := make([]string, 0, 8)
	for part := range strings.SplitSeq(raw, "&") {
		name, _, _ := strings.Cut(part, "=")
		if n, err := url.QueryUnescape(name); err == nil && len(n) >= 6 && strings.EqualFold(n[:6], "x-amz-") {
			continue
		}
		kept = append(kept, part)
	}
	return strings.Join(kept, "&")
}

// copyResponseHeader copies the upstream's response headers into h.
// Go's client canonicalises header names (x-amz-meta-foo arrives as
// X-Amz-Meta-Foo) and its server would write them so; S3 clients read user
// metadata names from the header names (boto3 returns {'Foo': …} for
// X-Amz-Meta-Foo), and S3 sends every x-amz-* header in lower case (user
// metadata names are stored lower-cased). So x-amz-* names are written in
// S3's spelling, straight into the map: Go's server writes a key as it is
// in the map.
//
// The hop-by-hop names (hopHeaders) are not copied, and go from h if it
// held them before: skipped as the copy meets them rather than deleted
// after it, where eight map deletes, each hashing its name, cost every
// answer about as much as copying a small one's headers.
//
// An x-amz-* name set in h before the copy under its canonical key goes
// too (it is replaced by the lower-case one). Only names set before the
// copy can be there: every key of from is copied once, and an x-amz-* one
// only under its lower-case spelling. So into an empty h, every answer's
// (net/http's header map as the handler starts), the copy deletes
// nothing: three failed deletes of versitygw's GetObject answer's x-amz-*
// names, each hashing its name, went.
func copyResponseHeader(h, from http.Header) {
	pre := len(h) != 0
	if pre { // set before the copy (rare): deleted as before
		for _, k := range hopHeaders {
			delete(h, k) // canonical already: Del would canonicalise each again
		}
	}
	for k, v := range from {
		if hopHeader(k) {
			continue
		}
		if len(k) > 6 && strings.EqualFold(k[:6], "x-amz-") {
			lk, ok := amzLower[k]
			if !ok {
				lk = strings.ToLower(k)
			}
			if pre && lk != k {
				delete(h, k) // set earlier under the canonical key
			}
			h[lk] = v
			continue
		}
		h[k] = v
	}
}

// hopHeader reports whether k is one of hopHeaders, as delete(h, k)
// would find it: the same bytes, no canonicalisation.
func hopHeader(k string) bool {
	switch len(k) {
	case 2:
		return k == "Te"
	case 7:
		return k == "Trailer" || k == "Upgrade"
	case 10:
		return k == "Connection" || k == "Keep-Alive"
	case 16:
		return k == "Proxy-Connection"
	case 17:
		return k == "Transfer-Encoding"
	case 18:
		return k == "Proxy-Authenticate"
	}
	return false
}

// amzLower maps the x-amz-* response headers S3 sends on its common
// answers, in the canonical spelling Go's client reads them in, to S3's
// own (lower case). Every object read carries several (the request ids, a
// checksum, the storage class): strings.ToLower allocated each name anew
// on every call; a name not listed here (user metadata) still is.
var amzLower = func() map[string]string {
	names := []string{
		"x-amz-request-id", "x-amz-id-2", "x-amz-version-id", "x-amz-delete-marker",
		"x-amz-storage-class", "x-amz-expiration", "x-amz-restore", "x-amz-tagging-count",
		"x-amz-mp-parts-count", "x-amz-replication-status", "x-amz-website-redirect-location",
		"x-amz-missing-meta", "x-amz-bucket-region", "x-amz-request-charged",
		"x-amz-copy-source-version-id", "x-amz-abort-date", "x-amz-abort-rule-id",
		"x-amz-checksum-type", "x-amz-checksum-crc32", "x-amz-checksum-crc32c",
		"x-amz-checksum-crc64nvme", "x-amz-checksum-sha1", "x-amz-checksum-sha256",
		"x-amz-server-side-encryption", "x-amz-server-side-encryption-aws-kms-key-id",
		"x-amz-server-side-encryption-bucket-key-enabled", "x-amz-server-side-encryption-context",
		"x-amz-server-side-encryption-customer-algorithm", "x-amz-server-side-encryption-customer-key-md5",
		"x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date", "x-amz-object-lock-legal-hold",
	}
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[http.CanonicalHeaderKey(n)] = n
	}
	return m
}()

// maxCompleteBody bounds the CompleteMultipartUpload answer the gateway
// buffers to rewrite its Location; S3's is a few hundred bytes. A longer
// one streams through unchanged.
const maxCompleteBody = 64 << 10

// completeLocation wraps a CompleteMultipartUpload response so that its
// <Location> names the object at the gateway (the address the client
// used) instead of at the upstream, which the client cannot reach and
// should not learn. It reads at most maxCompleteBody+1 bytes; it returns
// the body to send and its length (-1: unknown, stream it).
func completeLocation(r *http.Request, resp *http.Response) (io.Reader, int64) {
	buf, err := io.ReadAll(io.LimitReader(resp.Body, maxCompleteBody+1))
	if err != nil || len(buf) > maxCompleteBody {
		// Too long, or broken: pass on what was read and the rest as is
		// (a read error surfaces again from resp.Body).
		return io.MultiReader(bytes.NewReader(buf), resp.Body), -1
	}
	out := rewriteLocation(buf, gatewayURL(r))
	return bytes.NewReader(out), int64(len(out))
}

// rewriteLocation replaces the text of the first <Location> element.
func rewriteLocation(doc []byte, loc string) []byte {
	const open, closing = "<Location>", "</Location>"
	i := bytes.Index(doc, []byte(open))
	if i < 0 {
		return doc
	}
	j := bytes.Index(doc[i+len(open):], []byte(closing))
	if j < 0 {
		return doc
	}
	var esc bytes.Buffer
	_ = xml.EscapeText(&esc, []byte(loc))
	out := make([]byte, 0, len(doc)+esc.Len())
	out = append(out, doc[:i+len(open)]...)
	out = append(out, esc.Bytes()...)
	return append(out, doc[i+len(open)+j:]...)
}

// gatewayURL is the object's URL as the client addressed it: its scheme,
// Host and path (virtual-hosted or path-style, whichever it used).
func gatewayURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.EscapedPath()
}

// isComplete reports whether op is CompleteMultipartUpload.
func isComplete(op *s3iam.Op) bool { return op.Name == "CompleteMultipartUpload" }

// setLength replaces the upstream's Content-Length with the rewritten
// body's.
func setLength(h http.Header, n int64) {
	h.Del("Content-Length")
	if n >= 0 {
		h.Set("Content-Length", strconv.FormatInt(n, 10))
	}
}
