package sigv4

import (
	"strings"

	"github.com/airlock-dev/airlock/internal/s3err"
)

const (
	algorithmV4  = "AWS4-HMAC-SHA256"
	algorithmV4A = "AWS4-ECDSA-P256-SHA256"
	scopeSuffix  = "aws4_request"
	amzDateFmt   = "20060102T150405Z"
)

// credentials is what a signature claims: who, for which scope, over
// which headers. Strings are slices of the request's own header or query.
type credentials struct {
	accessKey     string
	date          string // yyyymmdd
	region        string
	service       string
	scope         string // date/region/service/aws4_request
	signedHeaders string // "host;x-amz-date", as sent
	signature     string // 64 lowercase hex
}

// parseAuthorization parses an Authorization header value:
//
//	AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=<hex>
//
// Each of the three parameters must appear exactly once; whitespace around
// the commas is optional, as the SDKs differ.
func parseAuthorization(h string) (credentials, *s3err.Error) {
	var c credentials
	alg, rest, ok := strings.Cut(h, " ")
	if !ok {
		return c, malformed("expected %q followed by Credential, SignedHeaders and Signature", algorithmV4)
	}
	switch alg {
	case algorithmV4:
	case algorithmV4A:
		return c, s3err.New(s3err.NotImplemented, "Signature Version 4A (%s) is not supported; sign with %s", algorithmV4A, algorithmV4)
	case "AWS":
		return c, unsupportedMechanism()
	default:
		return c, malformed("unsupported authorization algorithm %q; expected %s", clip(alg), algorithmV4)
	}
	var haveCred, haveHeaders, haveSig bool
	for rest != "" {
		var part string
		part, rest, _ = strings.Cut(rest, ",")
		part = strings.Trim(part, " ")
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			return c, malformed("expected Name=value pairs separated by commas")
		}
		switch name {
		case "Credential":
			if haveCred {
				return c, malformed("Credential given twice")
			}
			haveCred = true
			if e := parseCredential(value, &c); e != "" {
				return c, malformed("%s", e)
			}
		case "SignedHeaders":
			if haveHeaders {
				return c, malformed("SignedHeaders given twice")
			}
			haveHeaders = true
			c.signedHeaders = value
		case "Signature":
			if haveSig {
				return c, malformed("Signature given twice")
			}
			haveSig = true
			c.signature = value
		default:
			return c, malformed("unknown parameter %q", clip(name))
		}
	}
	switch {
	case !haveCred:
		return c, malformed("missing Credential")
	case !haveHeaders:
		return c, malformed("missing SignedHeaders")
	case !haveSig:
		return c, malformed("missing Signature")
	}
	if e := checkSignedHeaders(c.signedHeaders); e != "" {
		return c, malformed("%s", e)
	}
	if !isHex64(c.signature) {
		return c, malformed("Signature must be 64 lowercase hexadecimal characters")
	}
	return c, nil
}

// parseCredential splits "AK/yyyymmdd/region/service/aws4_request".
// It returns a message on error, without the offending value when that
// could be a secret pasted by mistake.
func parseCredential(v string, c *credentials) string {
	// The scope is the last four fields; the access key is what precedes
	// them, and must be non-empty.
	parts := [4]string{}
	rest := v
	for i := 3; i >= 0; i-- {
		j := strings.LastIndexByte(rest, '/')
		if j < 0 {
			return "Credential must be ACCESS_KEY/yyyymmdd/region/service/aws4_request"
		}
		parts[i] = rest[j+1:]
		rest = rest[:j]
	}
	if rest == "" {
		return "Credential has an empty access key id"
	}
	if strings.IndexByte(rest, '/') >= 0 {
		return "Credential must be ACCESS_KEY/yyyymmdd/region/service/aws4_request"
	}
	if parts[3] != scopeSuffix {
		return "Credential scope must end in aws4_request"
	}
	if !isDate(parts[0]) {
		return "Credential date must be yyyymmdd"
	}
	if parts[1] == "" || parts[2] == "" {
		return "Credential must name a region and a service"
	}
	c.accessKey = rest
	c.date, c.region, c.service = parts[0], parts[1], parts[2]
	c.scope = v[len(rest)+1:]
	return ""
}

// checkSignedHeaders requires a non-empty, lowercase, sorted list without
// duplicates that includes host. Sorting is what every signer does; being
// strict keeps the canonical form unique.
func checkSignedHeaders(s string) string {
	if s == "" {
		return "SignedHeaders is empty"
	}
	host := false
	prev := ""
	for rest := s; ; {
		name, more, found := strings.Cut(rest, ";")
		if name == "" {
			return "SignedHeaders has an empty header name"
		}
		for i := 0; i < len(name); i++ {
			c := name[i]
			if 'A' <= c && c <= 'Z' {
				return "SignedHeaders must be lowercase"
			}
			if !tokenChar(c) {
				return "SignedHeaders has an invalid header name"
			}
		}
		if prev != "" && name <= prev {
			return "SignedHeaders must be sorted and without duplicates"
		}
		if name == "host" {
			host = true
		}
		prev = name
		if !found {
			break
		}
		rest = more
	}
	if !host {
		return "SignedHeaders must include host"
	}
	return ""
}

func tokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' ||
		c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' ||
		c == '+' || c == '^' || c == '`' || c == '|' || c == '~'
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isDate(s string) bool {
	if len(s) != 8 {
		return false
	}
	for i := 0; i < 8; i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func malformed(format string, args ...any) *s3err.Error {
	return s3err.New(s3err.AuthorizationHeaderMalformed, "The authorization header is malformed: "+format, args...)
}

func queryError(format string, args ...any) *s3err.Error {
	return s3err.New(s3err.AuthorizationQueryParametersError, format, args...)
}

// clip bounds a client-supplied string quoted in an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
