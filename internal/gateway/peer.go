package gateway

import "context"

// tlsClientKey is the context key of WithTLSClient.
type tlsClientKey struct{}

// WithTLSClient returns ctx carrying the fingerprint of the TLS client
// certificate the session's client presented (findings.TLSClient), for
// Authority.StartSession: the control plane compares it with that of the
// instance that requested the grant (credential-moved) and records it on
// the session's start. A gateway passes the context it starts the session
// with; "" (no certificate, no TLS) leaves ctx as it is.
func WithTLSClient(ctx context.Context, fingerprint string) context.Context {
	if fingerprint == "" {
		return ctx
	}
	return context.WithValue(ctx, tlsClientKey{}, fingerprint)
}

// TLSClientOf is the fingerprint WithTLSClient put in ctx, or "".
func TLSClientOf(ctx context.Context) string {
	s, _ := ctx.Value(tlsClientKey{}).(string)
	return s
}
