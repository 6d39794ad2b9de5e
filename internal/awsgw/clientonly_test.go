package awsgw

import (
	"net/textproto"
	"testing"
)

// clientOnlySet is clientOnly as it was: dropHeaders as a set.
func clientOnlySet(ck string) bool {
	set := make(map[string]bool, len(dropHeaders))
	for _, k := range dropHeaders {
		set[textproto.CanonicalMIMEHeaderKey(k)] = true
	}
	return set[ck] || len(ck) > 12 && ck[:12] == "X-Forwarded-"
}

func TestClientOnly(t *testing.T) {
	for _, k := range dropHeaders {
		if ck := textproto.CanonicalMIMEHeaderKey(k); !clientOnly(ck) {
			t.Errorf("clientOnly(%q) = false for a name of dropHeaders", ck)
		}
	}
	for _, tc := range []struct {
		ck   string
		want bool
	}{
		{"X-Forwarded-For", true},
		{"X-Forwarded-", false},
		{"X-Remote-Addr", true},
		{"X-Amz-Trailer", true}, // the slot (13, X) holds two names
		{"X-Amz-Trailes", false},
		{"X-Remote-Adds", false},
		{"User-Agent", false},
		{"Amz-Sdk-Request", false},
		{"X-Amz-Meta-Authorization", false},
		{"authorization", false}, // not canonical: no key of the set
		{"", false},
		{"-", false},
		{"X-Amz-Decoded-Content-Length-And-More-Than-32", false},
	} {
		if got := clientOnly(tc.ck); got != tc.want {
			t.Errorf("clientOnly(%q) = %v, want %v", tc.ck, got, tc.want)
		}
	}
}

// FuzzClientOnly holds clientOnly's slots to the set of dropHeaders'
// names it replaced, for any key.
func FuzzClientOnly(f *testing.F) {
	for _, k := range append([]string{"", "X-Forwarded-Host", "X-Amz-Trailes", "Te", "TE", "\xff"}, dropHeaders...) {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, ck string) {
		if got, want := clientOnly(ck), clientOnlySet(ck); got != want {
			t.Fatalf("clientOnly(%q) = %v, the set says %v", ck, got, want)
		}
	})
}
