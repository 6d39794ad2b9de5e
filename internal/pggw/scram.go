package pggw

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// SCRAM-SHA-256 (RFC 5802, RFC 7677) on the server side. The gateway knows
// the grant's secret itself (not a stored verifier), so it derives the keys
// per connection with a fresh random salt: a captured exchange is useless
// against any other connection, and the secret never crosses the wire.
//
// Only SCRAM-SHA-256 is offered, never SCRAM-SHA-256-PLUS: the gateway does
// not implement channel binding. A client that insists on it (gs2 flag "p")
// is refused; one that supports it but sees it is not offered (flag "y") is
// accepted, as RFC 5802 section 6 allows when the server does not
// advertise -PLUS.

const (
	scramMechanism  = "SCRAM-SHA-256"
	scramIterations = 4096 // PostgreSQL's default
	scramNonceBytes = 18
	scramSaltBytes  = 16
)

var errSCRAM = errors.New("malformed SCRAM message")

// scramServer holds one exchange. secret is "" for an unknown credential:
// the exchange then runs to the end with keys from a random secret and
// fails, so an unknown user looks exactly like a wrong password.
type scramServer struct {
	secret          string
	clientFirstBare string
	serverFirst     string
	gs2Header       string
	nonce           string
	salt            []byte
}

// first takes the client-first-message and returns the server-first-message.
func (s *scramServer) first(msg []byte) (string, error) {
	m := string(msg)
	// gs2-header: cbind-flag "," [authzid] ","
	var flag string
	switch {
	case strings.HasPrefix(m, "n,"), strings.HasPrefix(m, "y,"):
		flag = m[:1]
	case strings.HasPrefix(m, "p="):
		return "", errors.New("channel binding is not supported; use SCRAM-SHA-256 without -PLUS (channel_binding=disable or prefer)")
	default:
		return "", errSCRAM
	}
	rest := m[2:]
	i := strings.IndexByte(rest, ',')
	if i < 0 {
		return "", errSCRAM
	}
	if authz := rest[:i]; authz != "" {
		// PostgreSQL ignores the SCRAM user name and refuses an authzid.
		return "", errors.New("SCRAM authorization identity is not supported")
	}
	s.gs2Header = flag + ",,"
	s.clientFirstBare = rest[i+1:]
	attrs := strings.Split(s.clientFirstBare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") {
		return "", errSCRAM
	}
	cnonce := attrs[1][2:]
	if cnonce == "" || !printable(cnonce) {
		return "", errSCRAM
	}
	nb := make([]byte, scramNonceBytes)
	s.salt = make([]byte, scramSaltBytes)
	if _, err := rand.Read(nb); err != nil {
		return "", err
	}
	if _, err := rand.Read(s.salt); err != nil {
		return "", err
	}
	s.nonce = cnonce + base64.RawStdEncoding.EncodeToString(nb)
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(s.salt) + ",i=" + strconv.Itoa(scramIterations)
	return s.serverFirst, nil
}

// final takes the client-final-message. ok reports whether the proof is
// right; the server-final-message is returned only then.
func (s *scramServer) final(msg []byte) (serverFinal string, ok bool, err error) {
	m := string(msg)
	i := strings.LastIndex(m, ",p=")
	if i < 0 {
		return "", false, errSCRAM
	}
	withoutProof, proofB64 := m[:i], m[i+3:]
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "c=") || !strings.HasPrefix(attrs[1], "r=") {
		return "", false, errSCRAM
	}
	if attrs[0][2:] != base64.StdEncoding.EncodeToString([]byte(s.gs2Header)) {
		return "", false, errors.New("SCRAM channel binding does not match")
	}
	if subtle.ConstantTimeCompare([]byte(attrs[1][2:]), []byte(s.nonce)) != 1 {
		return "", false, errors.New("SCRAM nonce does not match")
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil || len(proof) != sha256.Size {
		return "", false, errSCRAM
	}
	secret := s.secret
	known := secret != ""
	if !known {
		// Spend the same work as for a real credential.
		secret = base64.StdEncoding.EncodeToString(s.salt)
	}
	salted, err := pbkdf2.Key(sha256.New, secret, s.salt, scramIterations, sha256.Size)
	if err != nil {
		return "", false, err
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	authMessage := s.clientFirstBare + "," + s.serverFirst + "," + withoutProof
	clientSig := hmacSHA256(storedKey[:], authMessage)
	got := make([]byte, sha256.Size)
	for j := range got {
		got[j] = proof[j] ^ clientSig[j]
	}
	gotStored := sha256.Sum256(got)
	if subtle.ConstantTimeCompare(gotStored[:], storedKey[:]) != 1 || !known {
		return "", false, nil
	}
	serverKey := hmacSHA256(salted, "Server Key")
	serverSig := hmacSHA256(serverKey, authMessage)
	return "v=" + base64.StdEncoding.EncodeToString(serverSig), true, nil
}

func hmacSHA256(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

// printable reports whether s is a SCRAM "printable": ASCII 0x21..0x7e
// except ','.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}
