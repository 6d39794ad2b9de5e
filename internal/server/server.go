// Package server assembles a running Airlock from its configuration: the
// store, the audit log and its keys, the policy engine, the identity
// directory, the grant service, the HTTP API and the gateways. `airlock
// serve` and `airlock demo` both run it.
//
// Each gateway is a protocol (gateways.go): its kind, its listen key and a
// start function, in a file of its own (aws.go, postgres.go), listed once
// in protocols. A new gateway adds such a file and entry here, and, outside
// this package, its configuration keys and target checks (package config),
// the environment its credentials are handed out as (package credenv) and
// its actions (package scope).
package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/console"
	"github.com/airlock-dev/airlock/internal/findings"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/metrics"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/notify"
	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/serverkeys"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/witness"
	"github.com/airlock-dev/airlock/internal/workload"
)

// Files inside data_dir.
const (
	DatabaseFile      = "airlock.db"
	CredentialKeyFile = serverkeys.CredentialKeyFile
	WitnessFile       = "checkpoint"
	// CosignedFile is the newest checkpoint with the configured
	// tlog-witnesses' cosignatures (audit.witnesses).
	CosignedFile = "checkpoint.cosigned"
	// WitnessTimesFile keeps the time of each tlog-witness's newest
	// cosignature, so that an older one replayed after a restart is refused.
	WitnessTimesFile = "witness-times.json"
	// JournalDir holds the log's journal: each batch of records is durable
	// there first and copied into the database in the background.
	JournalDir = "journal"
	keyName    = serverkeys.KeyName
)

// Server is a running control plane.
type Server struct {
	Config   *config.Config
	Service  *grants.Service
	Handler  http.Handler
	store    store.Store
	log      *auditlog.Log
	verifier note.Verifier
	// signer is the log's key, which also signs evidence bundles'
	// statements (export.go).
	signer note.Signer
	logger *slog.Logger
	// witnesses publishes checkpoints to audit.witnesses (nil if none).
	witnesses *witness.Publisher

	// APIPlaintext reports whether a plaintext (http://) API client at addr
	// is served; nil means loopback clients only, or every client with
	// tls.allow_plaintext. Everyone else must use TLS. Tests set it to see
	// how a client from another machine is treated.
	APIPlaintext func(addr net.Addr) bool

	// The TLS certificate of the API and the gateways (gatewayTLS).
	tlsOnce sync.Once
	tlsCfg  *tls.Config
	caPEM   string
	tlsErr  error
	// notifier runs notify: (nil if not configured).
	notifier *notify.Notifier
	// verifies runs Verify one at a time (verifyruns.go).
	verifies verifyRuns
	// pgRelay runs /mcp's sql_query through this process's PostgreSQL
	// gateway on the agent's behalf (mcp.go).
	pgRelay pgRelay

	// Directory resolves API keys to identities (the API's and the console's).
	Directory *authn.Directory
}

// testRunning, when a test sets it, is told of the Server that Run opened.
// Nil in production.
var testRunning func(*Server)

// testGrants, when a test sets it, adjusts the grant service's options
// (a replica's clock) once Open has made them. Nil in production.
var testGrants func(*grants.Options)

// Open starts everything but the listeners. The caller must Close it.
func Open(ctx context.Context, cfg *config.Config, logger *slog.Logger) (_ *Server, err error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	s := &Server{Config: cfg, logger: logger}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.store, err = openStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	keys, err := loadKeys(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	signer, verifier, credKey := keys.Signer, keys.Verifier, keys.Credential
	s.verifier, s.signer = verifier, signer
	var onCheckpoint func(store.Checkpoint)
	if s.witnesses, err = startWitnesses(cfg, s.store, verifier, logger); err != nil {
		return nil, err
	} else if s.witnesses != nil {
		onCheckpoint = s.witnesses.Offer
	}
	mx := metrics.New()
	lopts := logOptions(cfg, keys, onCheckpoint)
	lopts.OnBatch = mx.ObserveBatch
	s.log, err = auditlog.Open(ctx, s.store, signer, lopts)
	if errors.Is(err, auditlog.ErrLegacyJournal) {
		return nil, fmt.Errorf("%w. The old seal was derived from the credential key (%s), which is kept where a writer of data_dir may read it while the log signing key (%s) is not, so these entries could have been forged. List them with `airlock audit verify --config …` (NOTE … only in the journal); to keep them, start the earlier release once with this data_dir and stop it cleanly (it copies the journal into the database), then start this one; to drop them, move %s away", err, keys.CredentialFrom, keys.SignerFrom, filepath.Join(cfg.DataDir, JournalDir))
	}
	if err != nil {
		return nil, err
	}
	mx.LogSize(s.log.Size)
	known := map[string]bool{}
	var targets []grants.Target
	for _, t := range cfg.Targets {
		known[t.Name] = true
		gt := grants.Target{Name: t.Name, Kind: t.Kind, Account: t.Account}
		if t.Kind == "postgres" {
			gt.Database = upstreamDatabase(t)
		}
		targets = append(targets, gt)
	}
	pol, err := policy.NewEngine(cfg.Policies, func(n string) bool { return known[n] })
	if err != nil {
		return nil, err
	}
	dir := authn.NewDirectory(nil)
	gopts := grants.Options{
		Store: s.store, Log: s.log, Policy: pol, Directory: dir, Targets: targets,
		MaxDuration: cfg.Grants.MaxDuration.Duration, PendingTimeout: cfg.Grants.PendingTimeout.Duration,
		RequireReason: cfg.Grants.ReasonRequired(), CredentialKey: credKey, Logger: logger,
		Findings: findings.New(clock.Real, cfg.Window()), Binding: cfg.Binding,
		Observer: mx,
	}
	gopts.Now = testNow
	if err := withReplicas(&gopts, cfg, s.store); err != nil {
		return nil, err
	}
	if testGrants != nil {
		testGrants(&gopts)
	}
	s.Service, err = grants.New(gopts)
	if err != nil {
		return nil, err
	}
	var ids []model.Identity
	for _, id := range cfg.Identities {
		b := &model.Bindings{Email: id.Email, SlackUser: id.SlackUser}
		if id.OIDC != nil {
			b.OIDC = workload.Binding{Identity: id.Name, Issuer: id.OIDC.Issuer, Subject: id.OIDC.Subject, Claims: id.OIDC.Claims}.Describe()
		}
		ids = append(ids, model.Identity{Name: id.Name, Kind: model.IdentityKind(id.Kind), Owner: id.Owner, Groups: id.Groups, KeySHA256: id.KeySHA256, Bindings: b})
	}
	if err := s.Service.SyncIdentities(ctx, ids); err != nil {
		return nil, fmt.Errorf("loading identities: %w", err)
	}
	if err := s.Service.Start(ctx); err != nil {
		return nil, err
	}
	api := httpapi.New(s.Service, dir, s, logger)
	api.SetReadiness(s.readiness())
	api.SetMetrics(mx.Handler())
	if v, err := workloadVerifier(cfg, logger); err != nil {
		return nil, err
	} else if v != nil {
		api.SetWorkload(v)
	}
	if s.notifier, err = startNotify(cfg, s.Service, dir, s, api, credKey, logger); err != nil {
		return nil, err
	}
	s.Directory = dir
	// The web console shares the API's listener, under /console/.
	// Behind a proxy or balancer that ends TLS the console sees plain
	// http, but the browser is on https: its cookies must be Secure.
	con, err := console.New(console.Options{Service: s.Service, Directory: dir, Audit: s, Logger: logger, SSO: consoleSSO(cfg),
		SecureCookies: strings.HasPrefix(strings.ToLower(cfg.Listen.Public.API), "https://")})
	if err != nil {
		return nil, err
	}
	s.Handler = console.Mount(withMCP(api, &s.pgRelay, logger), con)
	return s, nil
}

// workloadVerifier builds the workload token verifier from oidc and the
// agents' oidc bindings, or returns nil when no issuer is configured.
func workloadVerifier(cfg *config.Config, logger *slog.Logger) (*workload.Verifier, error) {
	if len(cfg.OIDC) == 0 {
		return nil, nil
	}
	var issuers []workload.Issuer
	for _, is := range cfg.OIDC {
		wi := workload.Issuer{URL: is.Issuer, Audience: is.Audience, JWKSURL: is.JWKSURL, InstanceClaims: is.InstanceClaims,
			MaxLifetime: is.TokenLifetime()}
		// The console's sign-in client at the same issuer: its tokens are
		// people's ID tokens (the configuration refuses the same audience
		// for both; this also refuses one issued to both).
		if cfg.SSO != nil && strings.TrimRight(cfg.SSO.Issuer, "/") == strings.TrimRight(is.Issuer, "/") {
			wi.SignInClientID = cfg.SSO.ClientID
		}
		issuers = append(issuers, wi)
	}
	var bindings []workload.Binding
	for _, id := range cfg.Identities {
		if id.OIDC == nil || id.Kind != string(model.Agent) {
			continue
		}
		bindings = append(bindings, workload.Binding{Identity: id.Name, Issuer: id.OIDC.Issuer, Subject: id.OIDC.Subject, Claims: id.OIDC.Claims})
	}
	return workload.New(issuers, bindings, workload.Options{Logger: logger})
}

// consoleSSO is the web console's OpenID Connect sign-in, or nil.
func consoleSSO(cfg *config.Config) *console.SSO {
	if cfg.SSO == nil {
		return nil
	}
	emails := map[string]string{}
	for _, id := range cfg.Identities {
		if id.Kind == string(model.Human) && id.Email != "" {
			emails[console.FoldEmail(id.Email)] = id.Name
		}
	}
	// Behind a load balancer the request's host is the balancer's only if
	// it passes it on, and its scheme is never the browser's when the
	// balancer ends TLS: the public API address says what the browser
	// must come back to.
	redirect := cfg.SSO.RedirectURL
	if redirect == "" && cfg.Listen.Public.API != "" {
		redirect = strings.TrimRight(cfg.Listen.Public.API, "/") + console.CallbackPath
	}
	return &console.SSO{
		Issuer: cfg.SSO.Issuer, ClientID: cfg.SSO.ClientID, ClientSecret: os.Getenv(cfg.SSO.ClientSecretEnv),
		IdentityClaim: cfg.SSO.IdentityClaim, RedirectURL: redirect, Emails: emails,
		GroupsClaim: cfg.SSO.GroupsClaim, RequiredGroups: cfg.SSO.RequiredGroups,
	}
}

// startWitnesses starts publishing checkpoints to audit.witnesses, or
// returns nil if none are configured.
func startWitnesses(cfg *config.Config, st store.Store, v note.Verifier, logger *slog.Logger) (*witness.Publisher, error) {
	if len(cfg.Audit.Witnesses) == 0 {
		return nil, nil
	}
	var targets []witness.Target
	for _, w := range cfg.Audit.Witnesses {
		targets = append(targets, witness.Target{
			Name: w.Name, Kind: witness.Kind(w.Kind), URL: w.URL, Key: w.Key,
			Command: w.Command, Timeout: w.Timeout.Duration,
		})
	}
	return witness.New(witness.Options{
		Store: st, Verifier: v, Targets: targets, Logger: logger,
		CosignedPath: filepath.Join(cfg.DataDir, CosignedFile),
		TimesPath:    filepath.Join(cfg.DataDir, WitnessTimesFile),
	})
}

// CosignedCheckpoint returns the newest checkpoint cosigned by the
// configured tlog-witnesses (nil if none is configured or none answered).
func (s *Server) CosignedCheckpoint() []byte {
	if s.witnesses == nil {
		return nil
	}
	return s.witnesses.Cosigned()
}

// LogOrigin names the log in its checkpoints (their first line): the log
// whose checkpoints the key v verifies, as airlock serve writes them.
func LogOrigin(v note.Verifier) string { return "airlock/" + verifierID(v) }

// legacyJournalKey derives the key that sealed the journal's frames of the
// first format ("ALJ1") from the credential key. Frames are now sealed under
// a key derived from the signing key (serverkeys.Keys.JournalSeal); this
// one only reads what an earlier release left.
func legacyJournalKey(credKey []byte) []byte {
	m := hmac.New(sha256.New, credKey)
	m.Write([]byte("airlock journal seal v1"))
	return m.Sum(nil)
}

// verifierID is a short stable id for this log, from its public key.
func verifierID(v note.Verifier) string {
	return fmt.Sprintf("%08x", v.KeyHash())
}

// Checkpoint returns the newest signed checkpoint.
// It first waits (briefly) for the log's journal to be copied into the
// store, which is when a checkpoint is signed, so that it covers every
// entry recorded before the call.
func (s *Server) Checkpoint() []byte {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.log.Sync(ctx); err != nil {
		s.logger.Warn("the checkpoint may not cover the newest entries", "err", err)
	}
	return s.log.Latest().Note
}

// closeBound bounds Close: the service's last writes (the sessions
// recorder's own bound, sessions.DefaultCloseTimeout), the notifications'
// last deliveries (notify's CloseGrace, alongside), and the log's close
// (its journal's copy, auditlog.DefaultCloseCopyTimeout). A store that
// does not answer, and ignores the contexts that should end the wait, held
// Close, and airlock serve's stop, for ever: a PostgreSQL COMMIT is ended at
// pgstore's CommitTimeout (10 s), but the log's batch waits without bound
// in its other statements (a table another session holds locked) and for
// the writers' lock, and the log's close runs the batches queued behind.
const closeBound = 10 * time.Second

// Close stops the service and closes the log and store, within closeBound.
// What is still closing then is left behind, as a crash would leave it:
// the process is ending. Every record was durable before the call it
// records was answered; the next start ends the sessions left open from
// their logged calls, copies what the journal holds into the database,
// and drops the grant roles left behind.
func (s *Server) Close() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.close()
	}()
	t := time.NewTimer(closeBound)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.logger.Error("stopping: closing the service and the log did not end in time (the store does not answer?); going on without them: the next start recovers what was not written",
			"bound", closeBound)
	}
}

func (s *Server) close() {
	var wg sync.WaitGroup
	if s.notifier != nil {
		// Alongside the service and the log, not after them: its last
		// deliveries (up to notify's CloseGrace, 5 s) need neither, and one
		// after the other their bounds added up.
		wg.Go(s.notifier.Close)
	}
	if s.Service != nil {
		s.Service.Close()
	}
	if s.log != nil {
		if err := s.log.Close(); err != nil {
			s.logger.Error("closing the log", "err", err)
		}
	}
	wg.Wait()
	if s.witnesses != nil {
		s.witnesses.Close()
	}
	if s.store != nil {
		s.store.Close()
	}
}

// Serve answers the API on ln until ctx ends, then stops it within
// StopGrace and stopCut (stop.go). The API speaks TLS on ln, and plaintext
// HTTP on the same port only to loopback clients (see apiListener). ln is
// closed when Serve returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error { return s.serve(ctx, ln, nil) }

// serve is Serve, stopping gws (if not nil) together with the API.
func (s *Server) serve(ctx context.Context, ln net.Listener, gws *Gateways) error {
	ln, err := s.apiListener(ln)
	if err != nil {
		return err
	}
	running := newInflight()
	hs := &http.Server{
		Handler: running.wrap(s.Handler), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	t0 := time.Now()
	deadline := t0.Add(StopGrace)
	s.logger.Info("stopping: calls in flight get until the deadline, then their connections are closed", "grace", StopGrace)
	if s.Service != nil {
		s.Service.StopWaits()
	}
	var wg sync.WaitGroup
	if gws != nil {
		wg.Go(func() { gws.stop(deadline) })
	}
	if !stopHTTP(hs, running, deadline, nil) {
		s.logger.Warn("stopping: API calls still running at the deadline were cut", "grace", StopGrace)
	}
	wg.Wait()
	s.logger.Info("stopped serving", "took", time.Since(t0).Round(time.Millisecond))
	return nil
}

// hangup is what SIGHUP does: the policies reload. airlock.yaml is read
// at start only (identities, targets, listeners and every other setting
// take effect at the next start), but it is read again here so that an
// operator who edited it and sent SIGHUP is told so, rather than left
// believing, say, that an identity they removed can no longer sign in. o
// are the command line's overrides, applied again so that they do not
// count as a change.
func (s *Server) hangup(ctx context.Context, o config.Overrides) {
	_ = s.Service.ReloadPolicies(ctx, "SIGHUP")
	cfg, err := config.Load(s.Config.Path)
	if err == nil {
		err = cfg.Override(o)
	}
	if err != nil {
		s.logger.Warn("SIGHUP: the configuration file has problems; it is read at start only, so nothing changes until a restart, which would fail",
			"file", s.Config.Path, "err", err)
		return
	}
	if diff := s.Config.Differences(cfg); len(diff) > 0 {
		s.logger.Warn("SIGHUP: the configuration file changed since start; only the policies reload on SIGHUP: restart airlock serve for the rest to take effect",
			"file", s.Config.Path, "changed", strings.Join(diff, ","))
	}
}

// Run is `airlock serve`: load and check the configuration, apply the
// command line's overrides (o), start, listen, reload policies on SIGHUP,
// stop on SIGINT/SIGTERM.
func Run(ctx context.Context, cfgPath string, o config.Overrides, logger *slog.Logger) error {
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return err
	}
	if err := cfg.Override(o); err != nil {
		return err
	}
	if err := cfg.CheckEnv(os.Getenv); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := Open(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer s.Close()
	if testRunning != nil {
		testRunning(s)
	}
	ln, err := net.Listen("tcp", cfg.Listen.API)
	if err != nil {
		return fmt.Errorf("listen.api: %w", err)
	}
	gws, err := s.StartGateways(ctx)
	if err != nil {
		ln.Close()
		return err
	}
	// serve stops the gateways with the API; this is for an early return.
	defer gws.Close()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				s.hangup(ctx, o)
			}
		}
	}()
	attrs := append([]any{"replica", s.Service.ReplicaID(), "api", "https://" + ln.Addr().String(), "api_plaintext", apiPlaintextNote(cfg)}, gws.logAttrs()...)
	logger.Info("airlock serving", append(attrs, "data_dir", cfg.DataDir, "log_size", s.log.Size())...)
	if p := cfg.Listen.Public; p != (config.Public{}) {
		// What clients are told to use (listen.public), beside what this
		// replica listens on.
		logger.Info("clients reach this replica through", "api", p.API, "aws", p.AWS, "postgres", p.Postgres)
	}
	return s.serve(ctx, ln, gws)
}
