package s3mem

import (
	"bytes"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestSDKStreamingChecksums uploads over TLS, where the SDK sends
// STREAMING-UNSIGNED-PAYLOAD-TRAILER bodies with a checksum trailer: the
// server must decode the framing, verify the trailer and echo it.
func TestSDKStreamingChecksums(t *testing.T) {
	f := newTLSFixture(t)
	f.srv.CreateBucket("logs")
	ctx := testCtx(t)
	for _, alg := range []types.ChecksumAlgorithm{types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc32c, types.ChecksumAlgorithmSha256} {
		t.Run(string(alg), func(t *testing.T) {
			body := pattern(70000, byte(len(alg)))
			out, err := f.client.PutObject(ctx, &s3.PutObjectInput{
				Bucket: aws.String("logs"), Key: aws.String("k-" + string(alg)), Body: bytes.NewReader(body), ChecksumAlgorithm: alg,
			})
			if err != nil {
				t.Fatalf("PutObject: %v", err)
			}
			if sentMode := f.modes.lastPut(); sentMode != "STREAMING-UNSIGNED-PAYLOAD-TRAILER" {
				t.Fatalf("the SDK sent %q; this test needs a streamed body", sentMode)
			}
			if aws.ToString(out.ETag) != etagOf(body) {
				t.Fatalf("ETag %s", aws.ToString(out.ETag))
			}
			echoed := aws.ToString(out.ChecksumCRC32) + aws.ToString(out.ChecksumCRC32C) + aws.ToString(out.ChecksumSHA256)
			if echoed == "" {
				t.Fatal("checksum not echoed")
			}
			got, err := f.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("k-" + string(alg))})
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(got.Body)
			got.Body.Close()
			if !bytes.Equal(data, body) {
				t.Fatalf("read back %d bytes, not the %d written", len(data), len(body))
			}
		})
	}
}
