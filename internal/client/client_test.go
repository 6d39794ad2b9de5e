package client

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/findings"
	"github.com/airlock-dev/airlock/internal/tlscert"
)

// TestResponseLimit: a response longer than the client reads is refused
// as such; it was cut at the limit and decoded, failing with "unexpected
// end of JSON input" (an export of a large review did).
func TestResponseLimit(t *testing.T) {
	defer func(n int64) { maxResponse = n }(maxResponse)
	maxResponse = 100
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"name":"` + strings.Repeat("a", 200) + `"}`))
	}))
	defer srv.Close()
	_, err := New(srv.URL, "k").WhoAmI(context.Background())
	if err == nil || !strings.Contains(err.Error(), "larger than 100 bytes") {
		t.Fatalf("a response over the limit: %v", err)
	}
	maxResponse = 300
	if id, err := New(srv.URL, "k").WhoAmI(context.Background()); err != nil || id.Name != strings.Repeat("a", 200) {
		t.Fatalf("a response within the limit: %+v, %v", id, err)
	}
}

// TestNoRedirects: the client does not follow a redirect, so the bearer
// token never reaches where it points. Before, Go's client followed it and
// sent the Authorization header along to any address with the same host
// name (here another port of 127.0.0.1; equally http:// after https://, or
// a subdomain).
func TestNoRedirects(t *testing.T) {
	got := make(chan string, 4)
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Authorization")
		w.Write([]byte(`{"name":"other"}`))
	}))
	defer other.Close()
	for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/v1/whoami", code)
		}))
		_, err := New(srv.URL, "alk_secret").WhoAmI(context.Background())
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), "redirect") || strings.Contains(err.Error(), "alk_secret") {
			t.Errorf("a %d redirect: %v; want an error naming the redirect", code, err)
		}
	}
	// Over https with AIRLOCK_CA (TrustCA): a redirect to http:// on the
	// same host would have sent the token in clear.
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/v1/whoami", http.StatusFound)
	}))
	defer tlsSrv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(tlsSrv.URL, "alk_secret").TrustCA(ca).WhoAmI(context.Background()); err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Errorf("a redirect from https to http: %v; want an error naming the redirect", err)
	}
	select {
	case auth := <-got:
		t.Fatalf("the redirect was followed; the other server got Authorization %q", auth)
	default:
	}
}

// TestForeignErrorCut: an error response that is not Airlock's JSON (a
// proxy's page) becomes a message of its first bytes only. Before, all of
// it, up to the 64 MiB response limit, was the one-line error the CLI
// printed.
func TestForeignErrorCut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		w.Write([]byte("<html>" + strings.Repeat("x", 1<<20)))
	}))
	defer srv.Close()
	_, err := New(srv.URL, "k").WhoAmI(context.Background())
	if err == nil || !strings.Contains(err.Error(), "<html>xxx") || len(err.Error()) > 1024 {
		t.Fatalf("a 1 MiB error page: %d bytes of error", len(err.Error()))
	}
}

// TestAddrWithCredentialsRefused: a user name or password in AIRLOCK_ADDR
// is refused before anything is sent, and no error echoes it (a "cannot
// reach" error named the address whole).
func TestAddrWithCredentialsRefused(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { calls++ }))
	defer srv.Close()
	for _, addr := range []string{
		strings.Replace(srv.URL, "http://", "http://ops:s3cret-pass@", 1),
		"http://ops:s3cret-pass@127.0.0.1:1", // nothing listens: the "cannot reach" path
	} {
		_, err := New(addr, "key").WhoAmI(context.Background())
		if err == nil || !strings.Contains(err.Error(), "holds a user name or password") {
			t.Fatalf("%s: %v, want the refusal", addr, err)
		}
		if strings.Contains(err.Error(), "s3cret-pass") {
			t.Fatalf("the error echoes the password: %v", err)
		}
	}
	if calls != 0 {
		t.Fatalf("%d requests reached the server", calls)
	}
}

// TestDotIDsRefused: a grant id or agent name of "." or ".." (which
// url.PathEscape leaves as they are) is refused before any request. The
// server's mux cleaned such a path into another route and redirected,
// and the CLI printed a redirect error about AIRLOCK_ADDR.
func TestDotIDsRefused(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		http.Error(w, `{"error":{"code":"not_found","message":"no such grant"}}`, http.StatusNotFound)
	}))
	defer srv.Close()
	c := New(srv.URL, "alk_secret")
	for _, id := range []string{".", ".."} {
		_, err := c.Grant(context.Background(), id)
		if err == nil || !strings.Contains(err.Error(), "is not an id") {
			t.Errorf("Grant(%q): %v", id, err)
		}
		if _, err := c.DisableAgent(context.Background(), id, "x"); err == nil || !strings.Contains(err.Error(), "is not an id") {
			t.Errorf("DisableAgent(%q): %v", id, err)
		}
	}
	if calls != 0 {
		t.Fatalf("%d requests reached the server", calls)
	}
	// An empty id made "/v1/grants//approve", which the mux also cleaned
	// and redirected, or "/v1/grants/" ("no such endpoint").
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"Approve":     func() error { _, err := c.Approve(ctx, "", "ok"); return err },
		"Revoke":      func() error { _, err := c.Revoke(ctx, "", "x"); return err },
		"End":         func() error { _, err := c.End(ctx, "", ""); return err },
		"Credentials": func() error { _, err := c.Credentials(ctx, ""); return err },
		"Grant":       func() error { _, err := c.Grant(ctx, ""); return err },
		"Wait":        func() error { _, err := c.Wait(ctx, "", time.Second); return err },
		"Session":     func() error { _, err := c.Session(ctx, ""); return err },
	} {
		if err := call(); err == nil || !strings.Contains(err.Error(), "an id is required") {
			t.Errorf("%s with an empty id: %v", name, err)
		}
	}
	if calls != 0 {
		t.Fatalf("%d requests with an empty id reached the server", calls)
	}
	if _, err := c.Grant(context.Background(), "g_x.y"); err == nil || strings.Contains(err.Error(), "is not an id") {
		t.Fatalf("an id with a dot in it: %v", err)
	}
}

// TestAddrAndTokenMistakes: the usual mistakes in AIRLOCK_ADDR and
// AIRLOCK_TOKEN get a message that says what to set, before anything is
// sent. Before, an address without a scheme failed with Go's "first path
// segment in URL cannot contain colon" or "unsupported protocol scheme
// \"localhost\"", and a key read with its newline with "cannot reach
// Airlock: net/http: invalid header field value".
func TestAddrAndTokenMistakes(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if r.Header.Get("Authorization") != "Bearer alk_key" {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":{"code":"unauthenticated","message":"invalid or disabled API key"}}`))
			return
		}
		w.Write([]byte(`{"name":"alice"}`))
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tt := range []struct{ addr, token, want string }{
		{host, "alk_key", `has no scheme: use http://` + host},
		{"localhost:8700", "alk_key", `has no scheme: use http://localhost:8700`},
		{"ftp://" + host, "alk_key", "must be http:// or https://, not ftp://"},
		{"http://", "alk_key", "names no host"},
		{"ops:s3cret@" + host, "alk_key", "holds an @"},
		{srv.URL, "alk_key with words", "AIRLOCK_TOKEN holds a space"},
		{srv.URL, "alk_k\x00ey", "AIRLOCK_TOKEN holds a space"},
	} {
		_, err := New(tt.addr, tt.token).WhoAmI(context.Background())
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("AIRLOCK_ADDR %q, AIRLOCK_TOKEN %q: %v; want %q", tt.addr, tt.token, err, tt.want)
		}
		if err != nil && (strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "with words")) {
			t.Errorf("the error echoes a secret: %v", err)
		}
	}
	if calls != 0 {
		t.Fatalf("%d requests reached the server", calls)
	}
	// Space and line ends around either are dropped (a key read from a
	// file with its newline, an address pasted with a trailing space).
	if id, err := New(" "+srv.URL+"/ \n", "alk_key\r\n").WhoAmI(context.Background()); err != nil || id.Name != "alice" {
		t.Fatalf("padded address and key: %+v, %v", id, err)
	}
}

// TestForeignErrorOneLine: an error response that is not Airlock's (here,
// the AWS gateway's XML, reached by a wrong AIRLOCK_ADDR) becomes one line
// that names the status and what to check. Before, the CLI printed its
// first line alone, `<?xml version="1.0" encoding="UTF-8"?> (and 1 more
// problems; see above)`, with nothing above.
func TestForeignErrorOneLine(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>\n</Error>\n"))
	}))
	defer srv.Close()
	_, err := New(srv.URL, "k").WhoAmI(context.Background())
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "AccessDenied") ||
		!strings.Contains(err.Error(), "HTTP 403") || !strings.Contains(err.Error(), "AIRLOCK_ADDR") {
		t.Fatalf("a foreign XML error: %q; want one line with the status, the body and AIRLOCK_ADDR", err)
	}
}

// TestUseClientCert: the client presents its certificate to a server that
// asks for one, alongside AIRLOCK_CA's trust; over http:// it refuses to
// run rather than go without it; a bad key file is an error naming the
// file, not its contents.
func TestUseClientCert(t *testing.T) {
	srvDir, cliDir := t.TempDir(), t.TempDir()
	cfg, caPath, err := tlscert.Ensure(srvDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Any certificate and key do as the client's: another CA's leaf.
	if _, _, err := tlscert.Ensure(cliDir, nil); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(cliDir, "gateway.pem"), filepath.Join(cliDir, "gateway.key")
	var got string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = findings.TLSClient(r.TLS)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"name":"bot","kind":"agent"}`)
	}))
	srv.TLS = cfg
	srv.StartTLS()
	defer srv.Close()

	c := New(srv.URL, "alk_x").TrustCA(caPath).UseClientCert(certFile, keyFile)
	if _, err := c.WhoAmI(context.Background()); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(pair.Certificate[0])
	if want := hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("server saw client certificate %q, want %q", got, want)
	}

	if _, err := New("http://127.0.0.1:1", "alk_x").UseClientCert(certFile, keyFile).WhoAmI(context.Background()); err == nil ||
		!strings.Contains(err.Error(), "only over TLS") {
		t.Fatalf("a client certificate over http://: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.key")
	secret := "-----BEGIN EC PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END EC PRIVATE KEY-----\n"
	if err := os.WriteFile(bad, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = New(srv.URL, "alk_x").UseClientCert(certFile, bad).WhoAmI(context.Background())
	if err == nil || !strings.Contains(err.Error(), bad) || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Fatalf("a bad key: %v", err)
	}
}
