package awsgw

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/airlock-dev/airlock/internal/testenv"
)

// A copy source key with an encoded "?versionId=" in it is a key to S3,
// but versitygw decodes the whole x-amz-copy-source before it looks for
// "?versionId=", so it would copy that version of the key before the '?':
// a grant without s3:GetObjectVersion would read an old version by copying
// it under a key it may read. Such a copy source is refused.
func TestCopySourceEncodedVersionID(t *testing.T) {
	vgw := testenv.VersityVersioned(t)
	e := newEnv(t, func(o *Options) {
		o.Targets[0].Endpoint = vgw.URL
		o.Targets[0].AccessKeyID, o.Targets[0].SecretAccessKey = vgw.AccessKeyID, vgw.SecretAccessKey
	})
	ctx := context.Background()
	direct := s3.New(s3.Options{Region: testRegion, BaseEndpoint: aws.String(vgw.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(vgw.AccessKeyID, vgw.SecretAccessKey, ""), RetryMaxAttempts: 1})
	if _, err := direct.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("logs")}); err != nil {
		t.Fatalf("CreateBucket on versitygw: %v", errCode(err))
	}
	if _, err := direct.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("logs"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatalf("PutBucketVersioning on versitygw: %v", errCode(err))
	}
	old, err := direct.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/config"), Body: strings.NewReader("old password")})
	if err != nil || aws.ToString(old.VersionId) == "" {
		t.Fatalf("PutObject on versitygw: %v (version %q)", errCode(err), aws.ToString(old.VersionId))
	}
	if _, err := direct.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/config"), Body: strings.NewReader("rotated")}); err != nil {
		t.Fatalf("PutObject on versitygw: %v", errCode(err))
	}

	// Current versions only: no s3:GetObjectVersion.
	g := e.grant("s3:GetObject,s3:PutObject arn:aws:s3:::logs/app/*")
	cl := e.client(g)
	if _, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/config"), VersionId: old.VersionId}); !strings.HasPrefix(errCode(err), "AccessDenied") {
		t.Fatalf("GetObject of an old version: %v", errCode(err))
	}
	for _, src := range []string{
		"logs/app/config%3FversionId%3D" + aws.ToString(old.VersionId),
		"logs/app/config%3fversionId=" + aws.ToString(old.VersionId),
	} {
		st, body := do(t, e.signedCopy(g, "/logs/app/copy", src))
		if st != http.StatusBadRequest || !strings.Contains(string(body), "<Code>InvalidArgument</Code>") {
			t.Errorf("copy source %s: status %d: %s", src, st, body)
		}
	}
	out, err := direct.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/copy")})
	if err == nil {
		b, _ := io.ReadAll(out.Body)
		out.Body.Close()
		t.Fatalf("the copy was made upstream, with %q", b)
	}

	// A plain copy of the current version still works.
	if _, err := cl.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/copy2"), CopySource: aws.String("logs/app/config")}); err != nil {
		t.Fatalf("CopyObject: %v", errCode(err))
	}
}
