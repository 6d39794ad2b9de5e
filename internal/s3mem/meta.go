package s3mem

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// metaFrom reads the stored headers of a PutObject, CopyObject (with
// REPLACE) or CreateMultipartUpload.
func metaFrom(h http.Header) (meta, error) {
	m := meta{
		contentType:        h.Get("Content-Type"),
		contentEncoding:    h.Get("Content-Encoding"),
		contentDisposition: h.Get("Content-Disposition"),
		contentLanguage:    h.Get("Content-Language"),
		cacheControl:       h.Get("Cache-Control"),
		expires:            h.Get("Expires"),
	}
	// aws-chunked is how the payload was framed on the wire, not part of
	// the object's encoding.
	enc := []string{}
	for _, e := range strings.Split(m.contentEncoding, ",") {
		if e = strings.TrimSpace(e); e != "" && e != "aws-chunked" {
			enc = append(enc, e)
		}
	}
	m.contentEncoding = strings.Join(enc, ",")
	size := 0
	for k, v := range h {
		lk := strings.ToLower(k)
		if name, ok := strings.CutPrefix(lk, "x-amz-meta-"); ok && len(v) > 0 {
			if m.user == nil {
				m.user = map[string]string{}
			}
			m.user[name] = strings.Join(v, ",")
			size += len(name) + len(m.user[name])
		}
	}
	if size > 2048 {
		return m, s3err.New("MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size")
	}
	tags, err := parseTagHeader(h.Get("x-amz-tagging"))
	if err != nil {
		return m, err
	}
	m.tags = tags
	return m, nil
}

// writeMeta sets the headers GET and HEAD return for an object.
func writeMeta(h http.Header, m meta) {
	ct := m.contentType
	if ct == "" {
		ct = "binary/octet-stream" // S3's default
	}
	h.Set("Content-Type", ct)
	for k, v := range map[string]string{
		"Content-Encoding":    m.contentEncoding,
		"Content-Disposition": m.contentDisposition,
		"Content-Language":    m.contentLanguage,
		"Cache-Control":       m.cacheControl,
		"Expires":             m.expires,
	} {
		if v != "" {
			h.Set(k, v)
		}
	}
	for k, v := range m.user {
		h["X-Amz-Meta-"+k] = []string{v}
	}
	if len(m.tags) > 0 {
		h.Set("x-amz-tagging-count", strconv.Itoa(len(m.tags)))
	}
}

// checkTags applies S3's tag limits.
func checkTags(tags []tag) error {
	if len(tags) > 10 {
		return errorf(codeInvalidTag, "Object tags cannot be greater than 10")
	}
	seen := map[string]bool{}
	for _, t := range tags {
		if t.Key == "" || utf8.RuneCountInString(t.Key) > 128 {
			return errorf(codeInvalidTag, "The TagKey you have provided is invalid")
		}
		if utf8.RuneCountInString(t.Value) > 256 {
			return errorf(codeInvalidTag, "The TagValue you have provided is invalid")
		}
		if seen[t.Key] {
			return errorf(codeInvalidTag, "Cannot provide multiple Tags with the same key")
		}
		seen[t.Key] = true
	}
	return nil
}

// parseTagHeader reads x-amz-tagging, a URL query string of tags.
func parseTagHeader(v string) ([]tag, error) {
	if v == "" {
		return nil, nil
	}
	q, err := url.ParseQuery(v)
	if err != nil {
		return nil, errorf(codeInvalidTag, "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.")
	}
	var tags []tag
	for k, vs := range q {
		if len(vs) > 1 {
			return nil, errorf(codeInvalidTag, "Cannot provide multiple Tags with the same key")
		}
		tags = append(tags, tag{k, vs[0]})
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i].Key < tags[j].Key })
	return tags, checkTags(tags)
}
