package s3mem

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// pattern is deterministic test data; seed makes different calls differ.
// Its period, 251, is prime so parts cut at power-of-two offsets differ.
func pattern(n int, seed byte) []byte {
	block := make([]byte, 251)
	for i := range block {
		block[i] = byte(i) ^ seed
	}
	return bytes.Repeat(block, n/len(block)+1)[:n]
}

// multipartETag is S3's ETag for an object completed from parts.
func multipartETag(parts ...[]byte) string {
	var sums []byte
	for _, p := range parts {
		s := md5.Sum(p)
		sums = append(sums, s[:]...)
	}
	s := md5.Sum(sums)
	return fmt.Sprintf(`"%s-%d"`, hex.EncodeToString(s[:]), len(parts))
}

func TestSDKMultipartUpload(t *testing.T) {
	f := newFixture(t)
	ctx := testCtx(t)
	src := pattern(minPartSize+1000, 1)
	f.srv.Put("logs", "src", src)
	part1 := pattern(minPartSize, 2)
	part3 := []byte("the short last part")

	create, err := f.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String("logs"), Key: aws.String("big"), ContentType: aws.String("application/x-big"),
	})
	if err != nil {
		t.Fatal(err)
	}
	id := create.UploadId
	up1, err := f.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("logs"), Key: aws.String("big"), UploadId: id, PartNumber: aws.Int32(1), Body: bytes.NewReader(part1)})
	if err != nil {
		t.Fatalf("UploadPart: %v", err)
	}
	// Part 2 is copied from bytes 500..500+minPartSize-1 of another object.
	part2 := src[500 : 500+minPartSize]
	up2, err := f.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
		Bucket: aws.String("logs"), Key: aws.String("big"), UploadId: id, PartNumber: aws.Int32(2),
		CopySource: aws.String("logs/src"), CopySourceRange: aws.String(fmt.Sprintf("bytes=500-%d", 500+minPartSize-1)),
	})
	if err != nil {
		t.Fatalf("UploadPartCopy: %v", err)
	}
	up3, err := f.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("logs"), Key: aws.String("big"), UploadId: id, PartNumber: aws.Int32(3), Body: bytes.NewReader(part3)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
		Bucket: aws.String("logs"), Key: aws.String("big"), UploadId: id, PartNumber: aws.Int32(4),
		CopySource: aws.String("logs/src"), CopySourceRange: aws.String("bytes=0-99999999"),
	})
	wantCode(t, err, "InvalidArgument")

	lp, err := f.client.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("logs"), Key: aws.String("big"), UploadId: id, MaxParts: aws.Int32(2)})
	if err != nil {
		t.Fatal(err)
	}
	if len(lp.Parts) != 2 || !aws.ToBool(lp.IsTruncated) || aws.ToString(lp.NextPartNumberMarker) != "2" ||
		aws.ToInt64(lp.Parts[0].Size) != minPartSize || aws.ToString(lp.Parts[1].ETag) != aws.ToString(up2.CopyPartResult.ETag) {
		t.Fatalf("ListParts page 1 = %+v", lp)
	}
	lp, err = f.client.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("logs"), Key: aws.String("big"), UploadId: id, PartNumberMarker: lp.NextPartNumberMarker})
	if err != nil {
		t.Fatal(err)
	}
	if len(lp.Parts) != 1 || aws.ToInt32(lp.Parts[0].PartNumber) != 3 || aws.ToBool(lp.IsTruncated) {
		t.Fatalf("ListParts page 2 = %+v", lp)
	}

	complete := func(parts ...types.CompletedPart) (*s3.CompleteMultipartUploadOutput, error) {
		return f.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket: aws.String("logs"), Key: aws.String("big"), UploadId: id,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
	}
	p1 := types.CompletedPart{PartNumber: aws.Int32(1), ETag: up1.ETag}
	p2 := types.CompletedPart{PartNumber: aws.Int32(2), ETag: up2.CopyPartResult.ETag}
	p3 := types.CompletedPart{PartNumber: aws.Int32(3), ETag: up3.ETag}
	_, err = complete(p2, p1, p3)
	wantCode(t, err, codeInvalidPartOrder)
	_, err = complete(p1, types.CompletedPart{PartNumber: aws.Int32(2), ETag: up1.ETag}, p3)
	wantCode(t, err, codeInvalidPart)
	_, err = complete(p1, p3, types.CompletedPart{PartNumber: aws.Int32(9), ETag: up1.ETag})
	wantCode(t, err, codeInvalidPart)

	done, err := complete(p1, p2, p3)
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if want := multipartETag(part1, part2, part3); aws.ToString(done.ETag) != want {
		t.Fatalf("ETag %s, want %s", aws.ToString(done.ETag), want)
	}
	want := bytes.Join([][]byte{part1, part2, part3}, nil)
	got, err := f.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("big")})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if !bytes.Equal(data, want) || aws.ToString(got.ContentType) != "application/x-big" {
		t.Fatalf("assembled %d bytes (equal %v), type %s", len(data), bytes.Equal(data, want), aws.ToString(got.ContentType))
	}
	_, err = complete(p1, p2, p3)
	wantCode(t, err, codeNoSuchUpload)
	if used := f.srv.st.used; used != int64(len(src)+len(want)) {
		t.Fatalf("used %d bytes, want %d: parts not released", used, len(src)+len(want))
	}
}

func TestSDKMultipartTooSmallAndAbort(t *testing.T) {
	f := newFixture(t)
	f.srv.CreateBucket("logs")
	ctx := testCtx(t)
	create, err := f.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String("k")})
	if err != nil {
		t.Fatal(err)
	}
	var parts []types.CompletedPart
	for n := int32(1); n <= 2; n++ {
		up, err := f.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("logs"), Key: aws.String("k"), UploadId: create.UploadId, PartNumber: aws.Int32(n), Body: bytes.NewReader([]byte("small"))})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: up.ETag})
	}
	_, err = f.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String("k"), UploadId: create.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	wantCode(t, err, codeEntityTooSmall)
	_, err = f.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("logs"), Key: aws.String("k"), UploadId: create.UploadId, PartNumber: aws.Int32(10001), Body: bytes.NewReader(nil)})
	wantCode(t, err, "InvalidArgument")
	_, err = f.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("logs"), Key: aws.String("other-key"), UploadId: create.UploadId, PartNumber: aws.Int32(1), Body: bytes.NewReader(nil)})
	wantCode(t, err, codeNoSuchUpload)

	if _, err := f.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String("k"), UploadId: create.UploadId}); err != nil {
		t.Fatal(err)
	}
	if f.srv.st.used != 0 {
		t.Fatalf("%d bytes still held after abort", f.srv.st.used)
	}
	_, err = f.client.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("logs"), Key: aws.String("k"), UploadId: create.UploadId})
	wantCode(t, err, codeNoSuchUpload)
	_, err = f.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String("k"), UploadId: create.UploadId})
	wantCode(t, err, codeNoSuchUpload)
	if _, ok := f.srv.Get("logs", "k"); ok {
		t.Fatal("aborted upload left an object")
	}
}
