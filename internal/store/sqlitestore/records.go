package sqlitestore

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
)

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

// nullNanos converts t for a column that is the only copy of the time: NULL
// for the zero time, an error outside the representable range.
func nullNanos(t time.Time) (sql.NullInt64, error) {
	if t.IsZero() {
		return sql.NullInt64{}, nil
	}
	if t.Before(minNanosTime) || t.After(maxNanosTime) {
		return sql.NullInt64{}, fmt.Errorf("time %s is outside the storable range (1678 to 2262)", t.Format(time.RFC3339Nano))
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}, nil
}

func fromNullNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }

// grantRow is a grant as stored: the indexed columns and the JSON record.
type grantRow struct {
	id, identity, target, account, status string
	requestedAt, spanEnd                  int64
	credentialID                          sql.NullString
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

func encodeGrant(g model.Grant) (grantRow, error) {
	switch {
	case g.ID == "":
		return grantRow{}, errors.New("grant has no id")
	case g.RequestedAt.IsZero():
		return grantRow{}, fmt.Errorf("grant %q has no RequestedAt", g.ID)
	case !g.Status.Valid():
		return grantRow{}, fmt.Errorf("grant %q has invalid status %q", g.ID, g.Status)
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
	startedAt                        sql.NullInt64
	calls, denied, bytesIn, bytesOut int64
	usedJSON                         sql.NullString
	record                           []byte
}

func encodeSession(s model.Session) (sessionRow, error) {
	if s.ID == "" {
		return sessionRow{}, errors.New("session has no id")
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
		record: rec,
	}
	if len(s.Used) > 0 {
		u, err := json.Marshal(s.Used)
		if err != nil {
			return sessionRow{}, fmt.Errorf("encode session %q: %w", s.ID, err)
		}
		r.usedJSON = sql.NullString{String: string(u), Valid: true}
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
	createdAt sql.NullInt64
}

func encodeIdentity(id model.Identity) (identityRow, error) {
	if id.Name == "" {
		return identityRow{}, errors.New("identity has no name")
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

// identityColsBefore7 are the identities' columns before schema version 7
// added bindings_json.
const identityColsBefore7 = "name, kind, owner, groups_json, key_sha256, source, disabled, created_at, created_by"

const identityCols = identityColsBefore7 + ", bindings_json"

func scanIdentity(sc interface{ Scan(...any) error }) (model.Identity, error) {
	var (
		id      model.Identity
		kind    string
		groups  string
		created sql.NullInt64
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
