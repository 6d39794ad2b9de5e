package sqlitestore

import (
	"database/sql"
	"fmt"
	"math"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store/storerow"
)

// Times are stored as unix nanoseconds, which cover 1677-09-21 to 2262-04-11.
var (
	minNanosTime = time.Unix(0, math.MinInt64)
	maxNanosTime = time.Unix(0, math.MaxInt64)
)

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

// grantRow is a grant as stored: the columns and record both stores keep,
// and its credential_id, NULL for none.
type grantRow struct {
	storerow.Grant
	credentialID sql.NullString
}

func encodeGrant(g model.Grant) (grantRow, error) {
	if err := storerow.CheckGrant(g); err != nil {
		return grantRow{}, err
	}
	r, err := storerow.EncodeGrant(g)
	if err != nil {
		return grantRow{}, err
	}
	return grantRow{Grant: r, credentialID: nullString(g.CredentialID)}, nil
}

// sessionRow is a session as stored: the columns and record both stores
// keep, and started_at and used_json (NULL for none).
type sessionRow struct {
	storerow.Session
	startedAt sql.NullInt64
	usedJSON  sql.NullString
}

func encodeSession(s model.Session) (sessionRow, error) {
	if err := storerow.CheckSession(s); err != nil {
		return sessionRow{}, err
	}
	started, err := nullNanos(s.StartedAt)
	if err != nil {
		return sessionRow{}, fmt.Errorf("session %q StartedAt: %w", s.ID, err)
	}
	r, err := storerow.EncodeSession(s)
	if err != nil {
		return sessionRow{}, err
	}
	return sessionRow{Session: r, startedAt: started, usedJSON: nullString(r.Used)}, nil
}

// identityRow is an identity as stored: the columns both stores keep, and
// created_at, NULL for none.
type identityRow struct {
	storerow.Identity
	createdAt sql.NullInt64
}

func encodeIdentity(id model.Identity) (identityRow, error) {
	if err := storerow.CheckIdentity(id); err != nil {
		return identityRow{}, err
	}
	created, err := nullNanos(id.CreatedAt)
	if err != nil {
		return identityRow{}, fmt.Errorf("identity %q CreatedAt: %w", id.Name, err)
	}
	r, err := storerow.EncodeIdentity(id)
	if err != nil {
		return identityRow{}, err
	}
	return identityRow{Identity: r, createdAt: created}, nil
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
	id.CreatedAt = fromNullNanos(created)
	if err := storerow.DecodeIdentity(&id, kind, groups, binds); err != nil {
		return model.Identity{}, err
	}
	return id, nil
}
