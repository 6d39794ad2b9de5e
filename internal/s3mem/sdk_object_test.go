package s3mem

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestSDKPutGetHead(t *testing.T) {
	f := newFixture(t)
	f.srv.CreateBucket("logs")
	ctx := testCtx(t)
	body := []byte("hello, upstream\n")
	sum := md5.Sum(body)
	put, err := f.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("logs"), Key: aws.String("app/a b+c.txt"), Body: bytes.NewReader(body),
		ContentType: aws.String("text/plain"), Metadata: map[string]string{"Owner": "sre"},
		ContentMD5: aws.String(base64.StdEncoding.EncodeToString(sum[:])), Tagging: aws.String("team=sre&env=prod"),
	})
	if err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	if want := etagOf(body); aws.ToString(put.ETag) != want {
		t.Fatalf("ETag %s, want %s", aws.ToString(put.ETag), want)
	}
	if got, ok := f.srv.Get("logs", "app/a b+c.txt"); !ok || !bytes.Equal(got, body) {
		t.Fatalf("stored %q %v", got, ok)
	}

	get, err := f.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a b+c.txt")})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if !bytes.Equal(data, body) || aws.ToString(get.ContentType) != "text/plain" || get.Metadata["owner"] != "sre" ||
		aws.ToString(get.ETag) != etagOf(body) || aws.ToInt32(get.TagCount) != 2 || get.LastModified == nil {
		t.Fatalf("GetObject = %q %+v", data, get)
	}

	head, err := f.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a b+c.txt")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToInt64(head.ContentLength) != int64(len(body)) || aws.ToString(head.ETag) != etagOf(body) {
		t.Fatalf("HeadObject = %+v", head)
	}

	_, err = f.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("missing")})
	wantCode(t, err, codeNoSuchKey)
	_, err = f.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("logs"), Key: aws.String("missing")})
	wantCode(t, err, "NotFound")
	_, err = f.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("nope"), Key: aws.String("k")})
	wantCode(t, err, codeNoSuchBucket)
	_, err = f.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("nope"), Key: aws.String("k"), Body: strings.NewReader("x")})
	wantCode(t, err, codeNoSuchBucket)

	// Conditional reads.
	_, err = f.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a b+c.txt"), IfNoneMatch: put.ETag})
	wantCode(t, err, "NotModified")
	_, err = f.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a b+c.txt"), IfMatch: aws.String(`"0000"`)})
	wantCode(t, err, codePreconditionFailed)
}

func TestSDKPutBadContentMD5(t *testing.T) {
	f := newFixture(t)
	f.srv.CreateBucket("logs")
	other := md5.Sum([]byte("something else"))
	_, err := f.client.PutObject(testCtx(t), &s3.PutObjectInput{
		Bucket: aws.String("logs"), Key: aws.String("k"), Body: strings.NewReader("payload"),
		ContentMD5: aws.String(base64.StdEncoding.EncodeToString(other[:])),
	})
	wantCode(t, err, "BadDigest")
	if _, ok := f.srv.Get("logs", "k"); ok {
		t.Fatal("object stored despite a bad Content-MD5")
	}
}

func TestSDKRanges(t *testing.T) {
	f := newFixture(t)
	data := []byte("0123456789")
	f.srv.Put("logs", "r", data)
	tests := []struct {
		rng, want, contentRange string
	}{
		{"bytes=2-4", "234", "bytes 2-4/10"},
		{"bytes=7-", "789", "bytes 7-9/10"},
		{"bytes=-3", "789", "bytes 7-9/10"},
		{"bytes=5-100", "56789", "bytes 5-9/10"},
		{"bytes=-100", "0123456789", "bytes 0-9/10"},
		{"bytes=0-0", "0", "bytes 0-0/10"},
		{"bytes=4-2", "0123456789", ""}, // malformed: ignored, whole object
		{"bytes=0-1,4-5", "0123456789", ""},
	}
	for _, tc := range tests {
		t.Run(tc.rng, func(t *testing.T) {
			out, err := f.client.GetObject(testCtx(t), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("r"), Range: aws.String(tc.rng)})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(out.Body)
			out.Body.Close()
			if string(got) != tc.want || aws.ToString(out.ContentRange) != tc.contentRange || aws.ToInt64(out.ContentLength) != int64(len(tc.want)) {
				t.Fatalf("got %q range %q length %d", got, aws.ToString(out.ContentRange), aws.ToInt64(out.ContentLength))
			}
		})
	}
	for _, rng := range []string{"bytes=10-", "bytes=10-20", "bytes=-0"} {
		_, err := f.client.GetObject(testCtx(t), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("r"), Range: aws.String(rng)})
		wantCode(t, err, codeInvalidRange)
	}
}

func TestSDKDeleteObjects(t *testing.T) {
	f := newFixture(t)
	for _, k := range []string{"a", "b", "c"} {
		f.srv.Put("logs", k, []byte(k))
	}
	ctx := testCtx(t)
	if _, err := f.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("logs"), Key: aws.String("never-there")}); err != nil {
		t.Fatalf("deleting a missing key must succeed: %v", err)
	}
	out, err := f.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("logs"), Delete: &types.Delete{
		Objects: []types.ObjectIdentifier{{Key: aws.String("a")}, {Key: aws.String("zz")}, {Key: aws.String(strings.Repeat("k", 1025))}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, d := range out.Deleted {
		deleted = append(deleted, aws.ToString(d.Key))
	}
	if !reflect.DeepEqual(deleted, []string{"a", "zz"}) || len(out.Errors) != 1 || aws.ToString(out.Errors[0].Code) != "KeyTooLongError" {
		t.Fatalf("deleted %v errors %+v", deleted, out.Errors)
	}
	quiet, err := f.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("logs"), Delete: &types.Delete{
		Objects: []types.ObjectIdentifier{{Key: aws.String("b")}}, Quiet: aws.Bool(true),
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(quiet.Deleted) != 0 || len(quiet.Errors) != 0 {
		t.Fatalf("quiet answer lists %+v", quiet)
	}
	for k, want := range map[string]bool{"a": false, "b": false, "c": true} {
		if _, ok := f.srv.Get("logs", k); ok != want {
			t.Errorf("%s present %v, want %v", k, ok, want)
		}
	}
}

func TestSDKCopyObject(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	f.srv.CreateBucket("logs")
	f.srv.CreateBucket("other")
	if _, err := f.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("logs"), Key: aws.String("src key"), Body: strings.NewReader("copy me"),
		ContentType: aws.String("text/x-src"), Metadata: map[string]string{"a": "1"}, Tagging: aws.String("t=1"),
	}); err != nil {
		t.Fatal(err)
	}
	cp, err := f.client.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("other"), Key: aws.String("dst"), CopySource: aws.String("logs/src%20key")})
	if err != nil {
		t.Fatalf("CopyObject: %v", err)
	}
	if aws.ToString(cp.CopyObjectResult.ETag) != etagOf([]byte("copy me")) {
		t.Fatalf("copy ETag %s", aws.ToString(cp.CopyObjectResult.ETag))
	}
	head, err := f.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("other"), Key: aws.String("dst")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(head.ContentType) != "text/x-src" || head.Metadata["a"] != "1" {
		t.Fatalf("copied metadata %+v", head)
	}

	if _, err := f.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: aws.String("other"), Key: aws.String("dst2"), CopySource: aws.String("/logs/src%20key"),
		MetadataDirective: types.MetadataDirectiveReplace, ContentType: aws.String("text/new"), Metadata: map[string]string{"b": "2"},
		TaggingDirective: types.TaggingDirectiveReplace, Tagging: aws.String("u=2&v=3"),
	}); err != nil {
		t.Fatal(err)
	}
	head, err = f.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("other"), Key: aws.String("dst2")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(head.ContentType) != "text/new" || head.Metadata["b"] != "2" || head.Metadata["a"] != "" {
		t.Fatalf("replaced metadata %+v", head)
	}
	tags, err := f.client.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("other"), Key: aws.String("dst2")})
	if err != nil || len(tags.TagSet) != 2 {
		t.Fatalf("replaced tags %+v %v", tags, err)
	}

	_, err = f.client.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("logs"), Key: aws.String("src key"), CopySource: aws.String("logs/src%20key")})
	wantCode(t, err, "InvalidRequest")
	_, err = f.client.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("logs"), Key: aws.String("d"), CopySource: aws.String("logs/none")})
	wantCode(t, err, codeNoSuchKey)
	_, err = f.client.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("logs"), Key: aws.String("d"), CopySource: aws.String("logs/src%20key"), CopySourceIfMatch: aws.String(`"nope"`)})
	wantCode(t, err, codePreconditionFailed)
}

func TestSDKTagging(t *testing.T) {
	f := newFixture(t)
	f.srv.Put("logs", "k", []byte("v"))
	ctx := testCtx(t)
	get := func() []types.Tag {
		t.Helper()
		out, err := f.client.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("logs"), Key: aws.String("k")})
		if err != nil {
			t.Fatal(err)
		}
		return out.TagSet
	}
	if tags := get(); len(tags) != 0 {
		t.Fatalf("new object has tags %+v", tags)
	}
	if _, err := f.client.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: aws.String("logs"), Key: aws.String("k"), Tagging: &types.Tagging{
		TagSet: []types.Tag{{Key: aws.String("team"), Value: aws.String("sre")}, {Key: aws.String("pii"), Value: aws.String("")}},
	}}); err != nil {
		t.Fatal(err)
	}
	tags := get()
	if len(tags) != 2 || aws.ToString(tags[0].Key) != "team" || aws.ToString(tags[0].Value) != "sre" || aws.ToString(tags[1].Key) != "pii" {
		t.Fatalf("tags %+v", tags)
	}
	if data, _ := f.srv.Get("logs", "k"); string(data) != "v" {
		t.Fatalf("tagging changed the data: %q", data)
	}
	_, err := f.client.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: aws.String("logs"), Key: aws.String("k"), Tagging: &types.Tagging{
		TagSet: []types.Tag{{Key: aws.String("a"), Value: aws.String("1")}, {Key: aws.String("a"), Value: aws.String("2")}},
	}})
	wantCode(t, err, codeInvalidTag)
	if _, err := f.client.DeleteObjectTagging(ctx, &s3.DeleteObjectTaggingInput{Bucket: aws.String("logs"), Key: aws.String("k")}); err != nil {
		t.Fatal(err)
	}
	if tags := get(); len(tags) != 0 {
		t.Fatalf("tags after delete %+v", tags)
	}
	_, err = f.client.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("logs"), Key: aws.String("none")})
	wantCode(t, err, codeNoSuchKey)
}
