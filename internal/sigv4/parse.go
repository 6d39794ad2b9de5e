package sigv4

import (
	"fmt"
	"strings"
	"time"

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
	scope         string   // date/region/service/aws4_request
	signedHeaders string   // "host;x-amz-date", as sent
	names         []string // signedHeaders split at ';' (in the scratch's room)
	signature     string   // 64 lowercase hex
	sig           [32]byte // signature, decoded as it is checked
}

// parseAuthorization parses an Authorization header value:
//
//	AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=<hex>
//
// It takes exactly the three parameters, each once, in any order;
// whitespace around the commas is optional, as the SDKs differ. service,
// if set, is the only service a credential scope may name. Errors carry
// S3's own messages. The SignedHeaders names are appended to names and
// returned in c.names.
func parseAuthorization(h, service string, names []string) (credentials, *s3err.Error) {
	var c credentials
	alg, rest, ok := strings.Cut(h, " ")
	if !ok {
		e := s3err.New(s3err.InvalidArgument, "Authorization header is invalid -- one and only one ' ' (space) required.")
		e.ArgumentName, e.ArgumentValue = "Authorization", clip(h)
		return c, e
	}
	switch alg {
	case algorithmV4:
	case algorithmV4A:
		return c, s3err.New(s3err.NotImplemented, "Signature Version 4A (%s) is not supported; sign with %s", algorithmV4A, algorithmV4)
	case "AWS":
		return c, unsupportedMechanism()
	default:
		e := s3err.Detailed(s3err.InvalidArgument, "Unsupported Authorization Type", "expected %s", algorithmV4)
		e.ArgumentName, e.ArgumentValue = "Authorization", clip(alg)
		return c, e
	}
	if strings.Count(rest, ",") != 2 {
		return c, malformed("the authorization header requires three components: Credential, SignedHeaders, and Signature.")
	}
	var haveCred, haveHeaders, haveSig bool
	var cred string
	// Split on the two commas without allocating a slice (every call
	// goes through here).
	for part := range strings.SplitSeq(rest, ",") {
		part = strings.Trim(part, " ")
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			return c, malformed("the authorization component %q is malformed.", clip(part))
		}
		// A name given twice or unknown leaves one of the three missing,
		// which the switch after the loop reports.
		switch name {
		case "Credential":
			haveCred, cred = true, value
		case "SignedHeaders":
			haveHeaders, c.signedHeaders = true, value
		case "Signature":
			haveSig, c.signature = true, value
		}
	}
	switch {
	case !haveCred:
		return c, malformed("missing Credential.")
	case !haveHeaders:
		return c, malformed("missing SignedHeaders.")
	case !haveSig:
		return c, malformed("missing Signature.")
	}
	if e := parseCredential(cred, service, &c); e != "" {
		return c, malformed("%s", e)
	}
	var e string
	if c.names, e = splitSignedHeaders(c.signedHeaders, names); e != "" {
		return c, malformedDetail("the SignedHeaders component is malformed.", "%s", e)
	}
	if c.sig, ok = decodeSig(c.signature); !ok {
		return c, malformedDetail("the Signature component is malformed.", "Signature must be 64 lowercase hexadecimal characters")
	}
	return c, nil
}

// parseCredential splits "AK/yyyymmdd/region/service/aws4_request", in the
// order S3 checks it (shape, service, terminal, date). It returns S3's
// message on error, to follow "The authorization header is malformed; " or
// "Error parsing the X-Amz-Credential parameter; ". It never quotes the
// access key id, and clips what it quotes.
func parseCredential(v, service string, c *credentials) string {
	// Split into a fixed array (no allocation on every call); a sixth part
	// or more leaves n at 6, which is refused like too few.
	var parts [5]string
	n := 0
	for p := range strings.SplitSeq(v, "/") {
		if n == len(parts) {
			n++
			break
		}
		parts[n] = p
		n++
	}
	if n != 5 || parts[0] == "" || parts[2] == "" || parts[3] == "" {
		return `the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".`
	}
	if service != "" && parts[3] != service {
		return fmt.Sprintf("incorrect service %q. This endpoint belongs to %q.", clip(parts[3]), service)
	}
	if !ValidService(parts[3]) {
		return fmt.Sprintf("incorrect service %q. A service name is 1 to %d lowercase letters, digits and hyphens.", clip(parts[3]), maxServiceName)
	}
	if parts[4] != scopeSuffix {
		return fmt.Sprintf("incorrect terminal %q. This endpoint uses %q.", clip(parts[4]), scopeSuffix)
	}
	if !isDate(parts[1]) {
		return fmt.Sprintf("incorrect date format %q. This date in the credential must be in the format \"yyyyMMdd\".", clip(parts[1]))
	}
	c.accessKey = parts[0]
	c.date, c.region, c.service = parts[1], parts[2], parts[3]
	c.scope = v[len(parts[0])+1:]
	return ""
}

// maxServiceName bounds a credential scope's service name (AWS's longest
// signing names are about 30 characters).
const maxServiceName = 64

// ValidService reports whether s can be a SigV4 signing name: 1 to 64
// lowercase letters, digits and hyphens, starting with a letter. A server
// that accepts any service (Verifier.Service "") builds host names and
// ARNs from it, so nothing else gets through.
func ValidService(s string) bool {
	if len(s) == 0 || len(s) > maxServiceName || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// splitSignedHeaders requires a non-empty, lowercase, sorted list without
// duplicates that includes host. Sorting is what every signer does; being
// strict keeps the canonical form unique. It appends the names to dst, as
// strings.Split would give them, so that a verification walks the list
// once: the token check, the canonical request and Auth.SignedHeaders
// each cut it at every ';' again, 28 strings.Cut calls on an SDK
// GetObject's seven names, about 2,500 instructions a call.
func splitSignedHeaders(s string, dst []string) ([]string, string) {
	if s == "" {
		return dst, "SignedHeaders is empty"
	}
	host := false
	prev := ""
	for rest := s; ; {
		name, more, found := strings.Cut(rest, ";")
		if name == "" {
			return dst, "SignedHeaders has an empty header name"
		}
		// The classes of the name's bytes are or-ed, and the first bad
		// byte looked for only if one is: a test and branch per byte
		// less than a switch on each (bench/HISTORY.md, "S3 GET 1 KiB:
		// the signed names' keys, their byte check and the
		// unsigned-header check's compares").
		var class uint8
		for i := 0; i < len(name); i++ {
			class |= nameByte[name[i]]
		}
		if class != nameToken {
			for i := 0; i < len(name); i++ {
				switch nameByte[name[i]] {
				case nameUpper:
					return dst, "SignedHeaders must be lowercase"
				case nameOther:
					return dst, "SignedHeaders has an invalid header name"
				}
			}
		}
		if prev != "" && name <= prev {
			return dst, "SignedHeaders must be sorted and without duplicates"
		}
		if name == "host" {
			host = true
		}
		prev = name
		dst = append(dst, name)
		if !found {
			break
		}
		rest = more
	}
	if !host {
		return dst, "SignedHeaders must include host"
	}
	return dst, ""
}

// nameByte classes the bytes of a SignedHeaders name by one lookup each
// (the list is checked on every request): a lowercase token byte
// (tokenChar), an upper case letter, or anything else.
var nameByte = func() (t [256]uint8) {
	for c := range t {
		switch b := byte(c); {
		case 'A' <= b && b <= 'Z':
			t[c] = nameUpper
		case !tokenChar(b):
			t[c] = nameOther
		}
	}
	return t
}()

const (
	nameToken uint8 = iota
	nameUpper
	nameOther
)

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

// malformed is S3's AuthorizationHeaderMalformed; format is S3's own
// text after "The authorization header is malformed; ".
func malformed(format string, args ...any) *s3err.Error {
	return s3err.New(s3err.AuthorizationHeaderMalformed, "The authorization header is malformed; "+format, args...)
}

// malformedDetail is malformed with Airlock's explanation as Detail.
func malformedDetail(msg, detailFormat string, args ...any) *s3err.Error {
	return s3err.Detailed(s3err.AuthorizationHeaderMalformed, "The authorization header is malformed; "+msg, detailFormat, args...)
}

func queryError(format string, args ...any) *s3err.Error {
	return s3err.New(s3err.AuthorizationQueryParametersError, format, args...)
}

// queryErrorDetail is AuthorizationQueryParametersError with S3's message
// and Airlock's explanation as Detail.
func queryErrorDetail(msg, detailFormat string, args ...any) *s3err.Error {
	return s3err.Detailed(s3err.AuthorizationQueryParametersError, msg, detailFormat, args...)
}

// S3's messages, word for word.
const (
	msgNoDate   = "AWS authentication requires a valid Date or x-amz-date header."
	msgBadToken = "The provided token is malformed or otherwise invalid."
)

// clip bounds a client-supplied string quoted in an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// parseAmzDate parses an X-Amz-Date value, exactly yyyyMMdd'T'HHmmss'Z'
// (ISO 8601 basic, UTC). It takes what time.Parse with amzDateFmt takes,
// less the fractional seconds time.Parse lets through after the seconds
// (S3 refuses those too), and does it without reading the layout, which
// made time.Parse about 1.5% of the AWS gateway's CPU per call.
func parseAmzDate(s string) (time.Time, bool) {
	if len(s) != len(amzDateFmt) || s[8] != 'T' || s[15] != 'Z' {
		return time.Time{}, false
	}
	num := func(i, n int) (int, bool) {
		v := 0
		for _, c := range []byte(s[i : i+n]) {
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(4, 2)
	d, ok3 := num(6, 2)
	h, ok4 := num(9, 2)
	mi, ok5 := num(11, 2)
	sec, ok6 := num(13, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return time.Time{}, false
	}
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(time.Month(mo), y) || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC), true
}

// daysIn is the number of days in month m of year y (proleptic Gregorian).
func daysIn(m time.Month, y int) int {
	switch m {
	case time.February:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}
