package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/airlock-dev/airlock/internal/awsgw"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/sniff"
	"github.com/airlock-dev/airlock/internal/tlscert"
)

// Gateways are the running protocol listeners of a server.
type Gateways struct {
	// AWSAddr and PostgresAddr are where the gateways listen ("" when off).
	AWSAddr, PostgresAddr string

	closers []func()
}

// Close stops the listeners and ends open sessions.
func (g *Gateways) Close() {
	for i := len(g.closers) - 1; i >= 0; i-- {
		g.closers[i]()
	}
	g.closers = nil
}

// StartGateways opens the gateway listeners the configuration names
// (listen.aws, listen.postgres), serves them in the background, and tells
// the grant service where they are so that credentials carry the address.
func (s *Server) StartGateways(ctx context.Context) (_ *Gateways, err error) {
	cfg := s.Config
	gws := &Gateways{}
	defer func() {
		if err != nil {
			gws.Close()
		}
	}()
	if cfg.Listen.AWS == "" && cfg.Listen.Postgres == "" {
		return gws, nil
	}
	tlsCfg, caPEM, err := s.gatewayTLS()
	if err != nil {
		return nil, err
	}
	plaintext := sniff.LoopbackOnly
	if cfg.TLS.AllowPlaintext {
		plaintext = sniff.AnyPeer
	}
	if cfg.Listen.AWS != "" {
		if err := s.startAWS(gws, tlsCfg, caPEM, plaintext); err != nil {
			return nil, err
		}
	}
	if cfg.Listen.Postgres != "" {
		if err := s.startPostgres(ctx, gws, tlsCfg, caPEM); err != nil {
			return nil, err
		}
	}
	return gws, nil
}

// gatewayTLS is the configured certificate, or one from Airlock's own CA
// covering the listeners' hosts (the API's and the gateways'); caPEM is
// that CA's certificate. It is made once per Server, so that the API and
// the gateways present the same certificate and do not reissue each
// other's.
func (s *Server) gatewayTLS() (*tls.Config, string, error) {
	s.tlsOnce.Do(func() { s.tlsCfg, s.caPEM, s.tlsErr = s.loadTLS() })
	return s.tlsCfg, s.caPEM, s.tlsErr
}

func (s *Server) loadTLS() (*tls.Config, string, error) {
	cfg := s.Config
	if cfg.TLS.CertFile != "" {
		c, err := tlscert.Load(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		return c, "", err
	}
	var hosts []string
	// The names clients use behind a load balancer, when the balancer
	// passes TLS through to the replica.
	for _, raw := range []string{cfg.Listen.Public.API, cfg.Listen.Public.AWS} {
		if u := parsePublicURL(raw); u != nil {
			hosts = append(hosts, u.Hostname())
		}
	}
	if h, _, err := net.SplitHostPort(cfg.Listen.Public.Postgres); err == nil {
		hosts = append(hosts, h)
	}
	for _, a := range []string{cfg.Listen.API, cfg.Listen.AWS, cfg.Listen.Postgres} {
		h, _, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		if h == "" || h == "0.0.0.0" || h == "::" {
			// Clients reach a wildcard listener by the machine's name
			// (clientHost), so the certificate must name it.
			h = clientHost(h)
		}
		hosts = append(hosts, h)
	}
	c, path, err := tlscert.Ensure(cfg.DataDir, hosts)
	if err != nil {
		return nil, "", err
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	return c, string(pem), nil
}

func (s *Server) startAWS(gws *Gateways, tlsCfg *tls.Config, caPEM string, plaintext func(net.Addr) bool) error {
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
	ln, err := net.Listen("tcp", cfg.Listen.AWS)
	if err != nil {
		return fmt.Errorf("listen.aws: %w", err)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	hosts := []string{"localhost", host}
	public := parsePublicURL(cfg.Listen.Public.AWS)
	if public != nil {
		// Calls through the balancer are signed for its name.
		hosts = append(hosts, public.Hostname())
	}
	gw, err := awsgw.New(awsgw.Options{Authority: s.Service.Authority(), Targets: targets, Hosts: hosts, Logger: s.logger.With("gateway", "aws")})
	if err != nil {
		ln.Close()
		return err
	}
	sl := sniff.Wrap(ln, sniff.Options{TLS: tlsCfg, Plaintext: plaintext, Logger: s.logger.With("gateway", "aws")})
	hs := &http.Server{
		Handler: gw, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
		// Lets a grant's end reset a transfer's connection at once.
		ConnContext: awsgw.ConnContext,
	}
	go func() {
		if err := hs.Serve(sl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("aws gateway stopped", "err", err)
		}
	}()
	gws.AWSAddr = ln.Addr().String()
	gws.closers = append(gws.closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		_ = gw.Close()
	})
	// Loopback clients get plain http (nothing to trust); others https with
	// the CA to trust.
	scheme, ca := "https", caPEM
	if isLoopback(host) || cfg.TLS.AllowPlaintext {
		scheme, ca = "http", ""
	}
	endpoint := scheme + "://" + clientHost(host) + ":" + port
	if public != nil {
		// Behind a load balancer: credentials from any replica name the
		// balancer (listen.public.aws), with the CA only over https.
		endpoint, ca = public.String(), caPEM
		if public.Scheme != "https" {
			ca = ""
		}
	}
	for _, t := range targets {
		s.Service.SetEndpoint(t.Name, grants.Endpoint{URL: endpoint, Region: t.Region, CAPEM: ca})
	}
	s.logger.Info("aws gateway listening", "addr", gws.AWSAddr, "targets", len(targets))
	return nil
}

// parsePublicURL is a listen.public URL parsed (config validated it), or nil.
func parsePublicURL(raw string) *url.URL {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	return u
}

// clientHost is the host a client dials for a listener bound to host.
func clientHost(host string) string {
	if host == "" || host == "0.0.0.0" || host == "::" {
		if h, err := os.Hostname(); err == nil {
			return h
		}
		return "127.0.0.1"
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() {
		return "[" + host + "]"
	}
	return host
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// portOf is the numeric port of a host:port address.
func portOf(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}
