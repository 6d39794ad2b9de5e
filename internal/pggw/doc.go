// Package pggw is Airlock's PostgreSQL wire-protocol gateway.
//
// A client (psql, pgbench, any driver) connects with the grant's
// credential: user = the credential id, password = the grant secret,
// database = the target's database. The gateway authenticates it with
// SCRAM-SHA-256 against the secret it holds (so the secret never crosses
// in clear), with a verifier it derives once per grant (verifiers.go),
// then logs in upstream as the grant's own PostgreSQL role
// (created by pgroles with exactly the scope's privileges) and relays the
// session. PostgreSQL enforces the scope; the gateway never uses SET ROLE,
// and the role has no memberships, so nothing the client sends can widen it.
//
// Every statement is recorded (see record.go for the model), and nothing
// of its answer reaches the client before its record is durable. On a
// session whose grant can write, a statement is recorded durably before it
// is forwarded, and one whose record fails is answered with an error and
// not run. On a session whose grant's scope names pg:select and nothing
// else, a read (SELECT, SHOW, VALUES, TABLE; not FETCH, which runs a
// cursor's query declared earlier, nor a read that calls a function
// outside the built-ins that only compute) is forwarded while its record
// is written, and whatever the upstream sends after it (its answer or,
// from an upstream that answers out of step, anything else) is held until
// the record is durable; if the record fails the answer is discarded and
// the session ends with FATAL 58000 (durable before disclosure,
// disclose.go). When the grant ends, its sessions get a FATAL
// error naming the grant and why, and its role is dropped, which
// terminates its backends.
//
// An idle session holds no goroutine: after ParkIdleAfter without a
// message, each plain-TCP side of it is parked with package netpark and
// resumed by its next byte, hang-up or close (park.go).
//
// Protocol notes: TLS through SSLRequest or, as PostgreSQL 17, direct (a
// ClientHello as the first bytes, with ALPN "postgresql" required;
// startup.go), plaintext refused when Options.RequireTLS; GSSENCRequest
// declined, and refused inside TLS; protocol 3.0 (a 3.2 client
// is told so with NegotiateProtocolVersion), SCRAM-SHA-256 without channel
// binding (-PLUS is not offered), CancelRequest mapped from the gateway's
// own BackendKeyData to the upstream backend's. Messages are framed by the
// gateway itself and forwarded as raw bytes; only the messages that are
// recorded (Query, Parse, Bind, Execute, Close, FunctionCall) and the
// upstream's CommandComplete, ErrorResponse and ReadyForQuery are decoded.
package pggw
