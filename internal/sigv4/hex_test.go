package sigv4

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
)

// decodeSigHex is decodeSig as it was: isHex64, then encoding/hex.
func decodeSigHex(s string) (out [32]byte, ok bool) {
	if !isHex64(s) {
		return out, false
	}
	_, err := hex.Decode(out[:], []byte(s))
	return out, err == nil
}

// appendHex writes what encoding/hex does, for every byte value, after
// what dst holds.
func TestAppendHex(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, b := range [][]byte{nil, {0}, {0xff}, all, bytes.Repeat([]byte{0xa5, 0x5a}, 40)} {
		got := appendHex([]byte("prefix:"), b)
		if want := "prefix:" + hex.EncodeToString(b); string(got) != want {
			t.Errorf("appendHex(%x) = %q, want %q", b, got, want)
		}
	}
}

func TestDecodeSig(t *testing.T) {
	good := strings.Repeat("0123456789abcdef", 4)
	for _, s := range []string{
		good, strings.Repeat("f", 64), strings.Repeat("0", 64),
		strings.ToUpper(good), good[:63], good + "0", "", good[:62] + "g0", good[:63] + "G",
		good[:10] + "\x00" + good[11:], good[:10] + "\xe0" + good[11:], good[:10] + "/" + good[11:],
		good[:10] + ":" + good[11:], good[:10] + "`" + good[11:],
	} {
		got, gotOK := decodeSig(s)
		want, wantOK := decodeSigHex(s)
		if got != want || gotOK != wantOK {
			t.Errorf("decodeSig(%q) = %x, %v; encoding/hex's way %x, %v", s, got, gotOK, want, wantOK)
		}
	}
}

func FuzzDecodeSig(f *testing.F) {
	for _, s := range []string{strings.Repeat("0123456789abcdef", 4), strings.Repeat("A", 64), "", "00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, gotOK := decodeSig(s)
		want, wantOK := decodeSigHex(s)
		if got != want || gotOK != wantOK {
			t.Fatalf("decodeSig(%q) = %x, %v; encoding/hex's way %x, %v", s, got, gotOK, want, wantOK)
		}
		if gotOK && string(appendHex(nil, got[:])) != s {
			t.Fatalf("appendHex(decodeSig(%q)) = %q", s, appendHex(nil, got[:]))
		}
	})
}

// lowerHex64Was is the x-amz-content-sha256 digest check as it was: 64
// characters, each a hex digit of either case, then strings.ToLower.
func lowerHex64Was(s string) (string, bool) {
	if len(s) != 64 || !isHexAnyCase(s) {
		return "", false
	}
	return strings.ToLower(s), true
}

// Every byte value, in the first, a middle and the last place of a
// lower-case and an upper-case digest, gets the answer the old check gave.
func TestLowerHex64(t *testing.T) {
	for _, base := range []string{strings.Repeat("0123456789abcdef", 4), strings.Repeat("0123456789ABCDEF", 4), strings.Repeat("aB", 32)} {
		for _, i := range []int{0, 31, 63} {
			for c := 0; c < 256; c++ {
				s := base[:i] + string([]byte{byte(c)}) + base[i+1:]
				got, gotOK := lowerHex64(s)
				if want, wantOK := lowerHex64Was(s); got != want || gotOK != wantOK {
					t.Fatalf("lowerHex64(%q) = %q, %v; was %q, %v", s, got, gotOK, want, wantOK)
				}
			}
		}
		for _, s := range []string{"", base[:63], base + "0"} {
			if _, ok := lowerHex64(s); ok {
				t.Fatalf("lowerHex64(%q) accepted a digest of %d characters", s, len(s))
			}
		}
	}
}

func FuzzLowerHex64(f *testing.F) {
	for _, s := range []string{strings.Repeat("0123456789abcdef", 4), strings.Repeat("A", 64), strings.Repeat("g", 64), ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, gotOK := lowerHex64(s)
		if want, wantOK := lowerHex64Was(s); got != want || gotOK != wantOK {
			t.Fatalf("lowerHex64(%q) = %q, %v; was %q, %v", s, got, gotOK, want, wantOK)
		}
	})
}
