package s3iam

import (
	"strings"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// Limits S3 itself enforces.
const (
	// MaxKeyBytes is S3's limit on an object key's UTF-8 length.
	MaxKeyBytes = 1024
	// MaxDeleteKeys is S3's limit on the keys of one DeleteObjects call.
	MaxDeleteKeys = 1000
)

// Error codes S3 uses that s3err has no constant for; s3err.New gives
// unknown codes status 400, which is what S3 answers with for both.
const (
	codeInvalidBucketName = "InvalidBucketName"
	codeKeyTooLong        = "KeyTooLongError"
	codeInvalidURI        = "InvalidURI"
)

// unhex returns the value of a hex digit, or -1.
func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// errPlus is why a literal '+' is refused wherever Airlock percent-decodes:
// AWS S3 reads a raw '+' in a path as a space (a legacy quirk) while Go,
// versitygw and MinIO read it as a plus, so the key Airlock authorizes and
// the key the upstream opens could differ. Every SDK and the CLI send %2B.
const errPlus = "a literal '+' is ambiguous (S3 reads it as a space, other servers as a plus); encode it as %%2B or a space as %%20"

// unescape percent-decodes s exactly once. It refuses a malformed escape
// and a literal '+' (see errPlus); what is either of the two is not a
// request any S3 client sends.
func unescape(s, what string) (string, error) {
	return unescapeOf(s, what, "")
}

// unescapeOf is unescape with what+name for what: the two are joined only
// for an error's text, where the caller's concatenation was an allocation
// for every query parameter's value.
func unescapeOf(s, what, name string) (string, error) {
	n := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '%':
			if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
				return "", s3err.New(codeInvalidURI, "%s: malformed percent-encoding", what+name)
			}
			n++
			i += 2
		case '+':
			return "", s3err.New(s3err.InvalidArgument, "%s: "+errPlus, what+name)
		}
	}
	if n == 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s) - 2*n)
	for i := 0; i < len(s); i++ {
		if s[i] == '%' {
			b.WriteByte(byte(unhex(s[i+1])<<4 | unhex(s[i+2])))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String(), nil
}

// checkName refuses the byte strings Airlock will not authorize as an
// object key (partial = false) or a listing prefix (partial = true). S3
// would accept most of them, but S3-compatible upstreams that store objects
// in a file system may resolve them, and then the object opened is not the
// one the grant covers:
//   - invalid UTF-8, which includes overlong forms such as %C0%AE for '.'
//     and encoded surrogates (S3 requires UTF-8 keys);
//   - C0 and C1 control characters, DEL and NUL;
//   - a backslash, a path separator on Windows-backed servers;
//   - "." and ".." segments, even as the last, partial segment of a prefix;
//   - empty segments: a leading '/' or "//" (a file system collapses them).
//     A trailing '/' (a "folder" key or prefix) is allowed.
//
// Nothing is normalised (not Unicode, not case, not slashes): S3 keys are
// byte strings, so the key checked is byte for byte the key S3 uses.
func checkName(s, what string, partial bool) error {
	if !partial && s == "" {
		return s3err.New(s3err.InvalidArgument, "%s is empty", what)
	}
	if len(s) > MaxKeyBytes {
		return s3err.New(codeKeyTooLong, "%s is longer than %d bytes", what, MaxKeyBytes)
	}
	if !utf8.ValidString(s) {
		return s3err.New(s3err.InvalidArgument, "%s is not valid UTF-8", what)
	}
	segStart := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) {
			c := s[i]
			switch {
			case c < 0x20 || c == 0x7f:
				return s3err.New(s3err.InvalidArgument, "%s contains a control character (byte 0x%02x)", what, c)
			case c == 0xc2 && i+1 < len(s) && s[i+1] >= 0x80 && s[i+1] <= 0x9f:
				return s3err.New(s3err.InvalidArgument, "%s contains a C1 control character (U+%04X)", what, rune(s[i+1]))
			case c == '\\':
				return s3err.New(s3err.InvalidArgument, "%s contains a backslash, which some S3-compatible servers treat as a path separator", what)
			case c != '/':
				continue
			}
		}
		seg := s[segStart:i]
		switch {
		case seg == "." || seg == "..":
			return s3err.New(s3err.AccessDenied, "%s contains a %q path segment, which S3-compatible servers backed by a file system would resolve", what, seg)
		case seg == "" && i < len(s):
			return s3err.New(s3err.AccessDenied, "%s contains an empty path segment (a leading '/' or \"//\"), which S3-compatible servers backed by a file system would collapse", what)
		}
		segStart = i + 1
	}
	return nil
}

// validBucket reports whether b follows S3's rules for bucket names
// created today (the legacy us-east-1 names with capitals or underscores
// are refused: fail closed).
func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	digitsAndDots := true
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= 'a' && c <= 'z':
			digitsAndDots = false
		case c >= '0' && c <= '9':
		case c == '.':
			if i > 0 && b[i-1] == '.' {
				return false
			}
		case c == '-':
			digitsAndDots = false
		default:
			return false
		}
	}
	if !isAlnum(b[0]) || !isAlnum(b[len(b)-1]) {
		return false
	}
	if digitsAndDots && strings.Count(b, ".") == 3 { // IP address format
		return false
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(b, p) {
			return false
		}
	}
	for _, s := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(b, s) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// EscapeKey percent-encodes key for a request path the way the AWS SDKs do:
// everything but RFC 3986 unreserved characters and '/'. A gateway that
// rebuilds the upstream request from an Op uses it so that the upstream
// decodes exactly Op.Key.
func EscapeKey(key string) string {
	n := 0
	for i := 0; i < len(key); i++ {
		if !unreserved(key[i]) && key[i] != '/' {
			n++
		}
	}
	if n == 0 {
		return key
	}
	const hexdigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(key) + 2*n)
	for i := 0; i < len(key); i++ {
		c := key[i]
		if unreserved(c) || c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexdigits[c>>4])
		b.WriteByte(hexdigits[c&15])
	}
	return b.String()
}

func unreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}
