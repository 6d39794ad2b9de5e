package notify

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/clock"
)

func form(payload string) []byte {
	return []byte(url.Values{"payload": {payload}}.Encode())
}

// FuzzParsePayload: the callback's parser never panics, accepts only one
// well-formed action on a grant id, and the signature check refuses any
// body it was not computed over.
func FuzzParsePayload(f *testing.F) {
	f.Add(form(`{"type":"block_actions","user":{"id":"U0ALICE"},"trigger_id":"1.2","response_url":"https://hooks.slack.com/actions/T/1/x","actions":[{"action_id":"airlock_approve:g_abc123"}]}`))
	f.Add(form(`{"type":"block_actions","user":{"id":"U0ALICE"},"actions":[{"action_id":"airlock_deny:g_abc123"},{"action_id":"airlock_approve:g_abc123"}]}`))
	f.Add(form(`{"type":"block_actions","user":{"id":"U0ALICE"},"actions":[{"action_id":"airlock_approve:g_abc123","value":"v1.AAAA.BBBB"}]}`))
	f.Add(form(`{"type":"view_submission"}`))
	f.Add(form(`{"type":"block_actions","user":{"id":"U1"},"actions":[{"action_id":"airlock_approve:g_../../x"}]}`))
	f.Add([]byte("payload=%zz"))
	f.Add([]byte(""))
	secret := []byte("fuzz-secret")
	n := &Notifier{o: Options{Slack: &Slack{SigningSecret: secret}}, clk: clock.NewFake(time.Unix(1700000000, 0))}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := parsePayload(body)
		if err == nil {
			if a.verb != "approve" && a.verb != "deny" {
				t.Fatalf("verb %q", a.verb)
			}
			if !validID(a.grant, "g_") || strings.ContainsAny(a.grant, "/.%:") {
				t.Fatalf("grant id %q", a.grant)
			}
			if !slackID(a.user) {
				t.Fatalf("user %q", a.user)
			}
			if len(a.value) > maxButtonValue {
				t.Fatalf("a value of %d bytes", len(a.value))
			}
		}
		h := http.Header{}
		h.Set("X-Slack-Request-Timestamp", strconv.FormatInt(1700000000, 10))
		h.Set("X-Slack-Signature", "v0="+strings.Repeat("0", 64))
		if n.verify(h, body) == "" {
			t.Fatal("a zero signature verified")
		}
	})
}

func TestEsc(t *testing.T) {
	for in, want := range map[string]string{
		"<!channel> & <@U1>":        "&lt;!channel&gt; &amp; &lt;@U1&gt;",
		"a\x1b[31mred\x07":          `a\u001b[31mred\u0007`,
		"line\u2028break\u202egnp.": `line\u2028break\u202egnp.`,
		"\xff":                      `\ufffd`,
		"plain *bold* _x_":          "plain *bold* _x_",
	} {
		if got := esc(in); got != want {
			t.Errorf("esc(%q) = %q, want %q", in, got, want)
		}
	}
	long := esc(strings.Repeat("<", 2000))
	if utf8.RuneCountInString(long) > maxField*4+1 || !strings.HasSuffix(long, "…") {
		t.Errorf("long text not bounded: %d runes", utf8.RuneCountInString(long))
	}
}

func TestReplayCacheBounded(t *testing.T) {
	c := newReplayCache(2)
	t0 := time.Unix(1700000000, 0)
	if !c.add("a", t0) || c.add("a", t0.Add(time.Minute)) {
		t.Fatal("a second sighting within the window was accepted")
	}
	if !c.add("b", t0) || c.add("c", t0.Add(time.Minute)) {
		t.Fatal("a full cache of live entries accepted a new key")
	}
	if !c.add("c", t0.Add(2*window+time.Second)) {
		t.Fatal("expired entries were not evicted")
	}
}

// TestRefusalRecordsLimited: unsigned refusals are written to the log at
// most maxUnsignedRecords a minute, then again in the next minute.
func TestRefusalRecordsLimited(t *testing.T) {
	l := &limiter{per: time.Minute, max: maxUnsignedRecords}
	t0 := time.Unix(1700000000, 0)
	for i := range maxUnsignedRecords {
		if !l.allow(t0.Add(time.Duration(i) * time.Millisecond)) {
			t.Fatalf("refused record %d of the first minute", i)
		}
	}
	if l.allow(t0.Add(30 * time.Second)) {
		t.Fatal("allowed more than the limit in one minute")
	}
	if !l.allow(t0.Add(time.Minute)) {
		t.Fatal("still refusing in the next minute")
	}
}

// FuzzParseDecision: a webhook decision either parses into a known verb,
// a grant id as grants issues them and a bounded approver, or is refused;
// and no signature header verifies a body under a secret it was not made
// with.
func FuzzParseDecision(f *testing.F) {
	f.Add([]byte(`{"grant_id":"g_abc123","decision":"approve","approver":"alice","comment":"ok"}`), "t=1700000000,v1="+strings.Repeat("0", 64))
	f.Add([]byte(`{"grant_id":"g_abc123","decision":"deny","approver":"carol","reason":"no"}`), "t=1700000000,v1=")
	f.Add([]byte(`{"grant_id":"g_../x","decision":"approve","approver":"alice"}`), "t=,v1=00")
	f.Add([]byte(`{"grant_id":"g_abc123","decision":"approve","approver":"alice"} {}`), "v1=00,t=1700000000")
	f.Add([]byte(`{"grant_id":"g_abc123","decision":"approve","approver":"alice","extra":1}`), "")
	f.Add([]byte(``), "t=99999999999999999999,v1=00")
	n := &Notifier{o: Options{Webhooks: []Webhook{{Secret: []byte("fuzz-secret"), Decisions: true}, {Secret: []byte("receive-only")}}},
		clk: clock.NewFake(time.Unix(1700000000, 0))}
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		d, err := parseDecision(body)
		if err == nil {
			if d.Decision != "approve" && d.Decision != "deny" {
				t.Fatalf("decision %q", d.Decision)
			}
			if !validID(d.GrantID, "g_") || strings.ContainsAny(d.GrantID, "/.%:") {
				t.Fatalf("grant id %q", d.GrantID)
			}
			if d.Approver == "" || len(d.Approver) > 128 {
				t.Fatalf("approver %q", d.Approver)
			}
		}
		h := http.Header{}
		h.Set(SignatureHeader, sig)
		if n.verifyDecision(h, body) == "" && sig != Sign([]byte("fuzz-secret"), body, time.Unix(1700000000, 0)) {
			// Only the deciding webhook's own signature, at a fresh
			// time, may verify; the fuzzer cannot forge one.
			ts, _, _ := parseSignature(sig)
			if sig != Sign([]byte("fuzz-secret"), body, time.Unix(ts, 0)) {
				t.Fatalf("signature %q verified", sig)
			}
		}
		h.Set(SignatureHeader, Sign([]byte("receive-only"), body, time.Unix(1700000000, 0)))
		if n.verifyDecision(h, body) == "" {
			t.Fatal("a receive-only webhook's signature verified a decision")
		}
	})
}
