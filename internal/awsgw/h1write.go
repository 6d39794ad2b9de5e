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
	for i := 0; i < len(v); i++ {
		if !valueByte[v[i]] {
			return false
		}
	}
	return v == "" || v[0] != ' ' && v[0] != '\t' && v[len(v)-1] != ' ' && v[len(v)-1] != '\t'
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
