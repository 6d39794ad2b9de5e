// Package storerow is what both SQL stores (pgstore, sqlitestore) keep of
// a grant, a session and an identity: the JSON record and the columns
// indexed beside it, derived from the record by the same rules in both,
// which each store had a copy of. What differs stays in the stores and in
// sight: how a driver spells NULL (pgstore's pointers, sqlitestore's
// sql.Null types), the columns only PostgreSQL has (a grant's long_lived,
// a session's open) and the text PostgreSQL cannot hold, which pgstore
// refuses between Check* and Encode*.
package storerow

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
)

// LongSpan is the longest grant lifetime counted in max_span_nanos; longer
// (and open-ended) grants are found through the grants_long partial index.
// It must match the constant in both stores' grants_long index definition
// and review query.
const LongSpan = 30 * 24 * time.Hour

// OpenEnded is the span_end of a grant without a deadline: it is still live.
const OpenEnded = int64(math.MaxInt64)

// Times are stored as unix nanoseconds, which cover 1677-09-21 to 2262-04-11.
var (
	minNanosTime = time.Unix(0, math.MinInt64)
	maxNanosTime = time.Unix(0, math.MaxInt64)
)

// ClampNanos converts t for an index column, where only the order matters
// and the exact value is kept elsewhere (the JSON record).
func ClampNanos(t time.Time) int64 {
	switch {
	case t.Before(minNanosTime):
		return math.MinInt64
	case t.After(maxNanosTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// Grant is a grant as stored, but for its credential_id column, which is
// NULL for no credential (each store spells that its own way).
type Grant struct {
	ID, Identity, Target, Account, Status string
	RequestedAt, SpanEnd                  int64
	Record                                []byte
}

// Span is the grant's lifetime in nanoseconds, and whether it is bounded
// by LongSpan (and so must be counted in max_span_nanos).
func (r Grant) Span() (int64, bool) {
	if r.SpanEnd == OpenEnded {
		return 0, false
	}
	d := r.SpanEnd - r.RequestedAt
	if (d > 0) != (r.SpanEnd > r.RequestedAt) { // overflow
		return 0, false
	}
	return d, d <= int64(LongSpan)
}

// LongLived is the grants_long index predicate.
func (r Grant) LongLived() bool {
	_, counted := r.Span()
	return !counted
}

// CheckGrant refuses a grant no store may keep.
func CheckGrant(g model.Grant) error {
	switch {
	case g.ID == "":
		return errors.New("grant has no id")
	case g.RequestedAt.IsZero():
		return fmt.Errorf("grant %q has no RequestedAt", g.ID)
	case !g.Status.Valid():
		return fmt.Errorf("grant %q has invalid status %q", g.ID, g.Status)
	}
	return nil
}

// EncodeGrant is g as stored; g has passed CheckGrant. Its Usage (derived
// from its sessions) and LogMismatch (found on reads) are not stored.
func EncodeGrant(g model.Grant) (Grant, error) {
	g.Usage = model.Usage{}
	g.LogMismatch = nil
	rec, err := json.Marshal(g)
	if err != nil {
		return Grant{}, fmt.Errorf("encode grant %q: %w", g.ID, err)
	}
	r := Grant{
		ID:          g.ID,
		Identity:    g.Identity,
		Target:      g.Target,
		Account:     g.Account,
		Status:      string(g.Status),
		RequestedAt: ClampNanos(g.RequestedAt),
		SpanEnd:     OpenEnded,
		Record:      rec,
	}
	if d := g.Deadline(); !d.IsZero() {
		r.SpanEnd = ClampNanos(d)
		if r.SpanEnd == OpenEnded {
			r.SpanEnd-- // a real deadline in 2262 is not "open-ended"
		}
	}
	return r, nil
}

// DecodeGrant is the grant of a stored record, without Usage (the reader
// derives it) or LogMismatch (only the reader's check against the log sets
// it).
func DecodeGrant(rec []byte) (model.Grant, error) {
	var g model.Grant
	if err := json.Unmarshal(rec, &g); err != nil {
		return model.Grant{}, fmt.Errorf("decode grant record: %w", err)
	}
	g.Usage = model.Usage{}
	g.LogMismatch = nil
	return g, nil
}

// Column is a stored column's value beside the one its record gives it.
type Column struct {
	Name      string
	Got, Want any
}

// GrantColumnDiffs appends to out a line for each column of got, a
// grant's row as read, that is not what want, its record encoded again,
// says: first the columns both stores keep, then more (a store's own, in
// its order). n counts the lines for all grants; none is added once it
// reaches max. A column changed behind the store's back changes what the
// lists that filter on it return, and verification, which reads the
// records, would not see it (the stores' IndexDiffs).
func GrantColumnDiffs(out []string, n *int, max int, got, want Grant, more ...Column) []string {
	for _, c := range append([]Column{
		{"id", got.ID, want.ID}, {"identity", got.Identity, want.Identity}, {"target", got.Target, want.Target},
		{"account", got.Account, want.Account}, {"status", got.Status, want.Status},
		{"requested_at", got.RequestedAt, want.RequestedAt}, {"span_end", got.SpanEnd, want.SpanEnd},
	}, more...) {
		if c.Got != c.Want && *n < max {
			*n++
			out = append(out, fmt.Sprintf("grant %s: its %s column is %q, its record (and the log) says %q: the column lists filter on was changed", got.ID, c.Name, fmt.Sprint(c.Got), fmt.Sprint(c.Want)))
		}
	}
	return out
}

// Session is a session as stored, but for its started_at column (NULL for
// no start) and its used_json (NULL for nothing used).
type Session struct {
	ID, GrantID                      string
	Calls, Denied, BytesIn, BytesOut int64
	Record                           []byte
	// Used is the JSON of the session's Used, "" (NULL) for none.
	Used string
}

// CheckSession refuses a session no store may keep.
func CheckSession(s model.Session) error {
	if s.ID == "" {
		return errors.New("session has no id")
	}
	return nil
}

// EncodeSession is s as stored; s has passed CheckSession. Its LogMismatch
// (found on reads) is not stored.
func EncodeSession(s model.Session) (Session, error) {
	s.LogMismatch = nil
	rec, err := json.Marshal(s)
	if err != nil {
		return Session{}, fmt.Errorf("encode session %q: %w", s.ID, err)
	}
	r := Session{
		ID: s.ID, GrantID: s.GrantID,
		Calls: s.Calls, Denied: s.Denied, BytesIn: s.BytesIn, BytesOut: s.BytesOut,
		Record: rec,
	}
	if len(s.Used) > 0 {
		u, err := json.Marshal(s.Used)
		if err != nil {
			return Session{}, fmt.Errorf("encode session %q: %w", s.ID, err)
		}
		r.Used = string(u)
	}
	return r, nil
}

// DecodeSession is the session of a stored record, without LogMismatch
// (only the reader's check against the log sets it).
func DecodeSession(rec []byte) (model.Session, error) {
	var s model.Session
	if err := json.Unmarshal(rec, &s); err != nil {
		return model.Session{}, fmt.Errorf("decode session record: %w", err)
	}
	s.LogMismatch = nil
	return s, nil
}

// Identity is an identity as stored, but for its created_at column (NULL
// for no time).
type Identity struct {
	Name, Kind, Owner, Key, Source, CreatedBy string
	// Groups is the JSON of the identity's groups, "[]" for none.
	Groups string
	// Bindings is the JSON of its model.Bindings, "" for nil.
	Bindings string
	Disabled bool
}

// CheckIdentity refuses an identity no store may keep.
func CheckIdentity(id model.Identity) error {
	if id.Name == "" {
		return errors.New("identity has no name")
	}
	return nil
}

// EncodeIdentity is id as stored; id has passed CheckIdentity.
func EncodeIdentity(id model.Identity) (Identity, error) {
	groups := []string{}
	if len(id.Groups) > 0 {
		groups = id.Groups
	}
	gj, err := json.Marshal(groups)
	if err != nil {
		return Identity{}, fmt.Errorf("encode identity %q groups: %w", id.Name, err)
	}
	var bj string
	if id.Bindings != nil {
		b, err := json.Marshal(id.Bindings)
		if err != nil {
			return Identity{}, fmt.Errorf("encode identity %q bindings: %w", id.Name, err)
		}
		bj = string(b)
	}
	return Identity{
		Name: id.Name, Kind: string(id.Kind), Owner: id.Owner, Groups: string(gj),
		Key: id.KeySHA256, Source: id.Source, CreatedBy: id.CreatedBy,
		Disabled: id.Disabled, Bindings: bj,
	}, nil
}

// DecodeIdentity sets id's kind, groups and bindings from their stored
// columns (groups_json, bindings_json), the rest having been scanned into
// id: no groups is nil, as is an empty bindings_json.
func DecodeIdentity(id *model.Identity, kind, groups, bindings string) error {
	id.Kind = model.IdentityKind(kind)
	if err := json.Unmarshal([]byte(groups), &id.Groups); err != nil {
		return fmt.Errorf("decode identity %q groups: %w", id.Name, err)
	}
	if len(id.Groups) == 0 {
		id.Groups = nil
	}
	if bindings != "" {
		id.Bindings = new(model.Bindings)
		if err := json.Unmarshal([]byte(bindings), id.Bindings); err != nil {
			return fmt.Errorf("decode identity %q bindings: %w", id.Name, err)
		}
	}
	return nil
}
