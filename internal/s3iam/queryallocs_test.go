package s3iam

import (
	"errors"
	"net/http"
	"testing"

	"github.com/airlock-dev/airlock/internal/s3err"
)

// mapIntoAllocsMax is what MapInto allocates for an SDK's GetObject
// (?x-id=GetObject, as every AWS SDK v2 sends it), its Op in the caller's
// memory: the query's parameters and the object's resource (its ARN).
// A query parameter's value costs no allocation of its own
// (unescapeOf).
const mapIntoAllocsMax = 2

func TestMapIntoQueryAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation bounds hold only without the race detector")
	}
	m := &Mapper{Hosts: []string{"s3.test"}}
	r, err := http.NewRequest(http.MethodGet, "http://s3.test/logs/app/a.log?x-id=GetObject", nil)
	if err != nil {
		t.Fatal(err)
	}
	var op Op
	if n := testing.AllocsPerRun(200, func() {
		if _, err := m.MapInto(r, &op); err != nil {
			t.Fatal(err)
		}
	}); n > mapIntoAllocsMax {
		t.Errorf("MapInto of a GetObject allocates %v times, want at most %d", n, mapIntoAllocsMax)
	}
}

// TestUnescapeOfErrors: a query parameter's malformed value is described
// as it was when its description was joined before the call.
func TestUnescapeOfErrors(t *testing.T) {
	for _, v := range []string{"%", "%2", "%zz", "a%2", "a+b", "+", "%2B+"} {
		_, got := unescapeOf(v, "query parameter ", "prefix")
		_, want := unescape(v, "query parameter prefix")
		var g, w *s3err.Error
		if !errors.As(got, &g) || !errors.As(want, &w) || *g != *w {
			t.Errorf("unescapeOf(%q) = %v, want %v", v, got, want)
		}
	}
}
