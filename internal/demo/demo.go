// Package demo runs the DESIGN.md walkthrough end to end in one process on
// a temporary directory: a real server on a loopback port, the real HTTP
// API, the real policy engine and log. It narrates each step and checks that
// each behaved as expected, returning an error at the first that did not.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/server"
)

// Policies are the walkthrough's: DESIGN.md's two, plus one that lets the
// SRE agents read all logs for up to an hour with a person's approval.
const Policies = `@id("triage-reads-app-logs")
@approval("auto")
permit (principal in Group::"sre-team", action in [Action::"s3:GetObject", Action::"s3:ListBucket"], resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/app/*" && context.duration_seconds <= 900 };

@id("sre-reads-all-logs-with-approval")
@approval("human")
permit (principal in Group::"sre-team", action in [Action::"s3:GetObject", Action::"s3:ListBucket"], resource == Target::"aws-prod")
when { context.resource like "arn:aws:s3:::logs/*" && context.duration_seconds <= 3600 };

@id("leads-approve-sre-agents")
permit (principal in Group::"sre-leads", action == Action::"approve", resource == Target::"aws-prod");
`

// Config renders the quickstart configuration with the given key hashes.
func Config(botSHA, aliceSHA string) string {
	return fmt.Sprintf(`data_dir: ./airlock-data
listen:
  api: 127.0.0.1:0
identities:
  - name: log-triage-bot
    kind: agent
    owner: sre-team
    key_sha256: "%s"
  - name: alice
    kind: human
    groups: [sre-leads]
    key_sha256: "%s"
targets:
  - name: aws-prod
    kind: aws
    account: "111122223333"
    region: us-east-1
    endpoint: http://127.0.0.1:7070
    credentials:
      access_key_id_env: AWS_PROD_ACCESS_KEY_ID
      secret_access_key_env: AWS_PROD_SECRET_ACCESS_KEY
policies: ./policies
`, botSHA, aliceSHA)
}

type run struct {
	out  io.Writer
	step int
}

func (r *run) say(format string, args ...any) { fmt.Fprintf(r.out, format+"\n", args...) }

func (r *run) stepf(format string, args ...any) {
	r.step++
	fmt.Fprintf(r.out, "\n%d. %s\n", r.step, fmt.Sprintf(format, args...))
}

func (r *run) ok(format string, args ...any) {
	fmt.Fprintf(r.out, "   ✓ %s\n", fmt.Sprintf(format, args...))
}

// Run runs the walkthrough, writing the narration to out. dir is the
// working directory (a temporary one if ""); keep leaves it in place.
func Run(ctx context.Context, out io.Writer, dir string, keep bool) (err error) {
	r := &run{out: out}
	if dir == "" {
		dir, err = os.MkdirTemp("", "airlock-demo-")
		if err != nil {
			return err
		}
		if !keep {
			defer os.RemoveAll(dir)
		}
	}
	botKey, botSHA := authn.NewKey()
	aliceKey, aliceSHA := authn.NewKey()
	cfgPath := filepath.Join(dir, "airlock.yaml")
	if err := os.MkdirAll(filepath.Join(dir, "policies"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "policies", "aws-prod.cedar"), []byte(Policies), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(cfgPath, []byte(Config(botSHA, aliceSHA)), 0o600); err != nil {
		return err
	}
	r.say("Airlock demo: the walkthrough from DESIGN.md, in %s", dir)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.Open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go srv.Serve(sctx, ln)
	addr := "http://" + ln.Addr().String()
	bot, alice := client.New(addr, botKey), client.New(addr, aliceKey)
	r.say("Started the control plane at %s with two identities (agent log-triage-bot of sre-team, person alice of sre-leads),", addr)
	r.say("target aws-prod in account 111122223333, and three Cedar policies (%s/policies/aws-prod.cedar).", dir)

	r.stepf("log-triage-bot asks for s3:GetObject,s3:ListBucket on arn:aws:s3:::logs/app/* for 10 minutes")
	g1, err := bot.Request(ctx, grants.RequestInput{Target: "aws-prod", Scope: []string{"s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*"}, Duration: "10m", Reason: "triage checkout errors in app logs"})
	if err != nil {
		return err
	}
	if g1.Status != model.Active {
		return fmt.Errorf("step %d: grant is %s, want active", r.step, g1.Status)
	}
	r.ok("%s is active from %s until %s: policy %s approved it without a person (policy set %s)",
		g1.ID, g1.StartedAt.Format("15:04:05"), g1.ExpiresAt.Format("15:04:05"), strings.Join(g1.Decision.PolicyIDs, ","), short(g1.Decision.PolicySetHash))

	r.stepf("The agent fetches its grant credentials (the gateway's own AWS keys never leave Airlock)")
	cr, err := bot.Credentials(ctx, g1.ID)
	if err != nil {
		return err
	}
	r.ok("access key %s, secret fingerprint %s, expiring %s", cr.AccessKeyID, cr.Fingerprint, cr.Expiration.Format("15:04:05"))

	r.stepf("The gateway checks each call against the grant, from memory (the S3 data path arrives with the AWS gateway)")
	gw, err := srv.Service.Authenticate(cr.AccessKeyID, cr.SecretAccessKey)
	if err != nil {
		return fmt.Errorf("step %d: %w", r.step, err)
	}
	now := time.Now()
	in := gw.Allows(now, "s3:GetObject", "arn:aws:s3:::logs/app/2026/11/25/api.log")
	outside := gw.Allows(now, "s3:GetObject", "arn:aws:s3:::logs/billing/invoices.csv")
	if !in || outside {
		return fmt.Errorf("step %d: allowed inside=%v outside=%v", r.step, in, outside)
	}
	r.ok("GetObject logs/app/2026/11/25/api.log: allowed; GetObject logs/billing/invoices.csv: AccessDenied")
	if _, err := srv.Service.Authenticate(cr.AccessKeyID, strings.Repeat("x", 40)); err == nil {
		return fmt.Errorf("step %d: a wrong secret authenticated", r.step)
	}
	r.ok("a wrong secret is refused")

	r.stepf("The agent asks for all of logs/* for 30 minutes: policy says a person must approve")
	g2, err := bot.Request(ctx, grants.RequestInput{Target: "aws-prod", Scope: []string{"s3:GetObject arn:aws:s3:::logs/*"}, Duration: "30m", Reason: "errors may come from the billing service"})
	if err != nil {
		return err
	}
	if g2.Status != model.Pending {
		return fmt.Errorf("step %d: grant is %s, want pending", r.step, g2.Status)
	}
	r.ok("%s is pending (decide by %s)", g2.ID, g2.DecideBy.Format("15:04:05"))
	_, err = bot.Approve(ctx, g2.ID, "looks fine to me")
	if !isCode(err, 403) {
		return fmt.Errorf("step %d: the agent approving its own request got %v, want 403", r.step, err)
	}
	r.ok("the agent cannot approve it: %s", err)

	r.stepf("alice (sre-leads) sees it in her queue and approves")
	pend, err := alice.Pending(ctx)
	if err != nil {
		return err
	}
	if len(pend) != 1 || pend[0].ID != g2.ID {
		return fmt.Errorf("step %d: alice's queue has %d grants", r.step, len(pend))
	}
	g2, err = alice.Approve(ctx, g2.ID, "ok for the incident")
	if err != nil {
		return err
	}
	r.ok("%s is active until %s, approved by alice", g2.ID, g2.ExpiresAt.Format("15:04:05"))

	r.stepf("alice revokes it when the incident is over: its credentials stop working at once")
	cr2, err := bot.Credentials(ctx, g2.ID)
	if err != nil {
		return err
	}
	if _, err := alice.Revoke(ctx, g2.ID, "incident closed"); err != nil {
		return err
	}
	if _, err := srv.Service.Authenticate(cr2.AccessKeyID, cr2.SecretAccessKey); err == nil {
		return fmt.Errorf("step %d: revoked credentials still authenticate", r.step)
	}
	r.ok("revoked; the gateway refuses its credentials")

	r.stepf("A grant expires on schedule (a 3-second one, so the demo need not wait 10 minutes)")
	g3, err := bot.Request(ctx, grants.RequestInput{Target: "aws-prod", Scope: []string{"s3:ListBucket arn:aws:s3:::logs/app/*"}, Duration: "3s", Reason: "quick listing"})
	if err != nil {
		return err
	}
	cr3, err := bot.Credentials(ctx, g3.ID)
	if err != nil {
		return err
	}
	time.Sleep(time.Until(g3.ExpiresAt))
	if _, err := srv.Service.Authenticate(cr3.AccessKeyID, cr3.SecretAccessKey); err == nil {
		return fmt.Errorf("step %d: credentials work after expiry", r.step)
	}
	r.ok("at %s its credentials stopped working", g3.ExpiresAt.Format("15:04:05.000"))
	var g3Final model.Grant
	for range 100 { // the expiry record commits within milliseconds
		if g3Final, err = bot.Grant(ctx, g3.ID); err != nil || g3Final.Status != model.Active {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || g3Final.Status != model.Expired || !g3Final.EndedAt.Equal(g3.ExpiresAt) {
		return fmt.Errorf("step %d: grant is %s ended %s (err %v), want expired at %s", r.step, g3Final.Status, g3Final.EndedAt, err, g3.ExpiresAt)
	}
	r.ok("recorded as expired at exactly its expiry time")

	day := time.Now().UTC().Format("2006-01-02")
	r.stepf("The review: airlock grants --account 111122223333 --day %s", day)
	gs, err := alice.Grants(ctx, url.Values{"account": {"111122223333"}, "day": {day}})
	if err != nil {
		return err
	}
	if len(gs) != 3 {
		return fmt.Errorf("step %d: %d grants, want 3", r.step, len(gs))
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "   GRANT\tWHO\tSCOPE\tSTATUS\tENDED\tAPPROVED BY")
	for _, g := range gs {
		row := review.FromGrant(g)
		fmt.Fprintf(tw, "   %s\t%s (%s)\t%s\t%s\t%s\t%s\n", row.Grant, row.Identity, row.Owner, strings.Join(row.ScopeGranted, "; "), row.Status, orDash(row.EndReason+" "+row.EndedBy), row.ApprovedBy)
	}
	tw.Flush()
	r.ok("every grant answers who, what scope, when and why it ended, and who or what approved it")

	r.stepf("airlock audit verify: every lifecycle event is in a Merkle-tree log with signed checkpoints")
	rep, err := alice.Verify(ctx)
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("step %d: verification failed: %+v", r.step, rep.Problems)
	}
	r.ok("%d entries verified against %d signed checkpoints (root %s)", rep.Entries, rep.Checkpoints, short(rep.Root))
	r.say("\nDemo complete: every step behaved as expected.")
	return nil
}

func isCode(err error, status int) bool {
	var ae *apierr.Error
	return errors.As(err, &ae) && ae.Status == status
}

func short(s string) string {
	if len(s) > 19 {
		return s[:19] + "…"
	}
	return s
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return strings.TrimSpace(s)
}
