package grants_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

func TestSyncIdentities(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	for name, key := range h.keys {
		id, ok := h.Dir.Authenticate(key)
		if !ok || id.Name != name || id.Source != "config" {
			t.Errorf("%s: key resolves to %+v %v", name, id, ok)
		}
	}
	if id := h.id(bot); id.Kind != model.Agent || id.Owner != "sre-team" {
		t.Errorf("bot %+v", id)
	}
	if id := h.id(alice); id.Kind != model.Human || !slices.Equal(id.Groups, []string{"sre-leads"}) {
		t.Errorf("alice %+v", id)
	}
	if got := len(h.entriesOfType("identity.added")); got != 6 {
		t.Errorf("%d identity.added entries", got)
	}
	// Syncing the same configuration again changes and logs nothing.
	size := h.logSize()
	if err := h.Svc.SyncIdentities(h.ctx, h.cfg); err != nil {
		t.Fatal(err)
	}
	if h.logSize() != size {
		t.Errorf("an unchanged sync logged %d entries", h.logSize()-size)
	}
	// Dropping bob from the file disables him; his key stops working.
	var without []model.Identity
	for _, id := range h.cfg {
		if id.Name != bob {
			without = append(without, id)
		}
	}
	if err := h.Svc.SyncIdentities(h.ctx, without); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.Dir.Authenticate(h.keys[bob]); ok {
		t.Error("a removed identity still authenticates")
	}
	if es := h.entriesOfType("identity.disabled"); len(es) != 1 || entryData(t, es[0])["name"] != bob {
		t.Errorf("identity.disabled entries %v", len(es))
	}
	// Putting him back does not silently re-enable him.
	if err := h.Svc.SyncIdentities(h.ctx, h.cfg); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.Dir.Authenticate(h.keys[bob]); ok {
		t.Error("a disabled identity was re-enabled by a sync")
	}
	_, err := h.Svc.Identities(h.ctx, h.id(bot))
	wantAPIErr(t, err, 403, "", "")
	if ids, err := h.Svc.Identities(h.ctx, h.id(alice)); err != nil || len(ids) != 6 {
		t.Errorf("identities: %d %v", len(ids), err)
	}
}

func TestDisableAgent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	x := h.request(bot2, autoReq("10m"), model.Active)
	y := h.request(bot2, humanReq("10m"), model.Pending)
	z := h.request(bot, autoReq("10m"), model.Active)
	cx := h.creds(bot2, x.ID)
	gx, err := h.Svc.Authority().Authenticate(cx.AccessKeyID, cx.SecretAccessKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := h.Dir.Authenticate(h.keys[bot2]); !ok {
		t.Fatal("ops-bot's key does not authenticate")
	}

	size := h.logSize()
	_, err = h.Svc.DisableAgent(h.ctx, h.id(bot), bot2, "")
	wantAPIErr(t, err, 403, "", "")
	_, err = h.Svc.DisableAgent(h.ctx, h.id(alice), alice, "")
	wantAPIErr(t, err, 400, apierr.CodeInvalid, "name")
	_, err = h.Svc.DisableAgent(h.ctx, h.id(alice), "nobody", "")
	wantAPIErr(t, err, 404, apierr.CodeNotFound, "")
	if h.logSize() != size {
		t.Error("refused disables were logged")
	}

	id, err := h.Svc.DisableAgent(h.ctx, h.id(alice), bot2, "key leaked")
	if err != nil {
		t.Fatal(err)
	}
	if !id.Disabled || id.Name != bot2 {
		t.Errorf("disabled identity %+v", id)
	}
	if _, ok := h.Dir.Authenticate(h.keys[bot2]); ok {
		t.Error("a disabled agent's key still authenticates")
	}
	if _, ok := h.Dir.Authenticate(h.keys[bot]); !ok {
		t.Error("the other agent's key stopped working")
	}
	rec := h.grant(x.ID)
	if rec.Status != model.Revoked || rec.EndedBy != alice || rec.EndComment != "identity ops-bot disabled" {
		t.Errorf("active grant of the disabled agent: %s by %q (%q)", rec.Status, rec.EndedBy, rec.EndComment)
	}
	if !isClosed(gx.Done()) {
		t.Error("its gateway grant is still live")
	}
	if _, err := h.Svc.Authority().Authenticate(cx.AccessKeyID, cx.SecretAccessKey); !errors.Is(err, gateway.ErrNoGrant) {
		t.Errorf("its credentials: %v", err)
	}
	if rec := h.grant(y.ID); rec.Status != model.Cancelled || rec.EndedBy != alice {
		t.Errorf("pending grant of the disabled agent: %s by %q", rec.Status, rec.EndedBy)
	}
	if rec := h.grant(z.ID); rec.Status != model.Active {
		t.Errorf("another agent's grant: %s", rec.Status)
	}
	es := h.entriesOfType("identity.disabled")
	if len(es) != 1 {
		t.Fatalf("%d identity.disabled entries", len(es))
	}
	if d := entryData(t, es[0]); d["name"] != bot2 || d["reason"] != "key leaked" || d["_actor"] != alice {
		t.Errorf("identity.disabled entry %v", d)
	}
	if types := h.types(x.ID); types[len(types)-1] != "grant.revoked" {
		t.Errorf("log %v", types)
	}

	// The disable survives a restart (the configuration still lists ops-bot).
	h.restart()
	if _, ok := h.Dir.Authenticate(h.keys[bot2]); ok {
		t.Error("a restart re-enabled the disabled agent")
	}
	if rec := h.grant(z.ID); rec.Status != model.Active {
		t.Errorf("after restart: %s", rec.Status)
	}
}

func TestAddAgent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	// A lead who is also a member of the team and of deployers (a person
	// adds agents only into their own groups; see TestAddAgentOnlyIntoOwnGroups).
	lead := h.id(alice)
	lead.Groups = append(lead.Groups, "sre-team", "deployers")
	id, key, err := h.Svc.AddAgent(h.ctx, lead, "deploy-bot", "sre-team", []string{"deployers"})
	if err != nil {
		t.Fatal(err)
	}
	if id.Name != "deploy-bot" || id.Kind != model.Agent || id.Owner != "sre-team" || id.Source != "api" || id.CreatedBy != alice || key == "" {
		t.Errorf("new agent %+v", id)
	}
	got, ok := h.Dir.Authenticate(key)
	if !ok || got.Name != "deploy-bot" {
		t.Fatalf("the new key resolves to %+v %v", got, ok)
	}
	if es := h.entriesOfType("identity.added"); entryData(t, es[len(es)-1])["name"] != "deploy-bot" {
		t.Error("identity.added not logged")
	}
	// It works as an identity: its owner is its group in policy.
	h.request("deploy-bot", autoReq("5m"), model.Active)

	size := h.logSize()
	for _, name := range []string{"deploy-bot", alice, bot} {
		_, _, err = h.Svc.AddAgent(h.ctx, lead, name, "sre-team", nil)
		wantAPIErr(t, err, 409, apierr.CodeAlreadyExists, "name")
	}
	_, _, err = h.Svc.AddAgent(h.ctx, h.id(bot), "other-bot", "sre-team", nil)
	wantAPIErr(t, err, 403, "", "")
	_, _, err = h.Svc.AddAgent(h.ctx, lead, "Bad Name", "sre-team", nil)
	wantAPIErr(t, err, 400, apierr.CodeInvalid, "name")
	_, _, err = h.Svc.AddAgent(h.ctx, lead, "ok-bot", "", nil)
	wantAPIErr(t, err, 400, apierr.CodeInvalid, "owner")
	_, _, err = h.Svc.AddAgent(h.ctx, lead, "ok-bot", "sre-team", []string{"Bad Group"})
	wantAPIErr(t, err, 400, apierr.CodeInvalid, "groups")
	if h.logSize() != size {
		t.Error("refused additions were logged")
	}
	if got, _ := h.Dir.Authenticate(key); got.Name != "deploy-bot" {
		t.Error("a refused duplicate replaced the agent")
	}

	// An API-added agent survives a restart (config sync leaves it alone).
	h.restart()
	if got, ok := h.Dir.Authenticate(key); !ok || got.Name != "deploy-bot" || got.Disabled {
		t.Errorf("after restart the key resolves to %+v %v", got, ok)
	}
}

// TestRemovedIdentityLosesItsGrants: an identity taken out of the
// configuration is disabled at the next start, and its grants end there
// as `agent disable` ends them: the active one is revoked (its
// credentials stop working) and the pending one cancelled, so that
// nobody can approve a request of an identity that no longer exists.
func TestRemovedIdentityLosesItsGrants(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	active := h.request(bot2, autoReq("900s"), model.Active)
	pending := h.request(bot2, humanReq("30m"), model.Pending)
	cr := h.creds(bot2, active.ID)
	var without []model.Identity
	for _, id := range h.cfg {
		if id.Name != bot2 {
			without = append(without, id)
		}
	}
	h.cfg = without
	h.restart()
	if g := h.grant(active.ID); g.Status != model.Revoked || g.EndedBy != "config" {
		t.Errorf("active grant of the removed identity: %s, ended by %q", g.Status, g.EndedBy)
	}
	if g := h.grant(pending.ID); g.Status != model.Cancelled {
		t.Errorf("pending grant of the removed identity: %s", g.Status)
	}
	if gg, err := h.Svc.Authority().Authenticate(cr.AccessKeyID, cr.SecretAccessKey); err == nil {
		t.Errorf("the removed identity's credentials still authenticate at the gateway (grant %s)", gg.ID)
	}
	if _, err := h.Svc.Approve(h.ctx, h.id(alice), pending.ID, "ok"); err == nil {
		t.Error("a request of a removed identity was approved")
	}
}

// A person adds agents only into teams and groups they belong to: an
// agent's owner is its group in policy, so otherwise anyone with a key
// could mint an agent that a team's auto-approval serves and take its
// credentials (bob, in no group, got sre-team's logs that way).
func TestAddAgentOnlyIntoOwnGroups(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	size := h.logSize()
	for _, tc := range []struct {
		who    string
		owner  string
		groups []string
	}{
		{bob, "sre-team", nil},
		{alice, "sre-team", nil},
		{alice, "sre-leads", []string{"sre-team"}},
	} {
		_, _, err := h.Svc.AddAgent(h.ctx, h.id(tc.who), "minted-bot", tc.owner, tc.groups)
		wantAPIErr(t, err, 403, "", "")
	}
	if h.logSize() != size {
		t.Error("refused additions were logged")
	}
	if _, _, err := h.Svc.AddAgent(h.ctx, h.id(alice), "leads-bot", "sre-leads", []string{"sre-leads"}); err != nil {
		t.Fatalf("alice adding an agent to her own team: %v", err)
	}
}

// A person who adds an agent through the API is handed its only key, so
// the agent's request is that person's own: they may not approve it (one
// person would grant themselves access through the agent), and their queue
// and the agent's approvers leave them out. Another permitted person still
// approves; the creator may still deny, which takes access away.
func TestCreatorMayNotApproveTheirAgent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.addAgentAsAlice("alices-bot")
	g := h.request("alices-bot", humanReq("30m"), model.Pending)

	_, err := h.Svc.Approve(h.ctx, h.id(alice), g.ID, "mine")
	wantAPIErr(t, err, 403, apierr.CodeSelfApproval, "")
	if st := h.grant(g.ID).Status; st != model.Pending {
		t.Fatalf("after the creator's approval: %s", st)
	}
	queue, err := h.pending(h.id(alice))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range queue {
		if q.ID == g.ID {
			t.Error("the creator's queue lists their own agent's request")
		}
	}
	names, err := h.Svc.Approvers(h.ctx, h.id("alices-bot"), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(names, alice) || !slices.Contains(names, carol) {
		t.Errorf("approvers of the agent's request: %v, want carol and not alice", names)
	}
	// Who added the agent is kept with it: still refused after a restart.
	h.restart()
	_, err = h.Svc.Approve(h.ctx, h.id(alice), g.ID, "mine, after a restart")
	wantAPIErr(t, err, 403, apierr.CodeSelfApproval, "")

	if _, err := h.Svc.Approve(h.ctx, h.id(carol), g.ID, "checked"); err != nil {
		t.Fatalf("another lead approving: %v", err)
	}
	g2 := h.request("alices-bot", humanReq("30m"), model.Pending)
	if _, err := h.Svc.Deny(h.ctx, h.id(alice), g2.ID, "not needed"); err != nil {
		t.Fatalf("the creator denying: %v", err)
	}
}

// Among replicas sharing a PostgreSQL store, the agent's creator is known
// on every replica: the creator, approving on another replica than the
// one that added the agent, is refused there too.
func TestCreatorMayNotApproveTheirAgentOnAnotherReplica(t *testing.T) {
	rs := newReplicaSet(t, 2, nil)
	a, b := rs.r[0], rs.r[1]
	addLateBot(t, rs, a)
	g, err := b.svc.Request(rs.ctx, b.id(t, "late-bot"), humanReq("30m"))
	if err != nil || g.Status != model.Pending {
		t.Fatalf("the agent's request on %s: %v %s", b.name, err, g.Status)
	}
	_, err = b.svc.Approve(rs.ctx, b.id(t, alice), g.ID, "mine")
	wantAPIErr(t, err, 403, apierr.CodeSelfApproval, "")
	if _, err := b.svc.Approve(rs.ctx, b.id(t, carol), g.ID, "checked"); err != nil {
		t.Fatalf("another lead approving on %s: %v", b.name, err)
	}
}

// TestAddAgentNamedByAPolicy: a policy naming Agent::"x" was written for
// one agent, which the operator defines in the configuration. A person
// could add an agent by that name (no identity held it yet, and it went
// into their own team), take its key, and be served by that policy: here
// an auto-approval on a target the person's groups reach nothing of. The
// same holds for a condition on principal.name.
func TestAddAgentNamedByAPolicy(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Policies: testPolicies + `
@id("release-bot-deploys")
@approval("auto")
permit (principal == Agent::"release-bot", action == Action::"s3:GetObject", resource == Target::"aws-prod")
when { context.duration_seconds <= 900 };

@id("not-for-the-canary")
forbid (principal, action, resource) when { principal == Agent::"canary-bot" && context.duration_seconds > 60 };

@id("nightly-by-name")
@approval("auto")
permit (principal is Agent, action == Action::"s3:GetObject", resource == Target::"aws-prod")
when { principal.name == "nightly-bot" && context.duration_seconds <= 900 };

@id("ci-by-pattern")
@approval("auto")
permit (principal is Agent, action == Action::"s3:GetObject", resource == Target::"aws-prod")
when { principal.name like "ci-*" };
`})
	lead := h.id(alice)
	lead.Groups = append(lead.Groups, "sre-team")
	size := h.logSize()
	// principal.name singles agents out as Agent::"x" does: it was not
	// seen, and a person added nightly-bot or ci-anything and was served.
	for name, policy := range map[string]string{"release-bot": "release-bot-deploys", "canary-bot": "not-for-the-canary",
		"nightly-bot": "nightly-by-name", "ci-mine": "ci-by-pattern"} {
		_, _, err := h.Svc.AddAgent(h.ctx, lead, name, "sre-team", nil)
		wantAPIErr(t, err, 403, "", "")
		if !strings.Contains(err.Error(), policy) {
			t.Errorf("adding %s: %v, want the policy that names it", name, err)
		}
	}
	if h.logSize() != size {
		t.Error("refused additions were logged")
	}
	if _, _, err := h.Svc.AddAgent(h.ctx, lead, "other-bot", "sre-team", nil); err != nil {
		t.Fatalf("an agent no policy names: %v", err)
	}
}

// TestAgentAddedBeforeAPolicyNamesIt: AddAgent refuses a name that a policy
// in force names, but a person could add the agent first and wait for the
// operator to load a policy written for the agent they mean to configure
// (a reload, a restart): the person's agent was then served by it, here
// auto-approved on a prefix nothing else grants. Its requests are now
// refused, and a request it made before is denied at the load (by the
// policy set, naming the policy) and cannot be approved, while a policy
// names it.
func TestAgentAddedBeforeAPolicyNamesIt(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	h.addAgentAsAlice("release-bot")
	pending := h.request("release-bot", humanReq("30m"), model.Pending)
	release := grants.RequestInput{Target: awsProd, Scope: []string{"s3:GetObject arn:aws:s3:::releases/*"}, Duration: "10m", Reason: "ship it"}

	for _, cond := range []string{`principal == Agent::"release-bot"`, `principal.name == "release-bot"`} {
		h.writePolicy("release.cedar", `@id("release-bot-reads")
@approval("auto")
permit (principal, action == Action::"s3:GetObject", resource == Target::"aws-prod") when { `+cond+` };
`)
		if err := h.Svc.ReloadPolicies(h.ctx, "test"); err != nil {
			t.Fatal(err)
		}
		// The request made before is denied by the load: nobody could
		// approve it any more.
		if g := h.grant(pending.ID); g.Status != model.Denied || g.EndedBy != "policy" ||
			!strings.Contains(g.EndComment, `policy "release-bot-reads" names agent release-bot, which alice added through the API`) {
			t.Fatalf("%s: the request made before: %s by %q: %q", cond, g.Status, g.EndedBy, g.EndComment)
		}
		g, err := h.Svc.Request(h.ctx, h.id("release-bot"), release)
		wantAPIErr(t, err, 403, "", "")
		if !strings.Contains(err.Error(), "release-bot-reads") {
			t.Errorf("%s: refusal %v does not name the policy", cond, err)
		}
		if g.ID != "" {
			t.Errorf("%s: a grant was made: %s %s", cond, g.ID, g.Status)
		}
		_, err = h.Svc.Approve(h.ctx, h.id(carol), pending.ID, "looks fine")
		wantAPIErr(t, err, 409, "", "")
		if names, err := h.Svc.Approvers(h.ctx, h.id("release-bot"), pending.ID); err != nil || len(names) != 0 {
			t.Errorf("%s: approvers %v, %v; want none", cond, names, err)
		}
	}
	// Configured agents that policies name are served as before.
	h.writePolicy("release.cedar", `@id("bot-reads")
@approval("auto")
permit (principal, action == Action::"s3:GetObject", resource == Target::"aws-prod") when { principal.name == "`+bot+`" };
`)
	if err := h.Svc.ReloadPolicies(h.ctx, "test"); err != nil {
		t.Fatal(err)
	}
	h.request(bot, release, model.Active)
}

// addAgentAsAlice adds agent name in sre-team as alice, a lead, who adds
// agents only into her own groups and so is put in sre-team for it.
func (h *harness) addAgentAsAlice(name string) {
	h.t.Helper()
	lead := h.id(alice)
	lead.Groups = append(lead.Groups, "sre-team")
	if _, _, err := h.Svc.AddAgent(h.ctx, lead, name, "sre-team", nil); err != nil {
		h.t.Fatal(err)
	}
}

// setBindings sets the bindings of the configured identity name in cfg
// (as an edit of airlock.yaml does).
func setBindings(cfg []model.Identity, name string, b *model.Bindings) {
	for i := range cfg {
		if cfg[i].Name == name {
			cfg[i].Bindings = b
		}
	}
}

// identityUpdates returns the data of every identity.updated entry naming
// name, oldest first.
func identityUpdates(t testing.TB, es []store.LogEntry, name string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, e := range es {
		if d := entryData(t, e); d["name"] == name {
			out = append(out, d)
		}
	}
	return out
}

// TestBindingChangesLogged: a configured identity's bindings other than
// its key (a person's email for the console's SSO sign-in and Slack member
// id for Approve/Deny clicks, an agent's workload token binding) decide who
// can act as it, as its key does, but live only in airlock.yaml. A change
// of them between two starts reached no log entry, so "who could approve
// as alice on Tuesday" was not answerable from the log. Each change is now
// an identity.updated entry stating the new bindings and the previous
// ones; an unchanged start writes none; a disable states them as they
// stand; and audit verify's state check compares the rows' bindings with
// the log.
func TestBindingChangesLogged(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	// The harness's identities were added with none: the entries state
	// empty bindings, and an unchanged restart writes nothing.
	if d := entryData(t, h.entriesOfType("identity.added")[0]); d["email"] != "" || d["slack_user"] != "" || d["oidc"] != "" {
		t.Fatalf("identity.added states %v, want empty email, slack_user and oidc", d)
	}
	size := identityEntries(h)
	h.restart()
	if identityEntries(h) != size {
		t.Fatalf("an unchanged start wrote %d entries", identityEntries(h)-size)
	}

	first := &model.Bindings{Email: "alice@example.com", SlackUser: "U024BE7LH"}
	setBindings(h.cfg, alice, first)
	h.restart()
	u := identityUpdates(t, h.entriesOfType("identity.updated"), alice)
	if len(u) != 1 || u[0]["email"] != first.Email || u[0]["slack_user"] != first.SlackUser || u[0]["oidc"] != "" {
		t.Fatalf("setting alice's bindings: identity.updated entries %v", u)
	}
	if p, _ := u[0]["previous"].(map[string]any); p["email"] != "" || p["slack_user"] != "" || p["oidc"] != "" {
		t.Errorf("previous bindings %v, want the empty ones", u[0]["previous"])
	}

	size = identityEntries(h)
	h.restart()
	if identityEntries(h) != size {
		t.Fatalf("an unchanged start wrote %d entries", identityEntries(h)-size)
	}

	// Her Slack member id rebound to another member: who approves as
	// alice changed, and the log says from what to what.
	setBindings(h.cfg, alice, &model.Bindings{Email: first.Email, SlackUser: "U0MALLORY"})
	h.restart()
	u = identityUpdates(t, h.entriesOfType("identity.updated"), alice)
	if len(u) != 2 || u[1]["slack_user"] != "U0MALLORY" {
		t.Fatalf("alice's Slack member changed: identity.updated entries %v", u)
	}
	if p, _ := u[1]["previous"].(map[string]any); p["slack_user"] != first.SlackUser || p["email"] != first.Email {
		t.Errorf("previous bindings %v, want %+v", u[1]["previous"], *first)
	}
	stored, err := h.St.Identity(h.ctx, alice)
	if err != nil || stored.Bindings == nil || stored.Bindings.SlackUser != "U0MALLORY" {
		t.Fatalf("stored alice: %+v, %v", stored, err)
	}

	// An agent's workload binding, then its disable: the disable states
	// the bindings as they stand, so the next start writes nothing.
	oidc := &model.Bindings{OIDC: "oidc:https://token.actions.githubusercontent.com repo:acme/triage:ref:refs/heads/main"}
	setBindings(h.cfg, bot, oidc)
	h.restart()
	if u := identityUpdates(t, h.entriesOfType("identity.updated"), bot); len(u) != 1 || u[0]["oidc"] != oidc.OIDC {
		t.Fatalf("the bot's workload binding: identity.updated entries %v", u)
	}
	if _, err := h.Svc.DisableAgent(h.ctx, h.id(alice), bot, "rotating"); err != nil {
		t.Fatal(err)
	}
	es := h.entriesOfType("identity.disabled")
	if d := entryData(t, es[len(es)-1]); d["oidc"] != oidc.OIDC {
		t.Errorf("identity.disabled states %v, want oidc %q", d, oidc.OIDC)
	}
	size = identityEntries(h)
	h.restart()
	if identityEntries(h) != size {
		t.Fatalf("a start after a disable wrote %d entries", identityEntries(h)-size)
	}
	h.checkReview(t)
}

// identityEntries counts the log's identity.* entries.
func identityEntries(h *harness) int {
	return len(h.entriesOfType("identity.added")) + len(h.entriesOfType("identity.updated")) + len(h.entriesOfType("identity.disabled"))
}
