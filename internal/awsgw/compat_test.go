package awsgw

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"encoding/xml"
	"hash/crc32"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// The clients of issue 10's "must work unchanged" list, against versitygw
// through the gateway.

const compatScope = "s3:GetObject,s3:PutObject,s3:ListBucket,s3:AbortMultipartUpload,s3:ListMultipartUploadParts arn:aws:s3:::logs/app/*"

func crc32b64(b []byte) string {
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.ChecksumIEEE(b))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// fetch sends a request and returns status, body and the S3 error if any.
func fetch(t *testing.T, method, url string, body []byte, hdr http.Header) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req.Body = http.NoBody
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return resp.StatusCode, b, resp.Header
}

// Go SDK v2: its presigner hoists X-Amz-Checksum-Mode (and, for a put, the
// checksum headers) into the query; the first version answered 501.
func TestPresignGoSDK(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant(compatScope)
	ps := s3.NewPresignClient(e.client(g))
	ctx := context.Background()
	body := []byte("presigned by the Go SDK v2\n")

	put, err := ps.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/go-presigned.txt"),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32, ChecksumCRC32: aws.String(crc32b64(body))})
	if err != nil {
		t.Fatal(err)
	}
	if st, b, _ := fetch(t, put.Method, put.URL, body, put.SignedHeader); st != 200 {
		t.Fatalf("presigned PUT %s: %d %s", put.URL, st, b)
	}
	// The same URL with another body: the checksum in the query is
	// verified, as S3 does.
	if st, b, _ := fetch(t, put.Method, put.URL, []byte("something else entirely\n"), put.SignedHeader); st != 400 || !bytes.Contains(b, []byte("<Code>BadDigest</Code>")) {
		t.Fatalf("presigned PUT with a body that fails its checksum: %d %s", st, b)
	}

	get, err := ps.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/go-presigned.txt"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(get.URL, "X-Amz-Checksum-Mode=ENABLED") && !strings.Contains(get.URL, "x-amz-checksum-mode=ENABLED") {
		t.Fatalf("the SDK did not put the checksum mode in the URL this test is about: %s", get.URL)
	}
	st, b, h := fetch(t, get.Method, get.URL, nil, get.SignedHeader)
	if st != 200 || !bytes.Equal(b, body) {
		t.Fatalf("presigned GET: %d %s", st, b)
	}
	// The mode reached the upstream as a header: it answered with the
	// stored checksum.
	if got := h.Get("x-amz-checksum-crc32"); got != crc32b64(body) {
		t.Fatalf("x-amz-checksum-crc32 = %q, want %q (headers %v)", got, crc32b64(body), h)
	}

	// Outside the grant, presigned or not.
	out, err := ps.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("secret.txt"), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		t.Fatal(err)
	}
	if st, b, _ := fetch(t, out.Method, out.URL, nil, out.SignedHeader); st != 403 || !bytes.Contains(b, []byte("outside grant")) {
		t.Fatalf("presigned GET outside the grant: %d %s", st, b)
	}
}

// A hoisted header is authorized as the header it stands for.
func TestPresignHoistedHeaderAuthorized(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant(compatScope)
	ps := s3.NewPresignClient(e.client(g))
	put, err := ps.PresignPutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/tagged.txt"), Tagging: aws.String("a=b")},
		func(o *s3.PresignOptions) {
			o.Presigner = hoistAll{o.Presigner}
		})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.ToLower(put.URL), "x-amz-tagging=") {
		t.Fatalf("x-amz-tagging is not in the query: %s", put.URL)
	}
	st, b, _ := fetch(t, put.Method, put.URL, []byte("x"), put.SignedHeader)
	if st != 403 || !bytes.Contains(b, []byte("s3:PutObjectTagging")) {
		t.Fatalf("a presigned PUT with x-amz-tagging in the query, without s3:PutObjectTagging: %d %s", st, b)
	}
}

// A presigned URL's x-amz-* query parameters stand for headers and go
// upstream as such. One whose name or value is not a header's (CR, LF, a
// space, a colon, a control character) can never be sent as one: it is
// refused before anything is recorded as allowed or forwarded, rather
// than passed to the upstream request, where only the HTTP client's own
// validation stood between it and a header spliced into that request
// (here x-amz-copy-source, copying an object outside the grant).
func TestPresignHoistedParameterMustBeAHeader(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant("s3:GetObject,s3:PutObject arn:aws:s3:::logs/app/*")
	creds := aws.Credentials{AccessKeyID: g.CredentialID, SecretAccessKey: g.Secret, SessionToken: g.SessionToken}
	for _, q := range []string{
		"x-amz-meta-a%0D%0Ax-amz-copy-source=logs%2Fsecret.txt",        // CRLF in the name
		"x-amz-meta-a=b%0D%0Ax-amz-copy-source%3A%20logs%2Fsecret.txt", // CRLF in the value
		"x-amz-copy-source%20=logs%2Fsecret.txt",                       // a space in the name
		"x-amz-meta-a%3Ab=c",                                           // a colon in the name
		"x-amz-meta-a=b%00c",                                           // NUL in the value
	} {
		for _, method := range []string{http.MethodPut, http.MethodGet} {
			req, err := http.NewRequest(method, e.srv.URL+"/logs/app/x", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.RawQuery = q + "&X-Amz-Expires=900"
			u, _, err := v4.NewSigner().PresignHTTP(context.Background(), creds, req, "UNSIGNED-PAYLOAD", "s3", testRegion, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			var body *strings.Reader
			if method == http.MethodPut {
				body = strings.NewReader("data")
			} else {
				body = strings.NewReader("")
			}
			r, err := http.NewRequest(method, u, body)
			if err != nil {
				t.Fatal(err)
			}
			st, b := do(t, r)
			if er := parseErr(t, b); st != http.StatusBadRequest || er.Code != "InvalidArgument" {
				t.Errorf("%s with %s: %d %+v", method, q, st, er)
			}
		}
	}
	for _, c := range e.auth.Calls(g.ID) {
		t.Errorf("recorded as a call of the grant: %+v", c)
	}
	if n := len(e.auth.Rejections()); n != 10 {
		t.Errorf("%d rejections recorded, want 10", n)
	}
	for _, rj := range e.auth.Rejections() {
		if strings.ContainsAny(rj.Reason, "\r\n\x00") {
			t.Errorf("a rejection's reason holds a control character: %q", rj.Reason)
		}
	}
	if l := e.logText(); strings.Contains(l, "upstream request failed") {
		t.Errorf("requests reached the upstream client: %s", l)
	}
}

// hoistAll presigns with every x-amz-* header moved into the query, as the
// JS SDK v3 does (the Go SDK keeps some, such as x-amz-tagging, as signed
// headers).
type hoistAll struct{ s3.HTTPPresignerV4 }

func (h hoistAll) PresignHTTP(ctx context.Context, creds aws.Credentials, r *http.Request, payloadHash, service, region string, at time.Time, optFns ...func(*v4.SignerOptions)) (string, http.Header, error) {
	q := r.URL.Query()
	for k, v := range r.Header {
		if strings.HasPrefix(strings.ToLower(k), "x-amz-") && !strings.EqualFold(k, "X-Amz-Content-Sha256") {
			q.Set(strings.ToLower(k), v[0])
			r.Header.Del(k)
		}
	}
	r.URL.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	return h.HTTPPresignerV4.PresignHTTP(ctx, creds, r, payloadHash, service, region, at, optFns...)
}

// CompleteMultipartUpload with the whole object's checksum, FULL_OBJECT
// and COMPOSITE: passed through for versitygw to verify (the first version
// checked it against the XML body: BadDigest). Its <Location> names the
// gateway.
func TestCompleteChecksumAndLocation(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant(compatScope)
	cl := e.client(g)
	ctx := context.Background()
	data := make([]byte, 5<<20+1000)
	_, _ = rand.Read(data)
	parts := [][]byte{data[:5<<20], data[5<<20:]}

	for _, ct := range []types.ChecksumType{types.ChecksumTypeFullObject, types.ChecksumTypeComposite} {
		t.Run(string(ct), func(t *testing.T) {
			key := "app/mp-" + strings.ToLower(string(ct)) + ".bin"
			upload := func() (*string, []types.CompletedPart) {
				mp, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String(key),
					ChecksumAlgorithm: types.ChecksumAlgorithmCrc32, ChecksumType: ct})
				if err != nil {
					t.Fatalf("CreateMultipartUpload: %v", errCode(err))
				}
				var done []types.CompletedPart
				for i, p := range parts {
					up, err := cl.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("logs"), Key: aws.String(key), UploadId: mp.UploadId,
						PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(p), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
					if err != nil {
						t.Fatalf("UploadPart %d: %v", i+1, errCode(err))
					}
					done = append(done, types.CompletedPart{ETag: up.ETag, PartNumber: aws.Int32(int32(i + 1)), ChecksumCRC32: up.ChecksumCRC32})
				}
				return mp.UploadId, done
			}
			// The object's checksum: the CRC32 of the whole data for
			// FULL_OBJECT; for COMPOSITE, the CRC32 of the parts' checksums
			// with the part count.
			whole := crc32b64(data)
			if ct == types.ChecksumTypeComposite {
				var cat []byte
				for _, p := range parts {
					var s [4]byte
					binary.BigEndian.PutUint32(s[:], crc32.ChecksumIEEE(p))
					cat = append(cat, s[:]...)
				}
				whole = crc32b64(cat) + "-2"
			}
			// A wrong object checksum is the upstream's to refuse.
			id, done := upload()
			_, err := cl.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String(key), UploadId: id,
				ChecksumCRC32: aws.String(crc32b64([]byte("not the object"))), ChecksumType: ct, MultipartUpload: &types.CompletedMultipartUpload{Parts: done}})
			if err == nil || !strings.Contains(errCode(err), "BadDigest") && !strings.Contains(errCode(err), "InvalidRequest") {
				t.Fatalf("Complete with a wrong object checksum: %v", errCode(err))
			}
			id, done = upload()
			if ct == types.ChecksumTypeComposite {
				whole = "" // versitygw computes COMPOSITE itself; the SDK sends none
			}
			in := &s3.CompleteMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String(key), UploadId: id,
				ChecksumType: ct, MultipartUpload: &types.CompletedMultipartUpload{Parts: done}}
			if whole != "" {
				in.ChecksumCRC32 = aws.String(whole)
			}
			out, err := cl.CompleteMultipartUpload(ctx, in)
			if err != nil {
				t.Fatalf("CompleteMultipartUpload (%s, crc32 %s): %v", ct, whole, errCode(err))
			}
			if loc := aws.ToString(out.Location); loc != e.srv.URL+"/logs/"+key {
				t.Fatalf("Location %q, want the gateway's %q", loc, e.srv.URL+"/logs/"+key)
			}
			got, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String(key)})
			if err != nil {
				t.Fatalf("GetObject: %v", errCode(err))
			}
			b, _ := io.ReadAll(got.Body)
			got.Body.Close()
			if !bytes.Equal(b, data) {
				t.Fatal("the completed object is not the data")
			}
		})
	}
}

func TestRewriteLocation(t *testing.T) {
	doc := []byte(`<?xml version="1.0"?><CompleteMultipartUploadResult><Location>http://10.0.0.7:7070/logs/app/x</Location><Bucket>logs</Bucket></CompleteMultipartUploadResult>`)
	got := string(rewriteLocation(doc, "https://gw.test/logs/app/a&b"))
	if got != `<?xml version="1.0"?><CompleteMultipartUploadResult><Location>https://gw.test/logs/app/a&amp;b</Location><Bucket>logs</Bucket></CompleteMultipartUploadResult>` {
		t.Fatal(got)
	}
	if string(rewriteLocation([]byte("<Error/>"), "x")) != "<Error/>" {
		t.Fatal("a document without Location changed")
	}
}

// Checksums in every algorithm the SDKs send: the gateway verifies what
// the standard library computes and forwards the xxHash family for the
// upstream to verify; a bad checksum is an S3 error, never a reset.
func TestChecksumAlgorithms(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant(compatScope)
	cl := e.client(g)
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 5<<16) // 5 MiB

	m := md5.Sum(data)
	s := sha512.Sum512(data)
	good := map[string]string{
		"X-Amz-Checksum-Sha512": base64.StdEncoding.EncodeToString(s[:]),
		"X-Amz-Checksum-Md5":    base64.StdEncoding.EncodeToString(m[:]),
	}
	// Raw requests with a wrong value, as an UploadPart of 5 MiB: an S3
	// error document, read in full, whoever found the fault.
	mp, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String("app/parts.bin")})
	if err != nil {
		t.Fatalf("CreateMultipartUpload: %v", errCode(err))
	}
	for _, tc := range []struct {
		header, value, by string
	}{
		{"X-Amz-Checksum-Sha512", base64.StdEncoding.EncodeToString(make([]byte, 64)), "gateway"},
		{"X-Amz-Checksum-Md5", base64.StdEncoding.EncodeToString(make([]byte, 16)), "gateway"},
		{"X-Amz-Checksum-Crc32", crc32b64(data[1:]), "gateway"},
		{"X-Amz-Checksum-Xxhash64", base64.StdEncoding.EncodeToString(make([]byte, 8)), "upstream"},
		{"X-Amz-Checksum-Xxhash3", base64.StdEncoding.EncodeToString(make([]byte, 8)), "upstream"},
		{"X-Amz-Checksum-Xxhash128", base64.StdEncoding.EncodeToString(make([]byte, 16)), "upstream"},
	} {
		t.Run(tc.header, func(t *testing.T) {
			for _, path := range []string{"/logs/app/bad-" + tc.header, "/logs/app/parts.bin?partNumber=1&uploadId=" + aws.ToString(mp.UploadId)} {
				req := e.signedChecksum(g, path, data, tc.header, tc.value)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("PUT %s: %v (a bad checksum must be answered, not reset)", path, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 400 || !bytes.Contains(b, []byte("<Code>BadDigest</Code>")) {
					t.Fatalf("PUT %s with a wrong %s: %d %s (%v)", path, tc.header, resp.StatusCode, b, err)
				}
			}
		})
	}
	// Refused before the body is read (a malformed value, a key outside
	// the grant): the answer still reaches a client that sends its 5 MiB
	// without waiting for 100-continue.
	for _, tc := range []struct{ path, header, value, code string }{
		{"/logs/app/malformed", "X-Amz-Checksum-Sha512", "AAAA", "InvalidRequest"},
		{"/logs/outside.bin", "X-Amz-Checksum-Crc32", crc32b64(data), "AccessDenied"},
	} {
		resp, err := http.DefaultClient.Do(e.signedChecksum(g, tc.path, data, tc.header, tc.value))
		if err != nil {
			t.Fatalf("PUT %s: %v (refused, but reset instead of answered)", tc.path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || !bytes.Contains(b, []byte("<Code>"+tc.code+"</Code>")) {
			t.Fatalf("PUT %s: %d %s (%v)", tc.path, resp.StatusCode, b, err)
		}
	}
	for h, v := range good {
		req := e.signedChecksum(g, "/logs/app/good-"+h, data, h, v)
		if st, b := do(t, req); st != 200 {
			t.Fatalf("PUT with a good %s: %d %s", h, st, b)
		}
	}
}

// signedChecksum is a PUT of body with a checksum header, signed like the
// SDK over plain HTTP.
func (e *env) signedChecksum(g *gateway.Grant, path string, body []byte, header, value string) *http.Request {
	e.t.Helper()
	req, err := http.NewRequest("PUT", e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set(header, value)
	sum := sha256.Sum256(body)
	hash := base16(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds := aws.Credentials{AccessKeyID: g.CredentialID, SecretAccessKey: g.Secret, SessionToken: g.SessionToken}
	if err := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }).SignHTTP(context.Background(), creds, req, hash, "s3", testRegion, time.Now()); err != nil {
		e.t.Fatal(err)
	}
	return req
}

func base16(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}

// A request signed for another region than the target's is refused as S3
// refuses it, naming the right region (which boto3 retries with).
func TestRegionMismatch(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant(compatScope)
	cl := s3.New(s3.Options{Region: "eu-west-1", BaseEndpoint: aws.String(e.srv.URL), UsePathStyle: true, RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(g.CredentialID, g.Secret, g.SessionToken)})
	_, err := cl.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/x")})
	if got := errCode(err); got != "AuthorizationHeaderMalformed: The authorization header is malformed; the region 'eu-west-1' is wrong; expecting 'us-east-1'" {
		t.Fatalf("header-signed for eu-west-1: %q", got)
	}
	ps := s3.NewPresignClient(cl)
	get, err := ps.PresignGetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/x")})
	if err != nil {
		t.Fatal(err)
	}
	st, b, _ := fetch(t, get.Method, get.URL, nil, get.SignedHeader)
	var doc struct{ Code, Message, Region string }
	_ = xml.Unmarshal(b, &doc)
	if st != 400 || doc.Code != "AuthorizationQueryParametersError" || doc.Region != "us-east-1" ||
		doc.Message != "Error parsing the X-Amz-Credential parameter; the region 'eu-west-1' is wrong; expecting 'us-east-1'" {
		t.Fatalf("presigned for eu-west-1: %d %s", st, b)
	}
}

// python runs a boto3 script with the grant's credentials and the
// gateway's address in its environment.
func python(t *testing.T, e *env, g *gateway.Grant, script string) string {
	t.Helper()
	py := testenv.Tool(t, "python3", "install it with: apt-get install python3-boto3")
	if err := exec.Command(py, "-c", "import boto3").Run(); err != nil {
		testenv.Tool(t, "boto3-missing", "install boto3 with: apt-get install python3-boto3")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-c", script)
	home := t.TempDir()
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"),
		"AWS_CONFIG_FILE=" + filepath.Join(home, "config"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_ACCESS_KEY_ID=" + g.CredentialID, "AWS_SECRET_ACCESS_KEY=" + g.Secret, "AWS_SESSION_TOKEN=" + g.SessionToken,
		"AWS_DEFAULT_REGION=" + testRegion, "AWS_EC2_METADATA_DISABLED=true", "GW=" + e.srv.URL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// boto3 reads metadata names from the response header names: through the
// gateway they must be S3's (lower case), not Go's X-Amz-Meta-Foo.
func TestBoto3Metadata(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant(compatScope)
	out := python(t, e, g, `
import os, boto3
s3 = boto3.client('s3', endpoint_url=os.environ['GW'])
s3.put_object(Bucket='logs', Key='app/meta.txt', Body=b'x', Metadata={'foo': 'bar', 'two-words': 'v'})
h = s3.head_object(Bucket='logs', Key='app/meta.txt')
print(sorted(h['Metadata'].items()))
`)
	if out != "[('foo', 'bar'), ('two-words', 'v')]" {
		t.Fatalf("boto3 Metadata = %s", out)
	}
}

// SigV2, from boto3 (presigned and header-signed) and s3cmd signurl: S3's
// answer, not "anonymous".
func TestSigV2Clients(t *testing.T) {
	e := newVersityEnv(t)
	g := e.grant(compatScope)
	const want = "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
	out := python(t, e, g, `
import os, boto3, botocore.config, urllib.request, urllib.error
s3 = boto3.client('s3', endpoint_url=os.environ['GW'], config=botocore.config.Config(signature_version='s3'))
url = s3.generate_presigned_url('get_object', Params={'Bucket': 'logs', 'Key': 'app/x'})
assert 'Signature=' in url and 'AWSAccessKeyId=' in url, url
try:
    urllib.request.urlopen(url)
    print('presigned: accepted')
except urllib.error.HTTPError as e:
    print('presigned:', e.code, e.read().decode().replace('\n', ' '))
try:
    s3.get_object(Bucket='logs', Key='app/x')
    print('header: accepted')
except botocore.exceptions.ClientError as e:
    print('header:', e.response['ResponseMetadata']['HTTPStatusCode'], e.response['Error']['Code'], e.response['Error']['Message'])
`)
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, " 400 ") || !strings.Contains(line, "InvalidRequest") || !strings.Contains(line, want) {
			t.Errorf("boto3 SigV2: %s", line)
		}
	}
	if !strings.Contains(out, "presigned:") || !strings.Contains(out, "header:") {
		t.Fatalf("boto3 output: %s", out)
	}

	s3cmd := testenv.Tool(t, "s3cmd", "install it with: apt-get install s3cmd")
	home := t.TempDir()
	cfg := filepath.Join(home, "s3cfg")
	host := strings.TrimPrefix(e.srv.URL, "http://")
	if err := os.WriteFile(cfg, []byte("[default]\naccess_key = "+g.CredentialID+"\nsecret_key = "+g.Secret+"\naccess_token = "+g.SessionToken+
		"\nhost_base = "+host+"\nhost_bucket = "+host+"\nuse_https = False\nsignature_v2 = False\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(s3cmd, "-c", cfg, "signurl", "s3://logs/app/x", "+600")
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH")}
	url, err := cmd.Output()
	if err != nil {
		t.Fatalf("s3cmd signurl: %v", err)
	}
	st, b, _ := fetch(t, "GET", strings.TrimSpace(string(url)), nil, nil)
	if st != 400 || !bytes.Contains(b, []byte("<Code>InvalidRequest</Code>")) || !bytes.Contains(b, []byte(want)) {
		t.Fatalf("s3cmd signurl %s: %d %s", url, st, b)
	}
}

// The AWS SDK for JavaScript v3 presigner (e2e/js, npm ci): its URLs carry
// X-Amz-Content-Sha256, x-amz-sdk-checksum-algorithm and
// x-amz-checksum-crc32 in the query; the first version answered 501.
func TestPresignJSSDK(t *testing.T) {
	node := testenv.Tool(t, "node", "install it with: apt-get install nodejs npm")
	dir, err := filepath.Abs("../../e2e/js")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@aws-sdk", "s3-request-presigner")); err != nil {
		testenv.Tool(t, "e2e/js/node_modules", "run: (cd e2e/js && npm ci)")
	}
	e := newVersityEnv(t)
	g := e.grant(compatScope)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "presign.mjs")
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"), "GW=" + e.srv.URL, "AWS_REGION=" + testRegion,
		"AWS_ACCESS_KEY_ID=" + g.CredentialID, "AWS_SECRET_ACCESS_KEY=" + g.Secret, "AWS_SESSION_TOKEN=" + g.SessionToken,
		"KEY=app/js-presigned.txt", "BODY=presigned by the JS SDK v3"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr // the SDK warns about Node versions there
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node presign.mjs: %v\n%s%s", err, out, stderr.Bytes())
	}
	steps := map[string]struct {
		Status int
		Body   string
		Params []string
	}{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var s struct {
			Step, Body string
			Status     int
			Params     []string
		}
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("node printed %q: %v", line, err)
		}
		steps[s.Step] = struct {
			Status int
			Body   string
			Params []string
		}{s.Status, s.Body, s.Params}
	}
	put := steps["put"]
	if put.Status != 200 {
		t.Fatalf("presigned PUT: %d %s (query %v)", put.Status, put.Body, put.Params)
	}
	for _, p := range []string{"X-Amz-Content-Sha256", "x-amz-checksum-crc32", "x-amz-sdk-checksum-algorithm"} {
		if !slices.Contains(put.Params, p) {
			t.Fatalf("the JS SDK's presigned PUT has no %s, which this test is about: %v", p, put.Params)
		}
	}
	if s := steps["put-other-body"]; s.Status != 400 || !strings.Contains(s.Body, "<Code>BadDigest</Code>") {
		t.Fatalf("presigned PUT with another body: %d %s", s.Status, s.Body)
	}
	if s := steps["get"]; s.Status != 200 || s.Body != "presigned by the JS SDK v3" {
		t.Fatalf("presigned GET: %d %s (query %v)", s.Status, s.Body, s.Params)
	}
}
