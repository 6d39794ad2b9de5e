package s3mem

import (
	"bytes"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestMemoryCap(t *testing.T) {
	f := newFixture(t)
	f.srv.SetMaxBytes(100)
	f.srv.CreateBucket("logs")
	ctx := testCtx(t)
	put := func(key string, n int) error {
		_, err := f.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String(key), Body: bytes.NewReader(make([]byte, n))})
		return err
	}
	if err := put("a", 60); err != nil {
		t.Fatal(err)
	}
	wantCode(t, put("b", 50), "EntityTooLarge")
	if err := put("a", 90); err != nil { // a replacement frees what it replaces
		t.Fatalf("replacing within the cap: %v", err)
	}
	create, err := f.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String("m")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("logs"), Key: aws.String("m"), UploadId: create.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(make([]byte, 20))})
	wantCode(t, err, "EntityTooLarge") // parts count too
	if _, err := f.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("logs"), Key: aws.String("a")}); err != nil {
		t.Fatal(err)
	}
	if err := put("b", 100); err != nil {
		t.Fatalf("after delete the space is free again: %v", err)
	}
	if _, ok := f.srv.Get("logs", "b"); !ok {
		t.Fatal("b not stored")
	}
}

func TestSeedPanicsOverCap(t *testing.T) {
	s := New(testAK, testSK)
	s.SetMaxBytes(3)
	defer func() {
		if recover() == nil {
			t.Fatal("Put over the cap did not panic")
		}
	}()
	s.Put("logs", "k", []byte("four"))
}
