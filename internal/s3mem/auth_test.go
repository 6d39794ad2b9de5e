package s3mem

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestAuthRefusals(t *testing.T) {
	f := newFixture(t)
	f.srv.Put("logs", "k", []byte("secret data"))
	tests := []struct {
		name, ak, sk, code string
	}{
		{"wrong secret", testAK, testSK + "x", "SignatureDoesNotMatch"},
		{"unknown key", "AKIAUNKNOWN000000000", testSK, "InvalidAccessKeyId"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := f.srv.Requests()
			c := newClient(f.url, tc.ak, tc.sk)
			_, err := c.GetObject(testCtx(t), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("k")})
			wantCode(t, err, tc.code)
			_, err = c.PutObject(testCtx(t), &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("k"), Body: strings.NewReader("overwritten")})
			wantCode(t, err, tc.code)
			if got := f.srv.Requests(); got != before {
				t.Fatalf("Requests went from %d to %d for refused calls", before, got)
			}
			if data, _ := f.srv.Get("logs", "k"); string(data) != "secret data" {
				t.Fatalf("refused PUT changed the object: %q", data)
			}
		})
	}
	before := f.srv.Requests()
	if _, err := f.client.HeadObject(testCtx(t), &s3.HeadObjectInput{Bucket: aws.String("logs"), Key: aws.String("k")}); err != nil {
		t.Fatal(err)
	}
	if got := f.srv.Requests(); got != before+1 {
		t.Fatalf("Requests = %d after one good call, want %d", got, before+1)
	}
}

func TestAuthAnonymousRefused(t *testing.T) {
	f := newFixture(t)
	f.srv.Put("logs", "k", []byte("v"))
	resp, err := http.Get(f.url + "/logs/k")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "<Code>") || strings.Contains(string(body), "v</") {
		t.Fatalf("anonymous GET: %d %s", resp.StatusCode, body)
	}
	if f.srv.Requests() != 0 {
		t.Fatal("an anonymous request was counted as authenticated")
	}
}

// signedPut builds a PUT whose signature covers payload's SHA-256 but whose
// body is sent.
func signedPut(t *testing.T, url string, payload, sent string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(sent))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(payload))
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("x-amz-content-sha256", hash)
	creds := aws.Credentials{AccessKeyID: testAK, SecretAccessKey: testSK}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hash, "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	return req
}

func TestAuthTamperedBodyNotStored(t *testing.T) {
	f := newFixture(t)
	f.srv.CreateBucket("logs")
	for _, tc := range []struct {
		name, payload, sent string
		status              int
		stored              bool
	}{
		{"intact", "signed body", "signed body", http.StatusOK, true},
		{"tampered", "signed body", "evil! body", http.StatusBadRequest, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.DefaultClient.Do(signedPut(t, f.url+"/logs/"+tc.name, tc.payload, tc.sent))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d %s", resp.StatusCode, body)
			}
			if !tc.stored && !strings.Contains(string(body), "XAmzContentSHA256Mismatch") {
				t.Fatalf("tampered body answered %s", body)
			}
			if _, ok := f.srv.Get("logs", tc.name); ok != tc.stored {
				t.Fatalf("stored %v, want %v", ok, tc.stored)
			}
		})
	}
}

func TestAuthPresigned(t *testing.T) {
	f := newFixture(t)
	f.srv.Put("logs", "app/p.txt", []byte("presigned read"))
	ctx := testCtx(t)
	pc := s3.NewPresignClient(f.client)
	get, err := pc.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/p.txt")})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(get.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "presigned read" {
		t.Fatalf("presigned GET: %d %q", resp.StatusCode, body)
	}

	put, err := pc.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/up.txt")})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(put.Method, put.URL, strings.NewReader("presigned write"))
	for k, v := range put.SignedHeader {
		req.Header[k] = v
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if data, _ := f.srv.Get("logs", "app/up.txt"); resp.StatusCode != http.StatusOK || string(data) != "presigned write" {
		t.Fatalf("presigned PUT: %d, stored %q", resp.StatusCode, data)
	}

	// Changing the signed URL breaks it.
	resp, err = http.Get(strings.Replace(get.URL, "app/p.txt", "app/q.txt", 1))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "SignatureDoesNotMatch") {
		t.Fatalf("altered presigned URL: %d %s", resp.StatusCode, body)
	}
}

func TestBodyLengthMismatch(t *testing.T) {
	srv := New(testAK, testSK)
	srv.CreateBucket("logs")
	creds := aws.Credentials{AccessKeyID: testAK, SecretAccessKey: testSK}
	for _, tc := range []struct {
		name     string
		declared int64
	}{{"short", 10}, {"long", 3}} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPut, "http://127.0.0.1/logs/"+tc.name, strings.NewReader("12345"))
			req.ContentLength = tc.declared
			req.Header.Set("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
			if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, "UNSIGNED-PAYLOAD", "s3", "us-east-1", time.Now()); err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "IncompleteBody") {
				t.Fatalf("status %d %s", rec.Code, rec.Body)
			}
			if _, ok := srv.Get("logs", tc.name); ok {
				t.Fatal("stored a body of the wrong length")
			}
		})
	}
}
