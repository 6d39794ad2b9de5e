package grants

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// Bounds of a page of the review query (List).
const (
	// DefaultGrantsPage is the grants a page holds when the caller names
	// no limit.
	DefaultGrantsPage = 100
	// MaxGrantsPage is the most a caller may ask for in one page. An
	// agent whose requests a policy approves at once can hold thousands of
	// grants a day, and the whole list in one answer grew the server's
	// memory (every grant, its usage and its log derivation), the answer
	// and the client's memory without bound.
	MaxGrantsPage = 1000
)

// GrantsQuery selects a page of the review query.
type GrantsQuery struct {
	// Filter is the review query; its After and Limit are the page's, set
	// from the fields below.
	Filter store.GrantFilter
	// SinceAgo and UntilAgo, when positive, are a relative window
	// (since=1h, ParseAgo): the Filter's Since and Until are that long
	// before the time the query's first page is answered. Every later
	// page resolves them against that same instant, which its cursor
	// carries, so the window does not move while the query is read (and
	// the cursor still names the query its pages come from).
	SinceAgo, UntilAgo time.Duration
	// After is the cursor: the Next of the page before, "" for the first.
	After string
	// Limit is the most grants the page holds: 1 to MaxGrantsPage,
	// DefaultGrantsPage if 0, MaxGrantsPage if more.
	Limit int
}

// GrantsPage is one page of the review query.
type GrantsPage struct {
	Grants []model.Grant
	// Next is the cursor of the next page (GrantsQuery.After), "" when no
	// grant follows.
	Next string
}

// List answers a page of the review query, in the order (RequestedAt, then
// ID); an agent's view is limited to itself. Every page applies the whole
// filter and the caller's view again: the cursor is only a place in the
// order, so a cursor made up by hand reads nothing the caller could not
// list from the first page on. It names its query (a digest of the
// filter, the caller's view included), and a cursor of another query is
// refused rather than answered for a filter it was not written for.
func (s *Service) List(ctx context.Context, caller model.Identity, q GrantsQuery) (GrantsPage, error) {
	f := q.Filter
	if caller.Kind != model.Human {
		if f.Identity != "" && f.Identity != caller.Name {
			return GrantsPage{}, apierr.Forbidden("", "an agent may list only its own grants")
		}
		f.Identity = caller.Name
	}
	var base time.Time
	relative := q.SinceAgo > 0 || q.UntilAgo > 0
	if relative {
		base = s.now()
		if b, ok := cursorBase(q.After); ok {
			base = b
		}
		if q.SinceAgo > 0 {
			f.Since = base.Add(-q.SinceAgo)
		}
		if q.UntilAgo > 0 {
			f.Until = base.Add(-q.UntilAgo)
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return GrantsPage{}, apierr.Invalid("until", "must be after since")
	}
	limit := pageLimit(q.Limit, DefaultGrantsPage, MaxGrantsPage)
	tag := filterTag(f)
	if relative {
		// The instant the window was resolved against, for the next
		// page. A cursor written by hand with another instant reads
		// another window: one the caller could ask for with absolute
		// times, under the same view.
		tag += "@" + strconv.FormatInt(base.UnixNano(), 10)
	}
	f.After = store.GrantKey{}
	if q.After != "" {
		k, err := parseGrantsCursor(q.After, tag)
		if err != nil {
			return GrantsPage{}, err
		}
		f.After = k
	}
	// One more than the page: whether a next page exists is known
	// without a last, empty one.
	f.Limit = limit + 1
	s.freshSessions(ctx)
	gs, err := s.st.Grants(ctx, f)
	if err != nil {
		return GrantsPage{}, err
	}
	page := GrantsPage{Grants: gs}
	if len(gs) > limit {
		page.Grants = gs[:limit]
		last := page.Grants[limit-1]
		page.Next = grantsCursor(store.GrantKey{RequestedAt: last.RequestedAt, ID: last.ID}, tag)
	}
	if page.Grants == nil {
		page.Grants = []model.Grant{}
	}
	return page, s.proveGrants(ctx, page.Grants)
}

// EachGrant answers the whole review query a page at a time, handing each
// page to fn as it is read: what a download of every row (the console's
// CSV and JSON) reads, holding one page at a time.
func (s *Service) EachGrant(ctx context.Context, caller model.Identity, q GrantsQuery, fn func([]model.Grant) error) error {
	return eachPage(func(after string) ([]model.Grant, string, error) {
		q.After, q.Limit = after, MaxGrantsPage
		page, err := s.List(ctx, caller, q)
		return page.Grants, page.Next, err
	}, fn)
}

// eachPage reads a list a page at a time: read answers the page after a
// cursor ("" for the first) and the cursor of the next ("" on the last);
// fn takes each page as it is read.
func eachPage[T any](read func(after string) ([]T, string, error), fn func([]T) error) error {
	after := ""
	for {
		items, next, err := read(after)
		if err != nil {
			return err
		}
		if err := fn(items); err != nil {
			return err
		}
		if next == "" {
			return nil
		}
		after = next
	}
}

// A cursor is "VERSION.NANOS.TAG.ID" in unpadded base64url: the time and
// id of the last item of the page before (unix nanoseconds, empty for the
// zero time), and the tag of its query (for the review, filterTag). It is
// not secret and needs no signature: it only says where in the order the
// page starts, and every page applies the query and the caller's view
// again.
const (
	grantsCursorVersion   = "g1"
	sessionsCursorVersion = "s1"
	// sessionsSeqCursorVersion marks a cursor of a grant's sessions in log
	// order (sessionsInLogOrder), whose time field is the log sequence
	// of the last session's start.
	sessionsSeqCursorVersion = "s2"
)

func grantsCursor(k store.GrantKey, tag string) string {
	return encodeCursor(grantsCursorVersion, k.RequestedAt, tag, k.ID)
}

func parseGrantsCursor(c, tag string) (store.GrantKey, error) {
	at, id, err := decodeCursor(c, grantsCursorVersion, tag)
	return store.GrantKey{RequestedAt: at, ID: id}, err
}

func encodeCursor(version string, at time.Time, tag, id string) string {
	nanos := ""
	if !at.IsZero() {
		nanos = strconv.FormatInt(at.UnixNano(), 10)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(version + "." + nanos + "." + tag + "." + id))
}

// decodeCursor reads a cursor of version for the query of tag, refusing
// one the server did not write so or wrote for another query.
func decodeCursor(c, version, tag string) (time.Time, string, error) {
	bad := apierr.Invalid("after", "%s is not a cursor of this list (the next of a previous page)", apierr.Quote(c))
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", bad
	}
	parts := strings.SplitN(string(raw), ".", 4)
	if len(parts) != 4 || parts[0] != version || !printable(parts[3]) {
		return time.Time{}, "", bad
	}
	var at time.Time
	if parts[1] != "" {
		n, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil {
			return time.Time{}, "", bad
		}
		at = time.Unix(0, n).UTC()
	}
	if encodeCursor(version, at, parts[2], parts[3]) != c {
		return time.Time{}, "", bad // only as the server writes it
	}
	if parts[2] != tag {
		return time.Time{}, "", apierr.Invalid("after", "the cursor is the next page of another query: give it with the same filter as the page it came from, or start again without after")
	}
	return at, parts[3], nil
}

// cursorBase is the instant a relative window was resolved against on the
// pages before cursor c (GrantsQuery.SinceAgo): the part of its tag after
// "@". Not ok for no cursor, one of an absolute query or a malformed one,
// which decodeCursor then refuses.
func cursorBase(c string) (time.Time, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, false
	}
	parts := strings.SplitN(string(raw), ".", 4)
	if len(parts) != 4 {
		return time.Time{}, false
	}
	_, at, ok := strings.Cut(parts[2], "@")
	if !ok {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, n).UTC(), true
}

// pageLimit is the size of a page a caller asked limit of: def if limit
// is not positive, at most most.
func pageLimit(limit, def, most int) int {
	if limit <= 0 {
		return def
	}
	return min(limit, most)
}

// printable reports whether id could be a grant's: not empty, UTF-8,
// without control characters (PostgreSQL refuses a NUL in a parameter, and
// none is in an id the server writes).
func printable(id string) bool {
	return id != "" && utf8.ValidString(id) && !strings.ContainsFunc(id, unicode.IsControl)
}

// filterTag names the query f answers (the caller's view applied): the
// first 8 bytes of a SHA-256 of its filters, statuses in a canonical order,
// times in unix nanoseconds.
func filterTag(f store.GrantFilter) string {
	st := make([]string, len(f.Status))
	for i, s := range f.Status {
		st[i] = string(s)
	}
	slices.Sort(st)
	st = slices.Compact(st)
	nanos := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return strconv.FormatInt(t.UnixNano(), 10)
	}
	h := sha256.New()
	for _, v := range []string{f.Account, f.Target, f.Identity, strings.Join(st, ","), nanos(f.Since), nanos(f.Until)} {
		h.Write([]byte(strconv.Itoa(len(v)) + ":" + v))
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
