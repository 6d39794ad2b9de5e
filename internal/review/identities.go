package review

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/airlock-dev/airlock/internal/model"
)

// Identities are checked against the log too: an identity's row decides who
// may authenticate (its key hash), whether it may (disabled) and what
// policies grant it (owner, groups), so a row changed with write access to
// the database (an agent re-enabled, given a group, its key swapped) would
// otherwise go unseen. Every identity.* entry (added, updated, disabled)
// states the identity's whole state after the change, and the row is
// written in the same transaction, so the row must say what the newest
// entry naming it says.

// IdentityLister is implemented by Rows that hold identities (a
// store.Store); the Checker then compares every identity row too.
type IdentityLister interface {
	Identities(ctx context.Context) ([]model.Identity, error)
}

// derivedIdentity is an identity as its newest entry states it.
type derivedIdentity struct {
	id model.Identity
	// keyFull is set when the entry recorded the whole key hash
	// (key_sha256); entries written before December 2026 recorded only
	// its first 8 hex digits (key_sha256_prefix), held in id.KeySHA256.
	keyFull bool
	// added is set once an identity.added entry named it: its actor is
	// the row's created_by.
	added bool
	// problem is why the newest entry could not be applied ("" if none);
	// the row cannot be checked then, and is reported.
	problem string
	// disabledBy is the seq of the entry that disabled it (-1 if none).
	disabledBy int64
	// laundered describes entries that record a change no operation makes
	// (see applyIdentity).
	laundered []string
}

// isIdentityType reports whether typ is an entry about an identity.
func isIdentityType(typ string) bool { return strings.HasPrefix(typ, "identity.") }

// identityEntry is the data of an identity.* entry (grants.identityData).
// Pointers tell a member that is absent from one that is empty; groups is
// raw, since an identity without groups records null (which would leave a
// pointer nil, as if absent).
type identityEntry struct {
	Name      string              `json:"name"`
	Kind      *model.IdentityKind `json:"kind"`
	Owner     *string             `json:"owner"`
	Groups    json.RawMessage     `json:"groups"`
	Source    *string             `json:"source"`
	Disabled  *bool               `json:"disabled"`
	KeySHA256 *string             `json:"key_sha256"`
	KeyPrefix *string             `json:"key_sha256_prefix"`
	// The bindings, stated by configured identities' entries written
	// since December 2026 (all three or none).
	Email     *string `json:"email"`
	SlackUser *string `json:"slack_user"`
	OIDC      *string `json:"oidc"`
}

func (d *Deriver) applyIdentity(p Parsed) error {
	var in identityEntry
	if err := json.Unmarshal(p.data, &in); err != nil {
		return fmt.Errorf("entry %d: %s: %w", p.Seq, p.Type, err)
	}
	if in.Name == "" {
		return fmt.Errorf("entry %d: %s names no identity", p.Seq, p.Type)
	}
	di := d.identities[in.Name]
	if di == nil {
		di = &derivedIdentity{disabledBy: -1}
		d.identities[in.Name] = di
	}
	var groups []string
	var missing []string
	if in.Groups != nil {
		if err := json.Unmarshal(in.Groups, &groups); err != nil {
			missing = append(missing, "groups (not a list of names)")
		}
	}
	for name, absent := range map[string]bool{"kind": in.Kind == nil, "owner": in.Owner == nil, "groups": in.Groups == nil,
		"source": in.Source == nil, "disabled": in.Disabled == nil, "key_sha256_prefix": in.KeySHA256 == nil && in.KeyPrefix == nil} {
		if absent {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		di.problem = fmt.Sprintf("entry %d (%s) does not state its %s", p.Seq, p.Type, strings.Join(missing, ", "))
		return nil
	}
	prev, hadPrev, prevKeyFull := di.id, di.id.Name != "" && di.problem == "", di.keyFull
	createdBy := di.id.CreatedBy
	if p.Type == "identity.added" {
		// The row is (re)written from this entry: created by its actor.
		createdBy, di.added = p.Actor, true
	}
	di.id = model.Identity{Name: in.Name, Kind: *in.Kind, Owner: *in.Owner, Groups: groups,
		Source: *in.Source, Disabled: *in.Disabled, CreatedBy: createdBy}
	if in.Email != nil && in.SlackUser != nil && in.OIDC != nil {
		di.id.Bindings = &model.Bindings{Email: *in.Email, SlackUser: *in.SlackUser, OIDC: *in.OIDC}
	}
	if in.KeySHA256 != nil {
		di.id.KeySHA256, di.keyFull = *in.KeySHA256, true
	} else {
		di.id.KeySHA256, di.keyFull = *in.KeyPrefix, false
	}
	di.problem = ""
	// Entries are written from the identity's row (a disable reads it, a
	// start takes the flag from it), so a row changed behind Airlock's
	// back and then written into a new entry matches the log again. What
	// no operation does gives it away, and is reported for good: a disable
	// changes only the flag, and nothing enables a disabled identity (a
	// start keeps a configured one disabled; the API has no enable).
	if hadPrev && p.Type == "identity.disabled" {
		for _, f := range identityChanges(prev, prevKeyFull, di.id, di.keyFull) {
			di.laundered = append(di.laundered, fmt.Sprintf("entry %d (identity.disabled) changes its %s, which disabling does not: its row was changed in the database before that entry was written from it", p.Seq, f))
		}
	}
	switch {
	case di.id.Disabled && di.disabledBy < 0:
		di.disabledBy = p.Seq
	case !di.id.Disabled && di.disabledBy >= 0:
		di.laundered = append(di.laundered, fmt.Sprintf("entry %d (%s) enables it again after entry %d disabled it, which no operation does: its row was changed or removed in the database before that entry was written", p.Seq, p.Type, di.disabledBy))
		di.disabledBy = -1
	}
	return nil
}

// identityChanges names the fields other than disabled in which b differs
// from a. A key hash known only by its prefix is compared that far.
func identityChanges(a model.Identity, aFull bool, b model.Identity, bFull bool) []string {
	var out []string
	if a.Kind != b.Kind {
		out = append(out, "kind")
	}
	if a.Owner != b.Owner {
		out = append(out, "owner")
	}
	if !slices.Equal(a.Groups, b.Groups) {
		out = append(out, "groups")
	}
	if a.Source != b.Source {
		out = append(out, "source")
	}
	ka, kb := a.KeySHA256, b.KeySHA256
	if !aFull || !bFull {
		ka, kb = keyPrefix(ka), keyPrefix(kb)
	}
	if ka != kb {
		out = append(out, "key_sha256")
	}
	if bindingsText(a.Bindings) != bindingsText(b.Bindings) {
		out = append(out, "bindings")
	}
	return out
}

// bindingsText shows an identity's bindings in a finding.
func bindingsText(b *model.Bindings) string {
	if b == nil {
		return "none recorded"
	}
	return fmt.Sprintf("email %q, slack_user %q, oidc %q", b.Email, b.SlackUser, b.OIDC)
}

// IdentityNames returns the names of every identity the log records.
func (d *Deriver) IdentityNames() []string {
	out := make([]string, 0, len(d.identities))
	for n := range d.identities {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// IdentityDiffs describes how stored identity id differs from what the log
// says of it, each as "identity <name>: <field> is …, log says …". Key
// hashes are shown by their first 8 hex digits only, as the log's entries
// of earlier releases show them.
func IdentityDiffs(d *Deriver, id model.Identity) []string {
	di := d.identities[id.Name]
	if di == nil {
		return []string{fmt.Sprintf("identity %s: the database has it but the log never recorded it", id.Name)}
	}
	if di.problem != "" {
		return []string{fmt.Sprintf("identity %s: %s, so its row cannot be checked", id.Name, di.problem)}
	}
	lg := di.id
	var out []string
	for _, l := range di.laundered {
		out = append(out, fmt.Sprintf("identity %s: %s", id.Name, l))
	}
	str := func(name, stored, log string) {
		if stored != log {
			out = append(out, fmt.Sprintf("identity %s: %s is %q, log says %q", id.Name, name, stored, log))
		}
	}
	str("kind", string(id.Kind), string(lg.Kind))
	str("owner", id.Owner, lg.Owner)
	if !slices.Equal(id.Groups, lg.Groups) && (len(id.Groups) > 0 || len(lg.Groups) > 0) {
		str("groups", groupsText(id.Groups), groupsText(lg.Groups))
	}
	str("source", id.Source, lg.Source)
	if id.Disabled != lg.Disabled {
		out = append(out, fmt.Sprintf("identity %s: disabled is %t, log says %t", id.Name, id.Disabled, lg.Disabled))
	}
	if di.added {
		str("created_by", id.CreatedBy, lg.CreatedBy)
	}
	if sb, lb := bindingsText(id.Bindings), bindingsText(lg.Bindings); sb != lb {
		out = append(out, fmt.Sprintf("identity %s: bindings are %s, log says %s", id.Name, sb, lb))
	}
	switch {
	case di.keyFull && id.KeySHA256 != lg.KeySHA256 && keyPrefix(id.KeySHA256) == keyPrefix(lg.KeySHA256):
		out = append(out, fmt.Sprintf("identity %s: key_sha256 differs from the log's after their first 8 hex digits (%s)", id.Name, keyText(lg.KeySHA256)))
	case di.keyFull && id.KeySHA256 != lg.KeySHA256:
		out = append(out, fmt.Sprintf("identity %s: key_sha256 is %s, log says %s", id.Name, keyText(id.KeySHA256), keyText(lg.KeySHA256)))
	case !di.keyFull && keyPrefix(id.KeySHA256) != lg.KeySHA256:
		out = append(out, fmt.Sprintf("identity %s: key_sha256 is %s, log says %s (the log's entry records only the first 8 hex digits)", id.Name, keyText(id.KeySHA256), keyText(lg.KeySHA256)))
	}
	return out
}

// keyPrefix is the part of a key hash that entries of earlier releases
// recorded (grants.prefix).
func keyPrefix(h string) string {
	if len(h) > 8 {
		return h[:8]
	}
	return h
}

// keyText shows a key hash in a finding: its first 8 hex digits, never the
// whole hash (a finding goes to terminals and API answers, the hash stays
// in the database and the log).
func keyText(h string) string {
	switch {
	case h == "":
		return "empty (no key)"
	case len(h) > 8:
		return fmt.Sprintf("%q…", h[:8])
	}
	return fmt.Sprintf("%q", h)
}

// groupsText shows a list of groups as JSON, none as [].
func groupsText(gs []string) string {
	if len(gs) == 0 {
		return "[]"
	}
	return js(gs)
}
