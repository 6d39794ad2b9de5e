package awsgw

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestResultPanicKeepsProcess: recording the result of an answer that
// was not delivered (cut off here, the grant revoked mid-download) runs on
// a goroutine of its own, which net/http does not recover: a panic in the
// recorder there ended the whole process. It is now logged, and the
// session still ends.
func TestResultPanicKeepsProcess(t *testing.T) {
	e := newEnv(t)
	g := e.grant(walkScope)
	e.auth.PanicOnResults(true)
	out, err := e.client(g).GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/slow/big")})
	if err != nil {
		t.Fatalf("GetObject: %v", errCode(err))
	}
	defer out.Body.Close()
	<-e.up.slowStarted
	if _, err := io.ReadFull(out.Body, make([]byte, 1<<20)); err != nil {
		t.Fatalf("first MiB: %v", err)
	}
	e.auth.End(g, "revoked")
	_, _ = io.Copy(io.Discard, out.Body)
	eventually(t, "the panic to be logged", func() bool {
		return strings.Contains(e.logText(), "panic recording a call's result")
	})
	eventually(t, "the session to end", func() bool { return e.auth.Sessions()[0].Ended() })
}
