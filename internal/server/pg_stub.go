package server

import (
	"context"
	"crypto/tls"
	"net"
)

func (s *Server) startPostgres(ctx context.Context, gws *Gateways, tlsCfg *tls.Config, caPEM string, plaintext func(net.Addr) bool) error {
	s.logger.Warn("postgres gateway not wired yet")
	return nil
}
