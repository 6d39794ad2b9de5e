package s3iam

import (
	"bytes"
	"encoding/xml"
	"io"
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
// The scan is conservative rather than strict: any element named Tags or
// Tag, at any depth and in any namespace, counts as tags, and every Role
// element counts. DOCTYPEs (entity tricks) are refused, so what Airlock
// reads is what the upstream reads.
func (op *Op) configBodyChecks(body []byte) error {
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
			op.Params["replication_role"] = role
		}
	}
	op.Checks = checks
	op.pending = nil
	op.NeedsBody = false
	return nil
}
