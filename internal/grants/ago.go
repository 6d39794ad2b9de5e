package grants

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// maxAgo bounds a relative review window: ten years back is more than any
// deployment's grants, and a bound keeps "that long before now" from
// overflowing a time.Duration (about 292 years).
const maxAgo = 10 * 365 * 24 * time.Hour

// ParseAgo reads a relative time of the review query (since=1h, --since
// 7d): a Go duration (90m, 1h30m), which may begin with whole days (7d,
// 1d12h) since an auditor's windows are counted in days and Go's durations
// have no day unit. It means that long before the query is answered. It
// must be positive and at most ten years.
func ParseAgo(v string) (time.Duration, error) {
	days, rest := int64(0), v
	if i := strings.IndexByte(v, 'd'); i > 0 {
		n, err := strconv.ParseInt(v[:i], 10, 64)
		if err != nil || n < 0 || v[0] == '+' {
			return 0, errors.New("not a duration")
		}
		days, rest = n, v[i+1:]
		if days > int64(maxAgo/(24*time.Hour)) {
			return 0, errors.New("more than ten years")
		}
	}
	d := time.Duration(days) * 24 * time.Hour
	if rest != "" || days == 0 {
		if days > 0 && (strings.HasPrefix(rest, "-") || strings.HasPrefix(rest, "+")) {
			// 1d-1h: what follows the days is more of the duration, not
			// a signed one.
			return 0, errors.New("not a duration")
		}
		r, err := time.ParseDuration(rest)
		if err != nil {
			return 0, errors.New("not a duration")
		}
		if r > maxAgo {
			return 0, errors.New("more than ten years")
		}
		d += r
	}
	switch {
	case d <= 0:
		return 0, errors.New("not positive")
	case d > maxAgo:
		return 0, errors.New("more than ten years")
	}
	return d, nil
}
