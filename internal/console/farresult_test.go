package console_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/cli"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/httpapi"
)

// TestFarResultConsoleAndCLIAgree: a result logged further than
// httpapi.PairWindow after its request (here 5,001 log positions: the
// session's own calls between them) is shown by the console and printed
// by airlock session show alike: where its batch was logged, once, not
// under its request, and not lost. The console paired a result with a
// request on another page within 4,999 log positions only, while session
// show held back 10,000 events for it and printed it under its request.
func TestFarResultConsoleAndCLIAgree(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	_, ses := e.startedSession(t, "far results")
	if err := ses.Request(ctx, gateway.Call{Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/far", Allowed: true, Params: map[string]string{"request_id": "far"}}); err != nil {
		t.Fatal(err)
	}
	// Calls with no request id between them: nothing pairs with them.
	var ps []*gateway.Pending
	for i := range httpapi.PairWindow {
		ps = append(ps, ses.RequestAsync(ctx, gateway.Call{Action: "s3:GetObject", Resource: fmt.Sprintf("arn:aws:s3:::logs/app/k%04d", i), Allowed: true}))
	}
	for _, p := range ps {
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := ses.Result(ctx, gateway.Call{Action: "s3:GetObject", Status: "299", Params: map[string]string{"request_id": "far"}}); err != nil {
		t.Fatal(err)
	}
	if err := ses.End(ctx); err != nil {
		t.Fatal(err)
	}

	// The console: the request on the first page (of 5,000 events), its
	// result on the second, at its batch.
	b := e.browser()
	b.mustSignIn(e.alice)
	p := b.get("/console/sessions/" + ses.ID)
	if p.status != http.StatusOK || !strings.Contains(p.body, "logs/app/far") {
		t.Fatalf("page 1: %d", p.status)
	}
	if strings.Contains(p.body, "→ 299</td>") {
		t.Errorf("page 1: the result logged %d positions after its request is shown under it", httpapi.PairWindow+2)
	}
	m := regexp.MustCompile(`href="/console/sessions/` + ses.ID + `\?after=(\d+)`).FindStringSubmatch(p.body)
	if m == nil {
		t.Fatal("page 1: no link to the next page")
	}
	p = b.get("/console/sessions/" + ses.ID + "?after=" + m[1])
	if p.status != http.StatusOK || strings.Count(p.body, "→ 299</td>") != 1 {
		t.Errorf("page 2: %d; the result is not shown once at its batch", p.status)
	}

	// airlock session show, a page of 1,000 events at a time.
	var out, errOut bytes.Buffer
	vars := map[string]string{cli.EnvAddr: e.url, cli.EnvToken: e.alice}
	if code := cli.Main(ctx, []string{"session", "show", ses.ID}, &out, &errOut, func(k string) string { return vars[k] }); code != 0 {
		t.Fatalf("session show: exit %d: %s", code, errOut.String())
	}
	if n := strings.Count(out.String(), "→ 299"); n != 1 {
		t.Fatalf("session show prints the result %d times:\n%s", n, out.String())
	}
	if regexp.MustCompile(`logs/app/far .*\n +#\d+\.\d+ +→ 299`).MatchString(out.String()) {
		t.Errorf("session show prints the result under its request, logged %d positions before it", httpapi.PairWindow+2)
	}
	if !regexp.MustCompile(`\n +#\d+\.1 +[-\d]+ [\d:.]+Z +→ 299\n +#\d+ +[-\d]+ [\d:.]+Z +session\.ended`).MatchString(out.String()) {
		t.Errorf("session show does not print the result at its batch, before the session's end:\n%.2000s", out.String()[strings.Index(out.String(), "→ 299")-200:])
	}
}
