package awsgw

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// TestServiceJSONEncodedQueryAction: SQS speaks both the JSON and the
// Query protocol, so a JSON call must not carry a Query Action the
// service could run instead of the X-Amz-Target checked. SigV4 signs the
// query string canonically encoded, so a client may send "Acti%6Fn" for
// "Action" under the same signature; the guard compared the raw query
// string only.
func TestServiceJSONEncodedQueryAction(t *testing.T) {
	e := newSvcEnv(t)
	g := e.grant("sqs:SendMessage arn:aws:sqs:" + testRegion + ":" + testAccount + ":jobs")
	body := []byte(`{"QueueUrl":"https://sqs.` + testRegion + `.amazonaws.com/` + testAccount + `/jobs","MessageBody":"x"}`)
	send := func(signed, sent string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", e.srv.URL+"/?"+signed, bytes.NewReader(body))
		req.Header = jsonHeader("AmazonSQS.SendMessage")
		sum := sha256.Sum256(body)
		creds := aws.Credentials{AccessKeyID: g.CredentialID, SecretAccessKey: g.Secret, SessionToken: g.SessionToken}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "sqs", testRegion, time.Now()); err != nil {
			t.Fatal(err)
		}
		req.URL.RawQuery = sent // the same parameters, encoded otherwise
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, q := range [][2]string{
		{"Action=DeleteQueue", "Acti%6Fn=DeleteQueue"},
		{"ACTION=DeleteQueue", "%41CTION=DeleteQueue"},
		{"Operation=DeleteQueue&x=1", "x=1&%4fperation=DeleteQueue"},
	} {
		if status, b := send(q[0], q[1]); status != http.StatusBadRequest || !strings.Contains(b, "Action or Operation") {
			t.Fatalf("%s: status %d (%s), want 400 naming the Query Action", q[1], status, b)
		}
	}
	e.upstreamSaw(t, "sqs", 0)
	if status, b := send("x=1", "x=%31"); status == http.StatusBadRequest || status == http.StatusForbidden {
		t.Fatalf("SendMessage with an encoded harmless parameter: status %d (%s)", status, b)
	}
	e.upstreamSaw(t, "sqs", 1)
}
