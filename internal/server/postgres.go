package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/pggw"
	"github.com/airlock-dev/airlock/internal/pgroles"
)

// postgresProtocol is the PostgreSQL gateway: the wire protocol on
// listen.postgres, for the targets of kind "postgres", each session logged
// in upstream as its grant's own role.
var postgresProtocol = protocol{
	kind:   "postgres",
	listen: func(l config.Listen) string { return l.Postgres },
	publicHost: func(p config.Public) string {
		h, _, err := net.SplitHostPort(p.Postgres)
		if err != nil {
			return ""
		}
		return h
	},
	start: startPostgres,
}

func startPostgres(ctx context.Context, s *Server, ln net.Listener, tl gatewayTLS) (stopFunc, error) {
	cfg := s.Config
	tlsCfg, caPEM := tl.config, tl.caPEM
	var targets []pggw.Target
	var dbs = map[string]string{}
	for _, t := range cfg.Targets {
		if t.Kind != "postgres" {
			continue
		}
		dsn, db, err := adminDSN(t)
		if err != nil {
			return nil, err
		}
		dbs[t.Name] = db
		targets = append(targets, pggw.Target{Name: t.Name, Account: t.Account, Upstream: dsn, RedactParameters: t.RedactParameters,
			MaxSessionsPerGrant: t.MaxSessionsPerGrant,
			Roles: &lazyRoles{dsn: dsn, target: t.Name, logger: s.logger.With("gateway", "postgres", "target", t.Name),
				passwordKey: s.Service.RolePasswordKey(), live: s.Service.LiveGrants, installation: LogOrigin(s.verifier)}})
	}
	addr := ln.Addr().String()
	host, _, _ := net.SplitHostPort(addr)
	gw, err := pggw.New(pggw.Options{
		Authority: s.Service.Authority(), Targets: targets, TLS: tlsCfg,
		// Plaintext only where nothing crosses a network: a loopback
		// listener (whose peers are all local), unless allowed.
		RequireTLS: !isLoopback(host) && !cfg.TLS.AllowPlaintext,
		Relays:     &s.pgRelay.relays,
		Slots:      s.Service.SessionSlots(), // nil but among replicas
		Clock:      s.Service.Clock(),        // the grants' time, corrected on replicas
		Logger:     s.logger,                 // pggw names itself in its log lines
	})
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		if err := gw.Serve(sctx, ln); err != nil && !errors.Is(err, net.ErrClosed) && sctx.Err() == nil {
			s.logger.Error("postgres gateway stopped", "err", err)
		}
	}()
	s.pgRelay.listening(ln.Addr())
	// A session is not given the grace a call over HTTP is: it may last
	// for hours, so it is ended at once (admin_shutdown), as PostgreSQL's
	// own fast shutdown does; its statements were recorded as they ran.
	stop := func(time.Time) {
		s.pgRelay.stopped()
		cancel()
		ln.Close()
		_ = gw.Close()
		for _, t := range targets {
			t.Roles.(*lazyRoles).close()
		}
	}
	// Clients dial the listener, or behind a load balancer the balancer
	// (listen.public.postgres): credentials from any replica name it.
	dialHost, dialPort := clientHost(host), portOf(addr)
	if pub := s.Config.Listen.Public.Postgres; pub != "" {
		dialHost, dialPort = publicHostPort(pub)
	}
	// A remote client checks the gateway's certificate and name
	// (verify-full): against Airlock's CA, handed out with the
	// credentials, or, for a configured certificate (tls.cert_file),
	// against the client machine's trusted roots (credenv), as AWS
	// clients do. libpq's "require" checks neither, so anyone on the path
	// could relay the session and read the grant's statements and rows.
	sslmode := "disable"
	if tlsCfg != nil {
		sslmode = "verify-full"
		if isLoopback(strings.Trim(dialHost, "[]")) {
			// On one machine TLS adds nothing but a CA file to find;
			// clients still may negotiate it.
			sslmode = "prefer"
		}
	}
	for name, db := range dbs {
		e := grants.Endpoint{Host: dialHost, Port: dialPort, Database: db, SSLMode: sslmode}
		if sslmode == "verify-full" {
			e.CAPEM = caPEM // "" for a configured certificate: the system's roots
		}
		s.Service.SetEndpoint(name, e)
	}
	s.logger.Info("postgres gateway listening", "addr", addr, "targets", len(targets))
	return stop, nil
}

// adminDSN is a postgres target's upstream DSN with the admin password
// from password_env filled in, and the database it names.
func adminDSN(t config.Target) (string, string, error) {
	u, err := url.Parse(t.Upstream)
	if err != nil {
		return "", "", fmt.Errorf("target %s: upstream does not parse", t.Name)
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" {
		return "", "", fmt.Errorf("target %s: upstream names no database", t.Name)
	}
	if t.PasswordEnv != "" && u.User != nil {
		u.User = url.UserPassword(u.User.Username(), os.Getenv(t.PasswordEnv))
	}
	return u.String(), db, nil
}

// lazyRoles is a pgroles.Manager made on first use, and made again after
// a failure, so that a database that is down when Airlock starts delays
// only its own grants' connections instead of the whole server.
type lazyRoles struct {
	dsn, target string
	logger      *slog.Logger
	// passwordKey derives the roles' passwords, the same on every replica
	// (pgroles.WithPasswordKey); live says which grants are live in the
	// store, for Reconcile (another replica's grants are not in keep).
	passwordKey []byte
	live        func(ctx context.Context, ids []string) (map[string]bool, error)
	// installation names this Airlock in its roles' marker (the log's
	// origin, the same on every replica; pgroles.WithInstallation), so
	// that another installation in front of the same database leaves
	// them alone.
	installation string

	mu     sync.Mutex
	m      *pgroles.Manager
	closed bool
}

func (l *lazyRoles) manager(ctx context.Context) (*pgroles.Manager, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, errors.New("gateway closed")
	}
	if l.m != nil {
		return l.m, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	m, err := pgroles.New(ctx, l.dsn, l.logger, pgroles.WithPasswordKey(l.passwordKey), pgroles.WithInstallation(l.installation),
		pgroles.WithBuiltinNames(pggw.BuiltinNames()))
	if err != nil {
		return nil, fmt.Errorf("target %s: connecting as its admin role: %w", l.target, err)
	}
	l.m = m
	return m, nil
}

// Ensure implements pggw.RoleManager.
func (l *lazyRoles) Ensure(ctx context.Context, g *gateway.Grant) (pgroles.Role, error) {
	m, err := l.manager(ctx)
	if err != nil {
		return pgroles.Role{}, err
	}
	return m.Ensure(ctx, g)
}

// Drop implements pggw.RoleManager.
func (l *lazyRoles) Drop(ctx context.Context, grantID string) error {
	m, err := l.manager(ctx)
	if err != nil {
		return err
	}
	return m.Drop(ctx, grantID)
}

// TerminateBackend implements pggw.BackendTerminator: the backend of a
// closed session whose statement outlived its cancel.
func (l *lazyRoles) TerminateBackend(ctx context.Context, grantID string, pid uint32, since time.Time) (bool, error) {
	m, err := l.manager(ctx)
	if err != nil {
		return false, err
	}
	return m.TerminateBackend(ctx, grantID, pid, since)
}

// Reconcile drops roles left by grants that ended while Airlock was down,
// or that a replica made and could not drop (it died): the roles of grants
// neither in keep nor live in the store.
func (l *lazyRoles) Reconcile(ctx context.Context, keep []string) error {
	m, err := l.manager(ctx)
	if err != nil {
		return err
	}
	return m.ReconcileLive(ctx, func(ctx context.Context, ids []string) (map[string]bool, error) {
		live, err := l.live(ctx, ids)
		if err != nil {
			return nil, err
		}
		for _, id := range keep {
			live[id] = true
		}
		return live, nil
	})
}

var _ pggw.BackendTerminator = (*lazyRoles)(nil)

func (l *lazyRoles) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.m != nil {
		l.m.Close()
	}
}

// publicHostPort splits listen.public.postgres (validated host:port) into
// what PGHOST and PGPORT say.
func publicHostPort(addr string) (string, int) {
	h, _, _ := net.SplitHostPort(addr)
	return clientHost(h), portOf(addr)
}

// upstreamDatabase is the database a postgres target's upstream names, as
// adminDSN reads it ("" when it names none: the gateway does not start
// then, and requests are not checked against it).
func upstreamDatabase(t config.Target) string {
	u, err := url.Parse(t.Upstream)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(u.Path, "/")
}
