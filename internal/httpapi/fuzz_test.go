package httpapi

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/grants"
)

// FuzzParseGrantsQuery: any query string either parses into a coherent
// filter and page or is refused with an invalid_argument naming a field;
// it never panics.
func FuzzParseGrantsQuery(f *testing.F) {
	for _, s := range []string{
		"account=111122223333&day=2026-11-25",
		"since=2026-11-25T00:00:00Z&until=2026-11-24T00:00:00Z",
		"status=active,expired&limit=10",
		"day=2026-02-30", "limit=-1", "limit=0", "limit=1001", "status=", "since=2026-11-25&day=2026-11-25", "after=Zz",
		"since=7d&until=1h", "since=-1h", "until=1d12h",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		gq, err := ParseGrantsQuery(q)
		flt := gq.Filter
		if err != nil {
			var ae *apierr.Error
			if !errors.As(err, &ae) || ae.Code != apierr.CodeInvalid || ae.Field == "" {
				t.Fatalf("ParseGrantsQuery(%q) error %v is not an invalid_argument naming a field", raw, err)
			}
			return
		}
		if !flt.Since.IsZero() && !flt.Until.IsZero() && !flt.Until.After(flt.Since) {
			t.Fatalf("ParseGrantsQuery(%q) accepted until %v not after since %v", raw, flt.Until, flt.Since)
		}
		if gq.Limit < 0 || gq.Limit > grants.MaxGrantsPage || q.Has("limit") && q.Get("limit") != "" && gq.Limit == 0 {
			t.Fatalf("ParseGrantsQuery(%q) accepted limit %d", raw, gq.Limit)
		}
		for _, s := range flt.Status {
			if !s.Valid() {
				t.Fatalf("ParseGrantsQuery(%q) accepted status %q", raw, s)
			}
		}
	})
}

// FuzzDecode: a request body is either decoded or refused with an
// invalid_argument naming a field; never a panic or a 500.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"target":"aws-prod","scope":["s3:GetObject arn:aws:s3:::logs/app/*"],"duration":"10m","reason":"x"}`,
		`{"target":1}`, `{"scope":"x"}`, `{"nope":true}`, `[]`, `{} {}`, ``, `{"target":"a"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r := httptest.NewRequest("POST", "/v1/grants", bytes.NewReader(body))
		var in grants.RequestInput
		err := decode(r, &in)
		if err == nil {
			return
		}
		var ae *apierr.Error
		if !errors.As(err, &ae) || ae.Status != 400 || ae.Field == "" {
			t.Fatalf("decode(%q) error %v is not a 400 naming a field", body, err)
		}
	})
}
