package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
)

// deriveKey computes the SigV4 signing key for a day, region and service.
func deriveKey(secret, date, region, service string) [32]byte {
	buf := make([]byte, 0, 4+len(secret))
	buf = append(buf, "AWS4"...)
	buf = append(buf, secret...)
	var k [32]byte
	sum := hmacSum(buf, date, k[:0])
	sum = hmacSum(sum, region, k[:0])
	sum = hmacSum(sum, service, k[:0])
	hmacSum(sum, scopeSuffix, k[:0])
	clear(buf)
	return k
}

func hmacSum(key []byte, data string, dst []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(dst)
}

// signer computes HMAC-SHA256 with one key, reusing its state.
type signer struct{ m hash.Hash }

func newSigner(key *[32]byte) signer { return signer{hmac.New(sha256.New, key[:])} }

// sign returns HMAC(key, msg).
func (s signer) sign(msg []byte) (out [32]byte) {
	s.m.Reset()
	s.m.Write(msg)
	s.m.Sum(out[:0])
	return out
}

// decodeSig decodes 64 lowercase hex characters; ok is false otherwise.
func decodeSig(s string) (out [32]byte, ok bool) {
	if !isHex64(s) {
		return out, false
	}
	_, err := hex.Decode(out[:], []byte(s))
	return out, err == nil
}

// appendHex appends b in lowercase hex.
func appendHex(dst []byte, b []byte) []byte {
	return hex.AppendEncode(dst, b)
}
