package s3iam

import (
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// Identifiers the gateway forwards: upload ids, version ids, part numbers,
// continuation tokens and list markers. To S3 they are opaque tokens, but
// S3-compatible servers backed by a file system join some of them into
// paths (versitygw's posix backend deletes <bucket>/.sgwtmp/multipart/
// <hash>/<uploadId>), so "../../victim" as an upload id reaches outside the
// key the grant covers. Each is validated as the token it is, before any
// check, record or forward.

// MaxIDBytes bounds an opaque identifier. AWS's upload ids are about 150
// characters and its version ids 32; other servers use UUIDs.
const MaxIDBytes = 1024

// MaxTokenBytes bounds a continuation token, which some servers make from
// a key (up to 1024 bytes) and then encode.
const MaxTokenBytes = 4096

// idKind is how a query parameter's value is validated.
type idKind uint8

const (
	idOpaque     idKind = iota + 1 // upload and version ids
	idPartNumber                   // partNumber: 1..10000
	idPartMarker                   // part-number-marker: 0..10000
	idKeyMarker                    // a key: marker, key-marker, start-after
	idToken                        // continuation-token
)

// idParams are the query parameters whose values are identifiers.
var idParams = map[string]idKind{
	"uploadId":           idOpaque,
	"versionId":          idOpaque,
	"upload-id-marker":   idOpaque,
	"version-id-marker":  idOpaque,
	"partNumber":         idPartNumber,
	"part-number-marker": idPartMarker,
	"marker":             idKeyMarker,
	"key-marker":         idKeyMarker,
	"start-after":        idKeyMarker,
	"continuation-token": idToken,
}

// S3's messages, word for word, for faults it defines.
const (
	MsgNoSuchUpload = "The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
	MsgPartNumber   = "Part number must be an integer between 1 and 10000, inclusive."
)

// CheckQueryID validates the value of query parameter name if it carries
// an identifier (nil for any other parameter), with S3's InvalidArgument.
func CheckQueryID(name, value string) error {
	switch idParams[name] {
	case idOpaque:
		return CheckOpaqueID(name, value)
	case idPartNumber:
		if !validPartNumber(value) {
			return s3err.New(s3err.InvalidArgument, "%s", MsgPartNumber)
		}
	case idPartMarker:
		if !validPartMarker(value) {
			e := s3err.Detailed(s3err.InvalidArgument, "Provided part-number-marker not an integer or within integer range", "an integer from 0 to 10000")
			e.ArgumentName, e.ArgumentValue = "part-number-marker", truncate(value)
			return e
		}
	case idKeyMarker:
		if value == "" {
			return nil // an empty marker is no marker
		}
		if err := checkName(value, name, true); err != nil {
			return s3err.New(s3err.InvalidArgument, "%s", s3err.As(err).Message)
		}
	case idToken:
		return checkToken(name, value)
	}
	return nil
}

// CheckOpaqueID validates an upload or version id: 1 to MaxIDBytes of
// A-Z a-z 0-9 and "-_.~=+" (base64, base64url and UUIDs, as the ids of AWS,
// MinIO, Ceph and versitygw are), and not "." or "..". With no '/' or '\'
// an id cannot name another directory, and without control bytes or
// spaces it prints as it is. what names the id in the message.
func CheckOpaqueID(what, id string) error {
	if id == "" {
		return s3err.New(s3err.InvalidArgument, "%s is empty", what)
	}
	if len(id) > MaxIDBytes {
		return s3err.New(s3err.InvalidArgument, "%s is longer than %d bytes", what, MaxIDBytes)
	}
	for i := 0; i < len(id); i++ {
		if !idByte(id[i]) {
			return s3err.New(s3err.InvalidArgument, "%s contains %s, which is not in an S3 identifier (letters, digits and -_.~=+ only)", what, describeByte(id[i]))
		}
	}
	if id == "." || id == ".." {
		return s3err.New(s3err.InvalidArgument, "%s is %q, a path segment", what, id)
	}
	return nil
}

func idByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~' || c == '=' || c == '+'
}

// describeByte names an offending byte without echoing control characters.
func describeByte(c byte) string {
	switch {
	case c == '/':
		return "'/'"
	case c == '\\':
		return "a backslash"
	case c < 0x20 || c >= 0x7f:
		return "byte 0x" + string("0123456789abcdef"[c>>4]) + string("0123456789abcdef"[c&15])
	}
	return "'" + string(rune(c)) + "'"
}

// checkToken validates a continuation token. AWS's are base64 (with '/',
// '+' and '='), versitygw's and MinIO's are or encode the last key listed,
// so '/' is allowed; what a file system would resolve is not: "." and ".."
// segments, a backslash, control characters, invalid UTF-8.
func checkToken(what, tok string) error {
	if tok == "" {
		return nil
	}
	if len(tok) > MaxTokenBytes {
		return s3err.New(s3err.InvalidArgument, "%s is longer than %d bytes", what, MaxTokenBytes)
	}
	if !utf8.ValidString(tok) {
		return s3err.New(s3err.InvalidArgument, "%s is not valid UTF-8", what)
	}
	seg := 0
	for i := 0; i <= len(tok); i++ {
		if i < len(tok) {
			c := tok[i]
			switch {
			case c < 0x20 || c == 0x7f:
				return s3err.New(s3err.InvalidArgument, "%s contains a control character (%s)", what, describeByte(c))
			case c == 0xc2 && i+1 < len(tok) && tok[i+1] >= 0x80 && tok[i+1] <= 0x9f:
				return s3err.New(s3err.InvalidArgument, "%s contains a C1 control character", what)
			case c == '\\':
				return s3err.New(s3err.InvalidArgument, "%s contains a backslash", what)
			case c != '/':
				continue
			}
		}
		if s := tok[seg:i]; s == "." || s == ".." {
			return s3err.New(s3err.InvalidArgument, "%s contains a %q path segment", what, s)
		}
		seg = i + 1
	}
	return nil
}

// validPartMarker accepts 0..10000 in plain decimal (no sign, no leading
// zero but for "0").
func validPartMarker(s string) bool {
	return s == "0" || validPartNumber(s)
}
