package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-dev/airlock/internal/cli"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/testenv"
	"github.com/airlock-dev/airlock/internal/tlscert"
)

// clientCert is a self-signed client certificate (testenv.NewClientCert).
type clientCert struct{ testenv.ClientCert }

func newClientCert(t *testing.T, name string) clientCert {
	return clientCert{testenv.NewClientCert(t, name)}
}

// short is the fingerprint as instance keys write it.
func (c clientCert) short() string { return "tls:" + c.Fingerprint[:16] }

// serveTLS serves the API through the server's own listener (TLS, and
// plaintext for loopback clients) on a loopback port and returns its
// https:// address.
func (e *idEnv) serveTLS() string {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	srv := e.srv
	go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
	e.t.Cleanup(func() { cancel(); <-done })
	return "https://" + ln.Addr().String()
}

// tlsClient is an HTTP client trusting Airlock's CA that presents cert
// (none if nil) when asked.
func (e *idEnv) tlsClient(cert *clientCert) *http.Client {
	e.t.Helper()
	cfg := &tls.Config{RootCAs: poolOfFile(e.t, filepath.Join(e.dataDir, tlscert.CAFile))}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.Pair}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

func poolOfFile(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		t.Fatal("no certificate in", path)
	}
	return p
}

// callAt is e.call against the API at base.
func (e *idEnv) callAt(c *http.Client, base, method, path, tok string, body any) (int, []byte) {
	e.t.Helper()
	saved := e.api
	e.api = base
	defer func() { e.api = saved }()
	return e.call(c, method, path, tok, body)
}

// requestAt requests a grant of target through the API at base with c.
func (e *idEnv) requestAt(c *http.Client, base, target, stmt string) model.Grant {
	e.t.Helper()
	saved := e.api
	e.api = base
	defer func() { e.api = saved }()
	return e.requestFor(c, e.bot, target, stmt)
}

// credentialsAt are g's gateway credentials, fetched with c from the API
// at base: the instance that requested g, which fetching them over plain
// http would not be (no certificate: another instance).
func (e *idEnv) credentialsAt(c *http.Client, base string, g model.Grant) grants.Credentials {
	e.t.Helper()
	st, body := e.callAt(c, base, "POST", "/v1/grants/"+g.ID+"/credentials", e.bot, nil)
	if st != http.StatusOK {
		e.t.Fatalf("credentials: %d %s", st, body)
	}
	var cr grants.Credentials
	if err := json.Unmarshal(body, &cr); err != nil {
		e.t.Fatal(err)
	}
	return cr
}

// TestTLSClientCertTellsAgentsApart: two agents sharing one identity
// behind one address (both on 127.0.0.1), each with its own self-signed
// client certificate, are two instances: a shared-identity finding. Before
// the listeners asked for client certificates, both were "127.0.0.1" and
// nothing was found.
func TestTLSClientCertTellsAgentsApart(t *testing.T) {
	e := newIDEnv(t, "record")
	api := e.serveTLS()
	a, b := newClientCert(t, "agent-a"), newClientCert(t, "agent-b")

	// The certificate is part of the instance the API sees.
	st, body := e.callAt(e.tlsClient(&a), api, "GET", "/v1/whoami", e.bot, nil)
	var who model.Identity
	if st != http.StatusOK || json.Unmarshal(body, &who) != nil || who.Instance == nil {
		t.Fatalf("whoami: %d %s", st, body)
	}
	if who.Instance.IP != "127.0.0.1" || who.Instance.TLSClient != a.Fingerprint {
		t.Fatalf("whoami instance = %+v, want 127.0.0.1 with TLS client %s", who.Instance, a.Fingerprint)
	}
	g := e.requestAt(e.tlsClient(&a), api, "aws-prod", "s3:GetObject arn:aws:s3:::logs/app/*")
	if rf := e.grant(g.ID).RequestedFrom; rf == nil || rf.TLSClient != a.Fingerprint {
		t.Fatalf("requested_from = %+v, want the certificate's fingerprint", rf)
	}
	if fs := e.findings(); len(fs) != 0 {
		t.Fatalf("findings with one instance: %+v", fs)
	}

	// The second agent, same key, same address, another certificate.
	if st, body := e.callAt(e.tlsClient(&b), api, "GET", "/v1/whoami", e.bot, nil); st != http.StatusOK {
		t.Fatalf("whoami with the second certificate: %d %s", st, body)
	}
	fs := e.findings()
	if len(fs) != 1 {
		t.Fatalf("findings = %+v, want one shared-identity finding", fs)
	}
	f := fs[0]
	if f.Kind != model.FindingSharedIdentity || f.Grant != g.ID || !strings.HasPrefix(f.Instance, "127.0.0.1 "+b.short()) ||
		len(f.Others) != 1 || f.Others[0] != "127.0.0.1 "+a.short() {
		t.Fatalf("finding = %+v, want the second certificate's instance with the first's as the other", f)
	}
	e.verify()
}

// TestTLSClientCertCredentialMovedAWS: a grant requested with one client
// certificate, whose credentials an S3 client presenting another uses from
// the same address, is credential-moved; the requester's own certificate,
// and a client presenting none (an SDK told nothing), are not.
func TestTLSClientCertCredentialMovedAWS(t *testing.T) {
	e := newIDEnv(t, "record")
	api := e.serveTLS()
	a, b := newClientCert(t, "agent-a"), newClientCert(t, "agent-b")
	g := e.requestAt(e.tlsClient(&a), api, "aws-prod", "s3:GetObject arn:aws:s3:::logs/app/*")
	cr := e.credentialsAt(e.tlsClient(&a), api, g)
	get := func(cert *clientCert) error {
		cl := s3.New(s3.Options{
			Region: "us-east-1", UsePathStyle: true, BaseEndpoint: aws.String("https://" + e.awsAddr),
			Credentials: credentials.NewStaticCredentialsProvider(cr.AccessKeyID, cr.SecretAccessKey, cr.SessionToken),
			HTTPClient:  e.tlsClient(cert), RetryMaxAttempts: 1,
		})
		out, err := cl.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/x.log")})
		if err != nil {
			return err
		}
		defer out.Body.Close()
		_, err = io.ReadAll(out.Body)
		return err
	}
	for _, c := range []*clientCert{&a, nil} {
		if err := get(c); err != nil {
			t.Fatal(err)
		}
	}
	if f := e.grant(g.ID).Findings; len(f) != 0 {
		t.Fatalf("findings with the requester's certificate and with none: %+v", f)
	}
	if err := get(&b); err != nil {
		t.Fatalf("GetObject with another certificate: %v", err)
	}
	got := e.grant(g.ID)
	if len(got.Findings) != 1 || got.Findings[0].Kind != model.FindingCredentialMoved ||
		!strings.HasPrefix(got.Findings[0].Instance, "127.0.0.1 "+b.short()) || !strings.HasPrefix(got.Findings[0].Others[0], "127.0.0.1 "+a.short()+" (") {
		t.Fatalf("grant findings = %+v, want credential-moved to the second certificate", got.Findings)
	}
	if got.Usage.Sessions != 3 {
		t.Fatalf("sessions = %d, want one per certificate (and one without)", got.Usage.Sessions)
	}
	e.verify()
}

// TestTLSClientCertCredentialMovedPsql: psql presenting another client
// certificate (sslcert, sslkey, sslmode=require) than the one the grant was
// requested with is credential-moved, from the same address; psql with the
// requester's certificate is not. Under identity_binding: refuse it is
// refused (28000) and the requester's own certificate gets in.
func TestTLSClientCertCredentialMovedPsql(t *testing.T) {
	if _, err := exec.LookPath("psql"); err != nil {
		t.Fatal("psql is not installed (the CI installs postgresql-client)")
	}
	e := newIDEnv(t, "refuse")
	api := e.serveTLS()
	a, b := newClientCert(t, "agent-a"), newClientCert(t, "agent-b")
	g := e.requestAt(e.tlsClient(&a), api, "orders-db", "pg:select postgres.public.*")
	cr := e.credentialsAt(e.tlsClient(&a), api, g)
	host, port, _ := net.SplitHostPort(e.pgAddr)
	psql := func(cert clientCert) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "psql", "-X", "-At", "-c", "select 1",
			"host="+host+" port="+port+" user="+cr.AccessKeyID+" dbname=postgres sslmode=require sslcert="+cert.CertFile+" sslkey="+cert.KeyFile)
		cmd.Env = append(os.Environ(), "PGPASSWORD="+cr.SecretAccessKey, "HOME="+t.TempDir(), "PGSSLROOTCERT=", "PGSERVICEFILE=/nonexistent")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	out, err := psql(b)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(out, "not from the instance that requested them") {
		t.Fatalf("psql with another certificate: %v %q, want a refusal", err, out)
	}
	got := e.grant(g.ID)
	if len(got.Findings) != 1 || got.Findings[0].Kind != model.FindingCredentialMoved || !got.Findings[0].Refused ||
		!strings.HasPrefix(got.Findings[0].Instance, "127.0.0.1 "+b.short()) {
		t.Fatalf("grant findings = %+v, want a refused credential-moved finding for the second certificate", got.Findings)
	}
	if out, err := psql(a); err != nil || strings.TrimSpace(out) != "1" {
		t.Fatalf("psql with the requester's certificate: %v %q", err, out)
	}
	if got := e.grant(g.ID); len(got.Findings) != 1 {
		t.Fatalf("grant findings after the requester's session = %+v", got.Findings)
	}
	e.verify()
}

// TestTLSClientCertCurlAndCLI: curl --cert and the CLI (AIRLOCK_CLIENT_CERT,
// AIRLOCK_CLIENT_KEY) present their certificate to the API, which records
// its fingerprint on the caller's instance.
func TestTLSClientCertCurlAndCLI(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is not installed")
	}
	e := newIDEnv(t, "record")
	api := e.serveTLS()
	a, b := newClientCert(t, "agent-a"), newClientCert(t, "agent-b")
	ca := filepath.Join(e.dataDir, tlscert.CAFile)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", "-sS", "--fail-with-body", "--cacert", ca, "--cert", a.CertFile, "--key", a.KeyFile,
		"-H", "Authorization: Bearer "+e.bot, api+"/v1/whoami").Output()
	var who model.Identity
	if err != nil || json.Unmarshal(out, &who) != nil || who.Instance == nil || who.Instance.TLSClient != a.Fingerprint {
		t.Fatalf("curl --cert whoami: %v %s, want TLS client %s", err, out, a.Fingerprint)
	}

	env := map[string]string{"AIRLOCK_ADDR": api, "AIRLOCK_TOKEN": e.bot, "AIRLOCK_CA": ca,
		cli.EnvClientCert: b.CertFile, cli.EnvClientKey: b.KeyFile}
	var stdout, stderr bytes.Buffer
	code := cli.Main(ctx, []string{"request", "aws-prod", "--allow", "s3:GetObject arn:aws:s3:::logs/app/*", "--for", "10m", "--reason", "INC-1", "-o", "json"},
		&stdout, &stderr, func(k string) string { return env[k] })
	var g model.Grant
	if code != 0 || json.Unmarshal(stdout.Bytes(), &g) != nil || g.ID == "" {
		t.Fatalf("airlock request: %d %s %s", code, stdout.String(), stderr.String())
	}
	e.grants = append(e.grants, g.ID)
	if rf := e.grant(g.ID).RequestedFrom; rf == nil || rf.TLSClient != b.Fingerprint {
		t.Fatalf("requested_from = %+v, want the CLI's certificate %s", rf, b.Fingerprint)
	}
	// whoami shows the instance with the fingerprint shortened.
	stdout.Reset()
	if code := cli.Main(ctx, []string{"whoami"}, &stdout, &stderr, func(k string) string { return env[k] }); code != 0 ||
		!strings.Contains(stdout.String(), " from 127.0.0.1 "+b.short()+" (") || strings.Contains(stdout.String(), b.Fingerprint) {
		t.Fatalf("airlock whoami: %d %q %s", code, stdout.String(), stderr.String())
	}
	t.Logf("airlock whoami:\n%s", stdout.String())
	// The key's contents are in no output.
	kb, _ := os.ReadFile(b.KeyFile)
	if strings.Contains(stdout.String()+stderr.String(), string(kb)) {
		t.Fatal("the client key was printed")
	}
}
