package s3iam

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// MaxBodyCheckBytes is the largest body the caller should
// read for AddBodyChecks; a larger one should be refused (EntityTooLarge).
// 1000 keys of S3's 1024-byte maximum with the XML around them fit in a
// little over 1 MiB; 2 MiB leaves room for escaped characters.
const MaxBodyCheckBytes = 2 << 20

// s3Namespace is the XML namespace S3 documents use.
const s3Namespace = "http://s3.amazonaws.com/doc/2006-03-01/"

// AddBodyChecks parses the body of a NeedsBody op, the DeleteObjects XML
//
//	<Delete><Quiet>true</Quiet><Object><Key>k</Key><VersionId>v</VersionId></Object>...</Delete>
//
// and replaces the op's placeholder check with one s3:DeleteObject check
// per <Key> (s3:DeleteObjectVersion when the object has a <VersionId>),
// plus s3:BypassGovernanceRetention per key when the request asked to
// bypass governance retention.
//
// The parser is strict, because the upstream parses the same bytes and
// must find exactly the keys Airlock authorized: every element must be one
// S3 defines, in its place, at most once (a second <Key> in an <Object>
// is refused rather than guessing which one the upstream deletes); no
// DOCTYPE, comments or processing instructions other than the XML
// declaration; no foreign namespaces; no text outside the leaf elements
// but white space. Keys obey the same rules as keys in a request path.
//
// For CreateBucket and PutBucketReplication it adds the checks their
// bodies call for (see configBodyChecks); for PutObjectAcl and
// PutBucketAcl with a body it records the grantees (see aclBody), for
// PutObjectRetention and PutObjectLegalHold what they set (see lockBody),
// for PutObjectTagging and PutBucketTagging the tags (see tagBody), for
// a bucket policy or configuration what it sets (see configRecord).
func (op *Op) AddBodyChecks(body []byte) error {
	if !op.NeedsBody {
		return errors.New("s3iam: AddBodyChecks on an operation that has no body checks")
	}
	if len(body) > MaxBodyCheckBytes {
		return s3err.New(s3err.EntityTooLarge, "the %s body is larger than %d bytes", op.Name, MaxBodyCheckBytes)
	}
	if op.Name != "DeleteObjects" {
		return op.configBodyChecks(body)
	}
	objs, err := parseDelete(body)
	if err != nil {
		return err
	}
	checks := make([]Check, 0, len(objs))
	keys := make([]string, 0, len(objs))
	versions := make([]string, 0, len(objs))
	versioned := false
	for _, o := range objs {
		res := ARNPrefix + op.Bucket + "/" + o.key
		act := "s3:DeleteObject"
		if o.hasVersion {
			act = "s3:DeleteObjectVersion"
		}
		checks = append(checks, Check{Action: act, Resource: res})
		if op.bypassGovernance {
			checks = append(checks, Check{Action: "s3:BypassGovernanceRetention", Resource: res})
		}
		keys = append(keys, o.key)
		versions = append(versions, o.version)
		versioned = versioned || o.hasVersion
	}
	op.Checks = checks
	op.NeedsBody = false
	op.param("keys", strings.Join(keys, "\n"))
	op.param("key_count", itoa(len(keys)))
	if versioned {
		// Which version of each key, line for line with keys ("" for
		// none): deleting a version destroys it, where deleting a key
		// only hides it behind a delete marker, as DeleteObject's
		// version_id records.
		op.param("version_ids", strings.Join(versions, "\n"))
	}
	return nil
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}

type deleteObject struct {
	key, version string
	hasVersion   bool
}

func malformed(format string, args ...any) error {
	return s3err.New(s3err.MalformedXML, "DeleteObjects body: "+format, args...)
}

// parseDelete is a small state machine over XML tokens: depth 0 expects
// <Delete>, depth 1 <Quiet> or <Object>, depth 2 the fields of an
// <Object>.
func parseDelete(body []byte) ([]deleteObject, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	var (
		objs      []deleteObject
		stack     []string // open element names
		ns        = "\x00" // the namespace of <Delete>, set when seen
		seenRoot  bool
		seenQuiet bool
		cur       deleteObject
		seen      map[string]bool // fields seen in the current <Object>
		text      strings.Builder
		leaf      bool // inside a leaf element whose text we collect
	)
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, malformed("%v", err)
		}
		switch t := tok.(type) {
		case xml.ProcInst:
			if t.Target != "xml" || seenRoot || len(stack) > 0 {
				return nil, malformed("processing instructions are not allowed")
			}
		case xml.Directive:
			return nil, malformed("DOCTYPE and other directives are not allowed")
		case xml.Comment:
			return nil, malformed("comments are not allowed")
		case xml.CharData:
			if leaf {
				text.Write(t)
				continue
			}
			if len(bytes.TrimLeft(t, " \t\r\n")) != 0 {
				return nil, malformed("text outside an element's value")
			}
		case xml.StartElement:
			if leaf {
				return nil, malformed("element <%s> inside a value", t.Name.Local)
			}
			if t.Name.Space != "" {
				return nil, malformed("namespace prefixes are not allowed")
			}
			elemNS := ""
			for _, at := range t.Attr {
				if at.Name.Space != "" || at.Name.Local != "xmlns" {
					return nil, malformed("attribute %q is not allowed", at.Name.Local)
				}
				elemNS = at.Value
			}
			switch len(stack) {
			case 0:
				if seenRoot || t.Name.Local != "Delete" {
					return nil, malformed("the root element must be <Delete>")
				}
				if elemNS != "" && elemNS != s3Namespace {
					return nil, malformed("unknown namespace %q", elemNS)
				}
				seenRoot, ns = true, elemNS
			case 1:
				if len(t.Attr) > 0 && elemNS != ns {
					return nil, malformed("a namespace change inside <Delete> is not allowed")
				}
				switch t.Name.Local {
				case "Quiet":
					if seenQuiet {
						return nil, malformed("<Quiet> is given twice")
					}
					seenQuiet, leaf = true, true
				case "Object":
					if len(objs) == MaxDeleteKeys {
						return nil, malformed("more than %d objects", MaxDeleteKeys)
					}
					cur, seen = deleteObject{}, map[string]bool{}
				default:
					return nil, malformed("unexpected element <%s> in <Delete>", t.Name.Local)
				}
			case 2:
				if stack[1] != "Object" {
					return nil, malformed("unexpected element <%s> in <%s>", t.Name.Local, stack[1])
				}
				if len(t.Attr) > 0 && elemNS != ns {
					return nil, malformed("a namespace change inside <Delete> is not allowed")
				}
				switch t.Name.Local {
				case "Key", "VersionId", "ETag", "LastModifiedTime", "Size":
				default:
					return nil, malformed("unexpected element <%s> in <Object>", t.Name.Local)
				}
				if seen[t.Name.Local] {
					return nil, malformed("<%s> is given twice in one <Object>", t.Name.Local)
				}
				seen[t.Name.Local] = true
				leaf = true
			default:
				return nil, malformed("elements nested too deep")
			}
			text.Reset()
			stack = append(stack, t.Name.Local)
		case xml.EndElement:
			if len(stack) == 0 || t.Name.Local != stack[len(stack)-1] || t.Name.Space != "" {
				return nil, malformed("mismatched end element")
			}
			name := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			leaf = false
			switch {
			case len(stack) == 1 && name == "Object":
				if !seen["Key"] {
					return nil, malformed("an <Object> has no <Key>")
				}
				objs = append(objs, cur)
			case len(stack) == 2 && name == "Key":
				k := text.String()
				if err := checkName(k, "DeleteObjects key", false); err != nil {
					return nil, err
				}
				cur.key = k
			case len(stack) == 2 && name == "VersionId":
				if text.Len() == 0 {
					return nil, malformed("an empty <VersionId>")
				}
				if err := CheckOpaqueID("a DeleteObjects <VersionId>", text.String()); err != nil {
					return nil, err
				}
				cur.version, cur.hasVersion = text.String(), true
			case len(stack) == 1 && name == "Quiet":
				if v := text.String(); v != "true" && v != "false" {
					return nil, malformed("<Quiet> must be true or false")
				}
			}
		}
	}
	if !seenRoot || len(stack) != 0 {
		return nil, malformed("incomplete document")
	}
	if len(objs) == 0 {
		return nil, malformed("no <Object> to delete")
	}
	return objs, nil
}
