package awsgw

import (
	"bufio"
	"net/http"
)

// writeRequest writes a bodiless request's head (request line and header
// section) as req.Write does for the requests h1Transport sends, put
// together in scratch and written at once: the request line, Host,
// User-Agent (Go's default unless the request has one; an empty one is
// left out), then every other header but those req.Write leaves out. It differs in what does not matter on the wire:
// the header lines are not sorted (HTTP gives the order of different
// fields no meaning; the values of one field keep theirs), and no fmt,
// replacer or sorter runs on every call. A request with anything
// req.Write would have to repair or refuse (a control character or an
// untrimmed value, a host that is not plain ASCII, an opaque URL) is
// written by req.Write itself.
func writeRequest(w *bufio.Writer, req *http.Request, scratch *[]byte) error {
	head, ok := appendHead((*scratch)[:0], req)
	if cap(head) <= 64<<10 {
		*scratch = head
	}
	if !ok {
		return req.Write(w)
	}
	_, err := w.Write(head)
	return err
}

// appendHead appends req's head to b; ok is false if req.Write has to
// write it instead.
func appendHead(b []byte, req *http.Request) (_ []byte, ok bool) {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if req.URL.Opaque != "" || !isToken(req.Method) || !plainHost(host) {
		return b, false
	}
	b = append(b, req.Method...)
	b = append(b, ' ')
	target := len(b)
	if p := req.URL.EscapedPath(); p != "" {
		b = append(b, p...)
	} else {
		b = append(b, '/')
	}
	if req.URL.ForceQuery || req.URL.RawQuery != "" {
		b = append(b, '?')
		b = append(b, req.URL.RawQuery...)
	}
	if !plainURI(b[target:]) {
		return b, false
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\n"...)
	ua := defaultUserAgent
	if vs, ok := req.Header["User-Agent"]; ok {
		ua = ""
		if len(vs) > 0 {
			ua = vs[0]
		}
	}
	if ua != "" {
		if !plainValue(ua) {
			return b, false
		}
		b = append(b, "User-Agent: "...)
		b = append(b, ua...)
		b = append(b, "\r\n"...)
	}
	for k, vs := range req.Header {
		if headExcluded(k) {
			continue
		}
		if !isToken(k) {
			return b, false
		}
		for _, v := range vs {
			if !plainValue(v) {
				return b, false
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...), true
}

// defaultUserAgent is what req.Write sends when a request has no
// User-Agent header.
const defaultUserAgent = "Go-http-client/1.1"

// headExcluded reports the header keys req.Write does not copy from
// req.Header: Host and User-Agent (written first, above), and the framing,
// which a bodiless request does not have.
func headExcluded(k string) bool {
	switch k {
	case "Host", "User-Agent", "Content-Length", "Transfer-Encoding", "Trailer":
		return true
	}
	return false
}

// isToken reports whether s is a non-empty HTTP token (RFC 9110, 5.6.2).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenByte[s[i]] {
			return false
		}
	}
	return true
}

var tokenByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// plainValue reports whether a header value needs no repair: visible
// ASCII, spaces and tabs (or any byte from 0x80, as net/http allows),
// with no space or tab at either end.
func plainValue(v string) bool {
	// Eight bytes at a time: every value of every upstream request is
	// checked (the Authorization and User-Agent alone are some 400 bytes),
	// and a table lookup per byte was the largest of the gateway's own
	// functions in a whole-process count (bench/HISTORY.md). A word that may
	// hold a byte the table refuses (or a tab, which it allows) is looked
	// at byte by byte.
	rest := v
	for len(rest) >= 8 {
		b := rest[:8]
		rest = rest[8:]
		w := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
			uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
		if !maybeControl(w) {
			continue
		}
		for _, c := range []byte(b) {
			if !valueByte[c] {
				return false
			}
		}
	}
	for _, c := range []byte(rest) {
		if !valueByte[c] {
			return false
		}
	}
	return v == "" || v[0] != ' ' && v[0] != '\t' && v[len(v)-1] != ' ' && v[len(v)-1] != '\t'
}

// maybeControl reports whether a byte of w may be below 0x20 or 0x7f (the
// bytes valueByte refuses, and tab). It never misses one: the lowest such
// byte always sets its high bit in the result, whatever the borrows from
// below do to the bytes above it, which may only add false alarms.
func maybeControl(w uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	below := (w - 0x20*ones) &^ w & highs // a byte < 0x20 (bytes from 0x80 have their high bit set in w)
	d := w ^ 0x7f*ones
	del := (d - ones) &^ d & highs // a byte == 0x7f
	return below|del != 0
}

// valueByte holds the bytes a header value may carry as it is.
var valueByte = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= ' ' && c != 0x7f || c == '\t'
	}
	return t
}()

// plainHost reports whether a host needs neither punycode nor any other
// repair: host and port in visible ASCII, no zone.
func plainHost(h string) bool {
	for i := 0; i < len(h); i++ {
		if c := h[i]; c <= ' ' || c >= 0x7f || c == '%' || c == '/' || c == '?' || c == '#' || c == '@' {
			return false
		}
	}
	return h != ""
}

// plainURI reports whether a request line's target so far has no
// control character, space or non-ASCII byte.
func plainURI(s []byte) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}
