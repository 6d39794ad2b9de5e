package awsgw

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/internal/gateway"
)

// TestRecordRefusedForEndedGrant: among replicas, the control plane
// refuses the record of a call whose grant another replica has ended
// before this one applied the notice (gateway.ErrNoGrant). Such a call in
// an open session was answered 503 "could not record this call; retry
// later", which SDKs retry, and logged as a store failure; it is now
// answered as any call of an ended grant (403 AccessDenied), read or write,
// and nothing reaches the upstream that was not recorded.
func TestRecordRefusedForEndedGrant(t *testing.T) {
	e := newEnv(t)
	g := e.grant(walkScope)
	e.up.put("logs/app/a.txt", []byte("a"))
	cl := e.client(g)
	get := func() string {
		_, err := cl.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/a.txt")})
		return errCode(err)
	}
	if got := get(); got != "" { // the session is open
		t.Fatalf("first get: %q", got)
	}
	e.auth.FailRecordsWith(fmt.Errorf("%w (the grant has ended)", gateway.ErrNoGrant))
	want := "AccessDenied: grant " + g.ID + " is no longer active"
	if got := get(); got != want {
		t.Errorf("a read whose record was refused for its grant's end: %q; want %q", got, want)
	}
	_, err := cl.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/new"), Body: strings.NewReader("n")})
	if got := errCode(err); got != want {
		t.Errorf("a write whose record was refused for its grant's end: %q; want %q", got, want)
	}
	e.auth.FailRecordsWith(nil)
	for _, s := range e.up.seen() {
		if s.Method != http.MethodGet {
			t.Fatalf("upstream saw %+v", s)
		}
	}
	if strings.Contains(e.logText(), "recording a call failed") {
		t.Errorf("a call refused for its grant's end was logged as a record failure: %s", e.logText())
	}
}
