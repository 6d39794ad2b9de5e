package awsops

import (
	"cmp"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
)

const (
	region  = "us-east-1"
	account = "111122223333"
)

// jsonReq builds a JSON-protocol request as the SDKs send it.
func jsonReq(service, target, body string) *Request {
	h := http.Header{}
	h.Set("X-Amz-Target", target)
	h.Set("Content-Type", "application/x-amz-json-1.1")
	return &Request{Service: service, Region: region, Account: account, Method: "POST", Path: "/", Header: h, Body: []byte(body)}
}

// queryReq builds a Query-protocol POST with a form body.
func queryReq(service, body string) *Request {
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	return &Request{Service: service, Region: region, Account: account, Method: "POST", Path: "/", Header: h, Body: []byte(body)}
}

func mustMap(t *testing.T, r *Request) *Op {
	t.Helper()
	op, err := Map(r)
	if err != nil {
		t.Fatalf("Map: %v", err)
	}
	return op
}

// mustRefuse asserts Map refuses r with an *Error whose code is code.
func mustRefuse(t *testing.T, r *Request, code string) *Error {
	t.Helper()
	op, err := Map(r)
	if err == nil {
		t.Fatalf("Map accepted %+v", op)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v is not *Error", err, err)
	}
	if code != "" && e.Code != code {
		t.Fatalf("code %s, want %s (%v)", e.Code, code, e)
	}
	if e.Service == "" || e.Status == 0 || e.Msg == "" {
		t.Fatalf("incomplete error %+v", e)
	}
	return e
}

const (
	ddb = "arn:aws:dynamodb:us-east-1:111122223333:table/"
	lg  = "arn:aws:logs:us-east-1:111122223333:log-group:"
)

func sortChecks(c []Check) {
	slices.SortFunc(c, func(a, b Check) int {
		return cmp.Or(strings.Compare(a.Action, b.Action), strings.Compare(a.Resource, b.Resource))
	})
}
