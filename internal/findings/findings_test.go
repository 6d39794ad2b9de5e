package findings

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/model"
)

func TestSharedWithinWindowOnly(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	d := New(clk, 10*time.Minute)
	a, b := model.Instance{IP: "127.0.0.1"}, model.Instance{IP: "127.0.0.2"}

	if others, report := d.Shared("bot", a); len(others) != 0 || report {
		t.Fatalf("first instance: %v %v", others, report)
	}
	// Another user agent from the same place is the same instance.
	if others, _ := d.Shared("bot", model.Instance{IP: "127.0.0.1", UserAgent: "curl"}); len(others) != 0 {
		t.Fatalf("same IP, other user agent: %v", others)
	}
	clk.Advance(9 * time.Minute)
	others, report := d.Shared("bot", b)
	if len(others) != 1 || others[0] != "127.0.0.1" || !report {
		t.Fatalf("second instance within the window: %v %v", others, report)
	}
	// Reported once per pair per window.
	if _, report := d.Shared("bot", b); report {
		t.Fatal("reported twice in one window")
	}
	// Another identity is separate.
	if others, _ := d.Shared("other", b); len(others) != 0 {
		t.Fatalf("other identity: %v", others)
	}
	// Once a's last call is older than the window, b alone is not shared.
	clk.Advance(10 * time.Minute)
	if others, _ := d.Shared("bot", b); len(others) != 0 {
		t.Fatalf("after the window: %v", others)
	}
	// A new overlap in a later window is reported again.
	d.Shared("bot", a)
	clk.Advance(11 * time.Minute)
	d.Shared("bot", a)
	if _, report := d.Shared("bot", b); !report {
		t.Fatal("new window, not reported")
	}
	// Pods of one service account behind one node IP differ by claims.
	p1 := model.Instance{IP: "10.0.0.1", Claims: map[string]string{"kubernetes.io/pod/name": "p1"}}
	p2 := model.Instance{IP: "10.0.0.1", Claims: map[string]string{"kubernetes.io/pod/name": "p2"}}
	d.Shared("k8s", p1)
	if others, _ := d.Shared("k8s", p2); len(others) != 1 {
		t.Fatalf("two pods: %v", others)
	}
}

// Under refuse, a refused instance is not noted (it did not act), and one
// noted before (another replica's sighting let both in) is forgotten: it
// must not make the identity's first instance look shared in turn.
func TestObserveRefused(t *testing.T) {
	d := New(clock.NewFake(time.Unix(0, 0)), time.Minute)
	a, b := model.Instance{IP: "127.0.0.1"}, model.Instance{IP: "127.0.0.2"}
	if others, _ := d.Observe("bot", a, true); len(others) != 0 {
		t.Fatalf("first instance: others %v", others)
	}
	others, report := d.Observe("bot", b, true)
	if len(others) != 1 || others[0] != "127.0.0.1" || !report {
		t.Fatalf("second instance: others %v, report %v", others, report)
	}
	if got := d.Active("bot"); len(got) != 1 || got[0] != "127.0.0.1" {
		t.Fatalf("active after the refusal: %v, want the first instance alone", got)
	}
	d.Note("bot", Key(b))
	if others, _ := d.Observe("bot", b, true); len(others) != 1 {
		t.Fatalf("noted second instance: others %v", others)
	}
	if got := d.Active("bot"); len(got) != 1 || got[0] != "127.0.0.1" {
		t.Fatalf("active after refusing a noted instance: %v, want the first instance alone", got)
	}
}

func TestMoved(t *testing.T) {
	d := New(clock.NewFake(time.Unix(0, 0)), time.Minute)
	req := model.Instance{IP: "127.0.0.1", UserAgent: "airlock-cli"}
	if moved, _ := d.Moved("g1", req, model.Instance{IP: "127.0.0.1", UserAgent: "aws-cli"}); moved {
		t.Fatal("same IP reported as moved")
	}
	if moved, report := d.Moved("g1", req, model.Instance{IP: "127.0.0.2"}); !moved || !report {
		t.Fatal("other IP not reported")
	}
	if moved, report := d.Moved("g1", req, model.Instance{IP: "127.0.0.2"}); !moved || report {
		t.Fatal("grant+instance reported twice")
	}
	if _, report := d.Moved("g2", req, model.Instance{IP: "127.0.0.2"}); !report {
		t.Fatal("another grant not reported")
	}
	if moved, _ := d.Moved("g3", model.Instance{}, model.Instance{IP: "127.0.0.2"}); moved {
		t.Fatal("grant without a requester instance reported")
	}
}

func TestFingerprint(t *testing.T) {
	r := httptest.NewRequest("GET", "/v1/whoami", nil)
	r.RemoteAddr = "[::1]:5555"
	r.Header.Set("User-Agent", "evil\r\x1b[2Kagent")
	in := FromRequest(r)
	if in.IP != "::1" || in.UserAgent != `evil\r\x1b[2Kagent` {
		t.Fatalf("instance = %+v", in)
	}
	if IPOf("127.0.0.2:4444 aws-cli/2.0") != "127.0.0.2" || IPOf("127.0.0.3") != "127.0.0.3" {
		t.Fatal("IPOf")
	}
}

// TestKeyBoundsClaims: a long claim is kept in a key as its start and a
// hash of the whole, cut on a character boundary: keys stay short however
// long the token's claims, and instances differing only at the end of a
// claim stay apart.
func TestKeyBoundsClaims(t *testing.T) {
	long := strings.Repeat("é", 8000) // 16,000 bytes, two per character
	in := func(v string) model.Instance {
		return model.Instance{IP: "10.0.0.1", Claims: map[string]string{"ref": v, "run_id": "42"}}
	}
	a, b := Key(in(long+"a")), Key(in(long+"b"))
	if a == b {
		t.Fatal("instances differing at the end of a long claim have one key")
	}
	if Key(in(long+"a")) != a {
		t.Fatal("one instance, two keys")
	}
	for _, k := range []string{a, b} {
		if len(k) > len("10.0.0.1 ref= run_id=42")+MaxClaimValue || !utf8.ValidString(k) || !strings.HasPrefix(k, "10.0.0.1 ref=éé") || !strings.HasSuffix(k, " run_id=42") {
			t.Fatalf("key %q (%d bytes)", k, len(k))
		}
	}
	if k := Key(in("refs/heads/main")); k != "10.0.0.1 ref=refs/heads/main run_id=42" {
		t.Fatalf("a short claim's key %q", k)
	}
}

// TestNoteAndMarkReported: an instance another replica saw counts as
// active here (and expires with the window), and a finding another replica
// reported is not reported again within the window.
func TestNoteAndMarkReported(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	d := New(clk, 10*time.Minute)
	a, b := model.Instance{IP: "127.0.0.1"}, model.Instance{IP: "127.0.0.2"}
	d.Note("bot", Key(a))
	others, report := d.Shared("bot", b)
	if len(others) != 1 || others[0] != "127.0.0.1" || !report {
		t.Fatalf("a call from b after another replica saw a: %v %v", others, report)
	}
	// Another replica reported a's pair: a's next call here is not
	// reported again, until the window passes.
	d.MarkReported(SharedKey("bot", Key(a)))
	if others, report := d.Shared("bot", a); len(others) != 1 || report {
		t.Fatalf("a after its finding was reported elsewhere: %v %v", others, report)
	}
	clk.Advance(11 * time.Minute)
	d.Note("bot", Key(b))
	if others, report := d.Shared("bot", a); len(others) != 1 || !report {
		t.Fatalf("a, a window later: %v %v", others, report)
	}
	clk.Advance(11 * time.Minute)
	if others, _ := d.Shared("other-bot", a); len(others) != 0 {
		t.Fatalf("another identity: %v", others)
	}
	if got := d.Active("bot"); len(got) != 0 {
		t.Fatalf("noted instances outlive the window: %v", got)
	}
}

// TestNoteAt: a sighting read back from a record counts from its own time,
// a later one is not moved back by an earlier record, and one older than
// the window is not noted.
func TestNoteAt(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	clk := clock.NewFake(start)
	d := New(clk, 10*time.Minute)
	d.NoteAt("bot", "127.0.0.1", start.Add(-4*time.Minute))
	d.NoteAt("bot", "127.0.0.1", start.Add(-9*time.Minute))  // earlier: ignored
	d.NoteAt("bot", "127.0.0.3", start.Add(-10*time.Minute)) // outside the window
	if got := d.Active("bot"); len(got) != 1 || got[0] != "127.0.0.1" {
		t.Fatalf("active after NoteAt: %v", got)
	}
	if others, report := d.Shared("bot", model.Instance{IP: "127.0.0.2"}); len(others) != 1 || others[0] != "127.0.0.1" || !report {
		t.Fatalf("second instance: %v %v", others, report)
	}
	// 127.0.0.1 counts from 4 minutes before start, not 9: still active
	// 5 minutes on, gone 6.
	clk.Advance(5 * time.Minute)
	if got := d.Active("bot"); len(got) != 2 {
		t.Fatalf("5 minutes on: %v", got)
	}
	clk.Advance(time.Minute)
	if got := d.Active("bot"); len(got) != 1 || got[0] != "127.0.0.2" {
		t.Fatalf("6 minutes on: %v", got)
	}
}

// One identity seen from ever more addresses within the window (a fleet
// sharing one key, or a stolen key used from a rotating range) is
// remembered from at most maxInstances of them, the latest, and is still
// reported for each new one. The detector used to keep every address for
// the window, and walk them all at every call.
func TestInstancesPerIdentityBounded(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	d := New(clk, 10*time.Minute)
	d.maxInstances = 50
	ip := func(i int) model.Instance { return model.Instance{IP: fmt.Sprintf("10.0.%d.%d", i/256, i%256)} }
	for i := range 500 {
		clk.Advance(time.Millisecond)
		others, report := d.Shared("bot", ip(i))
		if i > 0 && (len(others) == 0 || !report) {
			t.Fatalf("instance %d: others %d, report %v", i, len(others), report)
		}
		if len(others) >= d.maxInstances {
			t.Fatalf("instance %d: %d others, want fewer than %d", i, len(others), d.maxInstances)
		}
	}
	d.Note("bot", "10.9.9.9")
	d.NoteAt("bot", "10.9.9.8", clk.Now().Add(-time.Second))
	active := d.Active("bot")
	if len(active) != d.maxInstances {
		t.Fatalf("%d instances remembered, want %d", len(active), d.maxInstances)
	}
	got := map[string]bool{}
	for _, k := range active {
		got[k] = true
	}
	// The latest are kept (NoteAt's, a second old, took the place of the
	// oldest then).
	for _, k := range []string{Key(ip(499)), Key(ip(452)), "10.9.9.9", "10.9.9.8"} {
		if !got[k] {
			t.Errorf("%s forgotten; remembered %v", k, active)
		}
	}
}

// The findings remembered as reported are bounded even when all are
// within their window: one grant's credentials used from ever more
// addresses added one each, kept a day.
func TestReportedBounded(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	d := New(clk, 10*time.Minute)
	d.maxReported = 400
	req := model.Instance{IP: "10.0.0.1"}
	for i := range 5000 {
		clk.Advance(time.Millisecond)
		in := model.Instance{IP: fmt.Sprintf("10.1.%d.%d", i/256, i%256)}
		if moved, report := d.Moved("g_1", req, in); !moved || !report {
			t.Fatalf("address %d: moved %v, report %v", i, moved, report)
		}
		if len(d.reported) > d.maxReported {
			t.Fatalf("after %d addresses: %d reported remembered, want at most %d", i+1, len(d.reported), d.maxReported)
		}
	}
	// The latest are the ones remembered.
	if _, report := d.Moved("g_1", req, model.Instance{IP: "10.1.19.135"}); report {
		t.Error("the last address was reported again")
	}
}

// TestMovedByTLSClient: at one address, a grant's credentials used with
// another client certificate than the requester's are moved, reported once
// per certificate; a certificate missing on either side tells nothing (the
// tools using the credentials present none unless told to).
func TestMovedByTLSClient(t *testing.T) {
	d := New(clock.NewFake(time.Unix(0, 0)), time.Minute)
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	req := model.Instance{IP: "127.0.0.1", TLSClient: a}
	for _, in := range []model.Instance{{IP: "127.0.0.1", TLSClient: a}, {IP: "127.0.0.1"}} {
		if moved, _ := d.Moved("g1", req, in); moved {
			t.Fatalf("%+v reported as moved from %+v", in, req)
		}
	}
	if moved, _ := d.Moved("g1", model.Instance{IP: "127.0.0.1"}, model.Instance{IP: "127.0.0.1", TLSClient: b}); moved {
		t.Fatal("a certificate where the requester presented none reported as moved")
	}
	other := model.Instance{IP: "127.0.0.1", TLSClient: b, UserAgent: "psql"}
	if moved, report := d.Moved("g1", req, other); !moved || !report {
		t.Fatal("another certificate at the same address not reported")
	}
	if moved, report := d.Moved("g1", req, other); !moved || report {
		t.Fatal("grant+certificate reported twice")
	}
	// A certificate costs nothing to make: a third one at that address is
	// moved (refused under refuse) but not reported again.
	if moved, report := d.Moved("g1", req, model.Instance{IP: "127.0.0.1", TLSClient: strings.Repeat("c", 64)}); !moved || report {
		t.Fatalf("a third certificate at one address: moved %v, report %v; want moved, not reported", moved, report)
	}
	if got, want := MovedInstance(other), "127.0.0.1 tls:"+b[:16]; got != want {
		t.Fatalf("MovedInstance = %q, want %q", got, want)
	}
	for desc, want := range map[string]string{
		Describe(other):                         "127.0.0.1 tls:*",
		Describe(model.Instance{IP: "::1"}):     "::1",
		"10.0.0.1 (tls:" + b[:16] + " spoofed)": "10.0.0.1",
	} {
		if got := MovedReportOf(desc); got != want {
			t.Errorf("MovedReportOf(%q) = %q, want %q", desc, got, want)
		}
	}
}

// TestSharedReportedOncePerAddressForCertificates: instances at one
// address told apart only by their certificates are each an instance, but
// their shared-identity finding is reported once per window: each
// handshake with a fresh self-signed certificate was a finding, written
// onto every open grant of the identity.
func TestSharedReportedOncePerAddressForCertificates(t *testing.T) {
	d := New(clock.NewFake(time.Unix(0, 0)), time.Minute)
	at := func(c string) model.Instance {
		return model.Instance{IP: "127.0.0.1", TLSClient: strings.Repeat(c, 64)}
	}
	if others, _ := d.Shared("bot", at("a")); len(others) != 0 {
		t.Fatalf("first instance: others %v", others)
	}
	if others, report := d.Shared("bot", at("b")); len(others) != 1 || !report {
		t.Fatalf("second certificate: others %v, report %v", others, report)
	}
	for _, c := range []string{"c", "d", "e"} {
		if others, report := d.Shared("bot", at(c)); report || len(others) == 0 {
			t.Fatalf("certificate %s: others %v, report %v; want an instance, not reported again", c, others, report)
		}
	}
	if got := d.Active("bot"); len(got) != 5 {
		t.Fatalf("active = %v, want the five certificates", got)
	}
	// Another address, or none presented there, is reported as before.
	if _, report := d.Shared("bot", model.Instance{IP: "127.0.0.1"}); !report {
		t.Fatal("no certificate at the address not reported")
	}
	if _, report := d.Shared("bot", model.Instance{IP: "127.0.0.2", TLSClient: strings.Repeat("f", 64)}); !report {
		t.Fatal("another address not reported")
	}
}
