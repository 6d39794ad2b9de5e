package pggw

import (
	"bytes"
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

// SCRAM-SHA-256 (RFC 5802, RFC 7677) on the server side. The secret never
// crosses the wire, and a captured exchange cannot be replayed: each
// exchange has a fresh server nonce. The keys the exchange checks against
// (a scramVerifier: salt, StoredKey, ServerKey) are what PostgreSQL stores
// per role; the gateway holds the grant's secret itself and derives them
// once per grant (verifiers.go), so a login costs the gateway two HMACs.
//
// The client derives its keys with the iteration count the gateway
// announces: one. The count is there to slow the guessing of a password
// from a captured exchange, one PBKDF2 per guess; a grant's secret is 240
// random bits (grants.secretFor), which no count makes harder or easier
// to guess, while PostgreSQL's default of 4096 made every login cost the
// client 8,192 HMACs (a few ms of CPU on a small machine, at every psql an
// agent runs). Grant roles' upstream verifiers use one for the same
// reason (pgroles). PostgreSQL itself accepts 1 (scram_iterations).
//
// Only SCRAM-SHA-256 is offered, never SCRAM-SHA-256-PLUS: the gateway does
// not implement channel binding. A client that insists on it (gs2 flag "p")
// is refused; one that supports it but sees it is not offered (flag "y") is
// accepted, as RFC 5802 section 6 allows when the server does not
// advertise -PLUS.

const (
	scramMechanism  = "SCRAM-SHA-256"
	scramIterations = 1 // see above
	scramNonceBytes = 18
	scramSaltBytes  = 16
)

var errSCRAM = errors.New("malformed SCRAM message")

// scramServer holds one exchange against v. known is false for an
// unknown credential: the exchange then runs to the end against a mock
// verifier and fails, so an unknown user looks exactly like a wrong
// password.
type scramServer struct {
	v               *scramVerifier
	known           bool
	clientFirstBare string
	serverFirst     string
	gs2Header       string
	nonce           string
}

// scramVerifier is what an exchange checks a client's proof against, as
// PostgreSQL stores it per role: the salt the client derives its keys
// with, StoredKey = H(HMAC(SaltedPassword, "Client Key")) and ServerKey =
// HMAC(SaltedPassword, "Server Key"). Never log it: with one captured
// exchange, StoredKey yields the client key.
type scramVerifier struct {
	salt                 []byte
	storedKey, serverKey []byte
	iterations           int
}

// newSCRAMVerifier derives secret's verifier with a fresh random salt:
// PBKDF2-HMAC-SHA-256 with scramIterations.
func newSCRAMVerifier(secret string) (*scramVerifier, error) {
	salt := make([]byte, scramSaltBytes)
	if _, err := rand.Read(salt); err != nil {
		return nil, err
	}
	return deriveSCRAMVerifier(secret, salt, scramIterations)
}

// deriveSCRAMVerifier derives secret's verifier with salt and an
// iteration count.
func deriveSCRAMVerifier(secret string, salt []byte, iterations int) (*scramVerifier, error) {
	salted, err := pbkdf2.Key(sha256.New, secret, salt, iterations, sha256.Size)
	if err != nil {
		return nil, err
	}
	stored := sha256.Sum256(hmacSHA256(salted, "Client Key"))
	return &scramVerifier{salt: salt, storedKey: stored[:], serverKey: hmacSHA256(salted, "Server Key"), iterations: iterations}, nil
}

// mockSCRAMVerifier is the verifier an unknown user name gets: derived
// from key (random per process) and the name, so that the same name gets
// the same salt every time, as a real credential does, and no proof
// matches it that does not know key.
func mockSCRAMVerifier(key []byte, user string) *scramVerifier {
	mac := func(label string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(label))
		h.Write([]byte{0})
		h.Write([]byte(user))
		return h.Sum(nil)
	}
	return &scramVerifier{salt: mac("salt")[:scramSaltBytes], storedKey: mac("stored"), serverKey: mac("server"), iterations: scramIterations}
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
	if _, err := rand.Read(nb); err != nil {
		return "", err
	}
	s.nonce = cnonce + base64.RawStdEncoding.EncodeToString(nb)
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(s.v.salt) + ",i=" + strconv.Itoa(s.v.iterations)
	return s.serverFirst, nil
}

// final takes the client-final-message. ok reports whether the proof is
// right; the server-final-message is returned only then. A login's
// garbage stays resident as heap pages (bench/HISTORY.md, "Where an idle
// connection's VmRSS goes"), so the authentication message is built once,
// as the bytes both HMACs read, and the proof, the client's stored key and
// both signatures are fixed-size arrays.
func (s *scramServer) final(msg []byte) (serverFinal []byte, ok bool, err error) {
	i := bytes.LastIndex(msg, []byte(",p="))
	if i < 0 {
		return nil, false, errSCRAM
	}
	withoutProof, proofB64 := msg[:i], msg[i+3:]
	// attrs[0] and attrs[1] of the comma-separated attributes
	cbind, rest, found := bytes.Cut(withoutProof, []byte(","))
	nonce, _, _ := bytes.Cut(rest, []byte(","))
	if !found || !bytes.HasPrefix(cbind, []byte("c=")) || !bytes.HasPrefix(nonce, []byte("r=")) {
		return nil, false, errSCRAM
	}
	if string(cbind[2:]) != gs2HeaderBase64(s.gs2Header) {
		return nil, false, errors.New("SCRAM channel binding does not match")
	}
	if subtle.ConstantTimeCompare(nonce[2:], []byte(s.nonce)) != 1 {
		return nil, false, errors.New("SCRAM nonce does not match")
	}
	var proof [sha256.Size + 3]byte // room for what decodes beyond a proof's length
	if base64.StdEncoding.DecodedLen(len(proofB64)) > len(proof) {
		return nil, false, errSCRAM
	}
	n, err := base64.StdEncoding.Decode(proof[:], proofB64)
	if err != nil || n != sha256.Size {
		return nil, false, errSCRAM
	}
	// The same work whether the credential is known or not.
	authMessage := make([]byte, 0, len(s.clientFirstBare)+len(s.serverFirst)+len(withoutProof)+2)
	authMessage = append(append(append(append(append(authMessage,
		s.clientFirstBare...), ','), s.serverFirst...), ','), withoutProof...)
	sigs := make([]byte, 0, 2*sha256.Size) // the two HMACs' sums, one allocation
	sigs = hmacSHA256To(sigs, s.v.storedKey, authMessage)
	var got [sha256.Size]byte
	for j := range got {
		got[j] = proof[j] ^ sigs[j]
	}
	gotStored := sha256.Sum256(got[:])
	if subtle.ConstantTimeCompare(gotStored[:], s.v.storedKey) != 1 || !s.known {
		return nil, false, nil
	}
	sigs = hmacSHA256To(sigs, s.v.serverKey, authMessage)
	serverSig := sigs[sha256.Size:]
	out := make([]byte, 2+base64.StdEncoding.EncodedLen(len(serverSig)))
	copy(out, "v=")
	base64.StdEncoding.Encode(out[2:], serverSig)
	return out, true, nil
}

// gs2HeaderBase64 is the channel-binding attribute a client-final-message
// carries for header: the header in base64 ("biws" for "n,,").
func gs2HeaderBase64(header string) string {
	switch header {
	case "n,,":
		return "biws"
	case "y,,":
		return "eSws"
	}
	return base64.StdEncoding.EncodeToString([]byte(header))
}

func hmacSHA256(key []byte, msg string) []byte {
	return hmacSHA256To(nil, key, []byte(msg))
}

// hmacSHA256To appends HMAC-SHA-256(key, msg) to b.
func hmacSHA256To(b, key, msg []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(msg)
	return h.Sum(b)
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
