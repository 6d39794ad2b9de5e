package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
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

// decodeSig decodes 64 lowercase hex characters; ok is false otherwise
// (out is then zero). One pass, by table: it runs on every request, and
// isHex64 then hex.Decode read each character twice, the second time with
// a branch per character. The signature is the client's, not a secret.
func decodeSig(s string) (out [32]byte, ok bool) {
	if len(s) != 64 {
		return out, false
	}
	var bad byte
	for i := range out {
		hi, lo := hexValue[s[2*i]], hexValue[s[2*i+1]]
		bad |= hi | lo
		out[i] = hi<<4 | lo&15
	}
	if bad&0x80 != 0 {
		return [32]byte{}, false
	}
	return out, true
}

// hexValue is each lowercase hex digit's value, 0x80 for any other byte.
var hexValue = func() (t [256]byte) {
	for c := range t {
		switch {
		case '0' <= c && c <= '9':
			t[c] = byte(c - '0')
		case 'a' <= c && c <= 'f':
			t[c] = byte(c - 'a' + 10)
		default:
			t[c] = 0x80
		}
	}
	return t
}()

// hexPairs holds the two lowercase hex digits of every byte value.
const hexPairs = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f" +
	"202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f" +
	"404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f" +
	"606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f" +
	"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f" +
	"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf" +
	"c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf" +
	"e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"

// appendHex appends b in lowercase hex, two digits per byte from one
// table (encoding/hex looks each half up apart, with its own checks):
// every call hex-encodes two digests and a signature this way. Only
// digests and signatures go through it, never a key.
func appendHex(dst []byte, b []byte) []byte {
	for _, c := range b {
		dst = append(dst, hexPairs[2*int(c)], hexPairs[2*int(c)+1])
	}
	return dst
}
