package s3iam

import "strings"

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
		return "arn:aws:s3:::BUCKET/PREFIX"
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
