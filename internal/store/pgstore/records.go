package pgstore

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store/storerow"
)

// Times are stored as unix nanoseconds, which cover 1677-09-21 to 2262-04-11.
var (
	minNanosTime = time.Unix(0, math.MinInt64)
	maxNanosTime = time.Unix(0, math.MaxInt64)
)

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

// grantRow is a grant as stored: the columns and record both stores keep,
// and its credential_id, nil (NULL) for none.
type grantRow struct {
	storerow.Grant
	credentialID *string
}

// encodeGrant is storerow's, with the text checked for PostgreSQL.
func encodeGrant(g model.Grant) (grantRow, error) {
	if err := storerow.CheckGrant(g); err != nil {
		return grantRow{}, err
	}
	if err := checkText("grant field", g.ID, g.Identity, g.Target, g.Account, g.CredentialID); err != nil {
		return grantRow{}, err
	}
	r, err := storerow.EncodeGrant(g)
	if err != nil {
		return grantRow{}, err
	}
	return grantRow{Grant: r, credentialID: nullString(g.CredentialID)}, nil
}

// sessionRow is a session as stored: the columns and record both stores
// keep, started_at and used_json (nil for NULL), and open, which only
// PostgreSQL keeps (the sweep of dead replicas' sessions reads it).
type sessionRow struct {
	storerow.Session
	startedAt *int64
	usedJSON  *string
	open      bool // the record states no end
}

// encodeSession is storerow's, with the text checked for PostgreSQL.
func encodeSession(s model.Session) (sessionRow, error) {
	if err := storerow.CheckSession(s); err != nil {
		return sessionRow{}, err
	}
	if err := checkText("session field", s.ID, s.GrantID); err != nil {
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
	return sessionRow{Session: r, startedAt: started, usedJSON: nullString(r.Used), open: s.EndedAt.IsZero()}, nil
}

// identityRow is an identity as stored: the columns both stores keep, and
// created_at, nil (NULL) for none.
type identityRow struct {
	storerow.Identity
	createdAt *int64
}

// encodeIdentity is storerow's, with the text checked for PostgreSQL.
func encodeIdentity(id model.Identity) (identityRow, error) {
	if err := storerow.CheckIdentity(id); err != nil {
		return identityRow{}, err
	}
	if err := checkText("identity field", id.Name, string(id.Kind), id.Owner, id.KeySHA256, id.Source, id.CreatedBy); err != nil {
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
	id.CreatedAt = fromNullNanos(created)
	if err := storerow.DecodeIdentity(&id, kind, groups, binds); err != nil {
		return model.Identity{}, err
	}
	return id, nil
}
