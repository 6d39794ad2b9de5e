package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// replicaOf opens a second Airlock on w's configuration (its store, which
// must be shared, its identities and policies) with a data_dir of its own
// holding w's keys, as another replica behind the same load balancer; its
// listen.api differs only to give it a replica id of its own.
func replicaOf(t *testing.T, w *world, fromListen, toListen string) *world {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(w.dir, "airlock.yaml"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "airlock.yaml"), []byte(strings.Replace(string(b), fromListen, toListen, 1)), 0o600))
	must(t, os.MkdirAll(filepath.Join(dir, "policies"), 0o755))
	p, err := os.ReadFile(filepath.Join(w.dir, "policies", "p.cedar"))
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "policies", "p.cedar"), p, 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, "data"), 0o700))
	for _, f := range []string{auditlog.SignerKeyFile, auditlog.VerifierKeyFile, server.CredentialKeyFile} {
		k, err := os.ReadFile(filepath.Join(w.dir, "data", f))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(dir, "data", f), k, 0o600))
	}
	cfg, err := config.Load(filepath.Join(dir, "airlock.yaml"))
	must(t, err)
	must(t, cfg.CheckEnv(os.Getenv))
	srv, err := server.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	must(t, err)
	t.Cleanup(func() { srv.Close() })
	ts := httptest.NewServer(srv.Handler)
	t.Cleanup(ts.Close)
	return &world{t: t, srv: srv, api: ts.URL, dir: dir, bot: w.bot, alice: w.alice, carol: w.carol}
}

// TestReplayRefusedByAnotherReplica: a signed Slack click, or a webhook's
// signed decision, that one replica handled is refused as a replay by
// another replica sharing the PostgreSQL store, within the signature's
// five minutes. The replicas used to remember what they had handled each
// in its own memory, so a captured request sent to another replica (or to
// any replica after a restart) was handled again: a decision refused the
// first time (an unmapped user, a policy that did not yet permit the
// approver, a store error answered "nothing was changed") was taken on the
// second delivery without the person clicking again.
func TestReplayRefusedByAnotherReplica(t *testing.T) {
	dsn := testenv.PostgresDatabase(t, testenv.PostgresDSN(t), "airlock_notify")
	f := newFakeSlack(t)
	recv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { io.Copy(io.Discard, r.Body) }))
	t.Cleanup(recv.Close)
	t.Setenv("TEST_SLACK_WEBHOOK", f.URL+"/incoming")
	t.Setenv("TEST_SLACK_SECRET", signingSecret)
	t.Setenv("HOOK_DECIDE_SECRET", decideSecret)
	listenA, listenB := testenv.FreeAddr(t), testenv.FreeAddr(t)
	a := newWorld(t, fmt.Sprintf(`store: %q
listen: {api: %q}
notify:
  slack: {webhook_url_env: TEST_SLACK_WEBHOOK, signing_secret_env: TEST_SLACK_SECRET}
  webhooks:
    - {url: %s/hook, secret_env: HOOK_DECIDE_SECRET, decisions: true}
`, dsn, listenA, recv.URL))
	b := replicaOf(t, a, listenA, listenB)

	// A Slack click approved on replica A, sent again to replica B.
	g := a.request(a.bot, humanScope, "INC-21")
	if g.Status != model.Pending {
		t.Fatalf("status %s", g.Status)
	}
	now := time.Now()
	body := f.body(click{user: "U0ALICE", actionID: "airlock_approve:" + g.ID, trigger: "t-replica"})
	sig := sign(signingSecret, now.Unix(), body)
	if st, txt := a.post(body, now.Unix(), sig); st != http.StatusOK || txt != "" {
		t.Fatalf("approve on replica A: %d %q", st, txt)
	}
	if st, txt := b.post(body, now.Unix(), sig); st != http.StatusUnauthorized || !strings.Contains(txt, "already handled") {
		t.Errorf("the click replayed to replica B: %d %q, want 401 already handled", st, txt)
	}
	// The same click re-signed (a second delivery of one trigger id).
	again := now.Add(time.Second)
	if st, txt := b.post(body, again.Unix(), sign(signingSecret, again.Unix(), body)); st != http.StatusUnauthorized || !strings.Contains(txt, "already handled") {
		t.Errorf("the click's trigger id again on replica B: %d %q, want 401 already handled", st, txt)
	}

	// A click refused on A (an unmapped Slack user) is not taken up again
	// on B either.
	g2 := a.request(a.bot, humanScope, "INC-22")
	body = f.body(click{user: "U0NOBODY", actionID: "airlock_approve:" + g2.ID, trigger: "t-nobody"})
	sig = sign(signingSecret, now.Unix(), body)
	if st, txt := a.post(body, now.Unix(), sig); st != http.StatusOK || !strings.Contains(txt, "not mapped") {
		t.Fatalf("unmapped user on replica A: %d %q", st, txt)
	}
	if st, txt := b.post(body, now.Unix(), sig); st != http.StatusUnauthorized || !strings.Contains(txt, "already handled") {
		t.Errorf("the refused click replayed to replica B: %d %q, want 401 already handled", st, txt)
	}

	// A webhook's decision handled by A, sent again to B.
	d, _ := json.Marshal(map[string]string{"grant_id": g2.ID, "decision": "deny", "approver": "carol", "reason": "not now"})
	st, out, hsig := a.decide(json.RawMessage(d), decideSecret, now)
	if st != http.StatusOK {
		t.Fatalf("deny through the webhook on replica A: %d %s", st, out)
	}
	if st, out, _ := b.postDecision(d, hsig); st != http.StatusUnauthorized || !strings.Contains(out, "already handled") {
		t.Errorf("the decision replayed to replica B: %d %s, want 401 already handled", st, out)
	}
	if got := b.grant(g2.ID); got.Status != model.Denied || len(got.Approvals) != 1 {
		t.Errorf("grant %s after the replays: %s, %d decisions", g2.ID, got.Status, len(got.Approvals))
	}

	// A button replica A posted is taken by replica B: its value is signed
	// with a key every replica derives alike.
	g3 := a.request(a.bot, humanScope, "INC-25")
	if st, txt := b.clickAs(f, click{user: "U0ALICE", actionID: "airlock_approve:" + g3.ID, trigger: "t-across"}); st != http.StatusOK || txt != "" {
		t.Fatalf("approve on replica B of A's message: %d %q", st, txt)
	}
	if got := a.grant(g3.ID); got.Status != model.Active {
		t.Errorf("grant %s after the click on replica B: %s", g3.ID, got.Status)
	}
}

// restarted closes w's server and opens it again on the same data_dir (the
// embedded SQLite store), as `airlock serve` restarted.
func restarted(t *testing.T, w *world) *world {
	t.Helper()
	w.srv.Close()
	cfg, err := config.Load(filepath.Join(w.dir, "airlock.yaml"))
	must(t, err)
	srv, err := server.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	must(t, err)
	t.Cleanup(func() { srv.Close() })
	ts := httptest.NewServer(srv.Handler)
	t.Cleanup(ts.Close)
	return &world{t: t, srv: srv, api: ts.URL, dir: w.dir, bot: w.bot, alice: w.alice, carol: w.carol}
}

// TestReplayRefusedAfterRestart: the same on one process with the embedded
// store, across a restart within the signature's five minutes.
func TestReplayRefusedAfterRestart(t *testing.T) {
	w, f := newSlackWorld(t)
	g := w.request(w.bot, humanScope, "INC-23")
	now := time.Now()
	body := f.body(click{user: "U0NOBODY", actionID: "airlock_approve:" + g.ID, trigger: "t-restart"})
	sig := sign(signingSecret, now.Unix(), body)
	if st, txt := w.post(body, now.Unix(), sig); st != http.StatusOK || !strings.Contains(txt, "not mapped") {
		t.Fatalf("first delivery: %d %q", st, txt)
	}
	w = restarted(t, w)
	if st, txt := w.post(body, now.Unix(), sig); st != http.StatusUnauthorized || !strings.Contains(txt, "already handled") {
		t.Errorf("replayed after a restart: %d %q, want 401 already handled", st, txt)
	}
	// A fresh click on the message posted before the restart still
	// decides: the buttons' key outlives the process.
	if st, txt := w.clickAs(f, click{user: "U0ALICE", actionID: "airlock_approve:" + g.ID, trigger: "t-after-restart"}); st != http.StatusOK || txt != "" {
		t.Fatalf("approve after a restart: %d %q", st, txt)
	}
	if got := w.grant(g.ID); got.Status != model.Active {
		t.Errorf("grant after the click: %s", got.Status)
	}
}
