package awsgw

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/testenv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// versityBin finds versitygw, a real S3 server that verifies SigV4.
func versityBin(t *testing.T) string {
	t.Helper()
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, p := range []string{filepath.Join(gopath, "bin", "versitygw")} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	// Missing: skip locally, fail under CI (which installs it).
	return testenv.Tool(t, "versitygw", "install it with: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
}

// startVersity runs versitygw on a loopback port with a temporary posix
// root, with the gateway's upstream keys, and creates bucket "logs".
func startVersity(t *testing.T) string {
	t.Helper()
	bin := versityBin(t)
	addr := testenv.FreeAddr(t) // not :0 then closed: see FreeAddr
	root, side := t.TempDir(), t.TempDir()
	cmd := exec.Command(bin, "--access", upstreamAK, "--secret", upstreamSK, "--port", addr, "posix", "--sidecar", side, root)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting versitygw: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not start: %s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	url := "http://" + addr
	direct := s3.New(s3.Options{Region: testRegion, BaseEndpoint: aws.String(url), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(upstreamAK, upstreamSK, "")})
	if _, err := direct.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("logs")}); err != nil {
		t.Fatalf("CreateBucket on versitygw: %v (%s)", err, out.String())
	}
	if _, err := direct.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("secret.txt"), Body: strings.NewReader("top secret")}); err != nil {
		t.Fatalf("seeding versitygw: %v", err)
	}
	return url
}

func newVersityEnv(t *testing.T) *env {
	t.Helper()
	url := startVersity(t)
	return newEnv(t, func(o *Options) { o.Targets[0].Endpoint = url })
}

func TestVersitySDK(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant("s3:GetObject,s3:PutObject,s3:ListBucket,s3:DeleteObject,s3:AbortMultipartUpload arn:aws:s3:::logs/app/*")
	cl := e.client(g)
	ctx := context.Background()

	big := make([]byte, 8<<20+123)
	_, _ = rand.Read(big)
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/big.bin"), Body: bytes.NewReader(big)}); err != nil {
		t.Fatalf("PutObject: %v", errCode(err))
	}
	spliced := splicedBytes.Load()
	out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/big.bin")})
	if err != nil {
		t.Fatalf("GetObject: %v", errCode(err))
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil || sha256.Sum256(got) != sha256.Sum256(big) {
		t.Fatalf("GetObject returned %d bytes (err %v), not what was put", len(got), err)
	}
	if canSplice && splicedBytes.Load() == spliced {
		t.Fatal("none of the 8 MiB answer was spliced from versitygw's socket to the client's (splice.go)")
	}
	rng, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/big.bin"), Range: aws.String("bytes=10-19")})
	if err != nil {
		t.Fatalf("ranged GetObject: %v", errCode(err))
	}
	part, _ := io.ReadAll(rng.Body)
	rng.Body.Close()
	if !bytes.Equal(part, big[10:20]) {
		t.Fatal("ranged GetObject returned the wrong bytes")
	}
	if _, err := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/big.bin")}); err != nil {
		t.Fatalf("HeadObject: %v", errCode(err))
	}
	if _, err := cl.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/copy.bin"), CopySource: aws.String("logs/app/big.bin")}); err != nil {
		t.Fatalf("CopyObject within the prefix: %v", errCode(err))
	}
	// Multipart upload.
	mp, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String("app/mp.bin")})
	if err != nil {
		t.Fatalf("CreateMultipartUpload: %v", errCode(err))
	}
	var parts []types.CompletedPart
	for i, chunk := range [][]byte{big[:5<<20], big[5<<20:]} {
		up, err := cl.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("logs"), Key: aws.String("app/mp.bin"), UploadId: mp.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(chunk)})
		if err != nil {
			t.Fatalf("UploadPart %d: %v", i+1, errCode(err))
		}
		parts = append(parts, types.CompletedPart{ETag: up.ETag, PartNumber: aws.Int32(int32(i + 1))})
	}
	if _, err := cl.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String("app/mp.bin"), UploadId: mp.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
		t.Fatalf("CompleteMultipartUpload: %v", errCode(err))
	}
	lst, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("logs"), Prefix: aws.String("app/")})
	if err != nil {
		t.Fatalf("ListObjectsV2: %v", errCode(err))
	}
	var keys []string
	for _, o := range lst.Contents {
		keys = append(keys, *o.Key)
	}
	if strings.Join(keys, ",") != "app/big.bin,app/copy.bin,app/mp.bin" {
		t.Fatalf("listed %v", keys)
	}
	// Denied, and the upstream really has what the denial protects.
	_, err = cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("secret.txt")})
	if got := errCode(err); !strings.HasPrefix(got, "AccessDenied: s3:GetObject on arn:aws:s3:::logs/secret.txt is outside grant "+g.ID) {
		t.Fatalf("read outside the prefix: %q", got)
	}
	_, err = cl.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("logs"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{
		{Key: aws.String("app/copy.bin")}, {Key: aws.String("secret.txt")}}}})
	if got := errCode(err); !strings.HasPrefix(got, "AccessDenied") {
		t.Fatalf("mixed delete batch: %q", got)
	}
	if _, err := cl.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("logs"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{
		{Key: aws.String("app/copy.bin")}, {Key: aws.String("app/mp.bin")}}}}); err != nil {
		t.Fatalf("DeleteObjects: %v", errCode(err))
	}
	if _, err := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/mp.bin")}); err == nil {
		t.Fatal("app/mp.bin survived its deletion")
	}
	res := e.results(g, 1)
	if res[0].BytesIn != int64(len(big)) {
		t.Errorf("the put's result counts %d bytes in, want %d", res[0].BytesIn, len(big))
	}
}

func TestVersitySDKOverTLS(t *testing.T) {
	// Over TLS the SDK sends STREAMING-UNSIGNED-PAYLOAD-TRAILER with a
	// CRC32 trailer: the gateway verifies it, strips the framing and sends
	// the decoded body upstream.
	url := startVersity(t)
	e := newEnvTLS(t, true, func(o *Options) { o.Targets[0].Endpoint = url })
	g := e.grant(walkScope)
	cl := e.client(g)
	ctx := context.Background()
	body := bytes.Repeat([]byte("chunked "), 300000)
	var mode string
	h := e.srv.Config.Handler
	e.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			mode = r.Header.Get("X-Amz-Content-Sha256")
		}
		h.ServeHTTP(w, r)
	})
	// A reader the SDK cannot seek, so it checksums while streaming.
	unseekable := io.MultiReader(bytes.NewReader(body))
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/chunked.txt"), Body: unseekable, ContentLength: aws.Int64(int64(len(body))), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32}); err != nil {
		t.Fatalf("PutObject: %v", errCode(err))
	}
	if mode != "STREAMING-UNSIGNED-PAYLOAD-TRAILER" {
		t.Fatalf("the SDK used %q, not the trailer mode this test is about", mode)
	}
	// The verified checksum reached the upstream, which stores it: asked
	// directly, versitygw serves the CRC32 of the body.
	direct := s3.New(s3.Options{Region: testRegion, BaseEndpoint: aws.String(url), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(upstreamAK, upstreamSK, "")})
	head, err := direct.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/chunked.txt"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatalf("HeadObject upstream: %v", errCode(err))
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.ChecksumIEEE(body))
	if got, want := aws.ToString(head.ChecksumCRC32), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Fatalf("the upstream stored CRC32 %q, want %q", got, want)
	}
	out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/chunked.txt")})
	if err != nil {
		t.Fatalf("GetObject: %v", errCode(err))
	}
	got, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if !bytes.Equal(got, body) {
		t.Fatalf("read back %d bytes, want %d identical", len(got), len(body))
	}
}

// Keys and query values with characters that need escaping, through the
// gateway's re-signing, checked by an S3 implementation other than ours.
func TestVersityEscaping(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant("s3:GetObject,s3:PutObject,s3:ListBucket arn:aws:s3:::logs/app/*")
	cl := e.client(g)
	ctx := context.Background()
	keys := []string{"app/a b+c=d&e.txt", "app/ü/ñ~(x)!*'.txt", "app/100%/semi;colon,comma@at$.bin"}
	for _, k := range keys {
		if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
			t.Fatalf("PutObject %q: %v", k, errCode(err))
		}
		out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String(k), ResponseContentType: aws.String("text/plain; charset=utf-8")})
		if err != nil {
			t.Fatalf("GetObject %q: %v", k, errCode(err))
		}
		b, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if string(b) != k || aws.ToString(out.ContentType) != "text/plain; charset=utf-8" {
			t.Fatalf("GetObject %q: %q, content type %q", k, b, aws.ToString(out.ContentType))
		}
	}
	lst, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("logs"), Prefix: aws.String("app/ü/"), StartAfter: aws.String("app/ü/a b")})
	if err != nil {
		t.Fatalf("ListObjectsV2: %v", errCode(err))
	}
	if len(lst.Contents) != 1 || aws.ToString(lst.Contents[0].Key) != keys[1] {
		t.Fatalf("listed %d objects: %+v", len(lst.Contents), lst.Contents)
	}
}

// TestVersityResponseOverrideWithControlCharacter: GetObject's response-*
// overrides are echoed by the upstream as response headers. One with a
// control character made versitygw write a header section the gateway
// could not read, and the agent was told the upstream "did not answer;
// retry later" (a 503 the SDKs retry) for what is its own malformed
// request; CR and LF would be a header of the agent's making on servers
// that do not clean them. Refused before anything is forwarded.
func TestVersityResponseOverrideWithControlCharacter(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant("s3:GetObject,s3:PutObject arn:aws:s3:::logs/app/*")
	cl := e.client(g)
	ctx := context.Background()
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a.txt"), Body: strings.NewReader("hello")}); err != nil {
		t.Fatalf("PutObject: %v", errCode(err))
	}
	for _, in := range []*s3.GetObjectInput{
		{ResponseContentType: aws.String("text/plain\x00")},
		{ResponseContentDisposition: aws.String("attachment\x7f")},
		{ResponseCacheControl: aws.String("no-cache\r\nX-Injected: 1")},
	} {
		in.Bucket, in.Key = aws.String("logs"), aws.String("app/a.txt")
		_, err := cl.GetObject(ctx, in)
		if got := errCode(err); !strings.HasPrefix(got, "InvalidArgument: response-") {
			t.Errorf("GetObject with a control character in a response override: %q, want InvalidArgument", got)
		}
	}
	for _, c := range e.requests(g)[1:] {
		if c.Allowed {
			t.Errorf("a GetObject with a control character in a response override was forwarded: %+v", c)
		}
	}
	// A tab and UTF-8 are header text: still served.
	out, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a.txt"),
		ResponseContentDisposition: aws.String("attachment;\tfilename=\"café.txt\"")})
	if err != nil {
		t.Fatalf("GetObject with a tab and UTF-8 in a response override: %v", errCode(err))
	}
	out.Body.Close()
}
