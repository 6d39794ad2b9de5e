package s3mem

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// Region is the region the server says its buckets are in.
const Region = "us-east-1"

// Server is an in-memory S3-compatible server; see the package comment.
// Its methods are safe for concurrent use.
type Server struct {
	st       *store
	verifier *sigv4.Verifier
	requests atomic.Int64
	seq      atomic.Uint64
	log      *slog.Logger
}

// New returns a server accepting one access key pair (the "upstream
// account's" keys) and holding at most DefaultMaxBytes.
func New(accessKeyID, secretAccessKey string) *Server {
	return &Server{
		st:       newStore(),
		verifier: newVerifier(accessKeyID, secretAccessKey),
		log:      slog.Default().With("component", "s3mem"),
	}
}

// SetMaxBytes caps the bytes held in objects and unfinished multipart
// parts together. Uploads that would pass the cap fail with EntityTooLarge.
func (s *Server) SetMaxBytes(n int64) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	s.st.max = n
}

// CreateBucket creates a bucket if it does not exist yet.
func (s *Server) CreateBucket(name string) { _ = s.st.createBucket(name) }

// Put seeds an object, creating its bucket if needed. It panics if the
// object does not fit under the cap, since seeding is done by tests and the
// demo, where that is a programming error.
func (s *Server) Put(bucket, key string, data []byte) {
	s.CreateBucket(bucket)
	d := append([]byte(nil), data...)
	o := &object{data: d, etag: etagOf(d), modified: s.st.timestamp()}
	if err := s.st.put(bucket, key, o); err != nil {
		panic(fmt.Sprintf("s3mem: seeding %s/%s: %v", bucket, key, err))
	}
}

// Get returns a copy of an object's bytes.
func (s *Server) Get(bucket, key string) ([]byte, bool) {
	o, err := s.st.get(bucket, key)
	if err != nil {
		return nil, false
	}
	return append([]byte(nil), o.data...), true
}

// Requests is how many requests passed signature verification. Tests use
// it to prove that a refused call never reached the upstream.
func (s *Server) Requests() int64 { return s.requests.Load() }

// call is one request being served.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	s      *Server
	bucket string
	key    string
	auth   *sigv4.Auth
}

// ServeHTTP serves one S3 request, path style.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := fmt.Sprintf("%016X", s.seq.Add(1))
	w.Header().Set("x-amz-request-id", id)
	w.Header().Set("x-amz-id-2", id)
	w.Header().Set("Server", "s3mem")
	auth, err := s.verifier.Verify(r)
	if err != nil {
		s.fail(w, r, err, id)
		return
	}
	s.requests.Add(1)
	c := &call{w: w, r: r, s: s, auth: auth}
	c.bucket, c.key, _ = strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if err := s.route(c); err != nil {
		s.fail(w, r, err, id)
	}
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error, id string) {
	e := s3err.As(err)
	if e.Code == s3err.InternalError {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	s3err.Write(w, r, e, id)
}

// readBody reads a payload of exactly size bytes through the verifier,
// which reports a payload that does not match its signature at the end.
// The size was checked against the cap, so the buffer is allocated once.
func (c *call) readBody(size int64) ([]byte, error) {
	body := c.auth.Body(c.r.Body)
	data := make([]byte, size)
	_, err := io.ReadFull(body, data)
	if err == nil {
		// Read on to the end: that is where the verifier reports.
		var tail []byte
		tail, err = io.ReadAll(io.LimitReader(body, 1))
		if err == nil && len(tail) > 0 {
			return nil, s3err.New(s3err.IncompleteBody, "The request body is longer than its declared length")
		}
	}
	if err != nil {
		var e *s3err.Error
		if errors.As(err, &e) {
			return nil, e
		}
		return nil, s3err.New(s3err.IncompleteBody, "You did not provide the number of bytes specified by the Content-Length HTTP header")
	}
	return data, nil
}

// payloadSize is the decoded payload length: aws-chunked bodies declare it
// in x-amz-decoded-content-length, others in Content-Length.
func (c *call) payloadSize() (int64, error) {
	if c.auth.DecodedLength < 0 {
		e := s3err.New("MissingContentLength", "You must provide the Content-Length HTTP header.")
		e.Status = http.StatusLengthRequired
		return 0, e
	}
	return c.auth.DecodedLength, nil
}

// maxXMLBody bounds request documents (DeleteObjects, CompleteMultipartUpload,
// tagging): 1000 keys or 10000 parts fit well within it.
const maxXMLBody = 4 << 20

// readXMLBody reads a small request document through the verifier.
func (c *call) readXMLBody() ([]byte, error) {
	size, err := c.payloadSize()
	if err != nil {
		return nil, err
	}
	if size > maxXMLBody {
		return nil, s3err.New(s3err.MalformedXML, "The XML you provided was too large")
	}
	return c.readBody(size)
}

// timeISO is S3's timestamp format in XML documents.
func timeISO(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
