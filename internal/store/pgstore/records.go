package pgstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/model"
)

// longSpan is the longest grant lifetime counted in max_span_nanos; longer
// (and open-ended) grants have long_lived set and are found through the
// grants_long partial index.
const longSpan = 30 * 24 * time.Hour

// openEnded is the span_end of a grant without a deadline: it is still live.
const openEnded = int64(math.MaxInt64)

// Times are stored as unix nanoseconds, which cover 1677-09-21 to 2262-04-11.
var (
	minNanosTime = time.Unix(0, math.MinInt64)
	maxNanosTime = time.Unix(0, math.MaxInt64)
)

// clampNanos converts t for an index column, where only the order matters and
// the exact value is kept elsewhere (the JSON record).
func clampNanos(t time.Time) int64 {
	switch {
	case t.Before(minNanosTime):
		return math.MinInt64
	case t.After(maxNanosTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// nullNanos converts t for a column that is the only copy of the time: nil
// (NULL) for the zero time, an error outside the representable range.
func nullNanos(t time.Time) (*int64, error) {
	if t.IsZero() {
		return nil, nil
	}
	if t.Before(minNanosTime) || t.After(maxNanosTime) {
		return nil, fmt.Errorf("time %s is outside the storable range (1678 to 2262)", t.Format(time.RFC3339Nano))
	}
	n := t.UnixNano()
	return &n, nil
}

func fromNullNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}

// nullString is nil (NULL) for the empty string.
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// checkText rejects what a PostgreSQL text column cannot hold (a NUL byte or
// invalid UTF-8) before it is sent: a failed statement would abort the whole
// transaction, where the SQLite store only fails the one call.
func checkText(what string, vs ...string) error {
	for _, v := range vs {
		if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("%s %q is not valid UTF-8 text without NUL", what, v)
		}
	}
	return nil
}

// grantRow is a grant as stored: the indexed columns and the JSON record.
type grantRow struct {
	id, identity, target, account, status string
	requestedAt, spanEnd                  int64
	credentialID                          *string
	record                                []byte
}

// span is the grant's lifetime in nanoseconds, and whether it is bounded by
// longSpan (and so must be counted in max_span_nanos).
func (r grantRow) span() (int64, bool) {
	if r.spanEnd == openEnded {
		return 0, false
	}
	d := r.spanEnd - r.requestedAt
	if (d > 0) != (r.spanEnd > r.requestedAt) { // overflow
		return 0, false
	}
	return d, d <= int64(longSpan)
}

// longLived is the grants_long index predicate.
func (r grantRow) longLived() bool {
	_, counted := r.span()
	return !counted
}

func encodeGrant(g model.Grant) (grantRow, error) {
	switch {
	case g.ID == "":
		return grantRow{}, errors.New("grant has no id")
	case g.RequestedAt.IsZero():
		return grantRow{}, fmt.Errorf("grant %q has no RequestedAt", g.ID)
	case !g.Status.Valid():
		return grantRow{}, fmt.Errorf("grant %q has invalid status %q", g.ID, g.Status)
	}
	if err := checkText("grant field", g.ID, g.Identity, g.Target, g.Account, g.CredentialID); err != nil {
		return grantRow{}, err
	}
	g.Usage = model.Usage{} // derived from sessions, never stored
	g.LogMismatch = nil     // found on reads, never stored
	rec, err := json.Marshal(g)
	if err != nil {
		return grantRow{}, fmt.Errorf("encode grant %q: %w", g.ID, err)
	}
	r := grantRow{
		id:           g.ID,
		identity:     g.Identity,
		target:       g.Target,
		account:      g.Account,
		status:       string(g.Status),
		requestedAt:  clampNanos(g.RequestedAt),
		spanEnd:      openEnded,
		credentialID: nullString(g.CredentialID),
		record:       rec,
	}
	if d := g.Deadline(); !d.IsZero() {
		r.spanEnd = clampNanos(d)
		if r.spanEnd == openEnded {
			r.spanEnd-- // a real deadline in 2262 is not "open-ended"
		}
	}
	return r, nil
}

func decodeGrant(rec []byte) (model.Grant, error) {
	var g model.Grant
	if err := json.Unmarshal(rec, &g); err != nil {
		return model.Grant{}, fmt.Errorf("decode grant record: %w", err)
	}
	g.Usage = model.Usage{}
	g.LogMismatch = nil // only the reader's check against the log sets it
	return g, nil
}

// sessionRow is a session as stored.
type sessionRow struct {
	id, grantID                      string
	startedAt                        *int64
	calls, denied, bytesIn, bytesOut int64
	usedJSON                         *string
	record                           []byte
	open                             bool // the record states no end
}

func encodeSession(s model.Session) (sessionRow, error) {
	if s.ID == "" {
		return sessionRow{}, errors.New("session has no id")
	}
	if err := checkText("session field", s.ID, s.GrantID); err != nil {
		return sessionRow{}, err
	}
	started, err := nullNanos(s.StartedAt)
	if err != nil {
		return sessionRow{}, fmt.Errorf("session %q StartedAt: %w", s.ID, err)
	}
	s.LogMismatch = nil // found on reads, never stored
	rec, err := json.Marshal(s)
	if err != nil {
		return sessionRow{}, fmt.Errorf("encode session %q: %w", s.ID, err)
	}
	r := sessionRow{
		id: s.ID, grantID: s.GrantID, startedAt: started,
		calls: s.Calls, denied: s.Denied, bytesIn: s.BytesIn, bytesOut: s.BytesOut,
		record: rec, open: s.EndedAt.IsZero(),
	}
	if len(s.Used) > 0 {
		u, err := json.Marshal(s.Used)
		if err != nil {
			return sessionRow{}, fmt.Errorf("encode session %q: %w", s.ID, err)
		}
		js := string(u)
		r.usedJSON = &js
	}
	return r, nil
}

func decodeSession(rec []byte) (model.Session, error) {
	var s model.Session
	if err := json.Unmarshal(rec, &s); err != nil {
		return model.Session{}, fmt.Errorf("decode session record: %w", err)
	}
	s.LogMismatch = nil // only the reader's check against the log sets it
	return s, nil
}

// identityRow is an identity as stored.
type identityRow struct {
	name, kind, owner, groups, key, source, createdBy string
	// bindings is the JSON of model.Bindings, "" for nil.
	bindings  string
	disabled  bool
	createdAt *int64
}

func encodeIdentity(id model.Identity) (identityRow, error) {
	if id.Name == "" {
		return identityRow{}, errors.New("identity has no name")
	}
	if err := checkText("identity field", id.Name, string(id.Kind), id.Owner, id.KeySHA256, id.Source, id.CreatedBy); err != nil {
		return identityRow{}, err
	}
	created, err := nullNanos(id.CreatedAt)
	if err != nil {
		return identityRow{}, fmt.Errorf("identity %q CreatedAt: %w", id.Name, err)
	}
	groups := []string{}
	if len(id.Groups) > 0 {
		groups = id.Groups
	}
	gj, err := json.Marshal(groups)
	if err != nil {
		return identityRow{}, fmt.Errorf("encode identity %q groups: %w", id.Name, err)
	}
	var bj string
	if id.Bindings != nil {
		b, err := json.Marshal(id.Bindings)
		if err != nil {
			return identityRow{}, fmt.Errorf("encode identity %q bindings: %w", id.Name, err)
		}
		bj = string(b)
	}
	return identityRow{
		name: id.Name, kind: string(id.Kind), owner: id.Owner, groups: string(gj),
		key: id.KeySHA256, source: id.Source, createdBy: id.CreatedBy,
		disabled: id.Disabled, createdAt: created, bindings: bj,
	}, nil
}

const identityCols = "name, kind, owner, groups_json, key_sha256, source, disabled, created_at, created_by, bindings_json"

func scanIdentity(sc interface{ Scan(...any) error }) (model.Identity, error) {
	var (
		id      model.Identity
		kind    string
		groups  string
		created *int64
		binds   string
	)
	if err := sc.Scan(&id.Name, &kind, &id.Owner, &groups, &id.KeySHA256, &id.Source, &id.Disabled, &created, &id.CreatedBy, &binds); err != nil {
		return model.Identity{}, err
	}
	id.Kind = model.IdentityKind(kind)
	id.CreatedAt = fromNullNanos(created)
	if err := json.Unmarshal([]byte(groups), &id.Groups); err != nil {
		return model.Identity{}, fmt.Errorf("decode identity %q groups: %w", id.Name, err)
	}
	if len(id.Groups) == 0 {
		id.Groups = nil
	}
	if binds != "" {
		id.Bindings = new(model.Bindings)
		if err := json.Unmarshal([]byte(binds), id.Bindings); err != nil {
			return model.Identity{}, fmt.Errorf("decode identity %q bindings: %w", id.Name, err)
		}
	}
	return id, nil
}
