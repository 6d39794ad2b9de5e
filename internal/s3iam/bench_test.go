package s3iam_test

import (
	"testing"

	"github.com/airlock-dev/airlock/internal/s3iam"
)

func BenchmarkMap(b *testing.B) {
	m := &s3iam.Mapper{Hosts: []string{"s3.test", "localhost"}}
	cases := []struct {
		name    string
		method  string
		target  string
		host    string
		headers []string
	}{
		{"GetObject", "GET", "/logs/app/2026/01/01/a.log?x-id=GetObject", "s3.test", nil},
		{"GetObjectEscaped", "GET", "/app/a%20b%2Bc.log?x-id=GetObject", "logs.s3.test", nil},
		{"ListObjectsV2", "GET", "/logs?list-type=2&prefix=app%2F&delimiter=%2F&encoding-type=url", "s3.test", nil},
		{"CopyObject", "PUT", "/logs/app/b.log?x-id=CopyObject", "s3.test", []string{"x-amz-copy-source: logs/app/a.log"}},
	}
	for _, c := range cases {
		r := rawRequest(b, c.method, c.target, c.host, c.headers...)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Map(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
