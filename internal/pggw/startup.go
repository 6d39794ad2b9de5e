package pggw

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// errCancelHandled ends a connection that carried a CancelRequest.
var errCancelHandled = errors.New("cancel request handled")

var (
	errEOF           = io.EOF
	errUnexpectedEOF = io.ErrUnexpectedEOF
)

// Request codes of the untyped startup packets.
const (
	codeSSLRequest    = 80877103
	codeGSSENCRequest = 80877104
	codeCancelRequest = 80877102
	protocolMajor3    = 3 << 16
)

const (
	// tlsRecordHandshake is the first byte of a TLS handshake record: a
	// ClientHello sent at once (direct TLS).
	tlsRecordHandshake = 0x16
	// alpnPostgres is PostgreSQL's ALPN protocol name, which the gateway
	// offers and a direct TLS client must ask for.
	alpnPostgres = "postgresql"
)

// startup runs the connection's startup phase: TLS negotiation, the
// StartupMessage, SCRAM, the checks that the grant is for this target and
// database, the session start and the upstream login. On success the client
// has AuthenticationOk, the upstream's parameters, the gateway's own
// BackendKeyData and ReadyForQuery.
func (c *conn) startup() (net.Conn, error) {
	// PostgreSQL 17's direct TLS (sslnegotiation=direct): the client sends
	// its ClientHello at once instead of an SSLRequest. One byte tells: a
	// TLS handshake record starts with 0x16, and a startup packet whose
	// length started so would be hundreds of MB long. The peek reads
	// nothing the startup packet's own read would not have read.
	first, err := c.br.Peek(1)
	if err != nil {
		return nil, err
	}
	if first[0] == tlsRecordHandshake {
		if err := c.directTLS(); err != nil {
			return nil, err
		}
	}
	var body []byte
	for attempt := 0; ; attempt++ {
		if attempt > 2 {
			return nil, fatal(codeProtocolViolation, "airlock: too many startup requests")
		}
		var err error
		body, err = readStartupPacket(c.br, maxStartupBody)
		if err != nil {
			return nil, err
		}
		code := binary.BigEndian.Uint32(body)
		switch code {
		case codeSSLRequest, codeGSSENCRequest:
			if len(body) != 4 || c.tls {
				return nil, &refusal{pg: fatal(codeProtocolViolation, "airlock: unexpected encryption request")}
			}
			// Bytes sent after the request, before our answer, would be
			// read as if they came over TLS (CVE-2021-23214).
			if c.br.Buffered() != 0 {
				return nil, &refusal{pg: fatal(codeProtocolViolation, "airlock: unexpected data after the encryption request")}
			}
			if code == codeSSLRequest && c.gw.o.TLS != nil {
				if err := c.send([]byte{'S'}, true); err != nil {
					return nil, err
				}
				if _, err := c.useTLS(c.raw, c.gw.o.TLS); err != nil {
					return nil, err
				}
				continue
			}
			if err := c.send([]byte{'N'}, true); err != nil {
				return nil, err
			}
			continue
		case codeCancelRequest:
			c.cancelRequest(body)
			return nil, errCancelHandled
		}
		if code>>16 != 3 {
			return nil, &refusal{pg: fatal(codeFeatureNotSupp, fmt.Sprintf("airlock: unsupported frontend protocol %d.%d", code>>16, code&0xffff))}
		}
		break
	}
	return c.login(body)
}

// directTLS starts TLS on a connection whose first byte is a TLS
// handshake record, as PostgreSQL 17 does: the client must have negotiated
// the ALPN protocol "postgresql" (the server's NextProtos, New), so that
// a TLS client of another protocol (a browser sent here, an HTTPS
// request) is not taken for a PostgreSQL one. A ClientHello offering only
// other protocols fails the handshake (no_application_protocol); one
// offering none completes it and is then closed. Either way, as with a
// gateway without a certificate, the client gets no FATAL: it speaks TLS,
// and PostgreSQL sends none either. What follows the handshake is the
// same startup as after an SSLRequest.
func (c *conn) directTLS() error {
	cfg := c.gw.o.TLS
	if cfg == nil {
		return &refusal{reason: "direct TLS connection refused: the gateway has no TLS certificate"}
	}
	// The first read may have buffered part of the ClientHello (at most
	// ioBufSize bytes): the TLS server reads those first, then the socket.
	n := c.br.Buffered()
	pre, err := c.br.Peek(n)
	if err != nil {
		return err
	}
	under := &prefixConn{Conn: c.raw, pre: bytes.Clone(pre)}
	_, _ = c.br.Discard(n)
	tc, err := c.useTLS(under, cfg)
	if err != nil {
		return err
	}
	if tc.ConnectionState().NegotiatedProtocol != alpnPostgres {
		return &refusal{reason: "direct TLS connection refused: the client did not negotiate the ALPN protocol " + alpnPostgres}
	}
	return nil
}

// startupParams reads a StartupMessage's parameters (the body after the
// protocol version) as PostgreSQL's ProcessStartupPacket does: pairs of
// NUL-terminated name and value, then an empty name, the terminator, which
// must be the packet's last byte; a name given twice takes its last value,
// as there. pgproto3's decoder took an empty name for a parameter's
// ("user\0u\0\0x\0\0" had "" = "x"), and refused a packet of no
// parameters, which PostgreSQL refuses for its missing user instead.
func startupParams(b []byte) (map[string]string, bool) {
	params := map[string]string{}
	for {
		name, rest, ok := cstring(b)
		if !ok {
			return nil, false
		}
		if len(name) == 0 {
			return params, len(rest) == 0
		}
		var value []byte
		if value, b, ok = cstring(rest); !ok {
			return nil, false
		}
		params[string(name)] = string(value)
	}
}

// login handles a StartupMessage body.
func (c *conn) login(body []byte) (net.Conn, error) {
	// A connection the control plane opened for an agent (Relays) is the
	// agent's session. Looked up here, not at accept: the dialer names it
	// once its connect returns, before it sends its first message.
	if a, ok := c.gw.o.Relays.Client(c.su.client); ok {
		// The agent's certificate, as it presented it to the control
		// plane; the relay's own connection presents none.
		c.su.client, c.su.tlsClient = a.Client, a.TLSClient
	}
	// Any 3.x is read as 3.0, and the client told so below.
	version := binary.BigEndian.Uint32(body)
	params, ok := startupParams(body[4:])
	if !ok {
		return nil, &refusal{pg: fatal(codeProtocolViolation, "airlock: invalid startup packet layout: expected terminator as last byte")}
	}
	user := truncate(params["user"], 128)
	database := params["database"]
	if database == "" {
		database = user
	}
	if user == "" {
		return nil, &refusal{pg: fatal(codeInvalidAuthSpec, "airlock: no user name given; use the grant's credential id (PGUSER)")}
	}
	if r := params["replication"]; r != "" && r != "false" && r != "off" && r != "0" && r != "no" {
		return nil, &refusal{pg: fatal(codeFeatureNotSupp, "airlock: replication connections are not supported"), credentialID: user}
	}
	if c.gw.o.RequireTLS && !c.tls {
		return nil, &refusal{pg: fatal(codeInvalidAuthSpec, "airlock: this gateway requires TLS; connect with sslmode=require"), credentialID: user}
	}
	var unknownOpts []string
	for k := range params {
		if len(k) > 5 && k[:5] == "_pq_." {
			unknownOpts = append(unknownOpts, k)
		}
	}
	if version != pgproto3.ProtocolVersion30 || len(unknownOpts) > 0 {
		m := pgproto3.NegotiateProtocolVersion{NewestMinorProtocol: 0, UnrecognizedOptions: unknownOpts}
		b, _ := m.Encode(nil)
		if err := c.send(b, false); err != nil {
			return nil, err
		}
	}

	gr, err := c.gw.o.Authority.Lookup(user)
	if errors.Is(err, gateway.ErrNotReady) {
		// No credential can be checked (a replica re-reading its grants,
		// its store down): say so, as PostgreSQL says it is starting up,
		// rather than fail the password of a grant that is live.
		return nil, &refusal{pg: fatal(codeCannotConnectNow, "airlock: the gateway cannot check credentials right now (its store is unreachable or it is catching up); retry shortly"),
			reason: "the control plane could not vouch for credentials", credentialID: user}
	}
	if err := c.authenticate(user, gr); err != nil {
		return nil, err
	}
	// The client proved it holds the grant's secret: from here on errors
	// may name the grant.
	if !gr.Live(c.gw.o.Clock.Now()) {
		return nil, &refusal{pg: fatal(codeInvalidAuthSpec, c.gw.grantEndedMessage(gr)), credentialID: user, grant: gr}
	}
	t := c.gw.targets[gr.Target]
	if t == nil || (gr.TargetKind != "" && gr.TargetKind != "postgres") {
		return nil, &refusal{pg: fatal(codeInvalidAuthSpec, fmt.Sprintf("airlock: grant %s is for target %q, which is not a PostgreSQL target of this gateway", gr.ID, gr.Target)), credentialID: user, grant: gr}
	}
	if database != t.db {
		return nil, &refusal{pg: fatal(codeInvalidCatalogName, fmt.Sprintf("airlock: grant %s is for database %q, not %q", gr.ID, t.db, truncate(database, 128))), credentialID: user, grant: gr}
	}
	c.t = t
	c.readOnly = readOnlyScope(gr.Scope)
	// Before the session starts: a login refused for the grant's bound
	// leaves a refusal in the log, not an empty session each.
	st := c.gw.grantState(gr)
	if !st.admit(t.MaxSessionsPerGrant) {
		return nil, c.tooManySessions(t, user, gr)
	}
	c.su.admitted = st
	// Among replicas, the grant's sessions on the others count too: a
	// slot in the shared store (after the count here, which refuses
	// without a round trip what this replica alone fills).
	if slots := c.gw.o.Slots; slots != nil && t.MaxSessionsPerGrant >= 0 {
		shared, err := slots.Take(c.sctx(), gr, t.MaxSessionsPerGrant, func(why string) { st.slotCut(c, why) })
		if err != nil {
			// Refused either way: a slot that may have been written
			// (its answer lost) goes with its lease, never renewed.
			if r := c.startupCut(st, gr, "while the grant's sessions were counted among the replicas"); r != nil {
				return nil, r
			}
			c.gw.log.Error("counting the grant's sessions among the replicas failed", "grant", gr.ID, "err", err)
			return nil, &refusal{pg: fatal(codeCannotConnectNow, "airlock: the gateway cannot count the grant's sessions right now (its store is unreachable); retry shortly"),
				reason: "the grant's sessions could not be counted", credentialID: user, grant: gr}
		}
		if shared == nil {
			return nil, c.tooManySessions(t, user, gr)
		}
		c.su.shared = shared
	}

	// The client certificate's fingerprint goes with the session's start:
	// the control plane compares it with the requester's (credential-moved).
	sess, err := c.gw.o.Authority.StartSession(gateway.WithTLSClient(c.sctx(), c.su.tlsClient), gr, c.su.client)
	if err != nil {
		if errors.Is(err, gateway.ErrNoGrant) {
			return nil, &refusal{pg: fatal(codeInvalidAuthSpec, c.gw.grantEndedMessage(gr)), credentialID: user, grant: gr}
		}
		var refused *gateway.RefusedError
		if errors.As(err, &refused) {
			return nil, &refusal{pg: fatal(codeInvalidAuthSpec, "airlock: "+refused.Reason), reason: refused.Reason, credentialID: user, grant: gr}
		}
		if r := c.startupCut(st, gr, "while the session's start was recorded"); r != nil {
			return nil, r
		}
		c.gw.log.Error("starting a session failed", "grant", gr.ID, "err", err)
		return nil, &refusal{pg: fatal(codeSystemError, "airlock: could not record the session; the connection is refused"),
			reason: "the session could not be recorded", credentialID: user, grant: gr}
	}
	c.sess = sess
	c.gw.hook("session", nil)
	// Only the upstream net.Conn is kept: pgconn's buffers are not needed
	// for the relay and would cost every idle session.
	up, err := c.openUpstream(st, params)
	if err != nil {
		if c.key != 0 {
			c.gw.keys.remove(c.key)
		}
		if c.st != nil {
			_ = c.st.removeSession(c) // setupCut recorded a cut
		}
		c.endSession()
		return nil, err
	}
	return up, nil
}

// startupCut returns the refusal of a login cut short from outside before
// its session started, or nil: kill (the grant's end, the gateway's
// shutdown, the slot's lease: slotCut) cancels the startup's context, and
// the call it was in (during: "while …") then fails for that alone.
// Reported as what it was, not as a failure of the store (an ERROR that
// would send an operator after a store that is fine); still a refusal,
// never a login admitted uncounted. The client already has kill's FATAL.
func (c *conn) startupCut(st *grantState, gr *gateway.Grant, during string) *refusal {
	if c.sctx().Err() == nil {
		return nil
	}
	msg, reason := c.cutBy(st, gr, during)
	return &refusal{pg: fatal(codeAdminShutdown, msg), reason: reason, credentialID: gr.CredentialID, grant: gr}
}

// cutBy says what killed a login or a session of st's grant gr during its
// startup (during: "during …", "while …"): the message to the client and
// the reason to record.
func (c *conn) cutBy(st *grantState, gr *gateway.Grant, during string) (msg, reason string) {
	st.mu.Lock()
	ended, slotCut := st.ended, st.cut[c]
	st.mu.Unlock()
	switch {
	case slotCut != "":
		return "airlock: " + slotCut + "; the connection is refused", fmt.Sprintf("cut off %s: %s", during, slotCut)
	case ended:
		return c.gw.grantEndedMessage(gr), fmt.Sprintf("grant %s has %s %s", gr.ID, c.gw.grantEnd(gr), during)
	}
	return "airlock: the gateway is shutting down", "the gateway shut down " + during
}

// tooManySessions is the refusal of a login beyond the grant's
// max_sessions_per_grant. With a shared store the bound holds across the
// replicas (slots), so the message says so: "through this gateway" sent
// an agent refused on one replica looking for sessions it held there.
func (c *conn) tooManySessions(t *target, user string, gr *gateway.Grant) *refusal {
	n := fmt.Sprintf("%d sessions", t.MaxSessionsPerGrant)
	if t.MaxSessionsPerGrant == 1 {
		n = "1 session"
	}
	where := "through this gateway"
	if c.gw.o.Slots != nil {
		where = "across the gateways of every replica"
	}
	return &refusal{pg: fatal(codeTooManyConnections, fmt.Sprintf("airlock: too many connections for grant %s: it may hold %s at once %s (the target's max_sessions_per_grant); close one and retry", gr.ID, n, where)),
		reason: fmt.Sprintf("too many sessions for the grant (max_sessions_per_grant %d)", t.MaxSessionsPerGrant), credentialID: user, grant: gr}
}

// authenticate runs SCRAM-SHA-256 against gr's secret (nil gr: a mock
// exchange that always fails, indistinguishable to the client).
func (c *conn) authenticate(user string, gr *gateway.Grant) error {
	v, known, err := c.gw.scram.forLogin(user, gr)
	if err != nil {
		c.gw.log.Error("deriving the grant's SCRAM verifier failed", "grant", gr.ID, "err", err)
		return &refusal{pg: fatal(codeSystemError, "airlock: could not check the password; the connection is refused"),
			reason: "the SCRAM verifier could not be derived", credentialID: user, grant: gr}
	}
	s := &scramServer{v: v, known: known}
	auth := pgproto3.AuthenticationSASL{AuthMechanisms: []string{scramMechanism}}
	b, _ := auth.Encode(nil)
	if err := c.send(b, true); err != nil {
		return err
	}
	mr := msgReader{r: c.br, max: maxAuthBody}
	raw, err := mr.next()
	if err != nil {
		return authReadErr(err, user, gr)
	}
	var init pgproto3.SASLInitialResponse
	if raw[0] != 'p' || init.Decode(raw[5:]) != nil {
		return &refusal{pg: fatal(codeProtocolViolation, "airlock: expected a SASL initial response"), credentialID: user, grant: gr}
	}
	if init.AuthMechanism != scramMechanism {
		return &refusal{pg: fatal(codeProtocolViolation, "airlock: only SCRAM-SHA-256 is supported (no channel binding)"), credentialID: user, grant: gr}
	}
	first, err := s.first(init.Data)
	if err != nil {
		return &refusal{pg: fatal(codeProtocolViolation, "airlock: "+err.Error()), credentialID: user, grant: gr}
	}
	cont := pgproto3.AuthenticationSASLContinue{Data: []byte(first)}
	b, _ = cont.Encode(nil)
	if err := c.send(b, true); err != nil {
		return err
	}
	raw, err = mr.next()
	if err != nil {
		return authReadErr(err, user, gr)
	}
	var resp pgproto3.SASLResponse
	if raw[0] != 'p' || resp.Decode(raw[5:]) != nil {
		return &refusal{pg: fatal(codeProtocolViolation, "airlock: expected a SASL response"), credentialID: user, grant: gr}
	}
	final, ok, err := s.final(resp.Data)
	if err != nil {
		return &refusal{pg: fatal(codeProtocolViolation, "airlock: "+err.Error()), credentialID: user, grant: gr}
	}
	if !ok {
		// Made only here: a login that succeeds leaves no refusal behind
		// as garbage (a formatted message, about 200 bytes).
		failed := &refusal{pg: fatal(codeInvalidPassword, fmt.Sprintf("password authentication failed for user %q", user)), credentialID: user, grant: gr,
			reason: "password authentication failed"}
		if !known {
			failed.reason = "password authentication failed (no active grant holds this credential)"
		}
		return failed
	}
	fin := pgproto3.AuthenticationSASLFinal{Data: final}
	b, _ = fin.Encode(nil)
	return c.send(b, true)
}

func authReadErr(err error, user string, gr *gateway.Grant) error {
	var tl *errTooLarge
	if errors.As(err, &tl) {
		return &refusal{pg: fatal(codeProtocolViolation, "airlock: authentication message too large"), credentialID: user, grant: gr}
	}
	return err
}

// openUpstream waits for the grant's role, logs in with it and greets the
// client as the upstream would, with the gateway's own cancel key. st is
// the grant's state, where the login holds a session slot (admit).
func (c *conn) openUpstream(st *grantState, params map[string]string) (net.Conn, error) {
	gr := c.grant()
	// addSession takes the slots, whatever it answers.
	shared := c.su.shared
	c.su.admitted, c.su.shared = nil, nil
	if !st.addSession(c, shared) {
		// Ended since the session started: its recording says so, as a
		// cut later in the setup does (setupCut).
		c.recordSetupFailure(fmt.Sprintf("grant %s has %s during the session's setup", gr.ID, c.gw.grantEnd(gr)))
		return nil, &refusal{pg: fatal(codeInvalidAuthSpec, c.gw.grantEndedMessage(gr)), credentialID: gr.CredentialID, grant: gr}
	}
	c.st = st
	role, err := c.gw.roleFor(c.sctx(), st)
	if err != nil {
		if r := c.setupCut(st); r != nil {
			return nil, r
		}
		c.gw.log.Error("no database role for the grant", "grant", gr.ID, "target", c.t.Name, "err", err)
		c.recordSetupFailure("could not prepare the grant's database role")
		return nil, &refusal{pg: fatal(codeSystemError, fmt.Sprintf("airlock: could not prepare the database role of grant %s", gr.ID)),
			reason: "role preparation failed", credentialID: gr.CredentialID, grant: gr}
	}
	// Where a grant role may CREATE outside its temporary schema, a view or
	// function one defined in an earlier session is read without being
	// named; where it may call a function that takes a row, "select c.f
	// from t c" calls f(c) with no "(" in the text; where it may call one
	// named like a built-in, "lower(v)" may call it: reads wait for their
	// records (disclose.go).
	c.ownObjects = role.MayDefine || role.RowFunctions || role.ShadowsBuiltins
	runtime := forwarded(params)
	key := upstreamKey(role, runtime)
	if role.ServerVersion >= checkIntervalSince {
		// A startup parameter, not a SET: DISCARD ALL (reuse.go) resets
		// settings to the startup's, so a kept connection keeps it. Added
		// to the session's own map after the key (every login of the
		// target adds it alike), where a copy of the map per login cost
		// an allocation each.
		runtime["client_connection_check_interval"] = checkInterval
	}
	hc := c.gw.takeIdle(st, key) // reuse.go
	if hc == nil {
		st.makeRoom()
		hc, err = c.connectUpstream(role, runtime)
		if err == nil {
			hc.Conn = c.gw.park.Wrap(hc.Conn)
			c.gw.hook("login", nil)
		}
	}
	if err != nil {
		if r := c.setupCut(st); r != nil {
			return nil, r
		}
		detail := "the upstream refused or could not be reached"
		code := codeConnectionFailure
		var pe *pgconn.PgError
		if errors.Is(err, errUpstreamLoginTimeout) {
			detail = fmt.Sprintf("the upstream did not complete the login within %s", c.gw.o.StartupTimeout)
		} else if errors.As(err, &pe) {
			detail = pe.Code + " " + pe.Message
			if retryLater(pe.Code) {
				// The client's driver or pool retries on these codes, as it
				// would against PostgreSQL itself; 08006 reads as broken.
				code = pe.Code
			}
		}
		c.gw.log.Error("upstream connection failed", "grant", gr.ID, "target", c.t.Name, "err", err)
		c.recordSetupFailure("upstream connection failed: " + detail)
		e := fatal(code, "airlock: could not connect to the upstream database")
		e.Detail = detail
		return nil, &refusal{pg: e, reason: "upstream connection failed", credentialID: gr.CredentialID, grant: gr}
	}
	if enc := hc.ParameterStatuses["client_encoding"]; unsafeClientEncoding(enc) {
		hc.Conn.Close()
		c.recordSetupFailure("client_encoding " + enc + " refused")
		return nil, &refusal{pg: fatal(codeFeatureNotSupp, encodingMessage(enc)), reason: "client_encoding not supported",
			credentialID: gr.CredentialID, grant: gr}
	}
	c.wmu.Lock()
	dead := c.dead
	if !dead {
		c.up = hc.Conn
	}
	c.wmu.Unlock()
	if dead {
		// Killed (the grant's end, the gateway's shutdown) after the
		// upstream login succeeded: the same cut as during it, recorded
		// as the session's result and named in the rejection.
		hc.Conn.Close()
		if r := c.setupCut(st); r != nil {
			return nil, r
		}
		return nil, &refusal{reason: "closed during startup", credentialID: gr.CredentialID, grant: gr}
	}
	k := &c.ck // in c's own allocation (conn.ck)
	k.set(c, hc.PID, hc.SecretKey)
	c.key = c.gw.keys.add(k)
	st.setInfo(c, key, hc.ParameterStatuses)

	c.scsOff.Store(hc.ParameterStatuses["standard_conforming_strings"] == "off")
	// One buffer for the whole greeting, sized first: appended message by
	// message it was reallocated about ten times per login.
	size := 9 + 9 + len(k.secret) + 6 // AuthenticationOk, BackendKeyData, ReadyForQuery
	for name, v := range hc.ParameterStatuses {
		size += 7 + len(name) + len(v)
	}
	out := make([]byte, 0, size)
	out, _ = (&pgproto3.AuthenticationOk{}).Encode(out)
	for name, v := range hc.ParameterStatuses {
		out, _ = (&pgproto3.ParameterStatus{Name: name, Value: v}).Encode(out)
	}
	out, _ = (&pgproto3.BackendKeyData{ProcessID: c.key, SecretKey: k.secret[:]}).Encode(out)
	if params["options"] != "" {
		// Dropped (forwardedParams): said, so that a client that asked for
		// settings (a statement_timeout, default_transaction_read_only)
		// does not take them for granted.
		out = (&pgError{Severity: "WARNING", Code: codeWarning, Message: optionsIgnored}).appendNotice(out)
	}
	tx := hc.TxStatus
	if tx == 0 {
		tx = 'I'
	}
	c.txs.Store(uint32(tx))
	out = appendReady(out, tx)
	c.gw.hook("greet", nil)
	if err := c.send(out, true); err != nil {
		if r := c.setupCut(st); r != nil { // killed since the check above
			return nil, r
		}
		return nil, err
	}
	return hc.Conn, nil
}

// setupCut returns the refusal of a session whose setup was cut short
// from outside, or nil: kill (the grant's end, the gateway's shutdown)
// cancels the startup's context, and the role's preparation or the
// upstream login then fails for that alone. Reported as what it was, not
// as a role or upstream failure (an ERROR that would send an operator
// after a database that is fine). The client already has kill's FATAL.
func (c *conn) setupCut(st *grantState) *refusal {
	if c.sctx().Err() == nil {
		return nil
	}
	gr := c.grant()
	msg, reason := c.cutBy(st, gr, "during the session's setup")
	c.recordSetupFailure(reason)
	return &refusal{pg: fatal(codeAdminShutdown, msg), reason: reason, credentialID: gr.CredentialID, grant: gr}
}

// recordSetupFailure puts a failed session setup into the session's
// recording, so that the reviewer sees why a session has no statements.
func (c *conn) recordSetupFailure(why string) {
	c.recordConnResult(why, "recording a failed session setup failed")
}

// recordCut puts why the session was cut off (slotCut) into its
// recording, before its end.
func (c *conn) recordCut(why string) {
	c.recordConnResult("airlock: cut off: "+why, "recording why a session was cut off failed")
}

// recordConnResult records a refused pg:connect result with error why;
// failed is the log's message if it cannot.
func (c *conn) recordConnResult(why, failed string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx()), 10*time.Second)
	defer cancel()
	call := gateway.Call{Kind: "result", Action: "pg:connect", Resource: c.t.db, Allowed: false, Error: why}
	if err := c.sess.Result(ctx, call); err != nil {
		c.gw.log.Error(failed, "session", c.sess.ID, "err", err)
	}
}

// cancelRequest handles a CancelRequest packet: forwarded to the upstream
// backend of the session that owns the key, recorded in that session;
// ignored (as PostgreSQL does) when the key is unknown.
func (c *conn) cancelRequest(body []byte) {
	var cr pgproto3.CancelRequest
	full := make([]byte, 0, len(body))
	full = append(full, body...)
	if cr.Decode(full) != nil {
		return
	}
	k := c.gw.keys.lookup(cr.ProcessID, cr.SecretKey)
	if k == nil {
		c.gw.log.Info("cancel request with an unknown key ignored", "client", c.su.client)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx()), 10*time.Second)
	defer cancel()
	call := gateway.Call{Kind: "request", Action: "pg:cancel", Resource: k.c.t.db, Allowed: true, Params: map[string]string{"client": c.su.client}}
	if err := k.c.sess.Request(ctx, call); err != nil {
		c.gw.log.Error("recording a cancel request failed; not forwarded", "session", k.c.sess.ID, "err", err)
		return
	}
	c.gw.hook("cancel", nil)
	// The session may have ended while its cancel was recorded, and its
	// backend gone to the grant's next session (reuse.go): not cancelled.
	done, ok := c.gw.keys.forwarding(cr.ProcessID, k)
	if !ok {
		c.gw.log.Info("cancel request for a session that has ended ignored", "session", k.c.sess.ID)
		return
	}
	defer done()
	if err := sendCancel(ctx, k); err != nil {
		c.gw.log.Warn("forwarding a cancel request failed", "session", k.c.sess.ID, "err", err)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
