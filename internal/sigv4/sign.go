package sigv4

import (
	"crypto/sha256"
	"errors"
	"net/http"
	"slices"
	"strings"
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
}

// Credentials are what a request is signed with.
type Credentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
}

// unsignedHeaders are the headers Sign leaves out of the signature.
var unsignedHeaders = map[string]bool{
	"Authorization": true, "User-Agent": true, "X-Amzn-Trace-Id": true,
	"Expect": true, "Transfer-Encoding": true,
	"Content-Length": true, // signed from req.ContentLength, when > 0
}

// Sign signs req for region and service at t. payload is the value of
// its x-amz-content-sha256 header (a hex digest or UNSIGNED-PAYLOAD),
// which the caller sets. Sign sets X-Amz-Date, X-Amz-Security-Token (when
// creds has one) and Authorization, and rewrites req.URL.RawQuery to the
// canonical query, so that the upstream reads exactly the parameters
// that were signed, in an encoding with no ambiguity ('+', case of
// escapes).
func (s *Signer) Sign(req *http.Request, creds Credentials, region, service, payload string, t time.Time) error {
	if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
		return errors.New("sigv4: signing needs an access key id and a secret")
	}
	if req.Host == "" && req.URL.Host == "" {
		return errors.New("sigv4: the request has no host")
	}
	sc := scratchPool.Get().(*scratch)
	defer func() {
		if cap(sc.buf) <= 64<<10 && cap(sc.sts) <= 64<<10 {
			sc.buf, sc.sts = sc.buf[:0], sc.sts[:0]
			clear(sc.pairs)
			sc.pairs = sc.pairs[:0]
			scratchPool.Put(sc)
		}
	}()

	t = t.UTC()
	amzDate := t.Format(amzDateFmt)
	req.Header.Set(hAmzDate, amzDate)
	if creds.SessionToken != "" {
		req.Header.Set(hSecurityToken, creds.SessionToken)
	} else {
		req.Header.Del(hSecurityToken)
	}
	req.Header.Del(hAuthorization)

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

	names := make([]string, 0, len(req.Header)+2)
	names = append(names, "host")
	if req.ContentLength > 0 {
		names = append(names, "content-length")
	}
	for k := range req.Header {
		if !unsignedHeaders[k] {
			names = append(names, strings.ToLower(k))
		}
	}
	slices.Sort(names)
	names = slices.Compact(names) // keys that differ only in case; their values are joined
	signedHeaders := strings.Join(names, ";")

	buf := sc.buf[:0]
	buf = append(buf, req.Method...)
	buf = append(buf, '\n')
	buf = appendCanonicalPath(buf, canonicalURI(req), service)
	buf = append(buf, '\n')
	buf = appendCanonicalQuery(buf, sc.pairs, "")
	buf = append(buf, '\n')
	for _, name := range names {
		vs, ok := headerValues(req, name, sc.key[:0])
		if !ok && name != "host" && name != "content-length" {
			vs = signValues(req.Header, name)
		}
		buf = appendHeaderLine(buf, name, vs)
	}
	buf = appendCanonicalTail(buf, signedHeaders, payload)
	sc.buf = buf

	c := credentials{accessKey: creds.AccessKeyID, date: amzDate[:8], region: region, service: service}
	c.scope = c.date + "/" + region + "/" + service + "/" + scopeSuffix
	crHash := sha256.Sum256(buf)
	sts := appendStringToSign(sc.sts[:0], amzDate, c.scope, &crHash)
	sc.sts = sts

	key := s.keys.get(creds.SecretAccessKey, &c, sc)
	sig := hmacSHA256(&key, sts)
	clear(key[:])

	authz := make([]byte, 0, len(algorithmV4)+len(c.accessKey)+len(c.scope)+len(signedHeaders)+128)
	authz = append(authz, algorithmV4...)
	authz = append(authz, " Credential="...)
	authz = append(authz, c.accessKey...)
	authz = append(authz, '/')
	authz = append(authz, c.scope...)
	authz = append(authz, ", SignedHeaders="...)
	authz = append(authz, signedHeaders...)
	authz = append(authz, ", Signature="...)
	authz = appendHex(authz, sig[:])
	req.Header[hAuthorization] = []string{string(authz)}
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
