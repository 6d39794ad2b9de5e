package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/tlscert"
)

// TestPublicAddresses: behind a load balancer (listen.public), the
// credentials every replica hands out name the balancer's addresses, not
// the replica's own listeners, and a call to a non-S3 AWS service signed
// for the balancer's host name passes the gateway's host check (one signed
// for a host that is neither is still refused).
func TestPublicAddresses(t *testing.T) {
	e := newIDEnvWith(t, "record", "  public:\n    aws: http://lb.example.test:9443/\n    postgres: lb.example.test:6432\n")
	creds := func(id string) grants.Credentials {
		t.Helper()
		st, body := e.call(from("127.0.0.1"), "POST", "/v1/grants/"+id+"/credentials", e.bot, nil)
		if st != http.StatusOK {
			t.Fatalf("credentials: %d %s", st, body)
		}
		var cr grants.Credentials
		if err := json.Unmarshal(body, &cr); err != nil {
			t.Fatal(err)
		}
		return cr
	}
	g := e.request(from("127.0.0.1"), e.bot)
	cr := creds(g.ID)
	if cr.Endpoint == nil || cr.Endpoint.URL != "http://lb.example.test:9443" {
		t.Fatalf("aws credentials name %+v, want the balancer's http://lb.example.test:9443", cr.Endpoint)
	}
	pg := creds(e.requestFor(from("127.0.0.1"), e.bot, "orders-db", "pg:select postgres.public.*").ID)
	if pg.Endpoint == nil || pg.Endpoint.Host != "lb.example.test" || pg.Endpoint.Port != 6432 {
		t.Fatalf("postgres credentials name %+v, want the balancer's lb.example.test:6432", pg.Endpoint)
	}

	// A DynamoDB call signed for a host, sent to this replica's gateway.
	call := func(host string) string {
		t.Helper()
		body := []byte("{}")
		req, err := http.NewRequest("POST", "http://"+host+"/", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-amz-json-1.0")
		req.Header.Set("X-Amz-Target", "DynamoDB_20120810.ListTables")
		sum := sha256.Sum256(body)
		req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
		creds := aws.Credentials{AccessKeyID: cr.AccessKeyID, SecretAccessKey: cr.SecretAccessKey, SessionToken: cr.SessionToken}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "dynamodb", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		d := &net.Dialer{Timeout: 5 * time.Second}
		cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, e.awsAddr) // the balancer, in effect
		}}}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// The certificate Airlock issues itself names the balancer too.
	ca, err := os.ReadFile(filepath.Join(e.dataDir, tlscert.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	conn, err := tls.Dial("tcp", e.awsAddr, &tls.Config{ServerName: "lb.example.test", RootCAs: roots})
	if err != nil {
		t.Fatalf("TLS to the AWS gateway as lb.example.test: %v", err)
	}
	conn.Close()

	const notOurs = "not this Airlock gateway's"
	if out := call("lb.example.test:9443"); strings.Contains(out, notOurs) {
		t.Errorf("a call signed for the balancer's host was refused as meant for another: %s", out)
	}
	if out := call("elsewhere.example.test:9443"); !strings.Contains(out, notOurs) {
		t.Errorf("a call signed for another host was not refused for it: %s", out)
	}
}
