package grants

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/store"
)

// FuzzDecodeCursor: a page's after (a query parameter anyone with a key
// sends) is taken only as the server writes it, for the query it was
// written for, and with an id that can go to PostgreSQL; anything else
// is an invalid_argument on after, never a panic. cursorBase, which
// reads the same parameter before it is checked, never panics either.
func FuzzDecodeCursor(f *testing.F) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, s := range []string{
		grantsCursor(store.GrantKey{RequestedAt: time.Unix(1764000000, 5).UTC(), ID: "g_abc"}, "0011223344556677"),
		grantsCursor(store.GrantKey{ID: "g_abc"}, "0011223344556677@1764000000000000000"),
		encodeCursor(sessionsCursorVersion, time.Unix(0, -1).UTC(), "t", "s_1"),
		enc("g1.1.0011223344556677.g_x"), enc("g1.+1.t.g_x"), enc("g1.01.t.g_x"), enc("g1..t.g\x00"),
		enc("g1.99999999999999999999.t.x"), enc("g1.-9223372036854775808.t@-9223372036854775808.x"),
		"", "x", "Zz", "====", enc("g1.1.t"),
	} {
		f.Add(s, "0011223344556677")
		f.Add(s, "t")
	}
	f.Fuzz(func(t *testing.T, c, tag string) {
		cursorBase(c)
		for _, version := range []string{grantsCursorVersion, sessionsCursorVersion, sessionsSeqCursorVersion} {
			at, id, err := decodeCursor(c, version, tag)
			if err != nil {
				var ae *apierr.Error
				if !errors.As(err, &ae) || ae.Code != apierr.CodeInvalid || ae.Field != "after" {
					t.Fatalf("decodeCursor(%q, %q, %q): %v is not an invalid_argument on after", c, version, tag, err)
				}
				continue
			}
			if !printable(id) {
				t.Fatalf("decodeCursor(%q) took id %q", c, id)
			}
			if at.Location() != time.UTC {
				t.Fatalf("decodeCursor(%q) gave a time in %v", c, at.Location())
			}
			if back := encodeCursor(version, at, tag, id); back != c {
				t.Fatalf("decodeCursor(%q, %q, %q) took a cursor the server writes as %q", c, version, tag, back)
			}
		}
	})
}
