package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestVerifyBundleExitCodes: verify-bundle exits 0 for a bundle that
// verifies, 1 for one that does not, and 2 when the file or the key
// cannot be read at all. A missing or unreadable file exited 1, as a
// forged bundle does, so a script could not tell a mistyped path from a
// bundle that failed. A bundle of another log than the one the key's
// airlock serve names (or --origin names) exits 1: it verified before.
func TestVerifyBundleExitCodes(t *testing.T) {
	good := filepath.Join("..", "evidence", "testdata", "bundle-v3.json")
	pub := filepath.Join("..", "evidence", "testdata", "bundle-v3.pub")
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	forged := filepath.Join(dir, "forged.json")
	if err := os.WriteFile(forged, bytes.Replace(b, []byte(`"account":"`), []byte(`"account":"9`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		// The kept bundle is of a test log named airlock/0123abcd.
		{"verified", []string{good, "--key", pub, "--origin", "airlock/0123abcd"}, 0},
		// Not the log airlock serve names after the key (airlock/b63bd326).
		{"of another log", []string{good, "--key", pub}, 1},
		{"of another log, named", []string{good, "--key", pub, "--origin", "airlock/staging"}, 1},
		{"forged", []string{forged, "--key", pub, "--origin", "airlock/0123abcd"}, 1},
		{"not a bundle", []string{pub, "--key", pub}, 1},
		{"missing file", []string{filepath.Join(dir, "nope.json"), "--key", pub}, 2},
		{"a directory", []string{dir, "--key", pub}, 2},
		{"missing key", []string{good, "--key", filepath.Join(dir, "nope.pub")}, 2},
		{"no key", []string{good}, 2},
	} {
		code, out, errOut := run(t, nil, append([]string{"audit", "verify-bundle"}, tc.args...)...)
		if code != tc.want {
			t.Errorf("%s: exit %d, want %d: %s%s", tc.name, code, tc.want, out, errOut)
		}
	}
}

// TestVerifyBundleShowsFindings: a grant's findings are part of the
// review ("who", and "what happened"), and verify-bundle's lines for the
// rows it proved name them, with who approved the grant. They showed
// neither: a bundle whose grant carried a shared-identity finding printed
// "OK" and a line no different from a clean grant's.
func TestVerifyBundleShowsFindings(t *testing.T) {
	l := startServer(t, nil)
	ctx := context.Background()
	bot := client.New("http://"+l.apiAddr, l.botKey)
	g, err := bot.Request(ctx, grants.RequestInput{Target: "aws-prod", Scope: []string{"s3:ListBucket arn:aws:s3:::logs/app/*"}, Duration: "10m", Reason: "findings"})
	if err != nil || g.Status != model.Active {
		t.Fatalf("request: %v (%s)", err, g.Status)
	}
	// The same key from a second address within the window: a
	// shared-identity finding on the open grant.
	other := client.New("http://"+l.apiAddr, l.botKey)
	other.HTTP = &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}}
	if _, err := other.Grant(ctx, g.ID); err != nil {
		t.Fatalf("the second instance: %v", err)
	}
	day := time.Now().UTC().Format("2006-01-02")
	file := filepath.Join(t.TempDir(), "review.json")
	if code, _, errOut := l.as(l.aliceKey, "audit", "export", "--account", "111122223333", "--day", day, "-o", file); code != 0 {
		t.Fatalf("audit export: exit %d: %s", code, errOut)
	}
	code, out, errOut := run(t, nil, "audit", "verify-bundle", file, "--key", filepath.Join(l.dataDir, "log-signing.pub"))
	if code != 0 {
		t.Fatalf("verify-bundle: exit %d: %s%s", code, out, errOut)
	}
	for _, want := range []string{"findings " + model.FindingSharedIdentity, "approved by policy "} {
		if !strings.Contains(out, want) {
			t.Errorf("verify-bundle's output lacks %q:\n%s", want, out)
		}
	}
}

// TestVerifyBundleRefused: verify-bundle on a v4 bundle holding a
// statement PostgreSQL refused (../evidence/testdata/bundle-v4.json: the
// INSERT is denied, not a call) and on a v3 bundle the release that added
// that rule exported (bundle-v3-refused.json): both exit 0 with the same
// rows; the v3 one warns on stderr, in -o json too, that a verifier of the
// v3 text reports its rows as a mismatch. Its refused mark taken off
// (the entry edited in the file) exits 1.
func TestVerifyBundleRefused(t *testing.T) {
	dir := filepath.Join("..", "evidence", "testdata")
	gD := "g_dddddddddddd log-triage-bot active - reason \"count orders\", approved by policy reads, 1 sessions, 1 calls, 1 denied, findings -"
	for _, tc := range []struct {
		name, warn string
	}{{"bundle-v4", ""}, {"bundle-v3-refused", "WARNING this bundle's format predates the documented rule for results marked refused"}} {
		file, pub := filepath.Join(dir, tc.name+".json"), filepath.Join(dir, tc.name+".pub")
		code, out, errOut := run(t, nil, "audit", "verify-bundle", file, "--key", pub, "--origin", "airlock/0123abcd")
		if code != 0 || !strings.Contains(out, "OK: 2 grant(s)") || !strings.Contains(out, "the signed statement lists every one") ||
			!strings.Contains(out, gD) || (tc.warn == "") != (errOut == "") || !strings.HasPrefix(errOut, tc.warn) {
			t.Errorf("verify-bundle %s: exit %d:\n%s%s", tc.name, code, out, errOut)
		}
		code, out, errOut = run(t, nil, "-o", "json", "audit", "verify-bundle", file, "--key", pub, "--origin", "airlock/0123abcd")
		if code != 0 || !strings.Contains(out, `"format": "airlock-evidence-bundle/`) || !strings.HasPrefix(errOut, tc.warn) || (tc.warn == "") != (errOut == "") {
			t.Errorf("verify-bundle -o json %s: exit %d:\n%s%s", tc.name, code, out, errOut)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "bundle-v4.json"))
	if err != nil {
		t.Fatal(err)
	}
	var bundle struct {
		Entries []struct {
			Data string `json:"data"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(b, &bundle); err != nil {
		t.Fatal(err)
	}
	edited := 0
	for _, e := range bundle.Entries {
		data, _ := base64.StdEncoding.DecodeString(e.Data)
		if d := bytes.Replace(data, []byte(`"refused":true,`), nil, 1); !bytes.Equal(d, data) {
			b = bytes.Replace(b, []byte(e.Data), []byte(base64.StdEncoding.EncodeToString(d)), 1)
			edited++
		}
	}
	if edited != 1 {
		t.Fatalf("%d entries edited", edited)
	}
	forged := filepath.Join(t.TempDir(), "forged.json")
	if err := os.WriteFile(forged, b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, nil, "audit", "verify-bundle", forged, "--key", filepath.Join(dir, "bundle-v4.pub"), "--origin", "airlock/0123abcd")
	if code != 1 || !strings.Contains(errOut, "bundle verification FAILED") {
		t.Errorf("verify-bundle of the bundle without its refused mark: exit %d:\n%s%s", code, out, errOut)
	}
}

// TestVerifyBundleVoid: verify-bundle on a v5 bundle carrying a
// log.refused entry (../evidence/testdata/bundle-v5.json: it names the
// second of g_eeeeeeeeeeee's three calls) exits 0, names the void entry
// and prints the row with two calls; -o json has the refusals and void
// entries. The bundle with its log.refused entries taken out exits 1.
func TestVerifyBundleVoid(t *testing.T) {
	dir := filepath.Join("..", "evidence", "testdata")
	file, pub := filepath.Join(dir, "bundle-v5.json"), filepath.Join(dir, "bundle-v5.pub")
	gE := "g_eeeeeeeeeeee log-triage-bot active - reason \"read logs\", approved by policy reads, 1 sessions, 2 calls, 0 denied, findings -"
	code, out, errOut := run(t, nil, "audit", "verify-bundle", file, "--key", pub, "--origin", "airlock/0123abcd")
	if code != 0 || !strings.Contains(out, "OK: 3 grant(s)") || !strings.Contains(out, "void: entries [") ||
		!strings.Contains(out, "named by the 1 log.refused entries proven with them") || !strings.Contains(out, gE) || errOut != "" {
		t.Errorf("verify-bundle: exit %d:\n%s%s", code, out, errOut)
	}
	code, out, errOut = run(t, nil, "-o", "json", "audit", "verify-bundle", file, "--key", pub, "--origin", "airlock/0123abcd")
	if code != 0 || !strings.Contains(out, `"format": "airlock-evidence-bundle/v5"`) || !strings.Contains(out, `"refusals": 1`) || !strings.Contains(out, `"void": [`) || errOut != "" {
		t.Errorf("verify-bundle -o json: exit %d:\n%s%s", code, out, errOut)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(`,"refusals":[`))
	if i < 0 {
		t.Fatal("the v5 fixture carries no refusals")
	}
	forged := filepath.Join(t.TempDir(), "forged.json")
	if err := os.WriteFile(forged, append(b[:i:i], "}\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(t, nil, "audit", "verify-bundle", forged, "--key", pub, "--origin", "airlock/0123abcd")
	if code != 1 || !strings.Contains(errOut, "bundle verification FAILED") {
		t.Errorf("verify-bundle of the bundle without its log.refused entry: exit %d:\n%s%s", code, out, errOut)
	}
}
