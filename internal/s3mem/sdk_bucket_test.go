package s3mem

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

func TestSDKBuckets(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	c := f.client
	for _, b := range []string{"logs", "data-2"} {
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatalf("CreateBucket %s: %v", b, err)
		}
	}
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("logs")})
	wantCode(t, err, codeBucketAlreadyOwnedByYou)
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("Bad_Name")})
	wantCode(t, err, codeInvalidBucketName)

	out, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range out.Buckets {
		names = append(names, aws.ToString(b.Name))
		if b.CreationDate == nil || b.CreationDate.IsZero() {
			t.Errorf("bucket %s has no creation date", aws.ToString(b.Name))
		}
	}
	if len(names) != 2 || names[0] != "data-2" || names[1] != "logs" {
		t.Fatalf("ListBuckets = %v", names)
	}

	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("logs")}); err != nil {
		t.Fatalf("HeadBucket: %v", err)
	}
	_, err = c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("nope")})
	wantCode(t, err, "NotFound") // HEAD has no body; the SDK names the status

	loc, err := c.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String("logs")})
	if err != nil {
		t.Fatal(err)
	}
	if loc.LocationConstraint != "" {
		t.Fatalf("location %q, want empty (us-east-1)", loc.LocationConstraint)
	}
	_, err = c.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String("nope")})
	wantCode(t, err, codeNoSuchBucket)

	f.srv.Put("data-2", "k", []byte("x"))
	_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("data-2")})
	wantCode(t, err, codeBucketNotEmpty)
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("data-2"), Key: aws.String("k")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("data-2")}); err != nil {
		t.Fatalf("DeleteBucket: %v", err)
	}
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("data-2")}); err == nil {
		t.Fatal("deleted bucket still there")
	}
}

func TestSDKUnsupportedIsNotImplemented(t *testing.T) {
	f := newFixture(t)
	f.srv.CreateBucket("logs")
	_, err := f.client.GetBucketVersioning(testCtx(t), &s3.GetBucketVersioningInput{Bucket: aws.String("logs")})
	wantCode(t, err, "NotImplemented")
	_, err = f.client.PutBucketVersioning(testCtx(t), &s3.PutBucketVersioningInput{
		Bucket:                  aws.String("logs"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
	})
	wantCode(t, err, "NotImplemented")
}
