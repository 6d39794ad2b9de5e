package pggw

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"strings"
	"testing"
)

// hmacSHA256 is computed by hand: it must agree with crypto/hmac for keys
// shorter than, as long as and longer than a block, and for messages that
// fit its stack buffer and that do not.
func TestHMACSHA256MatchesCryptoHMAC(t *testing.T) {
	for _, klen := range []int{0, 1, 32, 63, 64, 65, 200} {
		for _, mlen := range []int{0, 1, 55, 64, 150, 256, 257, 1000} {
			key := bytes.Repeat([]byte{byte(klen + 1)}, klen)
			msg := strings.Repeat(string(rune('a'+mlen%26)), mlen)
			h := hmac.New(sha256.New, key)
			h.Write([]byte(msg))
			want := h.Sum(nil)
			got := hmacSHA256(key, msg)
			if !bytes.Equal(got[:], want) {
				t.Errorf("key %d bytes, message %d bytes: %x, want %x", klen, mlen, got, want)
			}
		}
	}
}

// The HMACs of a login allocate nothing (crypto/hmac allocated four
// digests' worth per login).
func TestHMACSHA256Allocs(t *testing.T) {
	key := make([]byte, 32)
	msg := strings.Repeat("x", 200)
	if n := testing.AllocsPerRun(100, func() { _ = hmacSHA256(key, msg) }); n != 0 {
		t.Errorf("hmacSHA256 allocates %v times per call, want 0", n)
	}
}
