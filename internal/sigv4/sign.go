package sigv4

import (
	"crypto/sha256"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Signer signs outgoing requests with SigV4 in the header form, with the
// same canonical request code the Verifier checks against: the path as it
// goes on the request line (req.URL.EscapedPath, or the path of an opaque
// URL; S3 does not escape it again), the query decoded and re-encoded
// with AWS's rules and sorted, and every header but a few that proxies
// and clients change (Authorization, User-Agent, X-Amzn-Trace-Id, Expect,
// Transfer-Encoding), as the AWS SDK's signer chooses them. It caches
// derived signing keys, checked against the secret they came from, so
// a long-lived Signer derives a key once a day per credential and scope.
// Its zero value is ready; it is safe for concurrent use.
type Signer struct {
	keys keyCache
	// stamp is the last second's X-Amz-Date and credential scope: a
	// gateway signs many requests a second for one region and service,
	// and formatting both anew cost two allocations per request.
	stamp atomic.Pointer[signStamp]
}

// signStamp is the X-Amz-Date of one second and the scope it goes with.
type signStamp struct {
	unix                   int64
	amzDate                string
	region, service, scope string
}

// stampFor returns the X-Amz-Date and scope for t (UTC), from the cache
// when the second, region and service are the last ones.
func (s *Signer) stampFor(t time.Time, region, service string) *signStamp {
	if st := s.stamp.Load(); st != nil && st.unix == t.Unix() && st.region == region && st.service == service {
		return st
	}
	amzDate := t.Format(amzDateFmt)
	st := &signStamp{unix: t.Unix(), amzDate: amzDate, region: region, service: service,
		scope: amzDate[:8] + "/" + region + "/" + service + "/" + scopeSuffix}
	s.stamp.Store(st)
	return st
}

// Credentials are what a request is signed with.
type Credentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

// unsignedHeaders are the headers Sign leaves out of the signature.
var unsignedHeaders = []string{
	"Authorization", "User-Agent", "X-Amzn-Trace-Id", "Expect", "Transfer-Encoding",
	"Content-Length", // signed from req.ContentLength, when > 0
}

// signNames holds the lowercase form of the header names clients and
// the gateway commonly send, so that signing does not allocate one
// string per header per request (others are lowered as they come), and
// "" for each of unsignedHeaders: one lookup per header tells Sign both,
// where a set of the unsigned and a map of the lowercase names took two
// for most headers (about 600 instructions a GetObject).
var signNames = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Encoding", "Amz-Sdk-Invocation-Id", "Amz-Sdk-Request", "Cache-Control",
		"Content-Disposition", "Content-Encoding", "Content-Language", "Content-Md5", "Content-Type",
		"Expires", "If-Match", "If-Modified-Since", "If-None-Match", "If-Unmodified-Since", "Range",
		"X-Amz-Acl", "X-Amz-Checksum-Crc32", "X-Amz-Checksum-Crc32c", "X-Amz-Checksum-Crc64nvme",
		"X-Amz-Checksum-Sha1", "X-Amz-Checksum-Sha256", "X-Amz-Checksum-Mode", "X-Amz-Checksum-Type",
		"X-Amz-Content-Sha256", "X-Amz-Copy-Source", "X-Amz-Copy-Source-Range", "X-Amz-Date",
		"X-Amz-Decoded-Content-Length", "X-Amz-Expected-Bucket-Owner", "X-Amz-Sdk-Checksum-Algorithm",
		"X-Amz-Security-Token", "X-Amz-Server-Side-Encryption", "X-Amz-Storage-Class", "X-Amz-Tagging",
		"X-Amz-Trailer", "X-Amz-User-Agent", "X-Amz-Request-Payer", "X-Amz-Metadata-Directive",
		"X-Amz-Tagging-Directive", "X-Amz-Object-Lock-Mode", "X-Amz-Object-Lock-Retain-Until-Date",
		"X-Amz-Object-Lock-Legal-Hold", "X-Amz-Target", "X-Amz-Api-Version",
	} {
		m[k] = strings.ToLower(k)
	}
	for _, k := range unsignedHeaders {
		m[k] = ""
	}
	return m
}()

// signSlots is signNames in an open-addressed table, by signSlot's hash
// of a key's length and first and last bytes, filled in the names' order
// (the same layout every run): Sign looks up every header of every
// request, and a lookup in the map cost about 123 instructions a key,
// some 740 a GET's re-signing, where this is a hash and, for all but a
// few names, one string comparison (bench/HISTORY.md, "S3 GET 1 KiB: the
// signed names' keys, their byte check and the unsigned-header check's
// compares").
var signSlots = func() (t [signSlotCount]signSlotEntry) {
	for _, k := range slices.Sorted(maps.Keys(signNames)) {
		i := signSlot(k)
		for t[i].key != "" {
			i = (i + 1) & (signSlotCount - 1)
		}
		t[i] = signSlotEntry{key: k, lower: signNames[k]}
	}
	return t
}()

// signSlotCount is signSlots' size: a power of two, and several times
// signNames' so that a probe meets an empty slot soon (and the table is
// never full, which signName relies on to end).
const signSlotCount = 256

type signSlotEntry struct{ key, lower string }

func signSlot(k string) int {
	if k == "" {
		return 0
	}
	return (len(k)*7 + int(k[0])*3 + int(k[len(k)-1])) & (signSlotCount - 1)
}

// signName is signNames[k], from signSlots.
func signName(k string) (lower string, ok bool) {
	for i := signSlot(k); ; i = (i + 1) & (signSlotCount - 1) {
		switch e := &signSlots[i]; e.key {
		case "": // checked first: no key of signNames is ""
			return "", false
		case k:
			return e.lower, true
		}
	}
}

// signedHeader is one header key Sign signs: its name in lower case and,
// for a key of signNames (canonical, so the very key headerValues would
// look up), its values as the map iteration found them.
type signedHeader struct {
	name  string
	vs    []string
	known bool
}

// Sign signs req for region and service at t. payload is the value of
// its x-amz-content-sha256 header (a hex digest or UNSIGNED-PAYLOAD),
// which the caller sets. Sign sets X-Amz-Date, X-Amz-Security-Token (when
// creds has one) and Authorization, and rewrites req.URL.RawQuery to the
// canonical query, so that the upstream reads exactly the parameters
// that were signed, in an encoding with no ambiguity ('+', case of
// escapes).
func (s *Signer) Sign(req *http.Request, creds Credentials, region, service, payload string, t time.Time) error {
	return s.SignIn(req, creds, region, service, payload, t, nil)
}

// SignIn is Sign, keeping the values of the headers it sets in *room
// (overwritten whole) rather than in an array of their own, unless room is
// nil: a gateway keeps it in the memory it allocates for the call anyway.
// room must not change, nor be lent to another request, while req is in
// use.
func (s *Signer) SignIn(req *http.Request, creds Credentials, region, service, payload string, t time.Time, room *[3]string) error {
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return errors.New("sigv4: signing needs an access key id and a secret")
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if host == "" {
		return errors.New("sigv4: the request has no host")
	}
	sc := scratchPool.Get().(*scratch)
	defer func() {
		if cap(sc.buf) <= 64<<10 && cap(sc.sts) <= 64<<10 && cap(sc.hdrs) <= 64<<10 {
			sc.buf, sc.sts, sc.hdrs = sc.buf[:0], sc.sts[:0], sc.hdrs[:0]
			clear(sc.pairs)
			sc.pairs = sc.pairs[:0]
			clear(sc.signed)
			sc.signed = sc.signed[:0]
			scratchPool.Put(sc)
		}
	}()

	st := s.stampFor(t.UTC(), region, service)
	amzDate := st.amzDate
	// The names are canonical constants: set in the map directly, with no
	// canonicalisation on every call.
	// The values Sign sets share one backing array (one allocation, not
	// one per header); each is a full slice expression, so an append to
	// one copies rather than overwrites the next.
	var vals []string
	if room != nil {
		*room = [3]string{}
		vals = room[:2:3]
	} else {
		vals = make([]string, 2, 3)
	}
	vals[0] = amzDate
	req.Header[hAmzDate] = vals[0:1:1]
	if creds.SessionToken != "" {
		vals = append(vals, creds.SessionToken)
		req.Header[hSecurityToken] = vals[2:3:3]
	} else {
		delete(req.Header, hSecurityToken)
	}
	delete(req.Header, hAuthorization)

	// The query: parsed once, re-encoded canonically, and sent so.
	if req.URL.RawQuery != "" {
		pairs, ok := parseQuery(req.URL.RawQuery, sc.pairs[:0])
		sc.pairs = pairs
		if !ok {
			return errors.New("sigv4: the query string has a malformed percent-encoding")
		}
		req.URL.RawQuery = string(appendCanonicalQuery(sc.sts[:0], pairs, ""))
		req.URL.ForceQuery = false
	}

	hs := sc.signed[:0]
	hs = append(hs, signedHeader{name: "host"})
	if req.ContentLength > 0 {
		hs = append(hs, signedHeader{name: "content-length"})
	}
	for k, vs := range req.Header {
		switch l, ok := signName(k); {
		case !ok:
			hs = append(hs, signedHeader{name: strings.ToLower(k)})
		case l != "":
			hs = append(hs, signedHeader{name: l, vs: vs, known: true})
		}
	}
	slices.SortFunc(hs, func(a, b signedHeader) int { return strings.Compare(a.name, b.name) })
	sc.signed = hs
	signedHeaders := sc.hdrs[:0]
	for i, h := range hs {
		if i > 0 && h.name == hs[i-1].name {
			continue // keys that differ only in case: one name, their values joined
		}
		if i > 0 {
			signedHeaders = append(signedHeaders, ';')
		}
		signedHeaders = append(signedHeaders, h.name...)
	}
	sc.hdrs = signedHeaders

	buf := sc.buf[:0]
	buf = append(buf, req.Method...)
	buf = append(buf, '\n')
	buf = appendCanonicalPath(buf, canonicalURI(req), service)
	buf = append(buf, '\n')
	buf = appendCanonicalQuery(buf, sc.pairs, "")
	buf = append(buf, '\n')
	for i, h := range hs {
		name := h.name
		if i > 0 && name == hs[i-1].name {
			continue
		}
		if h.known {
			// A key of signNames is the canonical key of its name: the
			// lookup below would find these very values under it, whatever
			// other spellings of the name the map holds.
			buf = appendHeaderLine(buf, name, h.vs)
			continue
		}
		if name == "host" { // the common case of headerValues, without its slice
			buf = append(buf, "host:"...)
			buf = appendOneValue(buf, host)
			buf = append(buf, '\n')
			continue
		}
		vs, ok := headerValues(req, name, sc.key[:0])
		if !ok && name != "content-length" {
			vs = signValues(req.Header, name)
		}
		buf = appendHeaderLine(buf, name, vs)
	}
	buf = append(buf, '\n')
	buf = append(buf, signedHeaders...)
	buf = append(buf, '\n')
	buf = append(buf, payload...)
	sc.buf = buf

	c := credentials{accessKey: creds.AccessKeyID, date: amzDate[:8], region: region, service: service, scope: st.scope}
	crHash := sha256.Sum256(buf)
	sts := appendStringToSign(sc.sts[:0], amzDate, c.scope, &crHash)
	sc.sts = sts

	key, sig := s.keys.sign(creds.SecretAccessKey, &c, sc, sts)
	clear(key[:])

	var authz strings.Builder
	authz.Grow(len(algorithmV4) + len(c.accessKey) + len(c.scope) + len(signedHeaders) + 128)
	authz.WriteString(algorithmV4)
	authz.WriteString(" Credential=")
	authz.WriteString(c.accessKey)
	authz.WriteByte('/')
	authz.WriteString(c.scope)
	authz.WriteString(", SignedHeaders=")
	authz.Write(signedHeaders)
	authz.WriteString(", Signature=")
	var hexSig [64]byte
	authz.Write(appendHex(hexSig[:0], sig[:]))
	vals[1] = authz.String()
	req.Header[hAuthorization] = vals[1:2:2]
	return nil
}

// signValues gathers the values of every key that lowercases to name (a
// header map built by hand may hold more than one spelling).
func signValues(h http.Header, name string) []string {
	var vs []string
	for k, v := range h {
		if strings.EqualFold(k, name) {
			vs = append(vs, v...)
		}
	}
	return vs
}
