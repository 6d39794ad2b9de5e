package grants_test

import (
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestRequestValidation: every malformed request is a 400 naming the field,
// and creates neither a grant nor a log entry.
func TestRequestValidation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{}) // MaxDuration 30m
	active := h.request(bot, autoReq("10m"), model.Active)
	pending := h.request(bot, humanReq("10m"), model.Pending)
	ended := h.request(bot, autoReq("10m"), model.Active)
	if _, err := h.Svc.End(h.ctx, h.id(bot), ended.ID, ""); err != nil {
		t.Fatal(err)
	}
	other := h.request(bot2, autoReq("10m"), model.Active)
	dev := h.request(bot, grants.RequestInput{Target: awsDev, Scope: []string{"s3:GetObject arn:aws:s3:::dev/*"}, Duration: "10m", Reason: "dev"}, model.Active)

	ok := humanReq("10m")
	with := func(f func(in *grants.RequestInput)) grants.RequestInput {
		in := ok
		in.Scope = append([]string(nil), ok.Scope...)
		f(&in)
		return in
	}
	cases := []struct {
		name  string
		in    grants.RequestInput
		field string
	}{
		{"over the cap though policy allows", with(func(in *grants.RequestInput) { in.Duration = "45m" }), "duration"},
		{"just over the cap", with(func(in *grants.RequestInput) { in.Duration = "30m1ns" }), "duration"},
		{"zero", with(func(in *grants.RequestInput) { in.Duration = "0s" }), "duration"},
		{"bare zero", with(func(in *grants.RequestInput) { in.Duration = "0" }), "duration"},
		{"negative", with(func(in *grants.RequestInput) { in.Duration = "-5m" }), "duration"},
		{"garbage", with(func(in *grants.RequestInput) { in.Duration = "soon" }), "duration"},
		{"no unit", with(func(in *grants.RequestInput) { in.Duration = "10" }), "duration"},
		{"empty duration", with(func(in *grants.RequestInput) { in.Duration = "" }), "duration"},
		{"days", with(func(in *grants.RequestInput) { in.Duration = "1d" }), "duration"},
		{"overflow", with(func(in *grants.RequestInput) { in.Duration = "99999999999h" }), "duration"},
		{"unknown target", with(func(in *grants.RequestInput) { in.Target = "aws-nope" }), "target"},
		{"no target", with(func(in *grants.RequestInput) { in.Target = "" }), "target"},
		{"empty scope", with(func(in *grants.RequestInput) { in.Scope = []string{} }), "scope[0]"},
		{"nil scope", with(func(in *grants.RequestInput) { in.Scope = nil }), "scope[0]"},
		{"blank statement", with(func(in *grants.RequestInput) { in.Scope = []string{"  "} }), "scope[0]"},
		{"missing resource", with(func(in *grants.RequestInput) { in.Scope = []string{"s3:GetObject"} }), "scope[0]"},
		{"malformed action", with(func(in *grants.RequestInput) { in.Scope = []string{allLogs, "GetObject arn:aws:s3:::logs/*"} }), "scope[1]"},
		{"spaces between actions", with(func(in *grants.RequestInput) { in.Scope = []string{"s3:GetObject, s3:ListBucket arn:aws:s3:::logs/*"} }), "scope[0]"},
		{"inner wildcard", with(func(in *grants.RequestInput) {
			in.Scope = []string{allLogs, allLogs, "s3:GetObject arn:aws:s3:::logs/*/x"}
		}), "scope[2]"},
		{"not an ARN", with(func(in *grants.RequestInput) { in.Scope = []string{"s3:GetObject logs/*"} }), "scope[0]"},
		{"postgres action on aws", with(func(in *grants.RequestInput) { in.Scope = []string{"pg:select orders.public.*"} }), "scope[0]"},
		{"aws action on postgres", with(func(in *grants.RequestInput) {
			in.Target, in.Scope = ordersDB, []string{"pg:select orders.public.*", "s3:GetObject orders.public.x"}
		}), "scope[1]"},
		{"missing reason", with(func(in *grants.RequestInput) { in.Reason = "" }), "reason"},
		{"blank reason", with(func(in *grants.RequestInput) { in.Reason = " \t " }), "reason"},
		{"control characters in reason", with(func(in *grants.RequestInput) { in.Reason = "x\ny" }), "reason"},
		// DEL and the C1 controls (CSI U+009B, NEL U+0085) reached the
		// log: only C0 was refused.
		{"DEL in reason", with(func(in *grants.RequestInput) { in.Reason = "x\x7fy" }), "reason"},
		{"C1 CSI in reason", with(func(in *grants.RequestInput) { in.Reason = "x\u009b2Jy" }), "reason"},
		{"C1 NEL in reason", with(func(in *grants.RequestInput) { in.Reason = "x\u0085y" }), "reason"},
		// A resource is a name: no C1 and no bidirectional controls.
		{"C1 in resource", with(func(in *grants.RequestInput) { in.Scope = []string{"s3:GetObject arn:aws:s3:::logs/\u009b2Jx*"} }), "scope[0]"},
		{"bidi override in resource", with(func(in *grants.RequestInput) {
			in.Scope = []string{allLogs, "s3:GetObject arn:aws:s3:::logs/\u202etxt.exe"}
		}), "scope[1]"},
		{"bidi isolate in resource", with(func(in *grants.RequestInput) { in.Scope = []string{"s3:GetObject arn:aws:s3:::logs/\u2067x\u2069*"} }), "scope[0]"},
		{"reason too long", with(func(in *grants.RequestInput) { in.Reason = strings.Repeat("r", grants.MaxReasonLength+1) }), "reason"},
		{"extends unknown", with(func(in *grants.RequestInput) { in.Extends = "g_nope" }), "extends"},
		{"extends another's grant", with(func(in *grants.RequestInput) { in.Extends = other.ID }), "extends"},
		{"extends a pending grant", with(func(in *grants.RequestInput) { in.Extends = pending.ID }), "extends"},
		{"extends an ended grant", with(func(in *grants.RequestInput) { in.Extends = ended.ID }), "extends"},
		{"extends another target's grant", with(func(in *grants.RequestInput) { in.Extends = dev.ID }), "extends"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			size, n := h.logSize(), h.grantCount()
			g, err := h.Svc.Request(h.ctx, h.id(bot), tc.in)
			wantAPIErr(t, err, 400, apierr.CodeInvalid, tc.field)
			if g.ID != "" {
				t.Errorf("returned a grant %s", g.ID)
			}
			if h.logSize() != size || h.grantCount() != n {
				t.Errorf("a refused request changed the log (%d → %d) or the grants (%d → %d)", size, h.logSize(), n, h.grantCount())
			}
		})
	}

	// The cap holds for auto-approvable scope too, at exactly the cap it is fine.
	h.request(bot, humanReq("30m"), model.Pending)

	// A valid extension links the grant it extends.
	ext := h.request(bot, with(func(in *grants.RequestInput) { in.Duration = "20m"; in.Extends = active.ID }), model.Pending)
	if rec := h.grant(ext.ID); rec.Extends != active.ID {
		t.Errorf("extends %q, want %q", rec.Extends, active.ID)
	}
	if d := entryData(t, h.entries(ext.ID)[0]); d["extends"] != active.ID {
		t.Errorf("requested entry %v", d)
	}
	auto := h.request(bot, grants.RequestInput{Target: awsProd, Scope: []string{appLogs}, Duration: "15m", Reason: "more time", Extends: active.ID}, model.Active)
	if auto.Extends != active.ID || h.grant(auto.ID).Extends != active.ID {
		t.Errorf("auto extension extends %q", auto.Extends)
	}
	if h.grant(active.ID).Status != model.Active {
		t.Error("extending changed the extended grant")
	}
}
