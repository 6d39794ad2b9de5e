package sigv4

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// seen is one request as the test server verified it.
type seen struct {
	method, path string
	mode         PayloadMode
	checksum     string
	bytes        int64
	err          string
}

// fakeS3 verifies every request with sigv4 and answers like a minimal S3.
type fakeS3 struct {
	v    *Verifier
	mu   sync.Mutex
	seen []seen
	obj  []byte
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := seen{method: r.Method, path: r.URL.Path}
	defer func() {
		f.mu.Lock()
		f.seen = append(f.seen, s)
		f.mu.Unlock()
	}()
	a, err := f.v.Verify(r)
	if err != nil {
		s.err = err.Error()
		s3err.Write(w, r, s3err.As(err), "test")
		return
	}
	s.mode, s.checksum = a.Payload, a.Checksum
	n, err := io.Copy(io.Discard, a.Body(r.Body))
	s.bytes = n
	if err != nil {
		s.err = err.Error()
		s3err.Write(w, r, s3err.As(err), "test")
		return
	}
	switch {
	case r.Method == http.MethodPut:
		w.Header().Set("ETag", `"d41d8cd98f00b204e9800998ecf8427e"`)
		if a.Checksum != "" {
			// Echo the verified checksum, as S3 does, so the SDK is satisfied.
			v := r.Header.Get(a.Checksum)
			if v == "" {
				v = a.Trailer.Get(a.Checksum)
			}
			w.Header().Set(a.Checksum, v)
		}
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "2":
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>logs</Name><Prefix></Prefix><KeyCount>0</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated></ListBucketResult>`)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		w.Header().Set("ETag", `"abc"`)
		w.Header().Set("Content-Length", fmt.Sprint(len(f.obj)))
		w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		if r.Method == http.MethodGet {
			w.Write(f.obj)
		}
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (f *fakeS3) take() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.seen
	f.seen = nil
	return s
}

func newFakeS3(t *testing.T, tls bool) (*fakeS3, *httptest.Server) {
	t.Helper()
	f := &fakeS3{v: &Verifier{Lookup: testVerifier().Lookup, Region: testRegion, Service: "s3"}, obj: []byte("object body\n")}
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(f)
	} else {
		srv = httptest.NewServer(f)
	}
	t.Cleanup(srv.Close)
	return f, srv
}

// unseekable hides a reader's Seek so the SDK must stream it.
type unseekable struct{ io.Reader }

func TestSDKClientEndToEnd(t *testing.T) {
	data := payload(3 << 20)
	for _, tls := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[tls], func(t *testing.T) {
			f, srv := newFakeS3(t, tls)
			client := s3.New(s3.Options{
				Region:           testRegion,
				Credentials:      awscreds.NewStaticCredentialsProvider(testAK, testSecret, testToken),
				BaseEndpoint:     aws.String(srv.URL),
				UsePathStyle:     true,
				HTTPClient:       srv.Client(),
				RetryMaxAttempts: 1,
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			type step struct {
				name string
				run  func() error
			}
			steps := []step{
				{"PutObject", func() error {
					_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a b+c~/日本.bin"), Body: bytes.NewReader(data)})
					return err
				}},
				{"PutObject crc32", func() error {
					_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/crc32.bin"), Body: bytes.NewReader(data), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
					return err
				}},
				{"PutObject crc64nvme", func() error {
					_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/crc64.bin"), Body: bytes.NewReader(data), ChecksumAlgorithm: types.ChecksumAlgorithmCrc64nvme})
					return err
				}},
				{"PutObject sha256", func() error {
					_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/sha256.bin"), Body: bytes.NewReader(data), ChecksumAlgorithm: types.ChecksumAlgorithmSha256})
					return err
				}},
				{"GetObject", func() error {
					out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/one.log")})
					if err != nil {
						return err
					}
					defer out.Body.Close()
					_, err = io.ReadAll(out.Body)
					return err
				}},
				{"ListObjectsV2", func() error {
					_, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("logs"), Prefix: aws.String("app/a b+c~/"), Delimiter: aws.String("/")})
					return err
				}},
				{"Presigned GET", func() error {
					p, err := s3.NewPresignClient(client).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/with space.log")}, s3.WithPresignExpires(10*time.Minute))
					if err != nil {
						return err
					}
					req, _ := http.NewRequestWithContext(ctx, p.Method, p.URL, nil)
					resp, err := srv.Client().Do(req)
					if err != nil {
						return err
					}
					defer resp.Body.Close()
					io.Copy(io.Discard, resp.Body)
					if resp.StatusCode != 200 {
						return fmt.Errorf("presigned GET: %s", resp.Status)
					}
					return nil
				}},
			}
			if tls {
				steps = append(steps, step{"PutObject unseekable", func() error {
					_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/stream.bin"), Body: unseekable{bytes.NewReader(data)}, ContentLength: aws.Int64(int64(len(data)))})
					return err
				}})
			}
			for _, s := range steps {
				if err := s.run(); err != nil {
					t.Fatalf("%s: %v (server saw %+v)", s.name, err, f.take())
				}
				for _, got := range f.take() {
					if got.err != "" {
						t.Fatalf("%s: server refused: %s", s.name, got.err)
					}
					if got.method == http.MethodPut && got.bytes != int64(len(data)) {
						t.Fatalf("%s: server read %d bytes, want %d", s.name, got.bytes, len(data))
					}
					t.Logf("SDK %s %-22s %s %s mode=%v checksum=%q", srv.URL[:5], s.name, got.method, got.path, got.mode, got.checksum)
				}
			}
		})
	}
}

// TestCLIEndToEnd drives both AWS CLIs the tests use: Debian's v2 and the
// machine image's v1 (internal/testenv finds them; under CI both must be there).
func TestCLIEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("the AWS CLIs take seconds per command; run without -short")
	}
	clis := []string{testenv.AWSCLI(t), testenv.AWSCLIv1(t)}
	data := payload(5 << 20)
	dir := t.TempDir()
	file := filepath.Join(dir, "upload.bin")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config")
	if err := os.WriteFile(cfg, []byte("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cli := range clis {
		t.Run(filepath.Base(filepath.Dir(filepath.Dir(cli)))+"-"+cli, func(t *testing.T) {
			for _, tls := range []bool{false, true} {
				f, srv := newFakeS3(t, tls)
				env := append(os.Environ(),
					"AWS_ACCESS_KEY_ID="+testAK, "AWS_SECRET_ACCESS_KEY="+testSecret, "AWS_SESSION_TOKEN="+testToken,
					"AWS_ENDPOINT_URL="+srv.URL, "AWS_CONFIG_FILE="+cfg, "AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(dir, "none"),
					"AWS_DEFAULT_REGION=us-east-1", "AWS_MAX_ATTEMPTS=1", "AWS_PAGER=", "AWS_EC2_METADATA_DISABLED=true")
				if tls {
					ca := filepath.Join(dir, "ca.pem")
					pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
					if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
						t.Fatal(err)
					}
					env = append(env, "AWS_CA_BUNDLE="+ca)
				}
				// Each CLI command costs seconds of Python start-up, so
				// only what tells payload modes apart runs over both.
				cmds := [][]string{{"s3api", "put-object", "--bucket", "logs", "--key", "app/cli put+~.bin", "--body", file}}
				if tls {
					cmds = append(cmds, []string{"s3", "cp", file, "s3://logs/app/cp copy.bin"})
				} else {
					cmds = append(cmds, []string{"s3api", "get-object", "--bucket", "logs", "--key", "app/one.log", filepath.Join(dir, "out")})
				}
				for _, args := range cmds {
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					// CLI v2 before 2.13 ignores AWS_ENDPOINT_URL, so the
					// endpoint is also given as a flag.
					cmd := exec.CommandContext(ctx, cli, append(args, "--endpoint-url", srv.URL)...)
					cmd.Env = env
					out, err := cmd.CombinedOutput()
					cancel()
					seenReqs := f.take()
					if err != nil {
						t.Fatalf("%s %v: %v\n%s\nserver saw %+v", cli, args[:2], err, out, seenReqs)
					}
					for _, got := range seenReqs {
						if got.err != "" {
							t.Fatalf("%v: server refused: %s", args[:2], got.err)
						}
						if got.method == http.MethodPut && got.bytes != int64(len(data)) {
							t.Fatalf("%v: server read %d bytes, want %d", args[:2], got.bytes, len(data))
						}
						t.Logf("CLI %s %s %-28s %s %s mode=%v checksum=%q", cli, srv.URL[:5], strings.Join(args[:2], " "), got.method, got.path, got.mode, got.checksum)
					}
					if len(seenReqs) == 0 {
						t.Fatalf("%v: the server saw no request", args[:2])
					}
				}
			}
		})
	}
}
