// Package awsfake is a test upstream for the AWS gateway's services other
// than S3: an HTTP server that verifies every request's SigV4 signature
// with the target's keys (internal/sigv4, for the one service and region
// it is addressed as) and answers a few operations of CloudWatch Logs,
// SSM, Lambda, EC2, SQS, STS and DynamoDB with fixed data in the response
// shapes AWS documents for them (JSON 1.0/1.1, AWS Query XML, REST-JSON).
// The shapes follow the AWS API references' examples, trimmed to the
// members the SDKs need to parse them; they are not captures of live
// traffic.
//
// It is for tests only: it keeps every request it saw (method, path,
// operation, signed service and region, body) for assertions, and answers
// a request it cannot verify with the service's own error.
package awsfake

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/s3err"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// Request is what the fake saw of one verified request.
type Request struct {
	Service, Region string
	AccessKeyID     string
	Method, Path    string
	Query           string
	Target          string // X-Amz-Target
	Operation       string // from the target, Action= or the REST path
	Host            string
	Header          http.Header
	Body            []byte
}

// Server is one service's fake endpoint.
type Server struct {
	Service, Region string
	URL             string
	srv             *httptest.Server
	verifier        *sigv4.Verifier

	mu       sync.Mutex
	requests []Request
	rejected []string
	keys     map[string][2]string // access key → secret, session token
	fallback func(id string) (string, string, error)
	// forgetful keeps no history (benchmarks: millions of calls).
	forgetful bool
}

// Forget makes the server keep no history of requests from now on.
func (s *Server) Forget() {
	s.mu.Lock()
	s.forgetful = true
	s.requests = nil
	s.mu.Unlock()
}

// Start serves service's fake for region, accepting signatures made with
// the access key and secret given (more with AddKey). Close it when done.
func Start(service, region, accessKey, secret string) *Server {
	s := &Server{Service: service, Region: region, keys: map[string][2]string{accessKey: {secret, ""}}}
	s.verifier = &sigv4.Verifier{
		Region: region, Service: service,
		Lookup: func(id string) (string, string, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			k, ok := s.keys[id]
			if !ok && s.fallback != nil {
				return s.fallback(id)
			}
			if !ok {
				return "", "", s3err.New(s3err.InvalidAccessKeyID, "The security token included in the request is invalid.")
			}
			return k[0], k[1], nil
		},
		HashBody: func(r *http.Request) (string, error) {
			b, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
			if err != nil {
				return "", err
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
			sum := sha256.Sum256(b)
			return hex.EncodeToString(sum[:]), nil
		},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// AddKey accepts another credential (role credentials from a fake STS).
func (s *Server) AddKey(accessKey, secret, token string) {
	s.mu.Lock()
	s.keys[accessKey] = [2]string{secret, token}
	s.mu.Unlock()
}

// SetFallback resolves access keys the server does not know itself (the
// credentials a test's fake STS hands out).
func (s *Server) SetFallback(lookup func(id string) (secret, token string, err error)) {
	s.mu.Lock()
	s.fallback = lookup
	s.mu.Unlock()
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Requests returns the verified requests so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Rejected returns why requests that failed verification did.
func (s *Server) Rejected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rejected...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	auth, err := s.verifier.Verify(r)
	if err != nil {
		s.mu.Lock()
		s.rejected = append(s.rejected, err.Error())
		s.mu.Unlock()
		code := "InvalidSignatureException"
		if e := s3err.As(err); e != nil && e.Code == s3err.InvalidAccessKeyID {
			code = "UnrecognizedClientException"
		}
		s.fail(w, r, http.StatusForbidden, code, err.Error())
		return
	}
	body, err := io.ReadAll(auth.Body(r.Body))
	if err != nil {
		s.fail(w, r, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	req := Request{Service: auth.Service, Region: auth.Region, AccessKeyID: auth.AccessKeyID, Method: r.Method,
		Path: r.URL.Path, Query: r.URL.RawQuery, Target: r.Header.Get("X-Amz-Target"), Host: r.Host, Header: r.Header.Clone(), Body: body}
	req.Operation = operation(r, body)
	s.mu.Lock()
	if !s.forgetful {
		s.requests = append(s.requests, req)
	}
	s.mu.Unlock()

	h, ok := handlers[s.Service+" "+req.Operation]
	if !ok {
		s.fail(w, r, http.StatusBadRequest, "UnknownOperationException", fmt.Sprintf("awsfake: %s has no operation %q", s.Service, req.Operation))
		return
	}
	h(s, w, &req)
}

// operation names the call: the part of X-Amz-Target after the dot, the
// Query Action, or the Lambda REST route.
func operation(r *http.Request, body []byte) string {
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		_, op, _ := strings.Cut(t, ".")
		return op
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if v, err := url.ParseQuery(string(body)); err == nil && v.Get("Action") != "" {
			return v.Get("Action")
		}
	}
	if a := r.URL.Query().Get("Action"); a != "" {
		return a
	}
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/2015-03-31/functions") && strings.HasSuffix(p, "/invocations") && r.Method == http.MethodPost:
		return "Invoke"
	case (p == "/2015-03-31/functions/" || p == "/2015-03-31/functions") && r.Method == http.MethodGet:
		return "ListFunctions"
	case strings.HasPrefix(p, "/2015-03-31/functions/") && r.Method == http.MethodGet:
		return "GetFunction"
	}
	return r.Method + " " + p
}

// fail answers in the protocol the request came in.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("X-Amzn-Requestid", "fake-request-id")
	if r.Header.Get("X-Amz-Target") == "" && (strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") || r.URL.Query().Get("Action") != "") {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0"?><ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>fake-request-id</RequestId></ErrorResponse>`, xmlEscape(code), xmlEscape(msg))
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", code)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	_ = xmlEscapeText(&b, s)
	return b.String()
}

// params decodes a request's JSON body.
func params(r *Request) map[string]any {
	m := map[string]any{}
	_ = json.Unmarshal(r.Body, &m)
	return m
}

// form decodes a Query request's parameters (body or URL query).
func form(r *Request) url.Values {
	v, _ := url.ParseQuery(string(r.Body))
	if len(v) == 0 {
		v, _ = url.ParseQuery(r.Query)
	}
	return v
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func writeJSON(w http.ResponseWriter, ct string, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Amzn-Requestid", "fake-request-id")
	_, _ = w.Write(b)
}

func writeXML(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/xml")
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+body)
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// epoch is the fixed time the fake's data carries.
var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
