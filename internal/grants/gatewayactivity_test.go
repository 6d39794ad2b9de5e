package grants_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/findings"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/model"
)

// botFrom is the bot as the API layer passes it for a call from ip.
func (h *harness) botFrom(ip string) model.Identity {
	id := h.id(bot)
	id.Instance = &model.Instance{IP: ip}
	return id
}

// sharedFindings returns the shared-identity findings in the log.
func (h *harness) sharedFindings() []model.Finding {
	h.t.Helper()
	h.syncLog()
	var out []model.Finding
	for _, e := range h.entriesOfType("finding") {
		var ev struct {
			Data model.Finding `json:"data"`
		}
		if err := json.Unmarshal(e.Data, &ev); err != nil {
			h.t.Fatal(err)
		}
		if ev.Data.Kind == model.FindingSharedIdentity {
			out = append(out, ev.Data)
		}
	}
	return out
}

// An instance that requested a grant and then works only through the
// gateway is active for as long as it does: another instance calling the
// API meanwhile is a shared-identity finding. Before, only API calls
// counted, so once the findings window had passed since the first
// instance's last API call (here 14 minutes of gateway work later, with a
// 10-minute window) the second instance went unflagged.
func TestGatewaySessionKeepsInstanceActive(t *testing.T) {
	h := newHarness(t, harnessOptions{Manual: true, FindingsWindow: 10 * time.Minute})
	b := h.botFrom("10.0.0.1")
	if err := h.Svc.ObserveCall(h.ctx, b); err != nil {
		t.Fatal(err)
	}
	g, err := h.Svc.Request(h.ctx, b, autoReq("15m"))
	if err != nil || g.Status != model.Active {
		t.Fatalf("request: %v, %v", g.Status, err)
	}
	ses := h.startSession(g, "10.0.0.1:40000 aws-cli/2")
	for range 4 {
		h.fake.Advance(3*time.Minute + 30*time.Second)
		if err := gatewaytest.Record(h.ctx, ses, gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a.log", Allowed: true}); err != nil {
			t.Fatal(err)
		}
	}
	if fs := h.sharedFindings(); len(fs) != 0 {
		t.Fatalf("findings while one instance works: %+v", fs)
	}
	if err := h.Svc.ObserveCall(h.ctx, h.botFrom("10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	fs := h.sharedFindings()
	if len(fs) != 1 || fs[0].Instance != "10.0.0.2" || len(fs[0].Others) != 1 || fs[0].Others[0] != "10.0.0.1" {
		t.Fatalf("a second instance 14 minutes into the first one's gateway session: findings %+v, want one for 10.0.0.2 against 10.0.0.1", fs)
	}
	// A session from another address is the credential-moved finding's,
	// not activity of the requester.
	ses.End(h.ctx)
}

// A gateway session that starts while another instance of the identity is
// active is a shared-identity finding on the grant; under identity_binding:
// refuse the session is refused, as a second instance's API call is.
func TestGatewaySessionStartWhileShared(t *testing.T) {
	for _, binding := range []string{"record", "refuse"} {
		t.Run(binding, func(t *testing.T) {
			h := newHarness(t, harnessOptions{Manual: true, FindingsWindow: 10 * time.Minute, Binding: binding})
			g, err := h.Svc.Request(h.ctx, h.botFrom("10.0.0.1"), autoReq("15m"))
			if err != nil || g.Status != model.Active {
				t.Fatalf("request: %v, %v", g.Status, err)
			}
			h.fake.Advance(11 * time.Minute) // the requester's sighting has aged out
			if err := h.Svc.ObserveCall(h.ctx, h.botFrom("10.0.0.2")); err != nil {
				t.Fatalf("the only instance active: %v", err)
			}
			gg, err := h.Svc.Authority().Lookup(g.CredentialID)
			if err != nil {
				t.Fatal(err)
			}
			ses, err := h.Svc.Authority().StartSession(h.ctx, gg, "10.0.0.1:40000 aws-cli/2")
			fs := h.sharedFindings()
			if len(fs) != 1 || fs[0].Grant != g.ID || fs[0].Instance != "10.0.0.1" || len(fs[0].Others) != 1 || fs[0].Others[0] != "10.0.0.2" {
				t.Fatalf("findings %+v, want one on %s for 10.0.0.1 against 10.0.0.2", fs, g.ID)
			}
			switch binding {
			case "refuse":
				if err == nil || !strings.Contains(err.Error(), "identity_binding is refuse") || !fs[0].Refused || fs[0].Session != "" {
					t.Fatalf("session start under refuse: %v, finding %+v", err, fs[0])
				}
			default:
				if err != nil || fs[0].Refused || fs[0].Session != ses.ID {
					t.Fatalf("session start under record: %v, finding %+v", err, fs[0])
				}
				ses.End(h.ctx)
			}
			if got := h.grant(g.ID); len(got.Findings) != 1 {
				t.Fatalf("grant findings %+v", got.Findings)
			}
		})
	}
}

// A finding names at most findings.MaxOthers of the other instances, and
// its detail counts them all. Each new instance of a shared identity lists
// the others active, so N instances within a window (a fleet sharing one
// key, or one stolen key used from many addresses) wrote N findings of up
// to N instances each into the log and onto every grant requested meanwhile.
func TestFindingListsBoundedOthers(t *testing.T) {
	h := newHarness(t, harnessOptions{Manual: true, FindingsWindow: 10 * time.Minute})
	const n = findings.MaxOthers + 5
	for i := range n {
		if err := h.Svc.ObserveCall(h.ctx, h.botFrom(fmt.Sprintf("10.0.0.%d", i+1))); err != nil {
			t.Fatal(err)
		}
	}
	req := h.botFrom("10.0.1.1")
	if err := h.Svc.ObserveCall(h.ctx, req); err != nil { // as the API does before every call
		t.Fatal(err)
	}
	g, err := h.Svc.Request(h.ctx, req, autoReq("15m"))
	if err != nil {
		t.Fatal(err)
	}
	// One per instance but the first, and one on the grant.
	fs := h.sharedFindings()
	if len(fs) != n+1 {
		t.Fatalf("%d shared-identity findings, want %d", len(fs), n+1)
	}
	last := fs[len(fs)-1]
	if last.Grant != g.ID || len(last.Others) != findings.MaxOthers || !strings.Contains(last.Detail, fmt.Sprintf("%d instances", n+1)) {
		t.Fatalf("finding on the grant: %d others (want %d), detail %q (want %d instances)", len(last.Others), findings.MaxOthers, last.Detail, n+1)
	}
	for _, f := range fs[:len(fs)-1] {
		if len(f.Others) > findings.MaxOthers {
			t.Fatalf("finding for %s lists %d others", f.Instance, len(f.Others))
		}
	}
}

// A session of the grant from the requester's address but presenting
// another client certificate is another agent instance on that host (the
// credential-moved finding at its start says so), not the requester at
// work: its use must not keep the requester noted as active. Before,
// sessionActive compared addresses only, so 14 minutes of the other
// instance's gateway work kept the requester "active" and another
// instance calling the API was flagged against it, although the requester
// had not acted for longer than the window. The requester's own
// certificate, and a client presenting none (which tells nothing, as for
// credential-moved), still keep it active.
func TestGatewaySessionOfAnotherCertNotRequesterActivity(t *testing.T) {
	certA, certB := strings.Repeat("a", 64), strings.Repeat("b", 64)
	for _, tc := range []struct {
		name, cert string
		active     bool
	}{{"another certificate", certB, false}, {"the requester's certificate", certA, true}, {"no certificate", "", true}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{Manual: true, FindingsWindow: 10 * time.Minute})
			b := h.botFrom("10.0.0.1")
			b.Instance.TLSClient = certA
			if err := h.Svc.ObserveCall(h.ctx, b); err != nil {
				t.Fatal(err)
			}
			g, err := h.Svc.Request(h.ctx, b, autoReq("15m"))
			if err != nil || g.Status != model.Active {
				t.Fatalf("request: %v, %v", g.Status, err)
			}
			gg, err := h.Svc.Authority().Lookup(g.CredentialID)
			if err != nil {
				t.Fatal(err)
			}
			ses, err := h.Svc.Authority().StartSession(gateway.WithTLSClient(h.ctx, tc.cert), gg, "10.0.0.1:40000 aws-cli/2")
			if err != nil {
				t.Fatal(err)
			}
			for range 4 {
				h.fake.Advance(3*time.Minute + 30*time.Second)
				if err := gatewaytest.Record(h.ctx, ses, gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/app/a.log", Allowed: true}); err != nil {
					t.Fatal(err)
				}
			}
			ses.End(h.ctx)
			moved := len(h.grant(g.ID).Findings) == 1 && h.grant(g.ID).Findings[0].Kind == model.FindingCredentialMoved
			if moved == tc.active {
				t.Fatalf("grant findings %+v; want credential-moved only for another certificate", h.grant(g.ID).Findings)
			}
			if err := h.Svc.ObserveCall(h.ctx, h.botFrom("10.0.0.2")); err != nil {
				t.Fatal(err)
			}
			fs := h.sharedFindings()
			switch {
			case !tc.active && len(fs) != 0:
				t.Fatalf("the requester idle for 14 minutes (10-minute window) while another certificate used its grant from its address: shared-identity findings %+v, want none", fs)
			case tc.active && (len(fs) != 1 || len(fs[0].Others) != 1 || fs[0].Others[0] != findings.Key(*b.Instance)):
				t.Fatalf("findings %+v, want one against the requester's instance, kept active by its session", fs)
			}
		})
	}
}
