package s3iam_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/s3iam"
	"github.com/airlock-dev/airlock/internal/scope"
)

func deleteOp(t *testing.T, headers ...string) *s3iam.Op {
	t.Helper()
	op, err := (&s3iam.Mapper{}).Map(rawRequest(t, "POST", "/logs?delete", "s3.test", headers...))
	if err != nil {
		t.Fatal(err)
	}
	if op.Name != "DeleteObjects" || !op.NeedsBody {
		t.Fatalf("got %s NeedsBody=%v", op.Name, op.NeedsBody)
	}
	return op
}

func objects(keys ...string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`)
	for _, k := range keys {
		b.WriteString("<Object><Key>" + k + "</Key></Object>")
	}
	b.WriteString("</Delete>")
	return b.String()
}

// TestDeleteBeforeBodyFailsClosed checks that a gateway which forgets
// AddBodyChecks cannot forward a DeleteObjects call under any grant.
func TestDeleteBeforeBodyFailsClosed(t *testing.T) {
	op := deleteOp(t)
	sc, err := scope.Parse([]string{"s3:DeleteObject,s3:DeleteObjectVersion *", "s3:DeleteObject arn:aws:s3:::*"})
	if err != nil {
		t.Fatal(err)
	}
	if allowed(sc, op) {
		t.Fatal("a DeleteObjects op whose body is unchecked is allowed")
	}
	for _, c := range op.Checks {
		if _, err := scope.ParseStatement(c.Action + " *"); err == nil {
			t.Errorf("placeholder action %q could be granted", c.Action)
		}
	}
}

func TestDeleteBody(t *testing.T) {
	sc := appGrant(t)
	tests := []struct {
		name    string
		body    string
		code    string
		checks  []s3iam.Check
		allowed bool
		// versions is the version_ids param: which version of each key
		// went, as DeleteObject's version_id says; "" for none recorded.
		versions string
	}{
		{name: "inside the prefix", body: objects("app/a", "app/b c"), allowed: true,
			checks: []s3iam.Check{{Action: "s3:DeleteObject", Resource: "arn:aws:s3:::logs/app/a"}, {Action: "s3:DeleteObject", Resource: "arn:aws:s3:::logs/app/b c"}}},
		{name: "mixing a key outside", body: objects("app/a", "secret/b"),
			checks: []s3iam.Check{{Action: "s3:DeleteObject", Resource: "arn:aws:s3:::logs/app/a"}, {Action: "s3:DeleteObject", Resource: "arn:aws:s3:::logs/secret/b"}}},
		{name: "version", body: `<Delete><Object><Key>app/a</Key><VersionId>v1</VersionId></Object><Quiet>true</Quiet></Delete>`,
			checks: []s3iam.Check{{Action: "s3:DeleteObjectVersion", Resource: "arn:aws:s3:::logs/app/a"}}, versions: "v1"},
		{name: "versions line for line", body: `<Delete><Object><Key>app/a</Key></Object><Object><VersionId>v2</VersionId><Key>app/b</Key></Object></Delete>`,
			checks: []s3iam.Check{{Action: "s3:DeleteObject", Resource: "arn:aws:s3:::logs/app/a"}, {Action: "s3:DeleteObjectVersion", Resource: "arn:aws:s3:::logs/app/b"}}, versions: "\nv2"},
		{name: "entities and CDATA", body: `<Delete><Object><Key>app/&lt;x&gt;&amp;<![CDATA[<y>]]></Key></Object></Delete>`, allowed: true,
			checks: []s3iam.Check{{Action: "s3:DeleteObject", Resource: "arn:aws:s3:::logs/app/<x>&<y>"}}},
		{name: "white space between elements", body: "<Delete>\n  <Object>\n    <Key>app/a</Key>\n    <ETag>\"e\"</ETag>\n  </Object>\n</Delete>\n", allowed: true,
			checks: []s3iam.Check{{Action: "s3:DeleteObject", Resource: "arn:aws:s3:::logs/app/a"}}},
		{name: "two keys in one object", body: `<Delete><Object><Key>app/a</Key><Key>secret/b</Key></Object></Delete>`, code: s3err.MalformedXML},
		{name: "namespaced key", body: `<Delete xmlns:x="urn:x"><Object><x:Key>secret/b</x:Key><Key>app/a</Key></Object></Delete>`, code: s3err.MalformedXML},
		{name: "namespace change", body: `<Delete><Object xmlns="urn:x"><Key>app/a</Key></Object></Delete>`, code: s3err.MalformedXML},
		{name: "foreign root namespace", body: `<Delete xmlns="urn:x"><Object><Key>app/a</Key></Object></Delete>`, code: s3err.MalformedXML},
		{name: "doctype", body: `<!DOCTYPE d [<!ENTITY e "secret/b">]><Delete><Object><Key>&e;</Key></Object></Delete>`, code: s3err.MalformedXML},
		{name: "comment in a key", body: `<Delete><Object><Key>app/<!-- -->../secret</Key></Object></Delete>`, code: s3err.MalformedXML},
		{name: "processing instruction", body: `<Delete><?pi x?><Object><Key>app/a</Key></Object></Delete>`, code: s3err.MalformedXML},
		{name: "unknown element", body: `<Delete><Object><Key>app/a</Key><Prefix>secret/</Prefix></Object></Delete>`, code: s3err.MalformedXML},
		{name: "element in a key", body: `<Delete><Object><Key>app/<b>x</b></Key></Object></Delete>`, code: s3err.MalformedXML},
		{name: "text outside values", body: `<Delete>secret/b<Object><Key>app/a</Key></Object></Delete>`, code: s3err.MalformedXML},
		{name: "object without key", body: `<Delete><Object><VersionId>v</VersionId></Object></Delete>`, code: s3err.MalformedXML},
		{name: "empty", body: `<Delete></Delete>`, code: s3err.MalformedXML},
		{name: "not XML", body: `{"Objects":[]}`, code: s3err.MalformedXML},
		{name: "truncated", body: `<Delete><Object><Key>app/a</Key></Object>`, code: s3err.MalformedXML},
		{name: "two roots", body: objects("app/a") + `<Delete><Object><Key>secret/b</Key></Object></Delete>`, code: s3err.MalformedXML},
		{name: "bad quiet", body: `<Delete><Quiet>yes</Quiet><Object><Key>app/a</Key></Object></Delete>`, code: s3err.MalformedXML},
		{name: "dot-dot key", body: objects("app/../secret/b"), code: s3err.AccessDenied},
		{name: "control character key", body: objects("app/a&#x1;b"), code: s3err.MalformedXML},
		{name: "tab key", body: objects("app/a&#9;b"), code: s3err.InvalidArgument},
		{name: "empty key", body: objects(""), code: s3err.InvalidArgument},
		{name: "1001 keys", body: objects(slices.Repeat([]string{"app/a"}, 1001)...), code: s3err.MalformedXML},
		{name: "too large", body: strings.Repeat(" ", s3iam.MaxBodyCheckBytes+1), code: s3err.EntityTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op := deleteOp(t)
			err := op.AddBodyChecks([]byte(tc.body))
			if tc.code != "" {
				assertCode(t, err, tc.code)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(op.Checks, tc.checks) {
				t.Errorf("checks\n got %v\nwant %v", op.Checks, tc.checks)
			}
			if got := allowed(sc, op); got != tc.allowed {
				t.Errorf("allowed = %v, want %v", got, tc.allowed)
			}
			if op.Params["key_count"] != fmt.Sprint(len(tc.checks)) {
				t.Errorf("key_count %q", op.Params["key_count"])
			}
			if v, ok := op.Params["version_ids"]; v != tc.versions || ok != (tc.versions != "") {
				t.Errorf("version_ids %q (recorded: %v), want %q", v, ok, tc.versions)
			}
		})
	}
}

func TestDeleteThousandKeys(t *testing.T) {
	op := deleteOp(t)
	keys := make([]string, s3iam.MaxDeleteKeys)
	for i := range keys {
		keys[i] = fmt.Sprintf("app/%04d-%s", i, strings.Repeat("x", 1000))
	}
	body := objects(keys...)
	if len(body) > s3iam.MaxBodyCheckBytes {
		t.Fatalf("a maximal body (%d bytes) is over MaxBodyCheckBytes", len(body))
	}
	if err := op.AddBodyChecks([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if len(op.Checks) != s3iam.MaxDeleteKeys || !allowed(appGrant(t), op) {
		t.Fatalf("%d checks", len(op.Checks))
	}
}

func TestDeleteBypassGovernance(t *testing.T) {
	op := deleteOp(t, "x-amz-bypass-governance-retention: true")
	if err := op.AddBodyChecks([]byte(objects("app/a"))); err != nil {
		t.Fatal(err)
	}
	want := []s3iam.Check{{Action: "s3:DeleteObject", Resource: "arn:aws:s3:::logs/app/a"}, {Action: "s3:BypassGovernanceRetention", Resource: "arn:aws:s3:::logs/app/a"}}
	if !slices.Equal(op.Checks, want) {
		t.Fatalf("checks %v", op.Checks)
	}
}

func TestAddBodyChecksWrongOp(t *testing.T) {
	op, err := (&s3iam.Mapper{}).Map(rawRequest(t, "GET", "/logs/app/a", "s3.test"))
	if err != nil {
		t.Fatal(err)
	}
	if err := op.AddBodyChecks([]byte(objects("secret/b"))); err == nil {
		t.Fatal("AddBodyChecks accepted a body for GetObject")
	}
	if len(op.Checks) != 1 || op.Checks[0].Resource != "arn:aws:s3:::logs/app/a" {
		t.Fatalf("checks changed: %v", op.Checks)
	}
}

// TestChecksBeforeBody: the checks a gateway makes before it reads a body
// are the ones the body cannot change, and never the placeholder.
func TestChecksBeforeBody(t *testing.T) {
	for _, tc := range []struct {
		method, target string
		headers        []string
		want           string
	}{
		{"PUT", "/logs?policy", []string{"Content-Length: 10"}, "s3:PutBucketPolicy arn:aws:s3:::logs"},
		{"PUT", "/logs?lifecycle", []string{"Content-Length: 10"}, "s3:PutLifecycleConfiguration arn:aws:s3:::logs"},
		{"PUT", "/logs?tagging", []string{"Content-Length: 10"}, "s3:PutBucketTagging arn:aws:s3:::logs"},
		{"PUT", "/logs?replication", []string{"Content-Length: 10"}, "s3:PutReplicationConfiguration arn:aws:s3:::logs"},
		{"PUT", "/logs", []string{"Content-Length: 10", "x-amz-acl: private"}, "s3:CreateBucket arn:aws:s3:::logs; s3:PutBucketAcl arn:aws:s3:::logs"},
		{"PUT", "/logs/app/a?acl", []string{"Content-Length: 10"}, "s3:PutObjectAcl arn:aws:s3:::logs/app/a"},
		{"POST", "/logs?delete", []string{"Content-Length: 10"}, "s3:DeleteObject|s3:DeleteObjectVersion arn:aws:s3:::logs/…"},
		{"POST", "/logs?delete", []string{"Content-Length: 10", "x-amz-bypass-governance-retention: true"},
			"s3:DeleteObject|s3:DeleteObjectVersion arn:aws:s3:::logs/…; s3:BypassGovernanceRetention arn:aws:s3:::logs/…"},
		{"PUT", "/logs?policy", nil, "s3:PutBucketPolicy arn:aws:s3:::logs"}, // no body: its Checks
	} {
		op, err := (&s3iam.Mapper{}).Map(rawRequest(t, tc.method, tc.target, "s3.test", tc.headers...))
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.target, err)
		}
		var got []string
		for _, c := range op.ChecksBeforeBody() {
			a, r := c.Action, c.Resource
			if c.OrAction != "" {
				a += "|" + c.OrAction
			}
			if c.InBucket {
				r += "/…"
			}
			got = append(got, a+" "+r)
		}
		if g := strings.Join(got, "; "); g != tc.want {
			t.Errorf("%s %s (%s): ChecksBeforeBody = %q, want %q", tc.method, tc.target, op.Name, g, tc.want)
		}
	}
}

// TestDeleteChecksBeforeBody: DeleteObjects' check before its body
// refuses a grant that may delete nothing in the bucket, and no grant
// that may delete some key of it, versioned or not.
func TestDeleteChecksBeforeBody(t *testing.T) {
	for stmts, want := range map[string]bool{
		"s3:GetObject,s3:PutObject arn:aws:s3:::logs/*":  false,
		"s3:DeleteObject arn:aws:s3:::other/*":           false,
		"s3:DeleteObject arn:aws:s3:::logsx/*":           false,
		"s3:DeleteObject arn:aws:s3:::logs/app/x.txt":    true,
		"s3:DeleteObject arn:aws:s3:::logs/app/*":        true,
		"s3:DeleteObjectVersion arn:aws:s3:::logs/app/*": true,
		"s3:DeleteObject arn:aws:s3:::log*":              true,
		"s3:DeleteObject *":                              true,
	} {
		sc, err := scope.Parse([]string{stmts})
		if err != nil {
			t.Fatal(err)
		}
		ok := true
		for _, c := range deleteOp(t).ChecksBeforeBody() {
			ok = ok && c.AllowedBy(sc)
		}
		if ok != want {
			t.Errorf("grant %q: allowed before the body = %v, want %v", stmts, ok, want)
		}
	}
}
