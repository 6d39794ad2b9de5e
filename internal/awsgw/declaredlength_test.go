package awsgw

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// An upload of undeclared or unreadable length is refused by the gateway
// with S3's MissingContentLength before anything is forwarded. Forwarded,
// versitygw refuses it too, but early, while the gateway still sends the
// body; its answer then raced the reset of the upload and the client now
// and then got a 503 (the conformance suite's
// UnsignedStreamingPayloadTrailer_missing_invalid_dec_content_length).
// Each case runs several times, and must never reach the upstream as an
// allowed call.
func TestUndeclaredLengthRefusedBeforeForwarding(t *testing.T) {
	e := newVersityEnv(t)
	const trailerBody = "5\r\nhello\r\n0\r\nx-amz-checksum-crc64nvme:M3eFcAZSQlc=\r\n\r\n"
	cases := []struct {
		name    string
		payload string            // x-amz-content-sha256
		headers map[string]string // besides the signature's
		chunked bool              // Transfer-Encoding: chunked, no Content-Length
	}{
		{"aws-chunked, no decoded length", "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
			map[string]string{"X-Amz-Trailer": "x-amz-checksum-crc64nvme", "Content-Encoding": "aws-chunked"}, false},
		{"aws-chunked, decoded length abc", "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
			map[string]string{"X-Amz-Trailer": "x-amz-checksum-crc64nvme", "X-Amz-Decoded-Content-Length": "abc"}, false},
		{"aws-chunked, decoded length 12x", "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
			map[string]string{"X-Amz-Trailer": "x-amz-checksum-crc64nvme", "X-Amz-Decoded-Content-Length": "12x"}, false},
		{"signed aws-chunked, no decoded length", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", nil, false},
		{"unsigned payload, chunked transfer", "UNSIGNED-PAYLOAD", nil, true},
	}
	const rounds = 10
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := e.grant("s3:PutObject arn:aws:s3:::logs/app/*")
			creds := aws.Credentials{AccessKeyID: g.CredentialID, SecretAccessKey: g.Secret, SessionToken: g.SessionToken}
			for i := range rounds {
				var body io.Reader = bytes.NewReader([]byte(trailerBody))
				if tc.chunked {
					body = io.MultiReader(bytes.NewReader([]byte("hello, unknown length")))
				}
				key := fmt.Sprintf("/logs/app/undeclared-%d", i)
				req, err := http.NewRequest(http.MethodPut, e.srv.URL+key, body)
				if err != nil {
					t.Fatal(err)
				}
				if tc.chunked {
					req.ContentLength = -1
				}
				req.Header.Set("X-Amz-Content-Sha256", tc.payload)
				for k, v := range tc.headers {
					req.Header.Set(k, v)
				}
				if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, tc.payload, "s3", testRegion, time.Now()); err != nil {
					t.Fatal(err)
				}
				st, out := do(t, req)
				got := parseErrDetail(t, out)
				if st != http.StatusLengthRequired || got.Code != "MissingContentLength" || got.Message != "You must provide the Content-Length HTTP header." {
					t.Fatalf("round %d: %d %+v", i, st, got)
				}
			}
			for _, c := range e.requests(g) {
				if c.Allowed {
					t.Fatalf("an upload of undeclared length was forwarded: %+v", c)
				}
			}
		})
	}
}
