package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithy "github.com/aws/smithy-go"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	_ "modernc.org/sqlite"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/demo"
	"github.com/airlock-dev/airlock/internal/evidence"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/testenv"
	"github.com/airlock-dev/airlock/internal/workload/issuertest"
)

const identityConfig = `data_dir: ./data
listen:
  api: 127.0.0.1:0
  aws: 127.0.0.1:0
  postgres: 127.0.0.1:0
identity_binding: %s
oidc:
  - issuer: %s
    audience: airlock
    instance_claims: [kubernetes.io/pod/name]
identities:
  - name: log-triage-bot
    kind: agent
    owner: sre-team
    key_sha256: "%s"
  - name: k8s-bot
    kind: agent
    owner: sre-team
    oidc:
      issuer: %s
      subject: system:serviceaccount:ops:log-reader
      claims: { kubernetes.io/namespace: ops }
  - name: alice
    kind: human
    groups: [sre-leads]
    key_sha256: "%s"
targets:
  - name: aws-prod
    kind: aws
    account: "111122223333"
    region: us-east-1
    endpoint: %s
    credentials:
      access_key_id_env: IDTEST_S3_KEY
      secret_access_key_env: IDTEST_S3_SECRET
  - name: orders-db
    kind: postgres
    account: "111122223333"
    upstream: %s
policies: ./policies
`

const pgPolicy = `@id("sre-reads-orders")
@approval("auto")
permit (principal in Group::"sre-team", action == Action::"pg:select", resource == Target::"orders-db");
`

type idEnv struct {
	t          *testing.T
	api        string
	awsAddr    string
	pgAddr     string
	bot, alice string
	iss        *issuertest.Issuer
	srv        *server.Server
	dataDir    string
	cfg        *config.Config
	stop       func() // closes srv, its gateways and its API listener
	// grants are the ids requestFor was issued: an active grant's
	// PostgreSQL role outlives the server (the next start's reconcile
	// would drop it), so the cleanup drops their roles.
	grants []string
}

func newIDEnv(t *testing.T, binding string) *idEnv {
	t.Helper()
	return newIDEnvWith(t, binding, "")
}

// newIDEnvWith is newIDEnv with listen keys added (indented under listen).
func newIDEnvWith(t *testing.T, binding, listen string) *idEnv {
	t.Helper()
	s3srv := testenv.Versity(t)
	if err := os.MkdirAll(filepath.Join(s3srv.Dir, "logs", "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s3srv.Dir, "logs", "app", "x.log"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("IDTEST_S3_KEY", s3srv.AccessKeyID)
	t.Setenv("IDTEST_S3_SECRET", s3srv.SecretAccessKey)
	iss := issuertest.New(t)
	dir := t.TempDir()
	botKey, botSHA := authn.NewKey()
	aliceKey, aliceSHA := authn.NewKey()
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policies", "p.cedar"), []byte(demo.Policies+"\n"+pgPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	pgDSN := testenv.PostgresDSN(t)
	cfgPath := filepath.Join(dir, "airlock.yaml")
	yaml := strings.Replace(identityConfig, "  postgres: 127.0.0.1:0\n", "  postgres: 127.0.0.1:0\n"+listen, 1)
	if err := os.WriteFile(cfgPath, fmt.Appendf(nil, yaml, binding, iss.URL, botSHA, iss.URL, aliceSHA, s3srv.URL, pgDSN), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	e := &idEnv{t: t, bot: botKey, alice: aliceKey, iss: iss, dataDir: cfg.DataDir, cfg: cfg}
	// Registered before the stop, so it runs after it.
	testenv.DropGrantRolesAtEnd(t, pgDSN, func() []string { return e.grants })
	e.open()
	t.Cleanup(func() { e.stop() })
	return e
}

// open starts the server on e.cfg.
func (e *idEnv) open() {
	e.t.Helper()
	srv, err := server.Open(context.Background(), e.cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatal(err)
	}
	gws, err := srv.StartGateways(context.Background())
	if err != nil {
		srv.Close()
		e.t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler) // on 127.0.0.1
	e.srv, e.api, e.awsAddr, e.pgAddr = srv, ts.URL, gws.Addr("aws"), gws.Addr("postgres")
	e.stop = func() {
		ts.Close()
		gws.Close()
		srv.Close()
		e.stop = func() {}
	}
}

// restart stops the server and starts it again on the same data
// directory, as an operator's restart does.
func (e *idEnv) restart() {
	e.t.Helper()
	e.stop()
	e.open()
}

// from returns an HTTP client whose connections come from local address ip.
func from(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}, Timeout: 30 * time.Second}
}

func (e *idEnv) call(c *http.Client, method, path, tok string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.api+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (e *idEnv) request(c *http.Client, tok string) model.Grant {
	e.t.Helper()
	return e.requestFor(c, tok, "aws-prod", "s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*")
}

func (e *idEnv) requestFor(c *http.Client, tok, target, stmt string) model.Grant {
	e.t.Helper()
	st, body := e.call(c, "POST", "/v1/grants", tok, map[string]any{
		"target": target, "scope": []string{stmt}, "duration": "10m", "reason": "INC-1",
	})
	if st != http.StatusCreated {
		e.t.Fatalf("request: %d %s", st, body)
	}
	var g httpapi.GrantResponse
	if err := json.Unmarshal(body, &g); err != nil {
		e.t.Fatal(err)
	}
	e.grants = append(e.grants, g.Grant.ID)
	if g.Grant.Status != model.Active {
		e.t.Fatalf("grant %s is %s, want active", g.Grant.ID, g.Grant.Status)
	}
	return g.Grant
}

func (e *idEnv) grant(id string) model.Grant {
	e.t.Helper()
	st, body := e.call(from("127.0.0.1"), "GET", "/v1/grants/"+id, e.alice, nil)
	if st != http.StatusOK {
		e.t.Fatalf("get grant: %d %s", st, body)
	}
	var g httpapi.GrantResponse
	if err := json.Unmarshal(body, &g); err != nil {
		e.t.Fatal(err)
	}
	return g.Grant
}

func (e *idEnv) findings() []model.Finding {
	e.t.Helper()
	st, body := e.call(from("127.0.0.1"), "GET", "/v1/findings?day="+time.Now().UTC().Format("2006-01-02"), e.alice, nil)
	if st != http.StatusOK {
		e.t.Fatalf("findings: %d %s", st, body)
	}
	var out httpapi.FindingsResponse
	if err := json.Unmarshal(body, &out); err != nil {
		e.t.Fatal(err)
	}
	return out.Findings
}

// getObject reads logs/app/x.log through the AWS gateway with the grant's
// credentials, from local address ip.
func (e *idEnv) getObject(g model.Grant, tok, ip string) error {
	e.t.Helper()
	st, body := e.call(from("127.0.0.1"), "POST", "/v1/grants/"+g.ID+"/credentials", tok, nil)
	if st != http.StatusOK {
		e.t.Fatalf("credentials: %d %s", st, body)
	}
	var cr grants.Credentials
	if err := json.Unmarshal(body, &cr); err != nil {
		e.t.Fatal(err)
	}
	cl := s3.New(s3.Options{
		Region: "us-east-1", UsePathStyle: true, BaseEndpoint: aws.String("http://" + e.awsAddr),
		Credentials: credentials.NewStaticCredentialsProvider(cr.AccessKeyID, cr.SecretAccessKey, cr.SessionToken),
		HTTPClient:  from(ip), RetryMaxAttempts: 1,
	})
	out, err := cl.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("app/x.log")})
	if err != nil {
		return err
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	if string(b) != "hello\n" {
		e.t.Fatalf("object = %q", b)
	}
	return nil
}

// pgQuery runs select 1 through the PostgreSQL gateway with the grant's
// credentials, connecting from local address ip.
func (e *idEnv) pgQuery(g model.Grant, tok, ip string) error {
	e.t.Helper()
	st, body := e.call(from("127.0.0.1"), "POST", "/v1/grants/"+g.ID+"/credentials", tok, nil)
	if st != http.StatusOK {
		e.t.Fatalf("credentials: %d %s", st, body)
	}
	var cr grants.Credentials
	if err := json.Unmarshal(body, &cr); err != nil {
		e.t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(e.pgAddr)
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s user=%s dbname=postgres sslmode=disable", host, port, cr.AccessKeyID))
	if err != nil {
		e.t.Fatal(err)
	}
	cfg.Password = cr.SecretAccessKey
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	cfg.DialFunc = d.DialContext
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	var one int
	return conn.QueryRow(ctx, "select 1").Scan(&one)
}

func (e *idEnv) verify() {
	e.t.Helper()
	rep, err := e.srv.Verify(context.Background())
	if err != nil {
		e.t.Fatalf("audit verify: %v", err)
	}
	if !rep.OK || !rep.Rows {
		e.t.Fatalf("audit verify: %+v", rep)
	}
}

func TestWorkloadTokenSignIn(t *testing.T) {
	e := newIDEnv(t, "record")
	k := e.iss.AddKey(jose.ES256)
	now := time.Now()
	claims := map[string]any{
		"iss": e.iss.URL, "aud": "airlock", "sub": "system:serviceaccount:ops:log-reader",
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"kubernetes.io": map[string]any{"namespace": "ops", "pod": map[string]any{"name": "reader-abc"}},
	}
	tok := e.iss.Sign(k, claims)
	c := from("127.0.0.1")

	st, body := e.call(c, "GET", "/v1/whoami", tok, nil)
	var who model.Identity
	if st != http.StatusOK || json.Unmarshal(body, &who) != nil {
		t.Fatalf("whoami: %d %s", st, body)
	}
	wantAuth := "oidc:" + e.iss.URL + " system:serviceaccount:ops:log-reader"
	if who.Name != "k8s-bot" || who.Auth != wantAuth || who.Instance == nil || who.Instance.Claims["kubernetes.io/pod/name"] != "reader-abc" {
		t.Fatalf("whoami = %s", body)
	}
	g := e.request(c, tok)
	if g.Identity != "k8s-bot" || g.Auth != wantAuth {
		t.Fatalf("grant identity %q auth %q", g.Identity, g.Auth)
	}
	if got := e.grant(g.ID); got.Auth != wantAuth || got.RequestedFrom == nil || got.RequestedFrom.IP != "127.0.0.1" {
		t.Fatalf("stored grant auth %q from %+v", got.Auth, got.RequestedFrom)
	}
	// A key-authenticated grant says so.
	if g2 := e.request(c, e.bot); g2.Auth != "key" {
		t.Fatalf("key grant auth = %q", g2.Auth)
	}

	// Refusals over the API: 401, a message naming the failed check and
	// nothing from the token.
	for name, tc := range map[string]struct {
		edit func(map[string]any)
		want string
	}{
		"wrong audience": {func(c map[string]any) { c["aud"] = "other" }, "audience not accepted"},
		"expired":        {func(c map[string]any) { c["exp"] = now.Add(-5 * time.Minute).Unix() }, "token expired"},
		"unmapped":       {func(c map[string]any) { c["sub"] = "system:serviceaccount:ops:intruder" }, "no identity is bound"},
	} {
		cl := map[string]any{}
		for k, v := range claims {
			cl[k] = v
		}
		tc.edit(cl)
		st, body := e.call(c, "GET", "/v1/whoami", e.iss.Sign(k, cl), nil)
		if st != http.StatusUnauthorized || !strings.Contains(string(body), tc.want) || strings.Contains(string(body), "intruder") {
			t.Errorf("%s: %d %s", name, st, body)
		}
	}
	e.verify()
}

func TestSharedIdentityFinding(t *testing.T) {
	e := newIDEnv(t, "record")
	g := e.request(from("127.0.0.1"), e.bot)
	if len(e.findings()) != 0 {
		t.Fatalf("findings before a second instance: %+v", e.findings())
	}
	// The same key from 127.0.0.2 within the window.
	g2 := e.request(from("127.0.0.2"), e.bot)
	g3 := e.request(from("127.0.0.2"), e.bot)
	// One finding for the identity+instance pair in the window (the
	// second call is deduplicated), on the grant open at that moment, and
	// one on each grant requested while the identity is shared.
	fs := e.findings()
	for _, f := range fs {
		if f.Kind != model.FindingSharedIdentity || f.Identity != "log-triage-bot" || !strings.HasPrefix(f.Instance, "127.0.0.2") ||
			f.Refused || len(f.Others) != 1 || f.Others[0] != "127.0.0.1" {
			t.Fatalf("finding = %+v", f)
		}
		if f.Grant != g.ID && f.Grant != g2.ID && f.Grant != g3.ID {
			t.Fatalf("finding on grant %q: %+v", f.Grant, f)
		}
	}
	if len(fs) != 3 {
		t.Fatalf("findings = %+v, want one on the open grant and one per later grant", fs)
	}
	for _, id := range []string{g.ID, g2.ID} {
		if got := e.grant(id); len(got.Findings) != 1 || got.Findings[0].Kind != model.FindingSharedIdentity {
			t.Fatalf("grant %s findings = %+v", id, got.Findings)
		}
	}
	e.verify()
}

func TestSharedIdentityRefused(t *testing.T) {
	e := newIDEnv(t, "refuse")
	e.request(from("127.0.0.1"), e.bot)
	st, body := e.call(from("127.0.0.2"), "GET", "/v1/whoami", e.bot, nil)
	if st != http.StatusForbidden || !strings.Contains(string(body), "identity_binding is refuse") {
		t.Fatalf("second instance: %d %s", st, body)
	}
	fs := e.findings()
	if len(fs) != 1 || fs[0].Kind != model.FindingSharedIdentity || !fs[0].Refused {
		t.Fatalf("findings = %+v", fs)
	}
	// The first instance carries on.
	if st, body := e.call(from("127.0.0.1"), "GET", "/v1/whoami", e.bot, nil); st != http.StatusOK {
		t.Fatalf("first instance: %d %s", st, body)
	}
	e.verify()
}

// TestSharedIdentityRefusedAfterRestart: a restart within the window does
// not reset identity binding. The detector keeps the instances it saw in
// memory; before it was seeded from the recent requests' records at start,
// after a restart the second instance was let in and the first refused.
func TestSharedIdentityRefusedAfterRestart(t *testing.T) {
	e := newIDEnv(t, "refuse")
	e.request(from("127.0.0.1"), e.bot)
	e.restart()
	st, body := e.call(from("127.0.0.2"), "GET", "/v1/whoami", e.bot, nil)
	if st != http.StatusForbidden || !strings.Contains(string(body), "identity_binding is refuse") {
		t.Fatalf("second instance after the restart: %d %s", st, body)
	}
	if st, body := e.call(from("127.0.0.1"), "GET", "/v1/whoami", e.bot, nil); st != http.StatusOK {
		t.Fatalf("first instance after the restart: %d %s", st, body)
	}
	var refused int
	for _, f := range e.findings() {
		if f.Kind == model.FindingSharedIdentity && f.Refused && strings.HasPrefix(f.Instance, "127.0.0.2") && len(f.Others) == 1 && f.Others[0] == "127.0.0.1" {
			refused++
		}
	}
	if refused != 1 {
		t.Fatalf("findings = %+v, want one refused shared-identity finding for 127.0.0.2", e.findings())
	}
	e.verify()
}

func TestCredentialMoved(t *testing.T) {
	e := newIDEnv(t, "record")
	g := e.request(from("127.0.0.1"), e.bot)
	// From the requester's own address: no finding. Its session stays
	// open: the AWS gateway keeps one per grant and client address.
	if err := e.getObject(g, e.bot, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if f := e.grant(g.ID).Findings; len(f) != 0 {
		t.Fatalf("findings on an unmoved grant: %+v", f)
	}
	if err := e.getObject(g, e.bot, "127.0.0.2"); err != nil {
		t.Fatalf("GetObject from 127.0.0.2: %v", err)
	}
	if err := e.getObject(g, e.bot, "127.0.0.2"); err != nil { // deduplicated
		t.Fatalf("GetObject from 127.0.0.2: %v", err)
	}
	got := e.grant(g.ID)
	if len(got.Findings) != 1 || got.Findings[0].Kind != model.FindingCredentialMoved || got.Findings[0].Refused ||
		!strings.HasPrefix(got.Findings[0].Instance, "127.0.0.2") {
		t.Fatalf("grant findings = %+v", got.Findings)
	}
	if got.Usage.Sessions != 2 {
		t.Fatalf("sessions = %d, want one per client address", got.Usage.Sessions)
	}
	e.verify()

	// An evidence bundle carries the finding in its rows, proven from
	// the log entries it holds.
	bundle, warnings, err := e.srv.Export(context.Background(), "111122223333", time.Now().UTC().Format("2006-01-02"))
	if err != nil || len(warnings) > 0 {
		t.Fatalf("export: %v %v", err, warnings)
	}
	v, err := auditlog.LoadVerifier(e.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := evidence.Verify(bundle, v, server.LogOrigin(v))
	if err != nil {
		t.Fatalf("verify-bundle: %v", err)
	}
	var inBundle bool
	for _, r := range res.Rows {
		if r.Grant == g.ID {
			inBundle = len(r.Findings) == 1 && r.Findings[0].Kind == model.FindingCredentialMoved && r.Auth == "key"
		}
	}
	if !inBundle {
		t.Fatalf("bundle rows = %+v", res.Rows)
	}

	// Findings are review answers derived from the log: a row whose
	// finding was deleted does not pass audit verify.
	db, err := sql.Open("sqlite", filepath.Join(e.dataDir, server.DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	upd, err := db.Exec(`UPDATE grants SET record = json_remove(record, '$.findings') WHERE id = ?`, g.ID)
	if n, _ := upd.RowsAffected(); err != nil || n != 1 {
		t.Fatalf("forging: %v (%d rows)", err, n)
	}
	rep, err := e.srv.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var named bool
	for _, p := range rep.Problems {
		named = named || strings.Contains(p.String(), "findings")
	}
	if rep.OK || !named {
		t.Fatalf("verify after deleting a finding: OK=%v problems %+v", rep.OK, rep.Problems)
	}
}

func TestCredentialMovedRefused(t *testing.T) {
	e := newIDEnv(t, "refuse")
	g := e.request(from("127.0.0.1"), e.bot)
	err := e.getObject(g, e.bot, "127.0.0.2")
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied" {
		t.Fatalf("GetObject from 127.0.0.2: %v, want AccessDenied", err)
	}
	got := e.grant(g.ID)
	if len(got.Findings) != 1 || got.Findings[0].Kind != model.FindingCredentialMoved || !got.Findings[0].Refused {
		t.Fatalf("grant findings = %+v", got.Findings)
	}
	if got.Usage.Calls != 0 {
		t.Fatalf("calls = %d, want none forwarded", got.Usage.Calls)
	}
	// Each refused call is recorded as a rejection, beyond the one finding.
	if err := e.getObject(g, e.bot, "127.0.0.2"); err == nil {
		t.Fatal("second call from 127.0.0.2 allowed")
	}
	st, body := e.call(from("127.0.0.1"), "GET", "/v1/grants/"+g.ID+"/history", e.alice, nil)
	if st != http.StatusOK {
		t.Fatalf("history: %d %s", st, body)
	}
	if n := strings.Count(string(body), "identity_binding is refuse"); n < 2 {
		t.Fatalf("history mentions the refusal %d times, want each refused call: %s", n, body)
	}
	// The requester itself still gets through.
	if err := e.getObject(g, e.bot, "127.0.0.1"); err != nil {
		t.Fatalf("GetObject from the requester: %v", err)
	}
	e.verify()
}

// A call outside the grant's scope from another address, under
// identity_binding: refuse, is refused by the binding as an allowed one
// is, and recorded as a rejection like every refused gateway call. It
// used to be answered with the scope's AccessDenied and recorded nowhere
// but the server's error log ("could not start a session to record a
// denied call"): a moved credential probing outside its scope left no
// trace of the attempt in the log.
func TestCredentialMovedRefusedOutOfScope(t *testing.T) {
	e := newIDEnv(t, "refuse")
	g := e.request(from("127.0.0.1"), e.bot)
	st, body := e.call(from("127.0.0.1"), "POST", "/v1/grants/"+g.ID+"/credentials", e.bot, nil)
	if st != http.StatusOK {
		t.Fatalf("credentials: %d %s", st, body)
	}
	var cr grants.Credentials
	if err := json.Unmarshal(body, &cr); err != nil {
		t.Fatal(err)
	}
	cl := s3.New(s3.Options{
		Region: "us-east-1", UsePathStyle: true, BaseEndpoint: aws.String("http://" + e.awsAddr),
		Credentials: credentials.NewStaticCredentialsProvider(cr.AccessKeyID, cr.SecretAccessKey, cr.SessionToken),
		HTTPClient:  from("127.0.0.2"), RetryMaxAttempts: 1,
	})
	for range 2 {
		_, err := cl.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String("secrets/x.log")})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDenied" || !strings.Contains(ae.ErrorMessage(), "identity_binding is refuse") {
			t.Fatalf("out-of-scope GetObject from 127.0.0.2: %v, want AccessDenied by identity binding", err)
		}
	}
	got := e.grant(g.ID)
	if len(got.Findings) != 1 || got.Findings[0].Kind != model.FindingCredentialMoved || !got.Findings[0].Refused {
		t.Fatalf("grant findings = %+v", got.Findings)
	}
	st, body = e.call(from("127.0.0.1"), "GET", "/v1/grants/"+g.ID+"/history", e.alice, nil)
	if st != http.StatusOK {
		t.Fatalf("history: %d %s", st, body)
	}
	if n := strings.Count(string(body), "identity_binding is refuse"); n < 2 {
		t.Fatalf("history mentions the refusal %d times, want each refused call: %s", n, body)
	}
	e.verify()
}

func TestCredentialMovedPostgresRefused(t *testing.T) {
	e := newIDEnv(t, "refuse")
	g := e.requestFor(from("127.0.0.1"), e.bot, "orders-db", "pg:select postgres.public.*")
	err := e.pgQuery(g, e.bot, "127.0.0.2")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28000" {
		t.Fatalf("connect from 127.0.0.2: %v, want SQLSTATE 28000", err)
	}
	got := e.grant(g.ID)
	if len(got.Findings) != 1 || got.Findings[0].Kind != model.FindingCredentialMoved || !got.Findings[0].Refused {
		t.Fatalf("grant findings = %+v", got.Findings)
	}
	if err := e.pgQuery(g, e.bot, "127.0.0.1"); err != nil {
		t.Fatalf("connect from the requester: %v", err)
	}
	e.verify()
}
