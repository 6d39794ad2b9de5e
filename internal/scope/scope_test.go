package scope

import (
	"errors"
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
