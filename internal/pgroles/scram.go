package pgroles

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
)

// scramIterations is the PBKDF2 iteration count in the verifiers of the
// grants' roles: one. Iterations slow down guessing a password from its
// verifier or from a recorded exchange, which matters for a password a
// person chose; a role's password is 256 random (or HMAC-derived) bits,
// out of reach of guessing at any count. What the count does cost is CPU
// at every login, on the client's side: the gateway's, which runs PBKDF2
// once per upstream connection. At PostgreSQL's default of 4096 that was
// about 0.7 ms of the gateway's CPU per session (BenchmarkRoleLogin,
// bench/HISTORY.md), more than the rest of its upstream login. PostgreSQL
// accepts any positive count in a stored verifier, and so do libpq and
// pgx (TestRoleLogsInWithSCRAM runs the login against a server that
// requires SCRAM). The gateway's own verifiers for its clients (package
// pggw) keep 4096: agents' client libraries may insist on it.
//
// A var, not a const, so that BenchmarkRoleLogin can compare counts.
var scramIterations = 1

// newPassword returns 32 random bytes in unpadded URL-safe base64: printable
// ASCII, which SASLprep leaves unchanged, so client and server derive the
// same key whatever normalisation either side applies.
func newPassword() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("pgroles: random password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// password returns the password for grantID's role: derived when the
// Manager has a password key, random otherwise. A derived password is as
// printable and as long as a random one.
func (m *Manager) password(grantID string) (string, error) {
	if m.passwordKey == nil {
		return newPassword()
	}
	h := hmac.New(sha256.New, m.passwordKey)
	h.Write([]byte("airlock pgroles password v1\x00"))
	h.Write([]byte(m.db))
	h.Write([]byte{0})
	h.Write([]byte(grantID))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)), nil
}

// scramVerifier returns the verifier PostgreSQL stores in pg_authid for
// password (RFC 5802, RFC 7677), in PostgreSQL's text form:
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>.
// Handing PostgreSQL the verifier instead of the password keeps the
// password out of SQL text. PostgreSQL stores a string it cannot parse as a
// verifier as if it were a plaintext password, so the tests check that the
// stored value is byte-for-byte this one.
func scramVerifier(password string, salt []byte, iterations int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("pgroles: pbkdf2: %w", err)
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	enc := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, enc(salt), enc(storedKey[:]), enc(serverKey)), nil
}

// newVerifier makes a verifier for password with a fresh 16-byte salt.
func newVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("pgroles: random salt: %w", err)
	}
	return scramVerifier(password, salt, scramIterations)
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}
