package s3mem

import (
	"net/http"
	"reflect"
	"testing"
	"time"
)

func TestParseRange(t *testing.T) {
	tests := []struct {
		h                 string
		size              int64
		want              byteRange
		ok, unsatisfiable bool
	}{
		{"", 10, byteRange{}, false, false},
		{"bytes=0-9", 10, byteRange{0, 9}, true, false},
		{"bytes=3-", 10, byteRange{3, 9}, true, false},
		{"bytes=-4", 10, byteRange{6, 9}, true, false},
		{"bytes=-40", 10, byteRange{0, 9}, true, false},
		{"bytes=8-20", 10, byteRange{8, 9}, true, false},
		{"bytes=10-", 10, byteRange{}, false, true},
		{"bytes=-0", 10, byteRange{}, false, true},
		{"bytes=-1", 0, byteRange{}, false, true},
		{"bytes=0-", 0, byteRange{}, false, true},
		{"bytes=5-4", 10, byteRange{}, false, false},
		{"bytes=a-b", 10, byteRange{}, false, false},
		{"bytes=+1-2", 10, byteRange{}, false, false},
		{"bytes=1-2,4-5", 10, byteRange{}, false, false},
		{"items=1-2", 10, byteRange{}, false, false},
		{"bytes=99999999999999999999-", 10, byteRange{}, false, false},
	}
	for _, tc := range tests {
		got, ok, unsat := parseRange(tc.h, tc.size)
		if got != tc.want || ok != tc.ok || unsat != tc.unsatisfiable {
			t.Errorf("parseRange(%q, %d) = %v %v %v, want %v %v %v", tc.h, tc.size, got, ok, unsat, tc.want, tc.ok, tc.unsatisfiable)
		}
	}
}

func TestParseCopyRange(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want byteRange
		ok   bool
	}{
		{"bytes=0-4", byteRange{0, 4}, true},
		{"bytes=5-9", byteRange{5, 9}, true},
		{"bytes=5-10", byteRange{}, false}, // past the end: refused, not clipped
		{"bytes=5-", byteRange{}, false},
		{"bytes=-3", byteRange{}, false},
		{"bytes=4-3", byteRange{}, false},
	} {
		got, ok := parseCopyRange(tc.v, 10)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseCopyRange(%q) = %v %v", tc.v, got, ok)
		}
	}
}

func TestListPage(t *testing.T) {
	keys := []string{"a", "b/1", "b/2", "b/c/3", "c", "d/4"}
	tests := []struct {
		prefix, delim, after string
		max                  int
		want                 listing
	}{
		{"", "", "", 1000, listing{keys: keys, last: "d/4"}},
		{"", "/", "", 1000, listing{keys: []string{"a", "c"}, prefixes: []string{"b/", "d/"}, last: "d/"}},
		{"", "/", "", 2, listing{keys: []string{"a"}, prefixes: []string{"b/"}, truncated: true, last: "b/"}},
		{"", "/", "b/", 2, listing{keys: []string{"c"}, prefixes: []string{"d/"}, last: "d/"}},
		{"b/", "/", "", 1000, listing{keys: []string{"b/1", "b/2"}, prefixes: []string{"b/c/"}, last: "b/c/"}},
		{"", "", "", 6, listing{keys: keys, last: "d/4"}}, // exactly full is not truncated
		{"", "", "", 0, listing{truncated: true}},
		{"z", "", "", 10, listing{}},
		{"", "/c/", "", 10, listing{keys: []string{"a", "b/1", "b/2", "c", "d/4"}, prefixes: []string{"b/c/"}, last: "d/4"}},
	}
	for _, tc := range tests {
		got := listPage(keys, tc.prefix, tc.delim, tc.after, tc.max)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("listPage(%q, %q, %q, %d) = %+v, want %+v", tc.prefix, tc.delim, tc.after, tc.max, got, tc.want)
		}
	}
}

func TestValidBucketName(t *testing.T) {
	for name, want := range map[string]bool{
		"logs": true, "my-bucket.2": true, "ab": false, "Logs": false, "-logs": false, "logs-": false,
		"lo..gs": false, "lo_gs": false, string(make([]byte, 64)): false, "a.b": true,
	} {
		if got := validBucketName(name); got != want {
			t.Errorf("validBucketName(%q) = %v", name, got)
		}
	}
}

func TestParseCopySource(t *testing.T) {
	for _, tc := range []struct{ v, bucket, key string }{
		{"logs/app/a.log", "logs", "app/a.log"},
		{"/logs/app/a%20b.log", "logs", "app/a b.log"},
		{"logs/k?versionId=null", "logs", "k"},
		{"logs", "", ""},
		{"/logs/", "", ""},
		{"logs/k?versionId=3", "", ""},
		{"logs/%zz", "", ""},
	} {
		b, k, err := parseCopySource(tc.v)
		if b != tc.bucket || k != tc.key || (err == nil) != (tc.bucket != "") {
			t.Errorf("parseCopySource(%q) = %q %q %v", tc.v, b, k, err)
		}
	}
}

func TestParseTagHeader(t *testing.T) {
	tags, err := parseTagHeader("b=2&a=1&c=")
	if err != nil || !reflect.DeepEqual(tags, []tag{{"a", "1"}, {"b", "2"}, {"c", ""}}) {
		t.Fatalf("tags %v %v", tags, err)
	}
	for _, bad := range []string{"a=1&a=2", "=v", "%zz=1", "1&2&3&4&5&6&7&8&9&10&11"} {
		if _, err := parseTagHeader(bad); err == nil {
			t.Errorf("parseTagHeader(%q) accepted", bad)
		}
	}
}

func TestConditions(t *testing.T) {
	mod := time.Date(2025, 3, 1, 12, 0, 0, 500e6, time.UTC)
	o := &object{etag: `"abc"`, modified: mod}
	before, same, after := mod.Add(-time.Hour).Format(http.TimeFormat), mod.Format(http.TimeFormat), mod.Add(time.Hour).Format(http.TimeFormat)
	tests := []struct {
		h                   map[string]string
		failed, notModified bool
	}{
		{nil, false, false},
		{map[string]string{"If-Match": `"abc"`}, false, false},
		{map[string]string{"If-Match": `"x", "abc"`}, false, false},
		{map[string]string{"If-Match": `*`}, false, false},
		{map[string]string{"If-Match": `"x"`}, true, false},
		{map[string]string{"If-Unmodified-Since": before}, true, false},
		{map[string]string{"If-Unmodified-Since": same}, false, false},
		{map[string]string{"If-Match": `"abc"`, "If-Unmodified-Since": before}, false, false},
		{map[string]string{"If-None-Match": `"abc"`}, false, true},
		{map[string]string{"If-None-Match": `W/"abc"`}, false, true},
		{map[string]string{"If-None-Match": `"x"`}, false, false},
		{map[string]string{"If-Modified-Since": same}, false, true},
		{map[string]string{"If-Modified-Since": before}, false, false},
		{map[string]string{"If-Modified-Since": after}, false, true},
		{map[string]string{"If-None-Match": `"x"`, "If-Modified-Since": after}, false, false},
	}
	for _, tc := range tests {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		failed, nm := getConditions.evaluate(h, o)
		if failed != tc.failed || nm != tc.notModified {
			t.Errorf("%v: failed %v notModified %v, want %v %v", tc.h, failed, nm, tc.failed, tc.notModified)
		}
	}
}
