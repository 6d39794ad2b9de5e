package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/airlock-dev/airlock/internal/awsgw"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/sniff"
)

// awsProtocol is the AWS gateway: HTTP with SigV4 on listen.aws, TLS and
// plaintext on one port (sniffed), for the targets of kind "aws".
var awsProtocol = protocol{
	kind:   "aws",
	listen: func(l config.Listen) string { return l.AWS },
	publicHost: func(p config.Public) string {
		if u := parsePublicURL(p.AWS); u != nil {
			return u.Hostname()
		}
		return ""
	},
	start: startAWS,
}

func startAWS(_ context.Context, s *Server, ln net.Listener, tl gatewayTLS) (stopFunc, error) {
	cfg := s.Config
	var targets []awsgw.Target
	for _, t := range cfg.Targets {
		if t.Kind != "aws" {
			continue
		}
		at := awsgw.Target{Name: t.Name, Account: t.Account, Region: t.Region, Endpoint: t.Endpoint, STSEndpoint: t.STSEndpoint, Endpoints: t.Endpoints}
		if c := t.Credentials; c != nil {
			at.RoleARN = c.RoleARN
			if c.AccessKeyIDEnv != "" {
				at.AccessKeyID, at.SecretAccessKey = os.Getenv(c.AccessKeyIDEnv), os.Getenv(c.SecretAccessKeyEnv)
			}
		}
		targets = append(targets, at)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	hosts := []string{"localhost", host}
	public := parsePublicURL(cfg.Listen.Public.AWS)
	if public != nil {
		// Calls through the balancer are signed for its name.
		hosts = append(hosts, public.Hostname())
	}
	logger := s.logger.With("gateway", "aws")
	// The grants' clock: corrected to the shared store's on replicas.
	gw, err := awsgw.New(awsgw.Options{Authority: s.Service.Authority(), Targets: targets, Hosts: hosts, Logger: logger, Clock: s.Service.Clock()})
	if err != nil {
		return nil, err
	}
	plaintext := sniff.LoopbackOnly
	if cfg.TLS.AllowPlaintext {
		plaintext = sniff.AnyPeer
	}
	sl := sniff.Wrap(ln, sniff.Options{TLS: tl.config, Plaintext: plaintext, Logger: logger,
		MaxConns: cfg.Listen.MaxConnections, MaxConnsPerSource: cfg.Listen.MaxConnectionsPerHost})
	running := newInflight()
	hs := &http.Server{
		Handler: running.wrap(gw), ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
		// Lets a grant's end reset a transfer's connection at once.
		ConnContext: awsgw.ConnContext,
	}
	go func() {
		if err := hs.Serve(sl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("aws gateway stopped", "err", err)
		}
	}()
	stop := func(deadline time.Time) {
		stopHTTP(hs, running, deadline, func() {
			// Shutdown closes only the listeners Serve has begun
			// tracking: one whose goroutine had not yet got that far
			// would stay open (and accept into its backlog) until Serve
			// ran.
			_ = sl.Close()
			// Cuts the transfers still in flight, recording them so,
			// and refuses what comes after.
			_ = gw.Close()
		})
	}
	// Loopback clients get plain http (nothing to trust); others https with
	// the CA to trust.
	scheme, ca := "https", tl.caPEM
	if isLoopback(host) || cfg.TLS.AllowPlaintext {
		scheme, ca = "http", ""
	}
	endpoint := scheme + "://" + clientHost(host) + ":" + port
	if public != nil {
		// Behind a load balancer: credentials from any replica name the
		// balancer (listen.public.aws), with the CA only over https.
		endpoint, ca = public.String(), tl.caPEM
		if public.Scheme != "https" {
			ca = ""
		}
	}
	for _, t := range targets {
		s.Service.SetEndpoint(t.Name, grants.Endpoint{URL: endpoint, Region: t.Region, CAPEM: ca})
	}
	s.logger.Info("aws gateway listening", "addr", ln.Addr().String(), "targets", len(targets))
	return stop, nil
}
