package review_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
)

// identityEntry is an identity.* entry in the log's format, with data d.
func identityEntry(seq int64, typ, actor, d string) []byte {
	return fmt.Appendf(nil, `{"seq":%d,"time":"2026-12-01T10:00:00Z","type":%q,"actor":%q,"data":%s}`, seq, typ, actor, d)
}

const (
	hashA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	hashB = "0123456789abcdefffffffffffffffffffffffffffffffffffffffffffffffff" // hashA's first 16 digits
	hashC = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

// TestIdentityDiffs: an identity row must say what the newest entry naming
// it says. Entries with the whole key hash check it whole; entries of
// earlier releases, which recorded only its first 8 hex digits, check that
// far (a row's hash swapped for one with the same first 8 digits passes
// them, and only them).
func TestIdentityDiffs(t *testing.T) {
	row := model.Identity{Name: "bot", Kind: model.Agent, Owner: "sre", Groups: []string{"a"}, KeySHA256: hashA, Source: "api", Disabled: true, CreatedBy: "alice"}
	added := `{"name":"bot","kind":"agent","owner":"sre","groups":["a"],"source":"api","disabled":false,"key_sha256":"` + hashA + `","key_sha256_prefix":"01234567"}`
	disabled := strings.Replace(added, `"disabled":false`, `"disabled":true`, 1)
	old := `{"name":"bot","kind":"agent","owner":"sre","groups":["a"],"source":"api","disabled":true,"key_sha256_prefix":"01234567"}`
	derive := func(entries ...[]byte) *review.Deriver {
		t.Helper()
		d := review.NewDeriver()
		for _, e := range entries {
			if err := d.Add(e); err != nil {
				t.Fatal(err)
			}
		}
		return d
	}
	full := derive(identityEntry(0, "identity.added", "alice", added), identityEntry(1, "identity.disabled", "alice", disabled))
	legacy := derive(identityEntry(0, "identity.added", "alice", strings.Replace(old, `"disabled":true`, `"disabled":false`, 1)), identityEntry(1, "identity.disabled", "alice", old))
	with := func(f func(*model.Identity)) model.Identity {
		r := row
		r.Groups = append([]string(nil), row.Groups...)
		f(&r)
		return r
	}
	for _, tc := range []struct {
		name string
		d    *review.Deriver
		row  model.Identity
		want string // "" for none
	}{
		{"as logged", full, row, ""},
		{"as logged, old entries", legacy, row, ""},
		{"re-enabled", full, with(func(r *model.Identity) { r.Disabled = false }), "identity bot: disabled is false, log says true"},
		{"re-enabled, old entries", legacy, with(func(r *model.Identity) { r.Disabled = false }), "identity bot: disabled is false, log says true"},
		{"a group added", full, with(func(r *model.Identity) { r.Groups = append(r.Groups, "admins") }), `identity bot: groups is "[\"a\",\"admins\"]", log says "[\"a\"]"`},
		{"owner", full, with(func(r *model.Identity) { r.Owner = "payments" }), `identity bot: owner is "payments", log says "sre"`},
		{"kind", full, with(func(r *model.Identity) { r.Kind = model.Human }), `identity bot: kind is "human", log says "agent"`},
		{"source", full, with(func(r *model.Identity) { r.Source = "config" }), `identity bot: source is "config", log says "api"`},
		{"created_by", full, with(func(r *model.Identity) { r.CreatedBy = "mallory" }), `identity bot: created_by is "mallory", log says "alice"`},
		{"another key", full, with(func(r *model.Identity) { r.KeySHA256 = hashC }), `identity bot: key_sha256 is "fedcba98"…, log says "01234567"…`},
		{"a key with the same prefix", full, with(func(r *model.Identity) { r.KeySHA256 = hashB }), `identity bot: key_sha256 differs from the log's after their first 8 hex digits ("01234567"…)`},
		{"no key", full, with(func(r *model.Identity) { r.KeySHA256 = "" }), `identity bot: key_sha256 is empty (no key), log says "01234567"…`},
		{"another key, old entries", legacy, with(func(r *model.Identity) { r.KeySHA256 = hashC }), `identity bot: key_sha256 is "fedcba98"…, log says "01234567" (the log's entry records only the first 8 hex digits)`},
		// What old entries cannot tell: documented in the README.
		{"a key with the same prefix, old entries", legacy, with(func(r *model.Identity) { r.KeySHA256 = hashB }), ""},
		{"never logged", full, with(func(r *model.Identity) { r.Name = "ghost" }), "identity ghost: the database has it but the log never recorded it"},
	} {
		got := review.IdentityDiffs(tc.d, tc.row)
		switch {
		case tc.want == "" && len(got) != 0:
			t.Errorf("%s: %q, want none", tc.name, got)
		case tc.want != "" && (len(got) != 1 || got[0] != tc.want):
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}

	// An entry that does not state the identity's state leaves its row
	// unchecked, which is reported rather than passed.
	d := derive(identityEntry(0, "identity.added", "alice", added), identityEntry(1, "identity.disabled", "alice", `{"name":"bot","disabled":true}`))
	got := review.IdentityDiffs(d, row)
	if len(got) != 1 || !strings.Contains(got[0], "entry 1 (identity.disabled) does not state its groups, key_sha256_prefix, kind, owner, source, so its row cannot be checked") {
		t.Errorf("an entry without the identity's state: %q", got)
	}
	// A later entry that enables it again (a start logging an update from
	// a row re-enabled in the database) is reported even though the row
	// now matches it: no operation enables a disabled identity.
	d = derive(identityEntry(0, "identity.added", "config", added), identityEntry(1, "identity.disabled", "alice", disabled), identityEntry(2, "identity.updated", "config", added))
	got = review.IdentityDiffs(d, with(func(r *model.Identity) { r.Disabled, r.CreatedBy = false, "config" }))
	if len(got) != 1 || got[0] != "identity bot: entry 2 (identity.updated) enables it again after entry 1 disabled it, which no operation does: its row was changed or removed in the database before that entry was written" {
		t.Errorf("an update that enables a disabled identity: %q", got)
	}
	// A disable written from a row whose groups and key were changed
	// first: the disable's entry states them, and the row matches it.
	changed := strings.Replace(strings.Replace(disabled, `"groups":["a"]`, `"groups":["a","admins"]`, 1), hashA, hashB, 1)
	d = derive(identityEntry(0, "identity.added", "alice", added), identityEntry(1, "identity.disabled", "alice", changed))
	got = review.IdentityDiffs(d, with(func(r *model.Identity) { r.Groups, r.KeySHA256 = []string{"a", "admins"}, hashB }))
	if len(got) != 2 || got[0] != "identity bot: entry 1 (identity.disabled) changes its groups, which disabling does not: its row was changed in the database before that entry was written from it" ||
		!strings.Contains(got[1], "changes its key_sha256, which disabling does not") {
		t.Errorf("a disable that changes more than the flag: %q", got)
	}
	// Added again while enabled (replicas starting at once both add it)
	// is no finding.
	d = derive(identityEntry(0, "identity.added", "config", added), identityEntry(1, "identity.added", "config", added))
	if got := review.IdentityDiffs(d, with(func(r *model.Identity) { r.Disabled, r.CreatedBy = false, "config" })); len(got) != 0 {
		t.Errorf("added twice: %q", got)
	}
	if names := full.IdentityNames(); len(names) != 1 || names[0] != "bot" {
		t.Errorf("IdentityNames %q", names)
	}
}

// TestIdentityBindingDiffs: a configured identity's row keeps the bindings
// (email, slack_user, oidc) its newest entry states, so that a start
// compares the file with rows; the state check compares them as it does
// the key hash. A row rebound in the database (alice's Slack member id set
// to mallory's, so that mallory's clicks approve as alice until the next
// start) is a finding; entries that state none (written before they did)
// check that the row records none.
func TestIdentityBindingDiffs(t *testing.T) {
	base := `{"name":"alice","kind":"human","owner":"","groups":null,"source":"config","disabled":false,"key_sha256":"` + hashA + `"`
	stated := base + `,"email":"alice@example.com","slack_user":"U024BE7LH","oidc":""}`
	alice := model.Identity{Name: "alice", Kind: model.Human, KeySHA256: hashA, Source: "config", CreatedBy: "config",
		Bindings: &model.Bindings{Email: "alice@example.com", SlackUser: "U024BE7LH"}}
	derive := func(data string) *review.Deriver {
		t.Helper()
		d := review.NewDeriver()
		if err := d.Add(identityEntry(0, "identity.added", "config", data)); err != nil {
			t.Fatal(err)
		}
		return d
	}
	rebound := alice
	rebound.Bindings = &model.Bindings{Email: "alice@example.com", SlackUser: "U0MALLORY"}
	none := alice
	none.Bindings = nil
	for _, tc := range []struct {
		name string
		data string
		row  model.Identity
		want string
	}{
		{"as logged", stated, alice, ""},
		{"rebound in the database", stated, rebound, `identity alice: bindings are email "alice@example.com", slack_user "U0MALLORY", oidc "", log says email "alice@example.com", slack_user "U024BE7LH", oidc ""`},
		{"cleared in the database", stated, none, `identity alice: bindings are none recorded, log says email "alice@example.com", slack_user "U024BE7LH", oidc ""`},
		{"entry before bindings, row without", base + `}`, none, ""},
		{"entry before bindings, row with", base + `}`, alice, `identity alice: bindings are email "alice@example.com", slack_user "U024BE7LH", oidc "", log says none recorded`},
	} {
		got := review.IdentityDiffs(derive(tc.data), tc.row)
		switch {
		case tc.want == "" && len(got) != 0:
			t.Errorf("%s: %q, want none", tc.name, got)
		case tc.want != "" && (len(got) != 1 || got[0] != tc.want):
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
