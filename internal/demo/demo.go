// Package demo runs the README.md walkthrough end to end in one process on
// a temporary directory: a real server on a loopback port, the real HTTP
// API, policy engine and log, the real AWS gateway, an in-process
// S3-compatible upstream that checks SigV4 (internal/s3mem), and the AWS
// SDK for Go as the agent's client. It narrates each step and checks that
// each behaved as expected, returning an error at the first that did not.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/client"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/s3mem"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/textesc"
)

// Policies are the walkthrough's: the README's two, plus one that lets the
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

// Config renders the quickstart configuration with the given key hashes,
// the AWS gateway on a free loopback port and upstream the S3 endpoint.
func Config(botSHA, aliceSHA, upstream string) string {
	return fmt.Sprintf(`data_dir: ./airlock-data
listen:
  api: 127.0.0.1:0
  aws: 127.0.0.1:0
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
    endpoint: %s
    credentials:
      access_key_id_env: AWS_PROD_ACCESS_KEY_ID
      secret_access_key_env: AWS_PROD_SECRET_ACCESS_KEY
policies: ./policies
`, botSHA, aliceSHA, upstream)
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

func (r *run) failf(format string, args ...any) error {
	return fmt.Errorf("step %d: %s", r.step, fmt.Sprintf(format, args...))
}

// The objects the upstream starts with: two the grant covers, one it does not.
var objects = map[string]string{
	"app/2026/11/25/api.log":    "14:01:57 POST /checkout 500 payment timeout\n14:01:59 POST /checkout 500 payment timeout\n",
	"app/2026/11/25/worker.log": "14:01:58 retrying charge ch_42 (attempt 3)\n",
	"billing/invoices.csv":      "invoice,customer,amount\nINV-1,acme,1200.00\n",
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
	} else if _, err := os.Stat(filepath.Join(dir, "airlock-data")); err == nil {
		// The steps count on a fresh log (step 9 expects exactly its own
		// three grants of the day), so a directory an earlier run left
		// behind would fail half-way through; say so before starting.
		return fmt.Errorf("%s already holds the data of an earlier run (airlock-data); give --dir a new or empty directory", dir)
	}

	// The upstream: an in-process S3-compatible server that checks SigV4
	// with the account's own keys, which only the gateway holds.
	upKey, upSecret := "AKIAUPSTREAMDEMO0001", randomSecret()
	upstream := s3mem.New(upKey, upSecret)
	upstream.CreateBucket("logs")
	for k, v := range objects {
		upstream.Put("logs", k, []byte(v))
	}
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	upSrv := &http.Server{Handler: upstream, ReadHeaderTimeout: 10 * time.Second}
	go upSrv.Serve(upLn)
	defer upSrv.Close()
	// serve reads the upstream keys from the environment, as configured.
	for k, v := range map[string]string{"AWS_PROD_ACCESS_KEY_ID": upKey, "AWS_PROD_SECRET_ACCESS_KEY": upSecret} {
		prev, had := os.LookupEnv(k)
		os.Setenv(k, v)
		if had {
			defer os.Setenv(k, prev)
		} else {
			defer os.Unsetenv(k)
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
	if err := os.WriteFile(cfgPath, []byte(Config(botSHA, aliceSHA, "http://"+upLn.Addr().String())), 0o600); err != nil {
		return err
	}
	// dir is the user's --dir, which may hold any byte a file name can:
	// escaped, as every human output is.
	r.say("Airlock demo: the walkthrough from README.md, in %s", textesc.String(dir))
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	if err := cfg.CheckEnv(os.Getenv); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := server.Open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer srv.Close()
	gws, err := srv.StartGateways(ctx)
	if err != nil {
		return err
	}
	defer gws.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go srv.Serve(sctx, ln)
	addr := "http://" + ln.Addr().String()
	bot, alice := client.New(addr, botKey), client.New(addr, aliceKey)
	r.say("Started the control plane at %s and the AWS gateway at %s, with two identities", addr, gws.Addr("aws"))
	r.say("(agent log-triage-bot of sre-team, person alice of sre-leads), target aws-prod in account 111122223333")
	r.say("whose upstream is an in-process S3 server at %s holding bucket logs, and three Cedar policies.", upLn.Addr())

	r.stepf("log-triage-bot asks for s3:GetObject,s3:ListBucket on arn:aws:s3:::logs/app/* for 10 minutes")
	g1, err := bot.Request(ctx, grants.RequestInput{Target: "aws-prod", Scope: []string{"s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*"}, Duration: "10m", Reason: "triage checkout errors in app logs"})
	if err != nil {
		return err
	}
	if g1.Status != model.Active {
		return r.failf("grant is %s, want active", g1.Status)
	}
	r.ok("%s is active from %s until %s: policy %s approved it without a person (policy set %s)",
		g1.ID, g1.StartedAt.Format("15:04:05"), g1.ExpiresAt.Format("15:04:05"), strings.Join(g1.Decision.PolicyIDs, ","), short(g1.Decision.PolicySetHash))

	r.stepf("The agent fetches its grant credentials (the gateway's own AWS keys never leave Airlock)")
	cr, err := bot.Credentials(ctx, g1.ID)
	if err != nil {
		return err
	}
	if cr.Endpoint == nil || cr.Endpoint.URL == "" {
		return r.failf("the credentials name no gateway endpoint")
	}
	r.ok("access key %s, a secret and a session token (fingerprint %s), expiring %s", cr.AccessKeyID, cr.Fingerprint, cr.Expiration.Format("15:04:05"))
	r.ok("AWS_ENDPOINT_URL=%s: the agent's unmodified AWS SDK talks to the gateway", cr.Endpoint.URL)

	r.stepf("With the AWS SDK for Go, the agent lists and reads under the prefix; a read outside it is refused")
	s3c := s3Client(cr)
	list, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("logs"), Prefix: aws.String("app/2026/11/25/")})
	if err != nil {
		return r.failf("listing app/2026/11/25/: %v", err)
	}
	var keys []string
	for _, o := range list.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	if len(keys) != 2 {
		return r.failf("listed %v, want the two app logs", keys)
	}
	r.ok("ListObjectsV2 logs prefix app/2026/11/25/: %s", strings.Join(keys, ", "))
	body, err := getObject(ctx, s3c, "app/2026/11/25/api.log")
	if err != nil || body != objects["app/2026/11/25/api.log"] {
		return r.failf("reading api.log: %q %v", body, err)
	}
	r.ok("GetObject logs/app/2026/11/25/api.log: %d bytes, %q…", len(body), strings.SplitN(body, "\n", 2)[0])
	_, err = getObject(ctx, s3c, "billing/invoices.csv")
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDenied" {
		return r.failf("reading billing/invoices.csv: %v, want AccessDenied", err)
	}
	r.ok("GetObject logs/billing/invoices.csv: %s: %s", apiErr.ErrorCode(), apiErr.ErrorMessage())
	before := upstream.Requests()
	if _, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("logs")}); err == nil {
		return r.failf("listing the whole bucket was allowed")
	}
	if upstream.Requests() != before {
		return r.failf("a refused call reached the upstream")
	}
	r.ok("ListObjectsV2 of the whole bucket: AccessDenied, and the upstream never saw it")

	r.stepf("The session recording, kept by the gateway outside the agent: airlock session show %s", g1.ID)
	if err := showRecording(ctx, r, alice, g1.ID); err != nil {
		return err
	}

	r.stepf("The agent asks for all of logs/* for 30 minutes: policy says a person must approve")
	g2, err := bot.Request(ctx, grants.RequestInput{Target: "aws-prod", Scope: []string{"s3:GetObject arn:aws:s3:::logs/*"}, Duration: "30m", Reason: "errors may come from the billing service"})
	if err != nil {
		return err
	}
	if g2.Status != model.Pending {
		return r.failf("grant is %s, want pending", g2.Status)
	}
	r.ok("%s is pending (decide by %s)", g2.ID, g2.DecideBy.Format("15:04:05"))
	_, err = bot.Approve(ctx, g2.ID, "looks fine to me")
	if !isCode(err, 403) {
		return r.failf("the agent approving its own request got %v, want 403", err)
	}
	r.ok("the agent cannot approve it: %s", err)

	r.stepf("alice (sre-leads) sees it in her queue and approves")
	var pend []model.Grant
	if err := alice.Pending(ctx, func(gs []model.Grant) error {
		pend = append(pend, gs...)
		return nil
	}); err != nil {
		return err
	}
	if len(pend) != 1 || pend[0].ID != g2.ID {
		return r.failf("alice's queue has %d grants", len(pend))
	}
	g2, err = alice.Approve(ctx, g2.ID, "ok for the incident")
	if err != nil {
		return err
	}
	cr2, err := bot.Credentials(ctx, g2.ID)
	if err != nil {
		return err
	}
	s3c2 := s3Client(cr2)
	if b, err := getObject(ctx, s3c2, "billing/invoices.csv"); err != nil || b != objects["billing/invoices.csv"] {
		return r.failf("the approved grant could not read billing/invoices.csv: %v", err)
	}
	r.ok("%s is active until %s, approved by alice; the agent reads billing/invoices.csv under it", g2.ID, g2.ExpiresAt.Format("15:04:05"))

	r.stepf("alice revokes it when the incident is over: its credentials stop working at once")
	if _, err := alice.Revoke(ctx, g2.ID, "incident closed"); err != nil {
		return err
	}
	_, err = getObject(ctx, s3c2, "billing/invoices.csv")
	if !errors.As(err, &apiErr) {
		return r.failf("a call with revoked credentials got %v, want an S3 error", err)
	}
	r.ok("the next call: %s: %s", apiErr.ErrorCode(), apiErr.ErrorMessage())

	r.stepf("A grant expires on schedule (a 3-second one, so the demo need not wait 10 minutes)")
	g3, err := bot.Request(ctx, grants.RequestInput{Target: "aws-prod", Scope: []string{"s3:GetObject,s3:ListBucket arn:aws:s3:::logs/app/*"}, Duration: "3s", Reason: "quick look"})
	if err != nil {
		return err
	}
	cr3, err := bot.Credentials(ctx, g3.ID)
	if err != nil {
		return err
	}
	s3c3 := s3Client(cr3)
	if _, err := getObject(ctx, s3c3, "app/2026/11/25/worker.log"); err != nil {
		return r.failf("reading before expiry: %v", err)
	}
	time.Sleep(time.Until(g3.ExpiresAt))
	_, err = getObject(ctx, s3c3, "app/2026/11/25/worker.log")
	if !errors.As(err, &apiErr) {
		return r.failf("a call after expiry got %v, want an S3 error", err)
	}
	r.ok("read worker.log before %s; at %s the same call got %s: %s", g3.ExpiresAt.Format("15:04:05.000"),
		time.Now().Format("15:04:05.000"), apiErr.ErrorCode(), apiErr.ErrorMessage())
	var g3Final model.Grant
	for range 100 { // the expiry record commits within milliseconds
		if g3Final, err = bot.Grant(ctx, g3.ID); err != nil || g3Final.Status != model.Active {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || g3Final.Status != model.Expired || !g3Final.EndedAt.Equal(g3.ExpiresAt) {
		return r.failf("grant is %s ended %s (err %v), want expired at %s", g3Final.Status, g3Final.EndedAt, err, g3.ExpiresAt)
	}
	r.ok("recorded as expired at exactly its expiry time")

	day := time.Now().UTC().Format("2006-01-02")
	r.stepf("The review: airlock grants --account 111122223333 --day %s", day)
	var gs []model.Grant
	if err := alice.Grants(ctx, url.Values{"account": {"111122223333"}, "day": {day}}, func(page []model.Grant) error {
		gs = append(gs, page...)
		return nil
	}); err != nil {
		return err
	}
	if len(gs) != 3 {
		return r.failf("%d grants, want 3", len(gs))
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	// The table airlock grants prints, so that the walkthrough shows what
	// a reviewer will see: when each grant began and ended, and why.
	fmt.Fprintln(tw, "   "+review.TableHeader)
	for _, g := range gs {
		row := review.FromGrant(g)
		cells := review.TableCells(row)
		for i, c := range cells {
			cells[i] = textesc.String(c)
		}
		fmt.Fprintln(tw, "   "+strings.Join(cells, "\t"))
		if row.Grant == g1.ID && (row.Calls < 2 || row.DeniedCalls < 2) {
			tw.Flush()
			return r.failf("the review counts %d calls and %d denied for %s", row.Calls, row.DeniedCalls, g1.ID)
		}
	}
	tw.Flush()
	r.ok("every grant answers who, what scope (granted and used), when it began and when and why it ended, who or what approved it, and what it did")

	r.stepf("airlock audit verify: lifecycle and session events are in one Merkle-tree log with signed checkpoints")
	rep, err := alice.Verify(ctx)
	if err != nil {
		return err
	}
	if !rep.OK {
		return r.failf("verification failed: %+v", rep.Problems)
	}
	r.ok("%d entries verified against %d signed checkpoints (root %s)", rep.Entries, rep.Checkpoints, short(rep.Root))
	r.say("\nDemo complete: every step behaved as expected.")
	return nil
}

// s3Client is the AWS SDK for Go's S3 client, unmodified, configured only
// with the grant's credentials and the gateway's endpoint.
func s3Client(cr grants.Credentials) *s3.Client {
	return s3.New(s3.Options{
		Region:       cr.Endpoint.Region,
		BaseEndpoint: aws.String(cr.Endpoint.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(cr.AccessKeyID, cr.SecretAccessKey, cr.SessionToken),
		Retryer:      aws.NopRetryer{},
	})
}

func getObject(ctx context.Context, c *s3.Client, key string) (string, error) {
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("logs"), Key: aws.String(key)})
	if err != nil {
		return "", err
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	return string(b), err
}

// showRecording prints the gateway's calls under grant id and checks that
// they are the objects read and the calls refused, nothing else: every
// page of each session's recording, as airlock session show reads it.
func showRecording(ctx context.Context, r *run, c *client.Client, id string) error {
	ss, err := c.Sessions(ctx, id)
	if err != nil {
		return err
	}
	if len(ss) == 0 {
		return r.failf("grant %s has no session", id)
	}
	var lines []string
	for _, s := range ss {
		err := c.EachSessionPage(ctx, s.ID, 0, func(v httpapi.SessionResponse) error {
			for _, e := range v.Events {
				if e.Type != "session.call" {
					continue
				}
				var ent struct {
					Data gateway.Call `json:"data"`
				}
				if err := json.Unmarshal(e.Entry, &ent); err != nil {
					return err
				}
				call := ent.Data
				if call.Kind != "request" {
					continue
				}
				verdict := "allowed"
				if !call.Allowed {
					verdict = "DENIED "
				}
				lines = append(lines, fmt.Sprintf("#%d %s %s %s %s", e.Seq, e.Time.Format("15:04:05.000"), verdict, call.Action, call.Resource))
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	for _, l := range lines {
		r.say("   %s", l)
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{"allowed s3:GetObject arn:aws:s3:::logs/app/2026/11/25/api.log", "DENIED  s3:GetObject arn:aws:s3:::logs/billing/invoices.csv"} {
		if !strings.Contains(all, want) {
			return r.failf("the recording lacks %q", want)
		}
	}
	if strings.Contains(all, "worker.log") {
		return r.failf("the recording shows an object that was never read")
	}
	r.ok("the objects read, the calls refused, and nothing else; every event is in the tamper-evident log")
	return nil
}

func randomSecret() string {
	b := make([]byte, 30)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawStdEncoding.EncodeToString(b)
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
