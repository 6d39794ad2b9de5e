package s3iam

import (
	"slices"
	"strings"
)

// Entry documents one mapped operation for the README.
type Entry struct {
	Operation string // S3 API name
	Request   string // method, path shape and selecting query or header
	Actions   string // IAM actions checked, e.g. "s3:GetObject (s3:GetObjectVersion with versionId)"
	Resource  string // the resource ARN checked
	Notes     string
}

// Table lists every operation Map forwards, in a stable order. Every other
// S3 request is refused.
func Table() []Entry {
	out := make([]Entry, 0, len(rules))
	for _, r := range rules {
		acts := strings.Join(r.actions, " + ")
		if r.versioned != nil && !sameStrings(r.versioned, r.actions) {
			acts += " (" + strings.Join(r.versioned, " + ") + " with versionId)"
		}
		out = append(out, Entry{Operation: r.name, Request: r.request, Actions: acts, Resource: resourceDoc(r.res), Notes: r.notes})
	}
	return out
}

func sameStrings(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

func resourceDoc(k resKind) string {
	switch k {
	case resBucket:
		return "arn:aws:s3:::BUCKET"
	case resPrefix:
		return "arn:aws:s3:::BUCKET/PREFIX*"
	case resAll:
		return "arn:aws:s3:::*"
	}
	return "arn:aws:s3:::BUCKET/KEY"
}

// Markdown renders Table as a Markdown table.
func Markdown() string {
	var b strings.Builder
	b.WriteString("| S3 operation | request | IAM action(s) | resource | notes |\n| --- | --- | --- | --- | --- |\n")
	for _, e := range Table() {
		b.WriteString("| " + e.Operation + " | `" + e.Request + "` | " + e.Actions + " | `" + e.Resource + "` | " + e.Notes + " |\n")
	}
	return b.String()
}

// Actions lists every IAM action Map may check, sorted: the rules'
// actions and those that headers or bodies add. A grant that names all of
// them on "*" allows every S3 request Airlock forwards (the conformance
// harness uses it).
func Actions() []string {
	set := map[string]bool{}
	for _, r := range rules {
		for _, a := range r.actions {
			set[a] = true
		}
		for _, a := range r.versioned {
			set[a] = true
		}
	}
	for _, a := range extraActions {
		set[a] = true
	}
	out := make([]string, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
}

// extraActions are the actions headers and bodies add to a rule's own.
var extraActions = []string{
	"s3:PutObjectAcl", "s3:PutObjectTagging", "s3:PutObjectRetention", "s3:PutObjectLegalHold",
	"s3:BypassGovernanceRetention", "s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject", "s3:DeleteObjectVersion",
	"s3:PutBucketAcl", "s3:PutBucketObjectLockConfiguration", "s3:PutBucketVersioning",
	"s3:PutBucketOwnershipControls", "s3:TagResource", "iam:PassRole",
}
