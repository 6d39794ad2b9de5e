package awsgw

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// failEnv is a gateway in front of versitygw, through a tap that tells how
// the gateway ended each upstream connection, and a client that talks to
// versitygw directly to seed and read back objects.
type failEnv struct {
	*env
	tap    *tap
	direct *s3.Client
	g      *gateway.Grant
}

func newFailEnv(t *testing.T) *failEnv {
	t.Helper()
	vg := testenv.Versity(t)
	tp := newTap(t, strings.TrimPrefix(vg.URL, "http://"))
	e := newEnv(t, func(o *Options) {
		o.Targets[0].Endpoint = "http://" + tp.addr()
		o.Targets[0].AccessKeyID, o.Targets[0].SecretAccessKey = vg.AccessKeyID, vg.SecretAccessKey
	})
	direct := s3.New(s3.Options{Region: testRegion, BaseEndpoint: aws.String(vg.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(vg.AccessKeyID, vg.SecretAccessKey, "")})
	if _, err := direct.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("logs")}); err != nil {
		t.Fatalf("CreateBucket on versitygw: %v", errCode(err))
	}
	return &failEnv{env: e, tap: tp, direct: direct, g: e.grant("s3:PutObject,s3:GetObject arn:aws:s3:::logs/app/*")}
}

func (f *failEnv) putDirect(t *testing.T, key string, b []byte) {
	t.Helper()
	if _, err := f.direct.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String(key), Body: bytes.NewReader(b)}); err != nil {
		t.Fatalf("seeding %s: %v", key, errCode(err))
	}
}

func (f *failEnv) getDirect(t *testing.T, key string) []byte {
	t.Helper()
	out, err := f.direct.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObject %s from versitygw: %v", key, errCode(err))
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("reading %s from versitygw: %v", key, err)
	}
	return b
}

// signedUpload is a PUT of key to the gateway, signed for payload mode
// payload (a hex digest or one of the named modes); its body is set by
// the caller, its Content-Length is length.
func (f *failEnv) signedUpload(t *testing.T, key, payload string, length int64, hdr map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, f.srv.URL+"/logs/"+key, http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	req.Header.Set("X-Amz-Content-Sha256", payload)
	creds := aws.Credentials{AccessKeyID: f.g.CredentialID, SecretAccessKey: f.g.Secret, SessionToken: f.g.SessionToken}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, payload, "s3", testRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
	return req
}

// rawClient sends req's head and then body bytes over a plain TCP
// connection, so a test can stop in the middle of a body.
type rawClient struct {
	conn *net.TCPConn
	br   *bufio.Reader
}

func (f *failEnv) dialRaw(t *testing.T, req *http.Request) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", f.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var head strings.Builder
	fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", req.Method, req.URL.RequestURI(), req.URL.Host, req.ContentLength)
	_ = req.Header.Write(&head)
	head.WriteString("\r\n")
	if _, err := io.WriteString(c, head.String()); err != nil {
		t.Fatal(err)
	}
	return &rawClient{conn: c.(*net.TCPConn), br: bufio.NewReader(c)}
}

// response reads the answer to the request sent, or fails the test.
func (rc *rawClient) response(t *testing.T) (int, s3Error) {
	t.Helper()
	_ = rc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(rc.br, nil)
	if err != nil {
		t.Fatalf("no readable answer: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	return resp.StatusCode, parseErr(t, b)
}

// chunkSigner computes aws-chunked chunk signatures for a request signed
// with the grant's secret (the algorithm of AWS's sigv4-streaming page).
type chunkSigner struct {
	key          []byte
	date, scope  string
	prev         string
	emptyPayload string
}

func newChunkSigner(req *http.Request, secret string) *chunkSigner {
	amzDate := req.Header.Get("X-Amz-Date")
	day := amzDate[:8]
	mac := func(k []byte, s string) []byte {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(s))
		return m.Sum(nil)
	}
	key := mac(mac(mac(mac([]byte("AWS4"+secret), day), testRegion), "s3"), "aws4_request")
	authz := req.Header.Get("Authorization")
	empty := sha256.Sum256(nil)
	return &chunkSigner{key: key, date: amzDate, scope: day + "/" + testRegion + "/s3/aws4_request",
		prev: authz[len(authz)-64:], emptyPayload: hex.EncodeToString(empty[:])}
}

func (s *chunkSigner) chunk(data []byte) string {
	sum := sha256.Sum256(data)
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("AWS4-HMAC-SHA256-PAYLOAD\n" + s.date + "\n" + s.scope + "\n" + s.prev + "\n" + s.emptyPayload + "\n" + hex.EncodeToString(sum[:])))
	s.prev = hex.EncodeToString(m.Sum(nil))
	return s.prev
}

// awsChunked frames data in chunks of size, signed by s if not nil;
// badSig names a chunk (1-based) whose signature is corrupted; trailer,
// if not empty, follows the final chunk.
func awsChunked(s *chunkSigner, data []byte, size, badSig int, trailer string) []byte {
	var out bytes.Buffer
	emit := func(i int, c []byte) {
		fmt.Fprintf(&out, "%x", len(c))
		if s != nil {
			sig := s.chunk(c)
			if i == badSig {
				sig = strings.Repeat("0", 64)
			}
			out.WriteString(";chunk-signature=" + sig)
		}
		out.WriteString("\r\n")
		if len(c) > 0 {
			out.Write(c)
			out.WriteString("\r\n")
		}
	}
	i := 1
	for ; len(data) > 0; i++ {
		n := min(size, len(data))
		emit(i, data[:n])
		data = data[n:]
	}
	emit(i, nil)
	out.WriteString(trailer)
	out.WriteString("\r\n")
	return out.Bytes()
}

// encodedLength is the length of awsChunked's output, for signing before
// the chunk signatures are known.
func encodedLength(signed bool, n, size int, trailer string) int64 {
	var s *chunkSigner
	if signed {
		s = &chunkSigner{}
	}
	return int64(len(awsChunked(s, make([]byte, n), size, 0, trailer)))
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7+i/253)
	}
	return b
}

// TestVersityFailedUploadKeepsObject proves, against versitygw, that an
// upload that fails for any reason reaches the upstream as an aborted
// request (a reset connection, never a clean end of the body), so the
// object it would have replaced is intact, and that the client gets an S3
// error it can read whenever it is still there to read one.
func TestVersityFailedUploadKeepsObject(t *testing.T) {
	f := newFailEnv(t)
	const size = 300_000
	for _, tc := range []struct {
		name string
		// run sends the failing upload of key and checks the client's view.
		run func(t *testing.T, key string)
	}{
		{"unsigned-client-disconnects", func(t *testing.T, key string) {
			rc := f.dialRaw(t, f.signedUpload(t, key, "UNSIGNED-PAYLOAD", size, nil))
			if _, err := rc.conn.Write(pattern(size/2, 1)); err != nil {
				t.Fatal(err)
			}
			f.tap.waitForwarded(t, size/4)
			rc.conn.Close()
		}},
		{"unsigned-content-length-short", func(t *testing.T, key string) {
			rc := f.dialRaw(t, f.signedUpload(t, key, "UNSIGNED-PAYLOAD", size, nil))
			if _, err := rc.conn.Write(pattern(size/2, 2)); err != nil {
				t.Fatal(err)
			}
			f.tap.waitForwarded(t, size/4)
			_ = rc.conn.CloseWrite()
			if st, er := rc.response(t); st != 400 || er.Code != "IncompleteBody" {
				t.Fatalf("short body answered %d %+v", st, er)
			}
		}},
		{"sha256-mismatch", func(t *testing.T, key string) {
			body := pattern(size, 3)
			other := sha256.Sum256([]byte("something else"))
			req := f.signedUpload(t, key, hex.EncodeToString(other[:]), size, nil)
			rc := f.dialRaw(t, req)
			if _, err := rc.conn.Write(body); err != nil {
				t.Fatal(err)
			}
			if st, er := rc.response(t); st != 400 || er.Code != "XAmzContentSHA256Mismatch" {
				t.Fatalf("digest mismatch answered %d %+v", st, er)
			}
		}},
		{"streaming-signed-bad-second-chunk", func(t *testing.T, key string) {
			data := pattern(size, 4)
			const chunk = 64 << 10
			hdr := map[string]string{"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": strconv.Itoa(size)}
			req := f.signedUpload(t, key, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", encodedLength(true, size, chunk, ""), hdr)
			body := awsChunked(newChunkSigner(req, f.g.Secret), data, chunk, 2, "")
			rc := f.dialRaw(t, req)
			if _, err := rc.conn.Write(body); err != nil {
				t.Fatal(err)
			}
			if st, er := rc.response(t); st != 403 || er.Code != "SignatureDoesNotMatch" {
				t.Fatalf("bad chunk signature answered %d %+v", st, er)
			}
		}},
		{"streaming-trailer-bad-checksum", func(t *testing.T, key string) {
			data := pattern(size, 5)
			const chunk = 64 << 10
			trailer := "x-amz-checksum-crc32:AAAAAA==\r\n"
			hdr := map[string]string{"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": strconv.Itoa(size),
				"X-Amz-Trailer": "x-amz-checksum-crc32", "X-Amz-Sdk-Checksum-Algorithm": "CRC32"}
			req := f.signedUpload(t, key, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", encodedLength(false, size, chunk, trailer), hdr)
			rc := f.dialRaw(t, req)
			if _, err := rc.conn.Write(awsChunked(nil, data, chunk, 0, trailer)); err != nil {
				t.Fatal(err)
			}
			if st, er := rc.response(t); st != 400 || er.Code != "BadDigest" {
				t.Fatalf("bad trailing checksum answered %d %+v", st, er)
			}
		}},
		{"big-upload-bad-first-chunk", func(t *testing.T, key string) {
			// A client that sends its whole body before it reads the
			// answer (as many do) must still get to read it.
			const big, chunk = 5 << 20, 64 << 10
			data := pattern(big, 7)
			hdr := map[string]string{"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": strconv.Itoa(big)}
			req := f.signedUpload(t, key, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", encodedLength(true, big, chunk, ""), hdr)
			body := awsChunked(newChunkSigner(req, f.g.Secret), data, chunk, 1, "")
			rc := f.dialRaw(t, req)
			_ = rc.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := rc.conn.Write(body); err != nil {
				t.Fatalf("the gateway stopped taking the body before answering: %v", err)
			}
			if st, er := rc.response(t); st != 403 || er.Code != "SignatureDoesNotMatch" {
				t.Fatalf("bad first chunk answered %d %+v", st, er)
			}
		}},
		{"grant-ends-mid-upload", func(t *testing.T, key string) {
			g := f.grant("s3:PutObject arn:aws:s3:::logs/app/*")
			saved := f.g
			f.g = g
			defer func() { f.g = saved }()
			rc := f.dialRaw(t, f.signedUpload(t, key, "UNSIGNED-PAYLOAD", size, nil))
			if _, err := rc.conn.Write(pattern(size/2, 6)); err != nil {
				t.Fatal(err)
			}
			f.tap.waitForwarded(t, size/4)
			f.auth.End(g, "revoked")
			if st, er := rc.response(t); st != 403 || er.Code != "AccessDenied" {
				t.Fatalf("upload cut by a revoke answered %d %+v", st, er)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "app/victim-" + tc.name
			orig := []byte(strings.Repeat("the object as it was before the failed upload\n", 100))
			f.putDirect(t, key, orig)
			f.tap.settle(t, 0)
			f.tap.fwd.Store(0)

			tc.run(t, key)

			hows := f.tap.settle(t, 1)
			for _, how := range hows {
				if how != "reset" {
					t.Errorf("the gateway ended its upstream connection with %q, not a reset", how)
				}
			}
			if got := f.getDirect(t, key); !bytes.Equal(got, orig) {
				t.Fatalf("the failed upload replaced the object: now %d bytes, was %d", len(got), len(orig))
			}
		})
	}
}

// TestVersityUploadPartBadChecksumAnswered: a 5 MiB UploadPart whose
// checksum does not match is answered with BadDigest, an error the SDK
// can read (not a connection reset), and no part is stored.
func TestVersityUploadPartBadChecksumAnswered(t *testing.T) {
	f := newFailEnv(t)
	cl := f.client(f.g)
	ctx := context.Background()
	key := "app/parts.bin"
	mp, err := cl.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("logs"), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("CreateMultipartUpload: %v", errCode(err))
	}
	wrong := "AAAAAA==" // the CRC32 of something else
	_, err = cl.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("logs"), Key: aws.String(key), UploadId: mp.UploadId,
		PartNumber: aws.Int32(1), Body: bytes.NewReader(pattern(5<<20, 8)), ChecksumCRC32: aws.String(wrong)})
	if got := errCode(err); !strings.HasPrefix(got, "BadDigest: ") {
		t.Fatalf("UploadPart with a wrong checksum: %q", got)
	}
	parts, err := f.direct.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("logs"), Key: aws.String(key), UploadId: mp.UploadId})
	if err != nil {
		t.Fatalf("ListParts on versitygw: %v", errCode(err))
	}
	if len(parts.Parts) != 0 {
		t.Fatalf("the refused part was stored: %+v", parts.Parts[0])
	}
}

// An aws-chunked upload of no data still carries a final chunk (signed,
// in the signed modes) and maybe a trailing checksum: the upstream is sent
// no body at all, so the gateway must check those before it forwards the
// upload, or a failed empty upload would replace the object with nothing.
func TestVersityFailedEmptyUploadKeepsObject(t *testing.T) {
	f := newFailEnv(t)
	signed := func(t *testing.T, key string, badSig int, data []byte) (*http.Request, []byte) {
		hdr := map[string]string{"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": "0"}
		req := f.signedUpload(t, key, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", encodedLength(true, len(data), 8192, ""), hdr)
		return req, awsChunked(newChunkSigner(req, f.g.Secret), data, 8192, badSig, "")
	}
	trailed := func(t *testing.T, key, sum string) (*http.Request, []byte) {
		trailer := "x-amz-checksum-crc32:" + sum + "\r\n"
		hdr := map[string]string{"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": "0",
			"X-Amz-Trailer": "x-amz-checksum-crc32", "X-Amz-Sdk-Checksum-Algorithm": "CRC32"}
		req := f.signedUpload(t, key, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", encodedLength(false, 0, 8192, trailer), hdr)
		return req, awsChunked(nil, nil, 8192, 0, trailer)
	}
	for _, tc := range []struct {
		name string
		make func(t *testing.T, key string) (*http.Request, []byte)
		code string // "" for a success, which empties the object
	}{
		{"signed-bad-final-chunk", func(t *testing.T, key string) (*http.Request, []byte) { return signed(t, key, 1, nil) }, "SignatureDoesNotMatch"},
		{"signed-data-beyond-declared", func(t *testing.T, key string) (*http.Request, []byte) { return signed(t, key, 0, []byte("extra")) }, "IncompleteBody"},
		{"trailer-bad-checksum", func(t *testing.T, key string) (*http.Request, []byte) { return trailed(t, key, "AAAAAQ==") }, "BadDigest"},
		{"signed-good", func(t *testing.T, key string) (*http.Request, []byte) { return signed(t, key, 0, nil) }, ""},
		{"trailer-good", func(t *testing.T, key string) (*http.Request, []byte) { return trailed(t, key, "AAAAAA==") }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key := "app/empty-" + tc.name
			orig := []byte("the object as it was before the upload\n")
			f.putDirect(t, key, orig)
			req, body := tc.make(t, key)
			rc := f.dialRaw(t, req)
			if _, err := rc.conn.Write(body); err != nil {
				t.Fatal(err)
			}
			if tc.code == "" {
				_ = rc.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				resp, err := http.ReadResponse(rc.br, nil)
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("a well-formed empty upload: %v %v", resp, err)
				}
				if got := f.getDirect(t, key); len(got) != 0 {
					t.Fatalf("the object holds %d bytes after an empty upload", len(got))
				}
				return
			}
			if st, er := rc.response(t); er.Code != tc.code {
				t.Fatalf("answered %d %+v, want %s", st, er, tc.code)
			}
			if got := f.getDirect(t, key); !bytes.Equal(got, orig) {
				t.Fatalf("the failed upload replaced the object: now %d bytes, was %d", len(got), len(orig))
			}
		})
	}
}
