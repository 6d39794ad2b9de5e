package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
)

// TestTranscriptNewlinesOnlyInSQL: a transcript line keeps its newlines
// only in a SQL statement (written on several lines, as people write
// SQL). An S3 key may hold a newline, and an upstream's error text whatever
// the agent made it say: shown as line breaks, the rest of the key or
// error drew what looked like further calls of the transcript under the
// real one. They show as \n, as airlock session show prints them.
func TestTranscriptNewlinesOnlyInSQL(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	g := e.request("log-triage-bot", autoScope, "10m", "newlines")
	gg, err := e.srv.Service.Authority().Lookup(e.grant(g.ID).CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	ses, err := e.srv.Service.Authority().StartSession(ctx, gg, "client")
	if err != nil {
		t.Fatal(err)
	}
	forged := "\n#9 12:00:00.000 ✓ s3:GetObject arn:aws:s3:::logs/app/innocent"
	for _, c := range []gateway.Call{
		{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/secret" + forged, Allowed: true, Params: map[string]string{"request_id": "r1"}},
		{Kind: "result", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/secret", Status: "500", Error: "boom" + forged, Params: map[string]string{"request_id": "r1"}},
		{Kind: "request", Action: "pg:select", Resource: "orders.public.t", Allowed: true, Params: map[string]string{"statement": "select 1\nfrom t", "n": "1"}},
	} {
		if err := gatewaytest.Record(ctx, ses, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := ses.End(ctx); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	b.mustSignIn(e.alice)
	for _, path := range []string{"/console/sessions/" + ses.ID, "/console/grants/" + g.ID} {
		p := b.get(path)
		if p.status != http.StatusOK {
			t.Fatalf("%s: %d", path, p.status)
		}
		if strings.Contains(p.body, forged) {
			t.Errorf("%s: a newline of a key or an error is shown as a line break", path)
		}
		for _, want := range []string{`arn:aws:s3:::logs/app/secret\n#9 12:00:00.000`, `error: boom\n#9 12:00:00.000`, "SQL&gt; select 1\nfrom t"} {
			if !strings.Contains(p.body, want) {
				t.Errorf("%s lacks %q", path, want)
			}
		}
	}
}
