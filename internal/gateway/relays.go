package gateway

import "sync"

// Relays names the client on whose behalf the control plane itself opened
// a connection to one of its own gateways. The MCP server served over HTTP
// (/mcp) runs sql_query for a remote agent by connecting to the
// PostgreSQL gateway from the control plane's host: without this the
// session's client would be that host, not the agent, so the session
// would be misattributed and read as the grant's credential moved to
// another instance (refused under identity_binding: refuse).
//
// Only code in the process can add an entry, and an entry is keyed by
// the exact local address of the socket the control plane dialed, which
// is the remote address the gateway accepts: no other connection can
// have it while that one is open. Entries are removed when the dialer's
// connection closes.
type Relays struct {
	mu sync.Mutex
	m  map[string]Relayed
}

// Relayed is the agent a relayed connection is for, as the control plane
// saw it.
type Relayed struct {
	// Client is the agent's address.
	Client string
	// TLSClient is the fingerprint of the client certificate the agent
	// presented to the control plane (findings.TLSClient; "" for none).
	// The relay cannot present it (it does not hold the agent's key); the
	// agent proved it holds the key in the handshake of the very
	// connection whose request the relay serves, as it does to the API,
	// so the session is that instance, not one without a certificate.
	TLSClient string
}

// Add records that the connection whose local address is local (as the
// gateway will see it: its remote address) carries client's traffic. It
// returns the function that removes the entry; call it when the
// connection closes.
func (r *Relays) Add(local string, client Relayed) (remove func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]Relayed{}
	}
	r.m[local] = client
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			if r.m[local] == client {
				delete(r.m, local)
			}
		})
	}
}

// Client returns the client a connection from remote was opened for, if
// the control plane opened it. A nil Relays knows of none.
func (r *Relays) Client(remote string) (Relayed, bool) {
	if r == nil {
		return Relayed{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.m[remote]
	return c, ok
}
