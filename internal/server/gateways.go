package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/tlscert"
)

// A protocol is one gateway as airlock serve runs it: the targets of one
// kind, served on the listen.<kind> address. Each lives in a file of its
// own (aws.go, postgres.go) and is listed in protocols; start-up, the
// certificate's names and the start-up log go through that list, so that
// the server has one place that knows which gateways there are.
type protocol struct {
	// kind is the targets' kind and the listen key ("aws", "postgres").
	kind string
	// listen is where the gateway listens (listen.<kind>), "" when off.
	listen func(config.Listen) string
	// publicHost is the host clients reach it by behind a load balancer
	// (listen.public.<kind>), "" when none; the certificate names it.
	publicHost func(config.Public) string
	// start serves the gateway on ln, which it then owns, for the
	// configured targets of its kind, tells the grant service how clients
	// reach it (their credentials carry it), and returns how to stop it.
	start func(ctx context.Context, s *Server, ln net.Listener, t gatewayTLS) (stop stopFunc, err error)
}

// A stopFunc stops a gateway: it stops accepting at once, lets calls in
// flight finish until deadline, then closes what is left and returns
// about stopCut later (stop.go).
type stopFunc func(deadline time.Time)

// protocols are the gateways, in the order they start.
var protocols = []protocol{awsProtocol, postgresProtocol}

// gatewayTLS is what every gateway's TLS is made of.
type gatewayTLS struct {
	// config is the certificate the gateways present.
	config *tls.Config
	// caPEM is Airlock's CA certificate when config comes from it (clients
	// need it to verify), "" for a configured certificate.
	caPEM string
}

// Gateways are the running protocol listeners of a server.
type Gateways struct {
	addrs  map[string]string
	logger *slog.Logger

	mu    sync.Mutex
	kinds []string
	stops []stopFunc
}

// Addr is where the gateway for targets of kind ("aws", "postgres")
// listens, "" when it is off.
func (g *Gateways) Addr(kind string) string { return g.addrs[kind] }

// Close stops the listeners and ends open sessions, without waiting for
// calls in flight.
func (g *Gateways) Close() { g.stop(time.Now()) }

// stop stops every gateway at once, calls in flight getting until
// deadline. A gateway still stopping 2×stopCut after the deadline (one
// stopCut for its handlers, one for its own bookkeeping: the records of
// cut transfers and ended sessions) is left behind, and said so: the
// process is ending, and the log's records of completed calls were made
// when they completed.
func (g *Gateways) stop(deadline time.Time) {
	g.mu.Lock()
	kinds, stops := g.kinds, g.stops
	g.kinds, g.stops = nil, nil
	g.mu.Unlock()
	if len(stops) == 0 {
		return
	}
	var wg sync.WaitGroup
	left := make([]atomic.Bool, len(stops))
	for i, stop := range stops {
		left[i].Store(true)
		wg.Go(func() {
			stop(deadline)
			left[i].Store(false)
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(time.Until(deadline) + 2*stopCut)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		for i := range left {
			if left[i].Load() {
				g.logger.Warn("stopping: a gateway did not stop in time; going on without it", "gateway", kinds[i])
			}
		}
	}
}

// StartGateways opens the gateway listeners the configuration names
// (listen.aws, listen.postgres), serves them in the background, and tells
// the grant service where they are so that credentials carry the address.
func (s *Server) StartGateways(ctx context.Context) (_ *Gateways, err error) {
	gws := &Gateways{addrs: map[string]string{}, logger: s.logger}
	defer func() {
		if err != nil {
			gws.Close()
		}
	}()
	var on []protocol
	for _, p := range protocols {
		if p.listen(s.Config.Listen) != "" {
			on = append(on, p)
		}
	}
	if len(on) == 0 {
		return gws, nil
	}
	tlsCfg, caPEM, err := s.gatewayTLS()
	if err != nil {
		return nil, err
	}
	for _, p := range on {
		ln, err := net.Listen("tcp", p.listen(s.Config.Listen))
		if err != nil {
			return nil, fmt.Errorf("listen.%s: %w", p.kind, err)
		}
		stop, err := p.start(ctx, s, ln, gatewayTLS{config: tlsCfg, caPEM: caPEM})
		if err != nil {
			ln.Close()
			return nil, err
		}
		gws.addrs[p.kind] = ln.Addr().String()
		gws.kinds, gws.stops = append(gws.kinds, p.kind), append(gws.stops, stop)
	}
	return gws, nil
}

// logAttrs are the gateways' addresses for the start-up log line, kind
// first: "aws", "127.0.0.1:9000", "postgres", "".
func (g *Gateways) logAttrs() []any {
	var a []any
	for _, p := range protocols {
		a = append(a, p.kind, g.Addr(p.kind))
	}
	return a
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
	if u := parsePublicURL(cfg.Listen.Public.API); u != nil {
		hosts = append(hosts, u.Hostname())
	}
	addrs := []string{cfg.Listen.API}
	for _, p := range protocols {
		if h := p.publicHost(cfg.Listen.Public); h != "" {
			hosts = append(hosts, h)
		}
		addrs = append(addrs, p.listen(cfg.Listen))
	}
	for _, a := range addrs {
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
