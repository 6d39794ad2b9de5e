package awsgw

import (
	"bytes"
	"context"
	"encoding/xml"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

type s3ErrorDetail struct {
	Code, Message, AirlockDetail string
	MaxSizeAllowed               int64
}

func parseErrDetail(t *testing.T, b []byte) s3ErrorDetail {
	t.Helper()
	var e s3ErrorDetail
	if err := xml.Unmarshal(b, &e); err != nil {
		t.Fatalf("not an S3 error document: %v: %q", err, b)
	}
	return e
}

// An upload the gateway did not create is answered with S3's own
// NoSuchUpload message; why Airlock does not know it is in
// <AirlockDetail>.
func TestNoSuchUploadS3Message(t *testing.T) {
	e := newEnv(t)
	g := e.grant("s3:PutObject arn:aws:s3:::logs/app/*")
	st, body := do(t, e.signed(g, http.MethodPut, "/logs/app/a?partNumber=1&uploadId=u-unknown", []byte("x")))
	got := parseErrDetail(t, body)
	if st != http.StatusNotFound || got.Code != "NoSuchUpload" ||
		got.Message != "The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed." {
		t.Fatalf("%d %+v", st, got)
	}
	if !strings.Contains(got.AirlockDetail, "Airlock forwards only uploads it created for this key") {
		t.Fatalf("AirlockDetail %q", got.AirlockDetail)
	}
}

// A header section over S3's 8 KiB is refused as S3 refuses it, before
// anything else.
func TestHeaderSectionTooLarge(t *testing.T) {
	e := newEnv(t)
	g := e.grant(walkScope)
	req := e.signed(g, http.MethodGet, "/logs/app/a", nil)
	req.Header.Set("X-Custom-Header", strings.Repeat("d", 8<<10))
	st, body := do(t, req)
	got := parseErrDetail(t, body)
	if st != http.StatusBadRequest || got.Code != "RequestHeaderSectionTooLarge" || got.MaxSizeAllowed != 8192 ||
		got.Message != "Your request header section exceeds the maximum allowed size." {
		t.Fatalf("%d %+v", st, got)
	}
	if st, _ := do(t, e.signed(g, http.MethodGet, "/logs/app/a", nil)); st == http.StatusBadRequest {
		t.Fatal("an ordinary request was refused")
	}
}

// aws-chunked bodies carry object data: on another operation they are
// refused with S3's InvalidRequest, not re-framed and forwarded.
func TestStreamingPayloadOnlyForObjectData(t *testing.T) {
	e := newEnv(t)
	g := e.grant("s3:PutBucketTagging arn:aws:s3:::logs")
	body := []byte("5\r\nabcde\r\n0\r\n\r\n")
	req, err := http.NewRequest(http.MethodPut, e.srv.URL+"/logs?tagging", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Content-Sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
	req.Header.Set("X-Amz-Decoded-Content-Length", "5")
	creds := aws.Credentials{AccessKeyID: g.CredentialID, SecretAccessKey: g.Secret, SessionToken: g.SessionToken}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "s3", testRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
	st, out := do(t, req)
	got := parseErrDetail(t, out)
	if st != http.StatusBadRequest || got.Code != "InvalidRequest" || got.Message != "The value of x-amz-content-sha256 header is invalid." {
		t.Fatalf("%d %+v", st, got)
	}
	if n := len(e.up.seen()); n != 0 {
		t.Fatalf("%d requests reached the upstream", n)
	}
}
