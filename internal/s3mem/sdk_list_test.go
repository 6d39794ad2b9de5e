package s3mem

import (
	"net/url"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

var listKeys = []string{
	"app/2024/a.log", "app/2024/b.log", "app/2025/c.log", "app/x.log", "app/y.log",
	"db/d.log", "top.txt", "sp ace+plus/é.log",
}

func seedList(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	for _, k := range listKeys {
		f.srv.Put("logs", k, []byte(k))
	}
	return f
}

// pageV2 lists every page, returning keys and prefixes in order and the
// page count.
func pageV2(t *testing.T, f *fixture, in s3.ListObjectsV2Input) (keys, prefixes []string, pages int) {
	t.Helper()
	in.Bucket = aws.String("logs")
	p := s3.NewListObjectsV2Paginator(f.client, &in)
	for p.HasMorePages() {
		if pages++; pages > 100 {
			t.Fatal("paginator does not end")
		}
		out, err := p.NextPage(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if got := int(aws.ToInt32(out.KeyCount)); got != len(out.Contents)+len(out.CommonPrefixes) {
			t.Errorf("KeyCount %d, want %d", got, len(out.Contents)+len(out.CommonPrefixes))
		}
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
			if aws.ToInt64(o.Size) != int64(len(aws.ToString(o.Key))) || aws.ToString(o.ETag) != etagOf([]byte(aws.ToString(o.Key))) {
				t.Errorf("%s: size %d etag %s", aws.ToString(o.Key), aws.ToInt64(o.Size), aws.ToString(o.ETag))
			}
		}
		for _, cp := range out.CommonPrefixes {
			prefixes = append(prefixes, aws.ToString(cp.Prefix))
		}
	}
	return keys, prefixes, pages
}

func TestSDKListObjectsV2(t *testing.T) {
	f := seedList(t)
	tests := []struct {
		name      string
		in        s3.ListObjectsV2Input
		keys, cps []string
		pages     int
	}{
		{"all", s3.ListObjectsV2Input{}, []string{"app/2024/a.log", "app/2024/b.log", "app/2025/c.log", "app/x.log", "app/y.log", "db/d.log", "sp ace+plus/é.log", "top.txt"}, nil, 1},
		{"delimiter at root", s3.ListObjectsV2Input{Delimiter: aws.String("/")}, []string{"top.txt"}, []string{"app/", "db/", "sp ace+plus/"}, 1},
		{"prefix and delimiter", s3.ListObjectsV2Input{Prefix: aws.String("app/"), Delimiter: aws.String("/")}, []string{"app/x.log", "app/y.log"}, []string{"app/2024/", "app/2025/"}, 1},
		{"paged by one", s3.ListObjectsV2Input{Prefix: aws.String("app/"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(1)}, []string{"app/x.log", "app/y.log"}, []string{"app/2024/", "app/2025/"}, 4},
		{"paged by two", s3.ListObjectsV2Input{Prefix: aws.String("app/"), MaxKeys: aws.Int32(2)}, []string{"app/2024/a.log", "app/2024/b.log", "app/2025/c.log", "app/x.log", "app/y.log"}, nil, 3},
		{"start after", s3.ListObjectsV2Input{Prefix: aws.String("app/"), StartAfter: aws.String("app/2025/c.log")}, []string{"app/x.log", "app/y.log"}, nil, 1},
		{"no match", s3.ListObjectsV2Input{Prefix: aws.String("zzz")}, nil, nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys, cps, pages := pageV2(t, f, tc.in)
			if !reflect.DeepEqual(keys, tc.keys) || !reflect.DeepEqual(cps, tc.cps) || pages != tc.pages {
				t.Fatalf("keys %q prefixes %q in %d pages; want %q %q in %d", keys, cps, pages, tc.keys, tc.cps, tc.pages)
			}
		})
	}
}

func TestSDKListObjectsV2URLEncoding(t *testing.T) {
	f := seedList(t)
	out, err := f.client.ListObjectsV2(testCtx(t), &s3.ListObjectsV2Input{
		Bucket: aws.String("logs"), Prefix: aws.String("sp ace"), Delimiter: aws.String("/"), EncodingType: types.EncodingTypeUrl,
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.EncodingType != types.EncodingTypeUrl || len(out.CommonPrefixes) != 1 {
		t.Fatalf("got %+v", out)
	}
	// The Go SDK does not decode; the CLI does, as the client must.
	raw := aws.ToString(out.CommonPrefixes[0].Prefix)
	if raw != "sp+ace%2Bplus/" {
		t.Fatalf("encoded prefix %q", raw)
	}
	if dec, _ := url.QueryUnescape(raw); dec != "sp ace+plus/" {
		t.Fatalf("decoded %q", dec)
	}
	if got := aws.ToString(out.Prefix); got != "sp+ace" {
		t.Fatalf("encoded request prefix %q", got)
	}
}

func TestSDKListObjectsV1(t *testing.T) {
	f := seedList(t)
	in := &s3.ListObjectsInput{Bucket: aws.String("logs"), Prefix: aws.String("app/"), Delimiter: aws.String("/"), MaxKeys: aws.Int32(3)}
	var keys, cps []string
	for pages := 1; ; pages++ {
		if pages > 10 {
			t.Fatal("listing does not end")
		}
		out, err := f.client.ListObjects(testCtx(t), in)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out.Contents {
			keys = append(keys, aws.ToString(o.Key))
			if o.Owner == nil || aws.ToString(o.Owner.DisplayName) != "s3mem" {
				t.Errorf("v1 entry without owner: %+v", o)
			}
		}
		for _, cp := range out.CommonPrefixes {
			cps = append(cps, aws.ToString(cp.Prefix))
		}
		if !aws.ToBool(out.IsTruncated) {
			if pages != 2 {
				t.Errorf("%d pages, want 2", pages)
			}
			break
		}
		in.Marker = out.NextMarker
	}
	if !reflect.DeepEqual(keys, []string{"app/x.log", "app/y.log"}) || !reflect.DeepEqual(cps, []string{"app/2024/", "app/2025/"}) {
		t.Fatalf("keys %q prefixes %q", keys, cps)
	}
	_, err := f.client.ListObjects(testCtx(t), &s3.ListObjectsInput{Bucket: aws.String("nope")})
	wantCode(t, err, codeNoSuchBucket)
}
