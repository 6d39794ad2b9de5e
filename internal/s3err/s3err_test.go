package s3err

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWrite(t *testing.T) {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/b/k", nil)
	Write(rec, r, New(AccessDenied, "s3:GetObject on %s is outside grant %s", "arn:aws:s3:::b/k", "g_1"), "req1")
	if rec.Code != http.StatusForbidden {
		t.Fatalf("status %d, want 403", rec.Code)
	}
	var got body
	if err := xml.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("body is not XML: %v: %s", err, rec.Body)
	}
	if got.Code != AccessDenied || got.RequestID != "req1" || got.Message != "s3:GetObject on arn:aws:s3:::b/k is outside grant g_1" {
		t.Fatalf("got %+v", got)
	}
}

func TestWriteHead(t *testing.T) {
	rec := httptest.NewRecorder()
	Write(rec, httptest.NewRequest(http.MethodHead, "/b/k", nil), New(SignatureDoesNotMatch, "x"), "")
	if rec.Code != http.StatusForbidden || rec.Body.Len() != 0 {
		t.Fatalf("HEAD: status %d body %q", rec.Code, rec.Body)
	}
}

func TestStatuses(t *testing.T) {
	for code, want := range map[string]int{ServiceUnavailable: 503, ExpiredToken: 400, NotImplemented: 501, "Unknown": 400} {
		if got := New(code, "m").Status; got != want {
			t.Errorf("%s: status %d, want %d", code, got, want)
		}
	}
}

func TestAs(t *testing.T) {
	e := New(ExpiredToken, "gone")
	if As(fmt.Errorf("wrapped: %w", e)) != e {
		t.Fatal("As did not unwrap")
	}
	if got := As(errors.New("boom")); got.Code != InternalError || got.Status != 500 {
		t.Fatalf("As(plain) = %+v", got)
	}
}

// The codes the gateway answers with, and the status S3 gives each.
func TestStatusTable(t *testing.T) {
	for code, want := range map[string]int{
		AccessDenied: 403, AuthorizationHeaderMalformed: 400, AuthorizationQueryParametersError: 400,
		BadDigest: 400, EntityTooLarge: 400, IncompleteBody: 400, InternalError: 500, InvalidAccessKeyID: 403,
		InvalidArgument: 400, InvalidDigest: 400, InvalidRequest: 400, InvalidToken: 400,
		MalformedTrailerError: 400, MalformedXML: 400, MissingSecurityHeader: 400, NotImplemented: 501,
		RequestTimeTooSkewed: 403, ServiceUnavailable: 503, SignatureDoesNotMatch: 403, XAmzContentSHA256Mismatch: 400,
	} {
		if got := New(code, "m").Status; got != want {
			t.Errorf("%s: status %d, want %d", code, got, want)
		}
	}
}

// A wrong region names the right one in <Region>, as S3 does.
func TestWriteRegion(t *testing.T) {
	rec := httptest.NewRecorder()
	e := New(AuthorizationHeaderMalformed, "The authorization header is malformed; the region 'eu-west-1' is wrong; expecting 'us-east-1'")
	e.Region = "us-east-1"
	Write(rec, httptest.NewRequest(http.MethodGet, "/b/k", nil), e, "r")
	var got body
	if err := xml.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.Region != "us-east-1" || rec.Code != 400 {
		t.Fatalf("%d %s (%v)", rec.Code, rec.Body, err)
	}
}

// A fault S3 defines keeps S3's exact Message; Airlock's explanation
// travels in <AirlockDetail> and in Text, never inside <Message>.
func TestWriteDetail(t *testing.T) {
	rec := httptest.NewRecorder()
	e := Detailed(BadDigest, "The CRC32 you specified did not match the calculated checksum.", "the body's CRC32 is %s", "AAAAAA==")
	Write(rec, httptest.NewRequest(http.MethodPut, "/b/k", nil), e, "r")
	var got body
	if err := xml.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	if got.Message != "The CRC32 you specified did not match the calculated checksum." || got.AirlockDetail != "the body's CRC32 is AAAAAA==" {
		t.Fatalf("got %+v", got)
	}
	if e.Text() != "The CRC32 you specified did not match the calculated checksum. (the body's CRC32 is AAAAAA==)" {
		t.Fatalf("Text() = %q", e.Text())
	}
	if New(NoSuchUpload, "m").Status != http.StatusNotFound || New(MissingContentLength, "m").Status != http.StatusLengthRequired {
		t.Fatal("statuses of NoSuchUpload / MissingContentLength")
	}
}
