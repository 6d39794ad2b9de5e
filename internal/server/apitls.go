package server

import (
	"fmt"
	"net"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/sniff"
)

// The API carries bearer keys, approvals and grant secrets, so, like the
// gateways, it serves TLS on its port (the configured certificate, or one
// from Airlock's CA in data_dir, whose ca.pem the CLI trusts through
// AIRLOCK_CA) and accepts plaintext only from loopback clients, where
// nothing crosses a network: `http://127.0.0.1:8700` keeps working on one
// machine. A plaintext client on another machine is answered with a 400
// that says to use https://, before it has sent its key anywhere but the
// wire it chose.

// apiListener wraps ln to serve TLS and, to the clients APIPlaintext (or
// its default) allows, plaintext. On failure ln is closed.
func (s *Server) apiListener(ln net.Listener) (net.Listener, error) {
	tlsCfg, _, err := s.gatewayTLS()
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("the API's TLS certificate: %w", err)
	}
	plaintext := s.APIPlaintext
	if plaintext == nil {
		plaintext = sniff.LoopbackOnly
		if s.Config.TLS.AllowPlaintext {
			plaintext = sniff.AnyPeer
		}
	}
	return sniff.Wrap(ln, sniff.Options{TLS: tlsCfg, Plaintext: plaintext, Logger: s.logger.With("listener", "api"),
		MaxConns: s.Config.Listen.MaxConnections, MaxConnsPerSource: s.Config.Listen.MaxConnectionsPerHost}), nil
}

// apiPlaintextNote says, for the start-up log line, who may use http://.
func apiPlaintextNote(cfg *config.Config) string {
	if cfg.TLS.AllowPlaintext {
		return "any client (tls.allow_plaintext)"
	}
	return "loopback clients only"
}
