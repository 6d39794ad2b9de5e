package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/textesc"
)

// forged is an S3 key that, printed raw, returns the cursor to the start
// of the line, erases it (ESC[2K) and writes an allowed read of a harmless
// object in its place: the refused read of secret.txt would show in the
// transcript as a permitted one.
const forged = "secret.txt\r\x1b[2K  #4      2026-12-01 10:00:00.000Z  ✓ s3:GetObject arn:aws:s3:::logs/app/harmless.log"

// hostile is free text (a request's reason) with the characters a
// terminal acts on or that reorder text that the server lets through in
// free text (it refuses C0 controls other than tab, DEL and C1 controls):
// a tab, a right-to-left override, an isolate and a right-to-left mark.
const hostile = "INC-1\tapproved by security\u202eevil\u2067x\u2069\u200f"

// checkTerminalSafe fails if out holds anything textesc escapes, other
// than the newlines that end lines.
func checkTerminalSafe(t *testing.T, what, out string) {
	t.Helper()
	for i, line := range strings.Split(out, "\n") {
		if textesc.Needs(line) {
			t.Errorf("%s: line %d holds characters a terminal acts on: %q", what, i+1, line)
		}
	}
	if !utf8.ValidString(out) {
		t.Errorf("%s: output is not UTF-8", what)
	}
}

// TestSessionShowEscapesForgedKey drives the forgery of issue 11 through
// the real AWS gateway: the agent's refused GET of that key is recorded,
// and `airlock session show` must print it escaped, on one line, as the
// refusal it was, while -o json keeps the key exactly.
func TestSessionShowEscapesForgedKey(t *testing.T) {
	l := startServer(t, nil)
	ctx := context.Background()
	bot := client.New("http://"+l.apiAddr, l.botKey)
	g, err := bot.Request(ctx, grants.RequestInput{Target: "aws-prod", Scope: []string{"s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*"}, Duration: "10m", Reason: hostile})
	if err != nil || g.Status != model.Active {
		t.Fatalf("request: %v (%s)", err, g.Status)
	}
	cr, err := bot.Credentials(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	s3c := s3.New(s3.Options{
		Region: cr.Endpoint.Region, BaseEndpoint: aws.String(cr.Endpoint.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(cr.AccessKeyID, cr.SecretAccessKey, cr.SessionToken),
		Retryer:     aws.NopRetryer{},
	})
	_, err = s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String(forged)})
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("GET of the forged key: %v, want a refusal", err)
	}

	code, out, errOut := l.as(l.aliceKey, "session", "show", g.ID)
	if code != 0 {
		t.Fatalf("session show: exit %d: %s", code, errOut)
	}
	checkTerminalSafe(t, "session show", out)
	var line string
	for _, ln := range strings.Split(out, "\n") {
		if strings.Contains(ln, "harmless.log") {
			line = ln
		}
	}
	if !strings.Contains(line, `logs/secret.txt\r\x1b[2K  #4`) || !strings.HasPrefix(strings.Fields(line)[3], "✗") || !strings.Contains(line, "DENIED") {
		t.Errorf("the refused read is not shown as a refusal of the escaped key:\n%s", out)
	}

	// JSON output stays exact: the key as the client sent it.
	code, out, _ = l.as(l.aliceKey, "session", "show", g.ID, "-o", "json")
	if code != 0 {
		t.Fatalf("session show -o json: exit %d", code)
	}
	var views []httpapi.SessionResponse
	if err := json.Unmarshal([]byte(out), &views); err != nil || len(views) != 1 {
		t.Fatalf("session show -o json: %v, %d sessions", err, len(views))
	}
	exact := false
	for _, e := range views[0].Events {
		if c, ok := httpapi.EntryCall(e.Entry); ok && c.Resource == "arn:aws:s3:::logs/"+forged && !c.Allowed {
			exact = true
		}
	}
	if !exact {
		t.Errorf("-o json does not hold the refused call on the exact key:\n%s", out)
	}

	// The reason is shown escaped everywhere people read it.
	for _, args := range [][]string{{"grant", "show", g.ID}, {"grants"}} {
		code, out, errOut := l.as(l.aliceKey, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		checkTerminalSafe(t, strings.Join(args, " "), out)
		if args[0] == "grant" && !strings.Contains(out, textesc.String(hostile)) {
			t.Errorf("grant show does not show the reason escaped:\n%s", out)
		}
	}
}

// TestTablesEscape: the pending and agents tables and grant show escape
// what other users wrote.
func TestTablesEscape(t *testing.T) {
	l := startServer(t, nil)
	ctx := context.Background()
	bot := client.New("http://"+l.apiAddr, l.botKey)
	g, err := bot.Request(ctx, grants.RequestInput{Target: "aws-prod", Scope: []string{"s3:GetObject arn:aws:s3:::logs/*"}, Duration: "30m", Reason: hostile})
	if err != nil || g.Status != model.Pending {
		t.Fatalf("request: %v (%s)", err, g.Status)
	}
	code, out, errOut := l.as(l.aliceKey, "pending")
	if code != 0 || !strings.Contains(out, g.ID) {
		t.Fatalf("pending: exit %d: %s%s", code, out, errOut)
	}
	checkTerminalSafe(t, "pending", out)
	if !strings.Contains(out, textesc.String(hostile)) {
		t.Errorf("pending does not show the reason escaped:\n%s", out)
	}
	// The columns stay aligned: a tab or newline in a value cannot add one.
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Errorf("pending printed %d lines for one request:\n%s", len(lines), out)
	}

	// A person denies it with a hostile reason.
	if _, err := client.New("http://"+l.apiAddr, l.aliceKey).Deny(ctx, g.ID, "no\u2066approved\u202e"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = l.as(l.aliceKey, "agent", "list")
	if code != 0 {
		t.Fatalf("agent list: exit %d: %s", code, errOut)
	}
	checkTerminalSafe(t, "agent list", out)
	code, out, _ = l.as(l.aliceKey, "grant", "show", g.ID)
	if code != 0 || !strings.Contains(out, `no\u2066approved\u202e`) {
		t.Errorf("grant show of the denied grant: exit %d:\n%s", code, out)
	}
	checkTerminalSafe(t, "grant show", out)
}

// TestErrorsEscaped: an error message from the server is printed to
// stderr on one line, escaped, whatever it holds.
func TestErrorsEscaped(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":{"code":"not_found","message":"no grant \"g_1\r\u001b[2Kairlock: g_1 approved\u202e\"\nsecond line\u0085"}}`)
	}))
	defer srv.Close()
	for _, args := range [][]string{{"grant", "show", "g_1"}, {"whoami"}, {"approve", "g_1"}} {
		code, out, errOut := run(t, []string{EnvAddr + "=" + srv.URL, EnvToken + "=k"}, args...)
		if code != 1 || out != "" {
			t.Errorf("%v: exit %d, stdout %q", args, code, out)
		}
		checkTerminalSafe(t, "stderr", errOut)
		if want := `airlock: no grant "g_1\r\x1b[2Kairlock: g_1 approved\u202e" (and 1 more line, not shown)` + "\n"; errOut != want {
			t.Errorf("%v: stderr %q, want %q", args, errOut, want)
		}
	}
}

// TestTranscriptEscapesSQL: a statement with CR and ESC[2K (recorded by
// the PostgreSQL gateway as sent) cannot rewrite its transcript line into
// an allowed, harmless one.
func TestTranscriptEscapesSQL(t *testing.T) {
	entry := `{"type":"session.call","data":{"kind":"request","action":"pg:select","resource":"db","allowed":false,` +
		`"params":{"statement":"select * from secrets\r\u001b[2K  #3      ✓ SQL> select 1","n":"1"},"error":"permission denied"}}`
	var b strings.Builder
	writeTranscript(&b, []httpapi.Event{{Seq: 3, Type: "session.call", Entry: json.RawMessage(entry)}})
	out := b.String()
	checkTerminalSafe(t, "transcript", out)
	if want := `✗ DENIED SQL> select * from secrets\r\x1b[2K  #3      ✓ SQL> select 1`; !strings.Contains(out, want) {
		t.Errorf("transcript %q does not contain %q", out, want)
	}
}

func TestCredentialEnvRefusesControlCharacters(t *testing.T) {
	if err := checkEnvValues([]envVar{{"AWS_ENDPOINT_URL", "http://127.0.0.1:8701"}}); err != nil {
		t.Errorf("a plain value was refused: %v", err)
	}
	err := checkEnvValues([]envVar{{"AWS_SECRET_ACCESS_KEY", "s3cret\r\x1b[2K"}})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("err = %v, want a refusal that does not show the value", err)
	}
}

// TestFindingsTableEscapes: a finding's instance holds the workload
// token's instance claims, which the token's issuer took from whoever ran
// the workload (a branch or workflow name); the findings table must print
// them escaped, one finding per line, as grant show does.
func TestFindingsTableEscapes(t *testing.T) {
	claim := "127.0.0.1 run_id=7\r\x1b[2K\x1b[1A\tforged\u202e"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/findings" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(httpapi.FindingsResponse{Findings: []model.Finding{{
			Kind: model.FindingSharedIdentity, Identity: "ci-bot", Instance: claim, Others: []string{hostile},
		}}})
	}))
	defer srv.Close()
	code, out, errOut := run(t, []string{EnvAddr + "=" + srv.URL, EnvToken + "=k"}, "findings")
	if code != 0 {
		t.Fatalf("findings: exit %d: %s", code, errOut)
	}
	checkTerminalSafe(t, "findings", out)
	if lines := strings.Split(strings.TrimRight(out, "\n"), "\n"); len(lines) != 2 {
		t.Errorf("findings printed %d lines for one finding:\n%s", len(lines), out)
	}
	if !strings.Contains(out, textesc.String(claim)) {
		t.Errorf("findings does not show the instance escaped:\n%s", out)
	}
}

// TestPendingShowsExtension: an approver sees that a request extends a
// grant the holder already has.
func TestPendingShowsExtension(t *testing.T) {
	l := startServer(t, nil)
	ctx := context.Background()
	bot := client.New("http://"+l.apiAddr, l.botKey)
	alice := client.New("http://"+l.apiAddr, l.aliceKey)
	in := grants.RequestInput{Target: "aws-prod", Scope: []string{"s3:GetObject arn:aws:s3:::logs/*"}, Duration: "30m", Reason: "incident"}
	g, err := bot.Request(ctx, in)
	if err != nil || g.Status != model.Pending {
		t.Fatalf("request: %v (%s)", err, g.Status)
	}
	if g, err = alice.Approve(ctx, g.ID, ""); err != nil || g.Status != model.Active {
		t.Fatalf("approve: %v (%s)", err, g.Status)
	}
	in.Extends = g.ID
	ext, err := bot.Request(ctx, in)
	if err != nil || ext.Status != model.Pending {
		t.Fatalf("extension: %v (%s)", err, ext.Status)
	}
	code, out, errOut := l.as(l.aliceKey, "pending")
	if code != 0 || !strings.Contains(out, ext.ID) {
		t.Fatalf("pending: exit %d: %s%s", code, out, errOut)
	}
	if !strings.Contains(out, "more (extends "+g.ID+")") {
		t.Errorf("pending does not say the request extends %s:\n%s", g.ID, out)
	}
}
