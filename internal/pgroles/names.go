package pgroles

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// rolePrefix is the name space this package owns. Everything it alters or
// drops starts with it, so a real role can never be touched.
const rolePrefix = "airlock_g_"

// maxIdentifier is PostgreSQL's NAMEDATALEN-1: a longer role name would be
// silently truncated, and two grants could then share a role.
const maxIdentifier = 63

// grantIDRE is the shape of grant ids ("g_" and lower-case base32 from the
// control plane; tests use other lower-case names). Anything else is
// refused rather than mapped, so two ids can never map to one role.
var grantIDRE = regexp.MustCompile(`^g_[a-z0-9_]+$`)

// RoleName is the role for a grant id: "airlock_" + grantID (lower case, a valid identifier).
func RoleName(grantID string) string { return "airlock_" + strings.ToLower(grantID) }

// roleFor checks a grant id and returns its role name.
func roleFor(grantID string) (string, error) {
	if !grantIDRE.MatchString(grantID) {
		return "", fmt.Errorf("pgroles: grant id %q is not of the form g_[a-z0-9_]+", grantID)
	}
	name := RoleName(grantID)
	if len(name) > maxIdentifier {
		return "", fmt.Errorf("pgroles: role name for grant %q is longer than %d bytes", grantID, maxIdentifier)
	}
	return name, nil
}

// grantIDOf is the inverse of RoleName for names in our name space.
func grantIDOf(role string) (string, bool) {
	if !strings.HasPrefix(role, rolePrefix) {
		return "", false
	}
	id := strings.TrimPrefix(role, "airlock_")
	return id, grantIDRE.MatchString(id)
}

// marker is the comment every grant role carries: which database it was
// made for and, with WithInstallation, which Airlock installation made it,
// so that a Manager never touches another target's roles, nor another
// installation's in front of the same database (whose grants it does not
// know, so its Reconcile would drop their roles as orphans).
func marker(database, installation string) string {
	m := "airlock grant role; database=" + database
	if installation != "" {
		m += "; installation=" + installation
	}
	return m
}

// markers are the comments m takes as its own: its marker, and the marker
// without an installation that roles made before installations were named
// carry (an Ensure of such a role marks it anew).
func (m *Manager) markers() []string {
	if m.inst == "" {
		return []string{marker(m.db, "")}
	}
	return []string{marker(m.db, m.inst), marker(m.db, "")}
}

// errNotOurs is returned when a role in our name space exists but was not
// made by a Manager for this database.
var errNotOurs = errors.New("exists but is not an Airlock grant role of this database; not touching it")

// quoteLiteral quotes s as a standard SQL string literal. New checks that
// standard_conforming_strings is on, so backslashes are not escapes. It is
// used only for values that PostgreSQL cannot take as parameters (utility
// statements): timestamps and verifiers made here, and the database name.
func quoteLiteral(s string) (string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return "", errors.New("pgroles: NUL byte in a literal")
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'", nil
}
