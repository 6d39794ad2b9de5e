package scope

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseStatement(t *testing.T) {
	tests := []struct {
		in      string
		want    Statement
		wantErr string
	}{
		{in: "s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*", want: Statement{Actions: []string{"s3:GetObject", "s3:ListBucket"}, Resource: "arn:aws:s3:::logs/app/*"}},
		{in: "  pg:select   orders.public.*  ", want: Statement{Actions: []string{"pg:select"}, Resource: "orders.public.*"}},
		{in: "s3:GetObject,s3:GetObject arn:aws:s3:::b/k", want: Statement{Actions: []string{"s3:GetObject"}, Resource: "arn:aws:s3:::b/k"}},
		{in: "", wantErr: "empty statement"},
		{in: "s3:GetObject", wantErr: "missing resource"},
		{in: "s3:GetObject arn:a arn:b", wantErr: "too many fields"},
		{in: "s3:GetObject, s3:ListBucket arn:aws:s3:::b", wantErr: "too many fields"},
		{in: "GetObject arn:aws:s3:::b", wantErr: "malformed action"},
		{in: "s3:* arn:aws:s3:::b", wantErr: "malformed action"},
		{in: "s3:GetObject,,s3:ListBucket arn:aws:s3:::b", wantErr: "malformed action"},
		{in: "s3:GetObject arn:aws:s3:::*/secret", wantErr: "only allowed at the end"},
		{in: "s3:GetObject arn:aws:s3:::a**", wantErr: "only allowed at the end"},
		{in: "s3:GetObject arn:aws:s3:::a\x00b", wantErr: "control"},
		{in: "s3:GetObject arn:aws:s3:::a\x7fb", wantErr: "control"},
		{in: "s3:GetObject arn:aws:s3:::logs/\xff*", wantErr: "not valid UTF-8"},
		{in: "s3:GetObject arn:aws:s3:::logs/caf\u00e9/\u65e5\u672c/*", want: Statement{Actions: []string{"s3:GetObject"}, Resource: "arn:aws:s3:::logs/caf\u00e9/\u65e5\u672c/*"}},
	}
	for _, tt := range tests {
		got, err := ParseStatement(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseStatement(%q) error = %v, want containing %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseStatement(%q): %v", tt.in, err)
			continue
		}
		if got.String() != tt.want.String() {
			t.Errorf("ParseStatement(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseNamesIndex(t *testing.T) {
	_, err := Parse([]string{"s3:GetObject arn:aws:s3:::a", "bad"})
	var se *Error
	if !errors.As(err, &se) || se.Index != 1 {
		t.Fatalf("Parse error = %v, want *Error with Index 1", err)
	}
	if _, err := Parse(nil); err == nil || !strings.Contains(err.Error(), "empty scope") {
		t.Fatalf("Parse(nil) error = %v, want empty scope", err)
	}
	many := make([]string, MaxStatements+1)
	for i := range many {
		many[i] = "s3:GetObject arn:aws:s3:::a"
	}
	if _, err := Parse(many); err == nil {
		t.Fatal("Parse accepted more than MaxStatements")
	}
}

func TestPairsAndAllows(t *testing.T) {
	sc, err := Parse([]string{
		"s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*",
		"s3:GetObject arn:aws:s3:::logs/app/*",
		"s3:PutObject arn:aws:s3:::out/report.csv",
	})
	if err != nil {
		t.Fatal(err)
	}
	pairs := sc.Pairs()
	want := []string{"s3:GetObject arn:aws:s3:::logs/app/*", "s3:ListBucket arn:aws:s3:::logs/app/*", "s3:PutObject arn:aws:s3:::out/report.csv"}
	if len(pairs) != len(want) {
		t.Fatalf("Pairs = %v, want %v", pairs, want)
	}
	for i, p := range pairs {
		if p.String() != want[i] {
			t.Errorf("pair %d = %q, want %q", i, p, want[i])
		}
	}
	checks := []struct {
		action, resource string
		want             bool
	}{
		{"s3:GetObject", "arn:aws:s3:::logs/app/2026/x.log", true},
		{"s3:GetObject", "arn:aws:s3:::logs/app/", true},
		{"s3:GetObject", "arn:aws:s3:::logs/app", false},
		{"s3:GetObject", "arn:aws:s3:::logs/application/x", false},
		{"s3:PutObject", "arn:aws:s3:::logs/app/x", false},
		{"s3:PutObject", "arn:aws:s3:::out/report.csv", true},
		{"s3:PutObject", "arn:aws:s3:::out/report.csv.bak", false},
		{"s3:DeleteObject", "arn:aws:s3:::logs/app/x", false},
	}
	for _, c := range checks {
		if got := sc.Allows(c.action, c.resource); got != c.want {
			t.Errorf("Allows(%s, %s) = %v, want %v", c.action, c.resource, got, c.want)
		}
	}
}

func TestValidateFor(t *testing.T) {
	tests := []struct {
		kind, stmt string
		ok         bool
	}{
		{"aws", "s3:GetObject arn:aws:s3:::logs/app/*", true},
		{"aws", "pg:select orders.public.*", false},
		{"aws", "s3:GetObject logs/app/*", false},
		// The gateways compare actions exactly: a lower-case AWS action
		// would be granted, allow no call, and slip past a policy's
		// forbid on the action it means.
		{"aws", "s3:getObject arn:aws:s3:::logs/app/*", false},
		{"aws", "s3:GetObject,s3:deleteobject arn:aws:s3:::logs/app/*", false},
		{"aws", "ec2:DescribeInstances *", true},
		{"postgres", "pg:select orders.public.*", true},
		{"postgres", "pg:select,pg:insert orders.public.events", true},
		{"postgres", "pg:select orders.*", false},
		{"postgres", "pg:drop orders.public.t", false},
		{"postgres", "s3:GetObject orders.public.t", false},
	}
	for _, tt := range tests {
		sc, err := Parse([]string{tt.stmt})
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.stmt, err)
		}
		if err := ValidateFor(tt.kind, sc); (err == nil) != tt.ok {
			t.Errorf("ValidateFor(%s, %q) = %v, want ok=%v", tt.kind, tt.stmt, err, tt.ok)
		}
	}
}

// FuzzParseStatement checks that parsing never panics, that whatever parses
// round-trips through String, and that a pattern never matches a resource
// outside its literal prefix.
func FuzzParseStatement(f *testing.F) {
	for _, s := range []string{
		"s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*",
		"pg:select orders.public.*",
		"s3:GetObject arn:aws:s3:::*/x",
		"a:b c",
		"s3:GetObject\tarn:aws:s3:::x*",
	} {
		f.Add(s, "arn:aws:s3:::logs/app/x")
	}
	f.Fuzz(func(t *testing.T, s, resource string) {
		st, err := ParseStatement(s)
		if err != nil {
			return
		}
		again, err := ParseStatement(st.String())
		if err != nil || again.String() != st.String() {
			t.Fatalf("round trip of %q: %q, %v", s, again, err)
		}
		if Match(st.Resource, resource) {
			prefix := strings.TrimSuffix(st.Resource, "*")
			if !strings.HasPrefix(resource, prefix) {
				t.Fatalf("pattern %q matched %q outside its prefix", st.Resource, resource)
			}
			if !strings.HasSuffix(st.Resource, "*") && resource != st.Resource {
				t.Fatalf("exact pattern %q matched %q", st.Resource, resource)
			}
		}
	})
}

func TestOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"logs/*", "logs/secret/*", true},
		{"logs/secret/*", "logs/*", true},
		{"logs/a*", "logs/b*", false},
		{"logs/*", "logs/x", true},
		{"logs/x", "logs/*", true},
		{"logs/*", "log", false},
		{"logs/x", "logs/x", true},
		{"logs/x", "logs/y", false},
		{"*", "anything", true},
		{"*", "*", true},
		{"logs/app*", "logs/application-secrets/*", true},
	} {
		if got := Overlap(tc.a, tc.b); got != tc.want {
			t.Errorf("Overlap(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		// Overlap is symmetric, and equal to some resource matching both
		// for these.
		if got := Overlap(tc.b, tc.a); got != tc.want {
			t.Errorf("Overlap(%q, %q) = %v, want %v", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestRelated(t *testing.T) {
	const ddb = "arn:aws:dynamodb:us-east-1:1:"
	const logs = "arn:aws:logs:us-east-1:1:"
	for _, tc := range []struct {
		pattern string
		want    []string
	}{
		{ddb + "table/T/index/I", []string{ddb + "table/T"}},
		{ddb + "table/T/index/*", []string{ddb + "table/T"}},
		{ddb + "table/T/stream/2026", []string{ddb + "table/T"}},
		{ddb + "table/T", nil},
		{ddb + "table/T*", nil},
		{ddb + "table/*", nil},
		{logs + "log-group:G", []string{logs + "log-group:G:*"}},
		{logs + "log-group:G:*", []string{logs + "log-group:G"}},
		{logs + "log-group:G:log-stream:S", []string{logs + "log-group:G"}},
		{logs + "log-group:G*", nil},
		{logs + "log-group:*", nil},
		{logs + "log-group::log-stream:", nil},
		{"arn:aws:lambda:r:1:function:F:prod", []string{"arn:aws:lambda:r:1:function:F"}},
		{"arn:aws:lambda:r:1:function:F", nil},
		{"arn:aws:s3:::b/k:x", []string{"arn:aws:s3:::b"}},
		{"arn:aws:s3:::b*", nil},
		{"arn:aws:secretsmanager:r:1:secret:prod/db-AbC123", []string{"arn:aws:secretsmanager:r:1:secret:prod/db"}},
		{"arn:aws:secretsmanager:r:1:secret:prod/db", nil},
		{"arn:aws:secretsmanager:r:1:secret:prod/db-AbC12", nil},
		{"arn:aws:secretsmanager:r:1:secret:prod/db-AbC1_3", nil},
		{"arn:aws:secretsmanager:r:1:secret:prod/db-*", []string{"arn:aws:secretsmanager:r:1:secret:prod/db"}},
		{"arn:aws:secretsmanager:r:1:secret:prod/db-Ab*", []string{"arn:aws:secretsmanager:r:1:secret:prod/db"}},
		{"arn:aws:secretsmanager:r:1:secret:a-b-*", []string{"arn:aws:secretsmanager:r:1:secret:a-b"}},
		{"arn:aws:secretsmanager:r:1:secret:a-b*", []string{"arn:aws:secretsmanager:r:1:secret:a"}},
		{"arn:aws:secretsmanager:r:1:secret:a-bcdefg*", []string{"arn:aws:secretsmanager:r:1:secret:a"}}, // a's ARN itself
		{"arn:aws:secretsmanager:r:1:secret:a-bcdefgh*", nil},
		{"arn:aws:secretsmanager:r:1:secret:prod/db*", nil},
		{"arn:aws:secretsmanager:r:1:secret:*", nil},
		{"arn:aws:s3:us-east-1:1:accesspoint/ap/object/k", nil},
		{"arn:aws:kinesis:r:1:stream/S", nil},
		{"arn:aws:ssm:r:1:parameter/a/b/c", []string{"arn:aws:ssm:r:1:parameter/a", "arn:aws:ssm:r:1:parameter/a/b"}},
		{"arn:aws:ssm:r:1:parameter/a/*", []string{"arn:aws:ssm:r:1:parameter/a"}},
		{"arn:aws:ssm:r:1:parameter/a*", nil},
		{"arn:aws:ssm:r:1:parameter/" + strings.Repeat("x/", 40), []string{
			"arn:aws:ssm:r:1:parameter/x", "arn:aws:ssm:r:1:parameter/x/x", "arn:aws:ssm:r:1:parameter/x/x/x", "arn:aws:ssm:r:1:parameter/x/x/x/x",
			"arn:aws:ssm:r:1:parameter/x/x/x/x/x", "arn:aws:ssm:r:1:parameter/x/x/x/x/x/x", "arn:aws:ssm:r:1:parameter/x/x/x/x/x/x/x",
			"arn:aws:ssm:r:1:parameter/x/x/x/x/x/x/x/x", "arn:aws:ssm:r:1:parameter/x/x/x/x/x/x/x/x/x", "arn:aws:ssm:r:1:parameter/x/x/x/x/x/x/x/x/x/x",
			"arn:aws:ssm:r:1:parameter/x/x/x/x/x/x/x/x/x/x/x", "arn:aws:ssm:r:1:parameter/x/x/x/x/x/x/x/x/x/x/x/x",
			"arn:aws:ssm:r:1:parameter/x/x/x/x/x/x/x/x/x/x/x/x/x", "arn:aws:ssm:r:1:parameter/x/x/x/x/x/x/x/x/x/x/x/x/x/x",
			"arn:aws:ssm:r:1:parameter/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x"}},
		{"orders.public.customers", nil},
		{"*", nil},
	} {
		if got := Related(nil, tc.pattern); !slices.Equal(got, tc.want) {
			t.Errorf("Related(%q) = %q, want %q", tc.pattern, got, tc.want)
		}
	}
}
