package s3mem

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// etagMatches reports whether an If-Match style list names etag.
func etagMatches(list, etag string) bool {
	for _, e := range strings.Split(list, ",") {
		e = strings.TrimPrefix(strings.TrimSpace(e), "W/")
		if e == "*" || strings.Trim(e, `"`) == strings.Trim(etag, `"`) {
			return true
		}
	}
	return false
}

// condition names the four conditional headers, for GET/HEAD or, with the
// x-amz-copy-source- prefix, for a copy's source.
type condition struct{ ifMatch, ifNoneMatch, ifModifiedSince, ifUnmodifiedSince string }

var (
	getConditions  = condition{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"}
	copyConditions = condition{"x-amz-copy-source-if-match", "x-amz-copy-source-if-none-match", "x-amz-copy-source-if-modified-since", "x-amz-copy-source-if-unmodified-since"}
)

// evaluate applies RFC 9110's order: If-Match, else If-Unmodified-Since,
// decides failure; If-None-Match, else If-Modified-Since, decides "not
// modified". S3 uses second resolution, as HTTP dates do.
func (c condition) evaluate(h http.Header, o *object) (failed, notModified bool) {
	mod := o.modified.Truncate(time.Second)
	if v := h.Get(c.ifMatch); v != "" {
		if !etagMatches(v, o.etag) {
			return true, false
		}
	} else if t, err := http.ParseTime(h.Get(c.ifUnmodifiedSince)); err == nil && mod.After(t) {
		return true, false
	}
	if v := h.Get(c.ifNoneMatch); v != "" {
		return false, etagMatches(v, o.etag)
	}
	if t, err := http.ParseTime(h.Get(c.ifModifiedSince)); err == nil && !mod.After(t) {
		return false, true
	}
	return false, false
}

// byteRange is an inclusive range of an object's bytes.
type byteRange struct{ start, end int64 }

// parseRange reads a Range header against an object of size bytes. ok is
// false when the whole object is to be sent: no header, or one S3 ignores
// (not bytes, several ranges, malformed). unsatisfiable is S3's
// InvalidRange.
func parseRange(h string, size int64) (r byteRange, ok, unsatisfiable bool) {
	spec, found := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !found || strings.Contains(spec, ",") {
		return r, false, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return r, false, false
	}
	num := func(s string) (int64, bool) {
		if s == "" || strings.TrimLeft(s, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	if first == "" { // suffix: the last n bytes
		n, valid := num(last)
		if !valid {
			return r, false, false
		}
		if n == 0 || size == 0 {
			return r, false, true
		}
		return byteRange{max(size-n, 0), size - 1}, true, false
	}
	a, valid := num(first)
	if !valid {
		return r, false, false
	}
	b := size - 1
	if last != "" {
		if b, valid = num(last); !valid || b < a {
			return r, false, false
		}
		b = min(b, size-1)
	}
	if a >= size {
		return r, false, true
	}
	return byteRange{a, b}, true, false
}
