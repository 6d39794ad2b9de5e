package s3iam_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/s3iam"
)

// captured is one request as the test server received it.
type captured struct {
	req  *http.Request
	body []byte
}

// recorder is a loopback S3 stand-in that keeps the last request it got
// and answers 200 with an empty body: the tests look only at what the SDK
// sends.
type recorder struct {
	mu   sync.Mutex
	last *captured
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	rc.mu.Lock()
	rc.last = &captured{req: r.Clone(context.Background()), body: body}
	rc.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (rc *recorder) take() *captured {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	c := rc.last
	rc.last = nil
	return c
}

// sdkClient returns an s3.Client talking to srv, path-style or
// virtual-hosted against the base host "s3.test" (every connection is
// dialled to the loopback server whatever the host name).
func sdkClient(t *testing.T, srv *httptest.Server, pathStyle bool) *s3.Client {
	t.Helper()
	addr := srv.Listener.Addr().String()
	hc := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}},
	}
	t.Cleanup(hc.CloseIdleConnections)
	return s3.New(s3.Options{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", "token"),
		BaseEndpoint:     aws.String("http://s3.test:80"),
		UsePathStyle:     pathStyle,
		HTTPClient:       hc,
		RetryMaxAttempts: 1,
	})
}

const (
	bkt = "logs"
	// key exercises the encodings clients apply: space, plus, '=', '&',
	// '%', '~', a non-ASCII letter, and a '/' that must stay a separator.
	key = "app/a b+c=d&e%f~é.log"
)

func obj(k string) string { return "arn:aws:s3:::" + bkt + "/" + k }

type sdkCase struct {
	name   string
	call   func(ctx context.Context, c *s3.Client) error
	op     string
	key    string
	checks []s3iam.Check
	params map[string]string // a subset that must be present
	body   bool              // DeleteObjects, …: feed the body to AddBodyChecks
	denied string            // expected error code instead of an Op
}

func sdkCases() []sdkCase {
	ck := func(pairs ...string) []s3iam.Check {
		var out []s3iam.Check
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, s3iam.Check{Action: pairs[i], Resource: pairs[i+1]})
		}
		return out
	}
	b, k := aws.String(bkt), aws.String(key)
	bk := "arn:aws:s3:::" + bkt
	srcKey := "app/src file+1.log"
	// The SDK leaves encoding the copy source to the caller; the CLI
	// encodes all but unreserved characters and '/', as EscapeKey does.
	copySrc := bkt + "/" + s3iam.EscapeKey(srcKey)
	return []sdkCase{
		{name: "ListBuckets", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
			return err
		}, op: "ListBuckets", checks: ck("s3:ListAllMyBuckets", "arn:aws:s3:::*")},
		{name: "ListObjectsV2", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b, Prefix: aws.String("app/x y+z"), Delimiter: aws.String("/")})
			return err
		}, op: "ListObjectsV2", checks: ck("s3:ListBucket", obj("app/x y+z*")), params: map[string]string{"prefix": "app/x y+z", "delimiter": "/"}},
		{name: "ListObjectsV2 no prefix", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b, StartAfter: aws.String("zzz")})
			return err
		}, op: "ListObjectsV2", checks: ck("s3:ListBucket", obj("*")), params: map[string]string{"start_after": "zzz"}},
		{name: "ListObjects", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.ListObjects(ctx, &s3.ListObjectsInput{Bucket: b, Prefix: aws.String("app/"), Marker: aws.String("app/m")})
			return err
		}, op: "ListObjects", checks: ck("s3:ListBucket", obj("app/*")), params: map[string]string{"marker": "app/m"}},
		{name: "ListObjectVersions", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: b, Prefix: aws.String("app/")})
			return err
		}, op: "ListObjectVersions", checks: ck("s3:ListBucketVersions", obj("app/*"))},
		{name: "ListMultipartUploads", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: b, Prefix: aws.String("app/")})
			return err
		}, op: "ListMultipartUploads", checks: ck("s3:ListBucketMultipartUploads", obj("app/*"))},
		{name: "HeadBucket", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: b})
			return err
		}, op: "HeadBucket", checks: []s3iam.Check{{Action: "s3:ListBucket", Resource: "arn:aws:s3:::logs", InBucket: true}}},
		{name: "GetBucketLocation", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: b})
			return err
		}, op: "GetBucketLocation", checks: ck("s3:GetBucketLocation", "arn:aws:s3:::logs")},
		{name: "GetBucketVersioning", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: b})
			return err
		}, op: "GetBucketVersioning", checks: ck("s3:GetBucketVersioning", "arn:aws:s3:::logs")},
		{name: "GetBucketPolicy", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: b})
			return err
		}, op: "GetBucketPolicy", checks: ck("s3:GetBucketPolicy", "arn:aws:s3:::logs")},
		{name: "GetBucketLifecycleConfiguration", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: b})
			return err
		}, op: "GetBucketLifecycleConfiguration", checks: ck("s3:GetLifecycleConfiguration", "arn:aws:s3:::logs")},
		{name: "GetObject", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k, Range: aws.String("bytes=0-9")})
			return err
		}, op: "GetObject", key: key, checks: ck("s3:GetObject", obj(key)), params: map[string]string{"range": "bytes=0-9"}},
		{name: "GetObject version", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k, VersionId: aws.String("v1+_.~="), ResponseContentType: aws.String("text/plain")})
			return err
		}, op: "GetObject", key: key, checks: ck("s3:GetObjectVersion", obj(key)), params: map[string]string{"version_id": "v1+_.~="}},
		{name: "HeadObject", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: k, PartNumber: aws.Int32(2)})
			return err
		}, op: "HeadObject", key: key, checks: ck("s3:GetObject", obj(key)), params: map[string]string{"part_number": "2"}},
		{name: "PutObject", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("hello")})
			return err
		}, op: "PutObject", key: key, checks: ck("s3:PutObject", obj(key))},
		{name: "PutObject with ACL and tags", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("hello"), ACL: types.ObjectCannedACLPublicRead, Tagging: aws.String("a=b")})
			return err
		}, op: "PutObject", key: key, checks: ck("s3:PutObject", obj(key), "s3:PutObjectAcl", obj(key), "s3:PutObjectTagging", obj(key))},
		{name: "PutObject with object lock", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("x"), ObjectLockMode: types.ObjectLockModeGovernance, ObjectLockRetainUntilDate: aws.Time(time.Unix(2e9, 0)), ObjectLockLegalHoldStatus: types.ObjectLockLegalHoldStatusOn})
			return err
		}, op: "PutObject", key: key, checks: ck("s3:PutObject", obj(key), "s3:PutObjectRetention", obj(key), "s3:PutObjectLegalHold", obj(key))},
		{name: "CopyObject", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: k, CopySource: aws.String(copySrc)})
			return err
		}, op: "CopyObject", key: key, checks: ck("s3:PutObject", obj(key), "s3:GetObject", obj(srcKey)), params: map[string]string{"copy_source": bkt + "/" + srcKey}},
		{name: "CopyObject version", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: k, CopySource: aws.String("/" + copySrc + "?versionId=v7")})
			return err
		}, op: "CopyObject", key: key, checks: ck("s3:PutObject", obj(key), "s3:GetObjectVersion", obj(srcKey)), params: map[string]string{"copy_source_version_id": "v7"}},
		{name: "DeleteObject", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: k})
			return err
		}, op: "DeleteObject", key: key, checks: ck("s3:DeleteObject", obj(key))},
		{name: "DeleteObject version bypass", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: k, VersionId: aws.String("v2"), BypassGovernanceRetention: aws.Bool(true)})
			return err
		}, op: "DeleteObject", key: key, checks: ck("s3:DeleteObjectVersion", obj(key), "s3:BypassGovernanceRetention", obj(key))},
		{name: "DeleteObjects", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: b, Delete: &types.Delete{Quiet: aws.Bool(true), Objects: []types.ObjectIdentifier{
				{Key: aws.String("app/1 & <2>.log")}, {Key: k, VersionId: aws.String("v3")},
			}}})
			return err
		}, op: "DeleteObjects", body: true, checks: ck("s3:DeleteObject", obj("app/1 & <2>.log"), "s3:DeleteObjectVersion", obj(key))},
		{name: "CreateMultipartUpload", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: k})
			return err
		}, op: "CreateMultipartUpload", key: key, checks: ck("s3:PutObject", obj(key))},
		{name: "UploadPart", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: k, UploadId: aws.String("up+1_.~="), PartNumber: aws.Int32(3), Body: strings.NewReader("part")})
			return err
		}, op: "UploadPart", key: key, checks: ck("s3:PutObject", obj(key)), params: map[string]string{"upload_id": "up+1_.~=", "part_number": "3"}},
		{name: "UploadPartCopy", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: b, Key: k, UploadId: aws.String("u"), PartNumber: aws.Int32(1), CopySource: aws.String(copySrc), CopySourceRange: aws.String("bytes=0-99")})
			return err
		}, op: "UploadPartCopy", key: key, checks: ck("s3:PutObject", obj(key), "s3:GetObject", obj(srcKey)), params: map[string]string{"copy_source_range": "bytes=0-99"}},
		{name: "CompleteMultipartUpload", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: k, UploadId: aws.String("u"),
				MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{ETag: aws.String("e"), PartNumber: aws.Int32(1)}}}})
			return err
		}, op: "CompleteMultipartUpload", key: key, checks: ck("s3:PutObject", obj(key))},
		{name: "AbortMultipartUpload", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: k, UploadId: aws.String("u")})
			return err
		}, op: "AbortMultipartUpload", key: key, checks: ck("s3:AbortMultipartUpload", obj(key))},
		{name: "ListParts", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: b, Key: k, UploadId: aws.String("u"), MaxParts: aws.Int32(10)})
			return err
		}, op: "ListParts", key: key, checks: ck("s3:ListMultipartUploadParts", obj(key))},
		{name: "GetObjectTagging", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: b, Key: k})
			return err
		}, op: "GetObjectTagging", key: key, checks: ck("s3:GetObjectTagging", obj(key))},
		{name: "PutObjectTagging version", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: b, Key: k, VersionId: aws.String("v"), Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}}})
			return err
		}, op: "PutObjectTagging", key: key, body: true, checks: ck("s3:PutObjectVersionTagging", obj(key)), params: map[string]string{"tagging": "a=b"}},
		{name: "DeleteObjectTagging", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.DeleteObjectTagging(ctx, &s3.DeleteObjectTaggingInput{Bucket: b, Key: k})
			return err
		}, op: "DeleteObjectTagging", key: key, checks: ck("s3:DeleteObjectTagging", obj(key))},
		{name: "GetObjectAttributes", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: b, Key: k, ObjectAttributes: []types.ObjectAttributes{types.ObjectAttributesEtag, types.ObjectAttributesObjectSize}})
			return err
		}, op: "GetObjectAttributes", key: key, checks: ck("s3:GetObject", obj(key), "s3:GetObjectAttributes", obj(key))},
		{name: "GetObjectAttributes version", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: b, Key: k, VersionId: aws.String("v"), ObjectAttributes: []types.ObjectAttributes{types.ObjectAttributesEtag}})
			return err
		}, op: "GetObjectAttributes", key: key, checks: ck("s3:GetObjectVersion", obj(key), "s3:GetObjectVersionAttributes", obj(key))},
		{name: "GetObjectAcl", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.GetObjectAcl(ctx, &s3.GetObjectAclInput{Bucket: b, Key: k})
			return err
		}, op: "GetObjectAcl", key: key, checks: ck("s3:GetObjectAcl", obj(key))},
		{name: "PutObjectAcl", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutObjectAcl(ctx, &s3.PutObjectAclInput{Bucket: b, Key: k, ACL: types.ObjectCannedACLPrivate})
			return err
		}, op: "PutObjectAcl", key: key, checks: ck("s3:PutObjectAcl", obj(key))},
		{name: "GetObjectRetention", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: b, Key: k})
			return err
		}, op: "GetObjectRetention", key: key, checks: ck("s3:GetObjectRetention", obj(key))},
		{name: "GetObjectLegalHold", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.GetObjectLegalHold(ctx, &s3.GetObjectLegalHoldInput{Bucket: b, Key: k})
			return err
		}, op: "GetObjectLegalHold", key: key, checks: ck("s3:GetObjectLegalHold", obj(key))},

		// Bucket management and configuration, object lock writes.
		{name: "CreateBucket", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b})
			return err
		}, op: "CreateBucket", checks: ck("s3:CreateBucket", bk)},
		{name: "CreateBucket with region, ACL, object lock, ownership", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b, ACL: types.BucketCannedACLPrivate, ObjectLockEnabledForBucket: aws.Bool(true),
				ObjectOwnership:           types.ObjectOwnershipBucketOwnerPreferred,
				CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraintEuWest1}})
			return err
		}, op: "CreateBucket", body: true, checks: ck("s3:CreateBucket", bk, "s3:PutBucketAcl", bk, "s3:PutBucketObjectLockConfiguration", bk,
			"s3:PutBucketVersioning", bk, "s3:PutBucketOwnershipControls", bk)},
		{name: "CreateBucket with tags", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b,
				CreateBucketConfiguration: &types.CreateBucketConfiguration{Tags: []types.Tag{{Key: aws.String("team"), Value: aws.String("a")}}}})
			return err
		}, op: "CreateBucket", body: true, checks: ck("s3:CreateBucket", bk, "s3:TagResource", bk)},
		{name: "DeleteBucket", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: b})
			return err
		}, op: "DeleteBucket", checks: ck("s3:DeleteBucket", bk)},
		{name: "PutBucketPolicy", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: b, Policy: aws.String("{}")})
			return err
		}, op: "PutBucketPolicy", body: true, checks: ck("s3:PutBucketPolicy", bk), params: map[string]string{"policy": "{}"}},
		{name: "DeleteBucketPolicy", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: b})
			return err
		}, op: "DeleteBucketPolicy", checks: ck("s3:DeleteBucketPolicy", bk)},
		{name: "PutBucketVersioning", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: b, VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended}})
			return err
		}, op: "PutBucketVersioning", body: true, checks: ck("s3:PutBucketVersioning", bk), params: map[string]string{"configuration": "<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>"}},
		{name: "PutBucketAcl", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutBucketAcl(ctx, &s3.PutBucketAclInput{Bucket: b, ACL: types.BucketCannedACLPublicRead})
			return err
		}, op: "PutBucketAcl", checks: ck("s3:PutBucketAcl", bk)},
		{name: "PutBucketTagging", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: b, Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("a"), Value: aws.String("b")}}}})
			return err
		}, op: "PutBucketTagging", body: true, checks: ck("s3:PutBucketTagging", bk), params: map[string]string{"tagging": "a=b"}},
		{name: "DeleteBucketTagging", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.DeleteBucketTagging(ctx, &s3.DeleteBucketTaggingInput{Bucket: b})
			return err
		}, op: "DeleteBucketTagging", checks: ck("s3:PutBucketTagging", bk)},
		{name: "PutBucketCors", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: b, CORSConfiguration: &types.CORSConfiguration{CORSRules: []types.CORSRule{{AllowedMethods: []string{"GET"}, AllowedOrigins: []string{"*"}}}}})
			return err
		}, op: "PutBucketCors", body: true, checks: ck("s3:PutBucketCORS", bk)},
		{name: "DeleteBucketCors", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.DeleteBucketCors(ctx, &s3.DeleteBucketCorsInput{Bucket: b})
			return err
		}, op: "DeleteBucketCors", checks: ck("s3:PutBucketCORS", bk)},
		{name: "PutBucketLifecycleConfiguration", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: b, LifecycleConfiguration: &types.BucketLifecycleConfiguration{
				Rules: []types.LifecycleRule{{Status: types.ExpirationStatusEnabled, Filter: &types.LifecycleRuleFilter{Prefix: aws.String("tmp/")}, Expiration: &types.LifecycleExpiration{Days: aws.Int32(1)}}}}})
			return err
		}, op: "PutBucketLifecycleConfiguration", body: true, checks: ck("s3:PutLifecycleConfiguration", bk)},
		{name: "DeleteBucketLifecycle", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.DeleteBucketLifecycle(ctx, &s3.DeleteBucketLifecycleInput{Bucket: b})
			return err
		}, op: "DeleteBucketLifecycle", checks: ck("s3:PutLifecycleConfiguration", bk)},
		{name: "PutBucketEncryption", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: b, ServerSideEncryptionConfiguration: &types.ServerSideEncryptionConfiguration{
				Rules: []types.ServerSideEncryptionRule{{ApplyServerSideEncryptionByDefault: &types.ServerSideEncryptionByDefault{SSEAlgorithm: types.ServerSideEncryptionAes256}}}}})
			return err
		}, op: "PutBucketEncryption", body: true, checks: ck("s3:PutEncryptionConfiguration", bk)},
		{name: "DeleteBucketEncryption", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.DeleteBucketEncryption(ctx, &s3.DeleteBucketEncryptionInput{Bucket: b})
			return err
		}, op: "DeleteBucketEncryption", checks: ck("s3:PutEncryptionConfiguration", bk)},
		{name: "PutObjectLockConfiguration", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutObjectLockConfiguration(ctx, &s3.PutObjectLockConfigurationInput{Bucket: b, ObjectLockConfiguration: &types.ObjectLockConfiguration{ObjectLockEnabled: types.ObjectLockEnabledEnabled}})
			return err
		}, op: "PutObjectLockConfiguration", body: true, checks: ck("s3:PutBucketObjectLockConfiguration", bk)},
		{name: "PutBucketOwnershipControls", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutBucketOwnershipControls(ctx, &s3.PutBucketOwnershipControlsInput{Bucket: b, OwnershipControls: &types.OwnershipControls{Rules: []types.OwnershipControlsRule{{ObjectOwnership: types.ObjectOwnershipBucketOwnerEnforced}}}})
			return err
		}, op: "PutBucketOwnershipControls", body: true, checks: ck("s3:PutBucketOwnershipControls", bk)},
		{name: "DeleteBucketOwnershipControls", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.DeleteBucketOwnershipControls(ctx, &s3.DeleteBucketOwnershipControlsInput{Bucket: b})
			return err
		}, op: "DeleteBucketOwnershipControls", checks: ck("s3:PutBucketOwnershipControls", bk)},
		{name: "PutPublicAccessBlock", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: b, PublicAccessBlockConfiguration: &types.PublicAccessBlockConfiguration{BlockPublicAcls: aws.Bool(true)}})
			return err
		}, op: "PutPublicAccessBlock", body: true, checks: ck("s3:PutBucketPublicAccessBlock", bk)},
		{name: "DeletePublicAccessBlock", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.DeletePublicAccessBlock(ctx, &s3.DeletePublicAccessBlockInput{Bucket: b})
			return err
		}, op: "DeletePublicAccessBlock", checks: ck("s3:PutBucketPublicAccessBlock", bk)},
		{name: "PutBucketWebsite", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutBucketWebsite(ctx, &s3.PutBucketWebsiteInput{Bucket: b, WebsiteConfiguration: &types.WebsiteConfiguration{IndexDocument: &types.IndexDocument{Suffix: aws.String("index.html")}}})
			return err
		}, op: "PutBucketWebsite", body: true, checks: ck("s3:PutBucketWebsite", bk)},
		{name: "DeleteBucketWebsite", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.DeleteBucketWebsite(ctx, &s3.DeleteBucketWebsiteInput{Bucket: b})
			return err
		}, op: "DeleteBucketWebsite", checks: ck("s3:DeleteBucketWebsite", bk)},
		{name: "PutBucketLogging", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutBucketLogging(ctx, &s3.PutBucketLoggingInput{Bucket: b, BucketLoggingStatus: &types.BucketLoggingStatus{}})
			return err
		}, op: "PutBucketLogging", body: true, checks: ck("s3:PutBucketLogging", bk)},
		{name: "PutBucketNotificationConfiguration", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: b, NotificationConfiguration: &types.NotificationConfiguration{}})
			return err
		}, op: "PutBucketNotificationConfiguration", body: true, checks: ck("s3:PutBucketNotification", bk)},
		{name: "PutBucketReplication", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: b, ReplicationConfiguration: &types.ReplicationConfiguration{
				Role:  aws.String("arn:aws:iam::111122223333:role/replicator"),
				Rules: []types.ReplicationRule{{Status: types.ReplicationRuleStatusEnabled, Destination: &types.Destination{Bucket: aws.String("arn:aws:s3:::backup")}}}}})
			return err
		}, op: "PutBucketReplication", body: true, checks: ck("s3:PutReplicationConfiguration", bk, "iam:PassRole", "arn:aws:iam::111122223333:role/replicator")},
		{name: "DeleteBucketReplication", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.DeleteBucketReplication(ctx, &s3.DeleteBucketReplicationInput{Bucket: b})
			return err
		}, op: "DeleteBucketReplication", checks: ck("s3:PutReplicationConfiguration", bk)},
		{name: "PutBucketAccelerateConfiguration", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutBucketAccelerateConfiguration(ctx, &s3.PutBucketAccelerateConfigurationInput{Bucket: b, AccelerateConfiguration: &types.AccelerateConfiguration{Status: types.BucketAccelerateStatusSuspended}})
			return err
		}, op: "PutBucketAccelerateConfiguration", body: true, checks: ck("s3:PutAccelerateConfiguration", bk)},
		{name: "PutBucketRequestPayment", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutBucketRequestPayment(ctx, &s3.PutBucketRequestPaymentInput{Bucket: b, RequestPaymentConfiguration: &types.RequestPaymentConfiguration{Payer: types.PayerBucketOwner}})
			return err
		}, op: "PutBucketRequestPayment", body: true, checks: ck("s3:PutBucketRequestPayment", bk)},
		{name: "GetBucketAnalyticsConfiguration", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.GetBucketAnalyticsConfiguration(ctx, &s3.GetBucketAnalyticsConfigurationInput{Bucket: b, Id: aws.String("x")})
			return err
		}, op: "GetBucketAnalyticsConfiguration", checks: ck("s3:GetAnalyticsConfiguration", bk)},
		{name: "ListBucketAnalyticsConfigurations", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.ListBucketAnalyticsConfigurations(ctx, &s3.ListBucketAnalyticsConfigurationsInput{Bucket: b, ContinuationToken: aws.String("t")})
			return err
		}, op: "ListBucketAnalyticsConfigurations", checks: ck("s3:GetAnalyticsConfiguration", bk)},
		{name: "PutBucketMetricsConfiguration", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutBucketMetricsConfiguration(ctx, &s3.PutBucketMetricsConfigurationInput{Bucket: b, Id: aws.String("m"), MetricsConfiguration: &types.MetricsConfiguration{Id: aws.String("m")}})
			return err
		}, op: "PutBucketMetricsConfiguration", body: true, checks: ck("s3:PutMetricsConfiguration", bk)},
		{name: "DeleteBucketInventoryConfiguration", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.DeleteBucketInventoryConfiguration(ctx, &s3.DeleteBucketInventoryConfigurationInput{Bucket: b, Id: aws.String("i")})
			return err
		}, op: "DeleteBucketInventoryConfiguration", checks: ck("s3:PutInventoryConfiguration", bk)},
		{name: "ListBucketIntelligentTieringConfigurations", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.ListBucketIntelligentTieringConfigurations(ctx, &s3.ListBucketIntelligentTieringConfigurationsInput{Bucket: b})
			return err
		}, op: "ListBucketIntelligentTieringConfigurations", checks: ck("s3:GetIntelligentTieringConfiguration", bk)},
		{name: "PutObjectRetention", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: b, Key: k, Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeGovernance}})
			return err
		}, op: "PutObjectRetention", key: key, body: true, checks: ck("s3:PutObjectRetention", obj(key)), params: map[string]string{"object_lock_mode": "GOVERNANCE"}},
		{name: "PutObjectRetention bypass", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: b, Key: k, VersionId: aws.String("v1"), BypassGovernanceRetention: aws.Bool(true),
				Retention: &types.ObjectLockRetention{Mode: types.ObjectLockRetentionModeGovernance}})
			return err
		}, op: "PutObjectRetention", key: key, body: true, checks: ck("s3:PutObjectRetention", obj(key), "s3:BypassGovernanceRetention", obj(key))},
		{name: "PutObjectLegalHold", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.PutObjectLegalHold(ctx, &s3.PutObjectLegalHoldInput{Bucket: b, Key: k, LegalHold: &types.ObjectLockLegalHold{Status: types.ObjectLockLegalHoldStatusOn}})
			return err
		}, op: "PutObjectLegalHold", key: key, body: true, checks: ck("s3:PutObjectLegalHold", obj(key)), params: map[string]string{"object_lock_legal_hold": "ON"}},
		{name: "RestoreObject", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.RestoreObject(ctx, &s3.RestoreObjectInput{Bucket: b, Key: k, RestoreRequest: &types.RestoreRequest{Days: aws.Int32(1)}})
			return err
		}, op: "RestoreObject", key: key, checks: ck("s3:RestoreObject", obj(key))},
		{name: "GetObjectTorrent", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.GetObjectTorrent(ctx, &s3.GetObjectTorrentInput{Bucket: b, Key: k})
			return err
		}, op: "GetObjectTorrent", key: key, checks: ck("s3:GetObjectTorrent", obj(key))},

		// Refused whatever the grant says.
		{name: "CreateBucketMetadataTableConfiguration", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.CreateBucketMetadataTableConfiguration(ctx, &s3.CreateBucketMetadataTableConfigurationInput{Bucket: b, MetadataTableConfiguration: &types.MetadataTableConfiguration{
				S3TablesDestination: &types.S3TablesDestination{TableBucketArn: aws.String("arn:aws:s3tables:us-east-1:111122223333:bucket/t"), TableName: aws.String("t")}}})
			return err
		}, denied: s3err.AccessDenied},
		{name: "CreateSession", call: func(ctx context.Context, c *s3.Client) error {
			_, err := c.CreateSession(ctx, &s3.CreateSessionInput{Bucket: b})
			return err
		}, denied: s3err.AccessDenied},
	}
}

// TestSDKRequests sends every operation through a real s3.Client, path-style
// and virtual-hosted, and maps what the loopback server received.
func TestSDKRequests(t *testing.T) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	m := &s3iam.Mapper{Hosts: []string{"s3.test"}}
	for _, style := range []string{"path", "virtual"} {
		c := sdkClient(t, srv, style == "path")
		for _, tc := range sdkCases() {
			t.Run(style+"/"+tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = tc.call(ctx, c) // the empty answers need not parse
				got := rec.take()
				if got == nil {
					t.Fatal("the SDK sent no request")
				}
				if style == "virtual" && tc.op != "ListBuckets" && !strings.HasPrefix(got.req.Host, bkt+".") {
					t.Fatalf("expected a virtual-hosted request, host %q", got.req.Host)
				}
				op, err := m.Map(got.req)
				if tc.denied != "" {
					assertCode(t, err, tc.denied)
					if !strings.Contains(err.Error(), "(") {
						t.Errorf("refusal %q does not name the request", err)
					}
					return
				}
				if err != nil {
					t.Fatalf("Map(%s %s host %s): %v", got.req.Method, got.req.URL.RequestURI(), got.req.Host, err)
				}
				if op.Name != tc.op {
					t.Errorf("op %q, want %q (%s %s)", op.Name, tc.op, got.req.Method, got.req.URL.RequestURI())
				}
				if tc.op != "ListBuckets" && op.Bucket != bkt {
					t.Errorf("bucket %q, want %q", op.Bucket, bkt)
				}
				if op.Key != tc.key {
					t.Errorf("key %q, want %q", op.Key, tc.key)
				}
				if tc.body {
					if !op.NeedsBody {
						t.Fatalf("%s does not ask for its body", op.Name)
					}
					if err := op.AddBodyChecks(got.body); err != nil {
						t.Fatalf("AddBodyChecks(%s): %v", got.body, err)
					}
				}
				if !slices.Equal(op.Checks, tc.checks) {
					t.Errorf("checks\n got %v\nwant %v\n(%s %s)", op.Checks, tc.checks, got.req.Method, got.req.URL.RequestURI())
				}
				for k, v := range tc.params {
					if op.Params[k] != v {
						t.Errorf("Params[%q] = %q, want %q (all: %v)", k, op.Params[k], v, op.Params)
					}
				}
				if op.Key != "" && op.UpstreamPath() != "/"+bkt+"/"+s3iam.EscapeKey(op.Key) {
					t.Errorf("UpstreamPath %q", op.UpstreamPath())
				}
			})
		}
	}
}

func assertCode(t *testing.T, err error, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	e, ok := err.(*s3err.Error)
	if !ok {
		t.Fatalf("error %v is %T, not *s3err.Error", err, err)
	}
	if e.Code != code {
		t.Fatalf("error %v, want code %s", err, code)
	}
}
