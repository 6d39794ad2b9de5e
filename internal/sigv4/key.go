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

// hmacSHA256 is HMAC-SHA256(key, msg), from crypto/hmac. A hand-written
// HMAC over pooled digests saved about 0.4 µs and two allocations a
// request (BenchmarkVerify); not worth owning crypto code for.
func hmacSHA256(key *[32]byte, msg []byte) (out [32]byte) {
	// HMAC (RFC 2104) over stack buffers: a string to sign fits, and
	// hmac.New would allocate two digests and two pads on every call.
	const block = 64
	var in [block + 448]byte
	if len(msg) > len(in)-block {
		m := hmac.New(sha256.New, key[:])
		m.Write(msg)
		copy(out[:], m.Sum(nil)) // not Sum(out[:0]), which would put out on the heap on every call
		return out
	}
	var outer [block + sha256.Size]byte
	for i := range block {
		k := byte(0)
		if i < len(key) {
			k = key[i]
		}
		in[i], outer[i] = k^0x36, k^0x5c
	}
	n := copy(in[block:], msg)
	inner := sha256.Sum256(in[:block+n])
	copy(outer[block:], inner[:])
	out = sha256.Sum256(outer[:])
	clear(in[:block]) // the key, padded
	clear(outer[:block])
	return out
}
