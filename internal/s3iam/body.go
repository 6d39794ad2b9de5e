package s3iam

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/scope"
)

// maxRoles bounds the iam:PassRole checks of one replication
// configuration (S3 allows one role per configuration).
const maxRoles = 16

// configBodyChecks adds the checks a bucket configuration body calls for:
//   - CreateBucket: s3:TagResource on the bucket when the
//     CreateBucketConfiguration carries tags;
//   - PutBucketReplication: iam:PassRole on the ARN of each <Role>, the
//     role S3 assumes to replicate, which IAM requires of the caller.
//
// The configuration a recordedConfigs body sets is recorded
// (configRecord).
//
// The scan is conservative rather than strict: any element named Tags or
// Tag, at any depth and in any namespace, counts as tags, and every Role
// element counts. DOCTYPEs (entity tricks) are refused, so what Airlock
// reads is what the upstream reads.
func (op *Op) configBodyChecks(body []byte) error {
	switch op.Name {
	case "PutObjectAcl", "PutBucketAcl":
		return op.aclBody(body)
	case "PutObjectRetention", "PutObjectLegalHold":
		return op.lockBody(body)
	case "PutObjectTagging", "PutBucketTagging":
		return op.tagBody(body)
	}
	if op.Name != "PutBucketReplication" && recordedConfigs[op.Name] {
		if err := op.configRecord(body); err != nil {
			return err
		}
		op.Checks = op.pending
		op.pending = nil
		op.NeedsBody = false
		return nil
	}
	bucketARN := ARNPrefix + op.Bucket
	checks := op.pending
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	var (
		tags   bool
		roles  []string
		inRole int // depth inside a <Role>, 0 outside
		text   strings.Builder
	)
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return s3err.New(s3err.MalformedXML, "%s body: %v", op.Name, err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return s3err.New(s3err.MalformedXML, "%s body: DOCTYPE and other directives are not allowed", op.Name)
		case xml.StartElement:
			if inRole > 0 {
				return s3err.New(s3err.MalformedXML, "%s body: element <%s> inside <Role>", op.Name, t.Name.Local)
			}
			switch t.Name.Local {
			case "Tags", "Tag", "TagSet":
				tags = true
			case "Role":
				inRole = 1
				text.Reset()
			}
		case xml.CharData:
			if inRole > 0 {
				text.Write(t)
			}
		case xml.EndElement:
			if inRole > 0 && t.Name.Local == "Role" {
				inRole = 0
				roles = append(roles, strings.TrimSpace(text.String()))
				if len(roles) > maxRoles {
					return s3err.New(s3err.MalformedXML, "%s body: more than %d roles", op.Name, maxRoles)
				}
			}
		}
	}
	switch op.Name {
	case "CreateBucket":
		if tags {
			checks = append(checks, Check{Action: "s3:TagResource", Resource: bucketARN})
		}
	case "PutBucketReplication":
		if len(roles) == 0 {
			return s3err.New(s3err.MalformedXML, "PutBucketReplication body: no <Role>")
		}
		for _, role := range roles {
			// The role must read as one ARN both to Airlock's scope
			// matcher and to IAM: no wildcard, space or control byte.
			if !strings.HasPrefix(role, "arn:") || strings.ContainsAny(role, "*? \t\r\n") || len(role) > scope.MaxResourceLength {
				return s3err.New(s3err.InvalidArgument, "PutBucketReplication body: <Role> %q is not an IAM role ARN", truncate(role))
			}
			for i := 0; i < len(role); i++ {
				if role[i] < 0x20 || role[i] == 0x7f {
					return s3err.New(s3err.InvalidArgument, "PutBucketReplication body: <Role> contains a control character")
				}
			}
			checks = append(checks, Check{Action: "iam:PassRole", Resource: role})
			op.param("replication_role", role)
		}
		if err := op.configRecord(body); err != nil {
			return err
		}
	}
	op.Checks = checks
	op.pending = nil
	op.NeedsBody = false
	return nil
}

// maxACLGrants bounds the grants of one access control list (S3 allows
// 100; more go to the upstream to refuse); maxACLDepth bounds the nesting
// of its document, which is four deep.
const (
	maxACLGrants = 1000
	maxACLDepth  = 16
)

// aclPermissions maps an ACL <Permission> to the Params name its
// x-amz-grant-* header records it under.
var aclPermissions = map[string]string{
	"READ": "grant_read", "WRITE": "grant_write", "READ_ACP": "grant_read_acp",
	"WRITE_ACP": "grant_write_acp", "FULL_CONTROL": "grant_full_control",
}

// aclBody records the grantees of a PutObjectAcl or PutBucketAcl
// AccessControlPolicy body as the x-amz-grant-* headers are recorded
// (grant_read: uri="…", id="…"): whom a call gave access to is what its
// reviewer needs to see, whichever way the client sent the ACL. Each value
// is written as Go quotes it (strconv.Quote), so that a " in a grantee
// (<ID>x", uri="…/AllUsers</ID>) cannot make the record read as granting
// another grantee; the values S3 accepts have none and read as before. The
// checks are the operation's own; the body adds none. Like
// configBodyChecks the scan reads element names at any depth and in any
// namespace and refuses DOCTYPEs; what S3 would refuse as a malformed ACL
// (an unknown permission, a grant with two grantees or permissions) is
// recorded as it stands, every grantee with every permission, and left
// to the upstream to refuse with its own error: a record may say more
// than the upstream applied, never less.
func (op *Op) aclBody(body []byte) error {
	malformedACL := func(format string, args ...any) error {
		return s3err.New(s3err.MalformedXML, op.Name+" body: "+format, args...)
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	var (
		inGrant, inGrantee bool
		leaf               string // the element whose text is collected, "" for none
		text               strings.Builder
		grantees, perms    []string // of the current <Grant>
		n                  int
		stack              []xml.Name // open elements: RawToken matches no end to its start
		root               bool
	)
	grants := map[string][]string{}
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return malformedACL("%v", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return malformedACL("DOCTYPE and other directives are not allowed")
		case xml.StartElement:
			if leaf != "" {
				return malformedACL("element <%s> inside <%s>", t.Name.Local, leaf)
			}
			if len(stack) == 0 {
				if root || t.Name.Local != "AccessControlPolicy" {
					return malformedACL("the root element must be <AccessControlPolicy>, once")
				}
				root = true
			}
			if len(stack) == maxACLDepth {
				return malformedACL("elements nested too deep")
			}
			stack = append(stack, t.Name)
			switch name := t.Name.Local; {
			case name == "Grant":
				if inGrant {
					return malformedACL("a <Grant> inside a <Grant>")
				}
				if n++; n > maxACLGrants {
					return malformedACL("more than %d grants", maxACLGrants)
				}
				inGrant, grantees, perms = true, nil, nil
			case inGrant && name == "Grantee":
				inGrantee = true
			case inGrant && name == "Permission",
				inGrantee && (name == "ID" || name == "URI" || name == "EmailAddress"):
				leaf = name
				text.Reset()
			}
		case xml.CharData:
			if leaf != "" {
				text.Write(t)
			}
		case xml.EndElement:
			if len(stack) == 0 || stack[len(stack)-1] != t.Name {
				return malformedACL("mismatched end element </%s>", t.Name.Local)
			}
			stack = stack[:len(stack)-1]
			switch name := t.Name.Local; {
			case leaf != "" && name == leaf:
				v := strings.TrimSpace(text.String())
				leaf = ""
				if name == "Permission" {
					perms = append(perms, v)
					continue
				}
				kind := map[string]string{"ID": "id", "URI": "uri", "EmailAddress": "emailAddress"}[name]
				grantees = append(grantees, kind+"="+strconv.Quote(v))
			case inGrant && name == "Grantee":
				inGrantee = false
			case inGrant && name == "Grant":
				inGrant = false
				for _, p := range perms {
					k, ok := aclPermissions[p]
					if !ok {
						k = "grant_other" // S3 refuses it; another server might not
					}
					for _, g := range grantees {
						if !ok {
							g = "permission=" + strconv.Quote(truncate(p)) + " " + g
						}
						grants[k] = append(grants[k], g)
					}
				}
			}
		}
	}
	if !root || len(stack) != 0 {
		return malformedACL("incomplete document")
	}
	for k, vs := range grants {
		v := strings.Join(vs, ", ")
		if prev := op.Params[k]; prev != "" {
			v = prev + ", " + v
		}
		op.param(k, v)
	}
	if len(grants) > 0 && op.Params["acl"] == "" {
		op.param("acl", "grant")
	}
	op.Checks = op.pending
	op.pending = nil
	op.NeedsBody = false
	return nil
}

// maxLockValue bounds a recorded retention mode, date or hold status
// (S3's are a word or an ISO 8601 timestamp); a longer one, which S3
// refuses, is recorded cut.
const maxLockValue = 64

// lockBody records the retention a PutObjectRetention body sets
// (<Retention><Mode>, <RetainUntilDate>) or the hold a PutObjectLegalHold
// body sets (<LegalHold><Status>), under the Params names the
// x-amz-object-lock-* headers of a write are recorded by: a COMPLIANCE
// retention cannot be undone until its date, and its reviewer needs to
// see it whichever way it was set. The checks are the operation's own.
func (op *Op) lockBody(body []byte) error {
	root, fields := "Retention", map[string]string{"Mode": "object_lock_mode", "RetainUntilDate": "object_lock_retain_until_date"}
	if op.Name == "PutObjectLegalHold" {
		root, fields = "LegalHold", map[string]string{"Status": "object_lock_legal_hold"}
	}
	malformedLock := func(format string, args ...any) error {
		return s3err.New(s3err.MalformedXML, op.Name+" body: "+format, args...)
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	var (
		stack []xml.Name
		seen  = map[string]bool{}
		text  strings.Builder
	)
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return malformedLock("%v", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return malformedLock("DOCTYPE and other directives are not allowed")
		case xml.StartElement:
			switch {
			case len(stack) == 0 && (t.Name.Local != root || seen[root]):
				return malformedLock("the root element must be <%s>, once", root)
			case len(stack) >= 2 && fields[stack[1].Local] != "":
				return malformedLock("element <%s> inside <%s>", t.Name.Local, stack[1].Local)
			case len(stack) == maxACLDepth:
				return malformedLock("elements nested too deep")
			}
			seen[t.Name.Local] = true
			stack = append(stack, t.Name)
			text.Reset()
		case xml.CharData:
			if len(stack) == 2 && fields[stack[1].Local] != "" {
				text.Write(t)
			}
		case xml.EndElement:
			if len(stack) == 0 || stack[len(stack)-1] != t.Name {
				return malformedLock("mismatched end element </%s>", t.Name.Local)
			}
			stack = stack[:len(stack)-1]
			k := fields[t.Name.Local]
			if len(stack) != 1 || k == "" {
				continue // an element S3 does not define: the upstream's to refuse
			}
			v := strings.TrimSpace(text.String())
			if len(v) > maxLockValue {
				v = v[:maxLockValue] + "..." // not a mode, date or status S3 takes
			}
			if prev, ok := op.Params[k]; ok {
				v = prev + ", " + v // given twice: both, whichever one applies
			}
			op.param(k, v)
		}
	}
	if !seen[root] || len(stack) != 0 {
		return malformedLock("incomplete document")
	}
	op.Checks = op.pending
	op.pending = nil
	op.NeedsBody = false
	return nil
}

// Bounds on a tag set, well past S3's (50 tags, 10 on an object, keys of
// 128 and values of 256 characters, four bytes each at most), so that
// the upstream refuses what S3 would with its own error; they bound the
// record.
const (
	maxTags        = 1000
	maxTagKeyBytes = 4 * 128
	maxTagValBytes = 4 * 256
)

// tagBody records the tag set a PutObjectTagging or PutBucketTagging body
// sets, <Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag>…, as the
// x-amz-tagging header of a write is recorded ("tagging": "k=v&k2=v2",
// query-encoded): tags decide what tag-based IAM policies allow, and the
// reviewer of the call that set them needs to see them. The checks are
// the operation's own. A body that is not that document is refused
// MalformedXML, so the upstream never applies tags the record leaves out;
// what S3 refuses in a well-formed tag set (a key given twice, too many
// tags, characters it does not allow) is recorded and left to the
// upstream to refuse with its own error.
func (op *Op) tagBody(body []byte) error {
	malformedTags := func(format string, args ...any) error {
		return s3err.New(s3err.MalformedXML, op.Name+" body: "+format, args...)
	}
	// The element each depth must be, and at depth 3 the fields of a Tag.
	path := [...]string{"Tagging", "TagSet", "Tag"}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	var (
		stack    []xml.Name
		root     bool
		text     strings.Builder
		order    []string // "k=v" as set, in the body's order
		key, val *string
	)
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return malformedTags("%v", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return malformedTags("DOCTYPE and other directives are not allowed")
		case xml.StartElement:
			n := len(stack)
			switch {
			case n == 0 && (root || t.Name.Local != path[0]):
				return malformedTags("the root element must be <Tagging>, once")
			case n > 0 && n < 3 && t.Name.Local != path[n]:
				return malformedTags("unexpected element <%s> in <%s>", t.Name.Local, stack[n-1].Local)
			case n == 3 && (t.Name.Local != "Key" && t.Name.Local != "Value" ||
				t.Name.Local == "Key" && key != nil || t.Name.Local == "Value" && val != nil):
				return malformedTags("unexpected element <%s> in <Tag>", t.Name.Local)
			case n == 4:
				return malformedTags("element <%s> inside <%s>", t.Name.Local, stack[3].Local)
			}
			if n == 0 {
				root = true
			}
			if n == 2 {
				if len(order) == maxTags {
					return malformedTags("more than %d tags", maxTags)
				}
				key, val = nil, nil
			}
			stack = append(stack, t.Name)
			text.Reset()
		case xml.CharData:
			if len(stack) == 4 {
				text.Write(t)
			}
		case xml.EndElement:
			if len(stack) == 0 || stack[len(stack)-1] != t.Name {
				return malformedTags("mismatched end element </%s>", t.Name.Local)
			}
			stack = stack[:len(stack)-1]
			switch n := len(stack); {
			case n == 3:
				v := text.String()
				if t.Name.Local == "Key" {
					if len(v) > maxTagKeyBytes {
						return malformedTags("a tag key is longer than %d bytes", maxTagKeyBytes)
					}
					key = &v
				} else {
					if len(v) > maxTagValBytes {
						return malformedTags("a tag value is longer than %d bytes", maxTagValBytes)
					}
					val = &v
				}
			case n == 2:
				if key == nil || val == nil {
					return malformedTags("a <Tag> needs one <Key> and one <Value>")
				}
				order = append(order, url.QueryEscape(*key)+"="+url.QueryEscape(*val))
			}
		}
	}
	if !root || len(stack) != 0 {
		return malformedTags("incomplete document")
	}
	op.param("tagging", strings.Join(order, "&"))
	op.Checks = op.pending
	op.pending = nil
	op.NeedsBody = false
	return nil
}

// recordedConfigs are the bucket configuration operations whose body is
// what they set, recorded whole (configRecord): a policy granting the
// world access, a lifecycle rule expiring every object, a default
// COMPLIANCE retention nobody can undo, versioning suspended, a
// replication or notification destination elsewhere. The ACL and tagging
// operations are recorded by aclBody and tagBody instead.
var recordedConfigs = map[string]bool{
	"PutBucketPolicy": true, "PutPublicAccessBlock": true, "PutObjectLockConfiguration": true,
	"PutBucketVersioning": true, "PutBucketLifecycleConfiguration": true, "PutBucketReplication": true,
	"PutBucketCors": true, "PutBucketWebsite": true, "PutBucketNotificationConfiguration": true,
	"PutBucketEncryption": true, "PutBucketOwnershipControls": true, "PutBucketLogging": true,
	"PutBucketRequestPayment": true, "PutBucketAccelerateConfiguration": true,
	"PutBucketAnalyticsConfiguration": true, "PutBucketMetricsConfiguration": true,
	"PutBucketInventoryConfiguration": true, "PutBucketIntelligentTieringConfiguration": true,
}

// msgMalformedXML is S3's message for MalformedXML.
const msgMalformedXML = "The XML you provided was not well-formed or did not validate against our published schema."

// maxPolicyRecord bounds a recorded bucket policy. S3 takes at most 20 KB;
// the bound leaves room for a document S3 counts after decoding its \u
// escapes (six bytes each here), so that none S3 takes is refused.
const maxPolicyRecord = 6 * 20 << 10

// configRecord records what a recordedConfigs body sets: "policy", the
// JSON of PutBucketPolicy with its insignificant white space taken out
// (the body as sent if it is not JSON, which S3 refuses), or
// "configuration", the XML of the others written again without comments,
// the XML declaration and S3's default namespace, CDATA sections and
// character references decoded (a value split by a comment or spelt in
// references reads as the upstream reads it). Text, white space between
// elements included, and attributes are kept whole: in an element that
// should hold only elements white space is layout, but a lenient upstream
// takes it as the value of one that holds another element, and without
// S3's schemas the two cannot be told apart. An element S3 does not
// define is recorded rather than refused (the upstream's to refuse): a
// record may say more than the upstream applied, never less. As
// elsewhere DOCTYPEs are refused, so what Airlock reads is what the
// upstream reads. The checks are the operation's own.
func (op *Op) configRecord(body []byte) error {
	if op.Name == "PutBucketPolicy" {
		var b bytes.Buffer
		if err := json.Compact(&b, body); err != nil {
			b.Reset()
			b.Write(body)
		}
		if b.Len() > maxPolicyRecord {
			return s3err.New(s3err.InvalidArgument, "PutBucketPolicy body: the policy is larger than S3 takes (20 KB)")
		}
		op.param("policy", b.String())
		return nil
	}
	// S3's own text, which clients and test suites compare; Airlock's
	// reason goes in the detail.
	malformed := func(format string, args ...any) error {
		return s3err.Detailed(s3err.MalformedXML, msgMalformedXML, op.Name+" body: "+format, args...)
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	var (
		out   strings.Builder
		stack []xml.Name
		root  bool
	)
	name := func(n xml.Name) string {
		if n.Space != "" {
			return n.Space + ":" + n.Local
		}
		return n.Local
	}
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return malformed("%v", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return malformed("DOCTYPE and other directives are not allowed")
		case xml.StartElement:
			if len(stack) == 0 {
				if root {
					return malformed("more than one root element")
				}
				root = true
			}
			if len(stack) == maxACLDepth {
				return malformed("elements nested too deep")
			}
			out.WriteByte('<')
			out.WriteString(name(t.Name))
			for _, a := range t.Attr {
				if a.Name.Space == "" && a.Name.Local == "xmlns" && a.Value == s3Namespace {
					continue
				}
				out.WriteByte(' ')
				out.WriteString(name(a.Name))
				out.WriteString(`="`)
				escapeXML(&out, []byte(a.Value), true)
				out.WriteByte('"')
			}
			out.WriteByte('>')
			stack = append(stack, t.Name)
		case xml.CharData:
			if len(stack) > 0 { // outside the root it is nobody's
				escapeXML(&out, t, false)
			}
		case xml.EndElement:
			if len(stack) == 0 || stack[len(stack)-1] != t.Name {
				return malformed("mismatched end element </%s>", t.Name.Local)
			}
			stack = stack[:len(stack)-1]
			out.WriteString("</")
			out.WriteString(name(t.Name))
			out.WriteByte('>')
		}
		if out.Len() > MaxBodyCheckBytes {
			return s3err.New(s3err.EntityTooLarge, "the %s body is larger than %d bytes written again", op.Name, MaxBodyCheckBytes)
		}
	}
	if !root || len(stack) != 0 {
		return malformed("incomplete document")
	}
	op.param("configuration", out.String())
	return nil
}

// escapeXML writes s to b with the characters that would end a text or
// attribute value escaped.
func escapeXML(b *strings.Builder, s []byte, attr bool) {
	for _, c := range s {
		switch {
		case c == '&':
			b.WriteString("&amp;")
		case c == '<':
			b.WriteString("&lt;")
		case c == '>':
			b.WriteString("&gt;")
		case c == '"' && attr:
			b.WriteString("&quot;")
		default:
			b.WriteByte(c)
		}
	}
}
