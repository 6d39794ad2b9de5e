package authn

import (
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/model"
)

func TestDirectory(t *testing.T) {
	aliceKey, aliceSHA := NewKey()
	botKey, botSHA := NewKey()
	if !strings.HasPrefix(aliceKey, KeyPrefix) || len(aliceSHA) != 64 {
		t.Fatalf("NewKey = %q, %q", aliceKey, aliceSHA)
	}
	if aliceKey == botKey {
		t.Fatal("NewKey returned the same key twice")
	}
	d := NewDirectory([]model.Identity{
		{Name: "alice", Kind: model.Human, KeySHA256: strings.ToUpper(aliceSHA)},
		{Name: "bot", Kind: model.Agent, KeySHA256: botSHA},
	})
	if id, ok := d.Authenticate(aliceKey); !ok || id.Name != "alice" {
		t.Fatalf("Authenticate(alice key) = %v, %v", id, ok)
	}
	for _, bad := range []string{"", "alk_nope", aliceKey + "x", aliceSHA} {
		if _, ok := d.Authenticate(bad); ok {
			t.Errorf("Authenticate(%q) succeeded", bad)
		}
	}
	d.Put(model.Identity{Name: "bot", Kind: model.Agent, KeySHA256: botSHA, Disabled: true})
	if _, ok := d.Authenticate(botKey); ok {
		t.Fatal("disabled identity authenticated")
	}
	newKey, newSHA := NewKey()
	d.Put(model.Identity{Name: "alice", Kind: model.Human, KeySHA256: newSHA})
	if _, ok := d.Authenticate(aliceKey); ok {
		t.Fatal("replaced key still authenticates")
	}
	if _, ok := d.Authenticate(newKey); !ok {
		t.Fatal("new key does not authenticate")
	}
}

// TestDirectoryKeyHeldByADisabledIdentity: an identity taken out of the
// configuration stays, disabled, and its key may be given to another (an
// identity renamed, keeping its key). The key signs in as the enabled
// holder, whichever order the identities come in and whatever is Put
// since; it had signed in as whichever came last by name (the store lists
// them so), the disabled one, and was refused: "log-triage-bot", renamed
// from "triage-bot", was locked out, and a Put of the old identity (a
// replica re-reading it) locked out the new one in either order.
func TestDirectoryKeyHeldByADisabledIdentity(t *testing.T) {
	key, sha := NewKey()
	// The new name sorts before the old one, and after it.
	for _, newName := range []string{"log-triage-bot", "triage-bot-2"} {
		oldName := "triage-bot"
		old := model.Identity{Name: oldName, Kind: model.Agent, KeySHA256: sha, Disabled: true}
		cur := model.Identity{Name: newName, Kind: model.Agent, KeySHA256: sha}
		want := func(d *Directory, when string) {
			t.Helper()
			if id, ok := d.Authenticate(key); !ok || id.Name != newName {
				t.Errorf("old %s, new %s, %s: Authenticate = %q, %v; want %s", oldName, newName, when, id.Name, ok, newName)
			}
		}
		for _, order := range [][]model.Identity{{old, cur}, {cur, old}} {
			d := NewDirectory(order)
			want(d, "loaded")
			d.Put(old)
			want(d, "after a Put of the disabled one")
			d.Put(cur)
			want(d, "after a Put of the enabled one")
		}
		// The new holder disabled too: nobody signs in with the key.
		d := NewDirectory([]model.Identity{old, cur})
		cur.Disabled = true
		d.Put(cur)
		if id, ok := d.Authenticate(key); ok {
			t.Errorf("both holders disabled: Authenticate = %q", id.Name)
		}
		// Its key changed: the old key signs in as nobody, the new as it.
		newKey, newSHA := NewKey()
		cur.Disabled, cur.KeySHA256 = false, newSHA
		d.Put(cur)
		if id, ok := d.Authenticate(key); ok {
			t.Errorf("the key left only to a disabled identity: Authenticate = %q", id.Name)
		}
		if id, ok := d.Authenticate(newKey); !ok || id.Name != newName {
			t.Errorf("the new key: Authenticate = %q, %v", id.Name, ok)
		}
	}
	// Two enabled identities with one key cannot be told apart: neither.
	d := NewDirectory([]model.Identity{{Name: "a", Kind: model.Agent, KeySHA256: sha}, {Name: "b", Kind: model.Agent, KeySHA256: sha}})
	if id, ok := d.Authenticate(key); ok {
		t.Errorf("a key two enabled identities hold: Authenticate = %q", id.Name)
	}
}

// TestKeyID: a key's id is what the README tells an auditor to compute
// from its key_sha256 (printf 'airlock-key-id:%s' HASH | sha256sum | cut
// -c1-16), whatever the hash's case, and holds neither the key nor its
// hash.
func TestKeyID(t *testing.T) {
	h := HashKey("x") // 2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881
	for _, tc := range []struct{ sha, want string }{
		{h, "k_a3a2b6d4e84b5f9f"},
		{strings.ToUpper(h), "k_a3a2b6d4e84b5f9f"},
		{"", ""},
	} {
		got := KeyID(tc.sha)
		if got != tc.want {
			t.Errorf("KeyID(%q) = %q, want %q", tc.sha, got, tc.want)
		}
		if tc.sha != "" && strings.Contains(tc.sha, strings.TrimPrefix(got, "k_")) {
			t.Errorf("KeyID(%q) = %q is part of the hash", tc.sha, got)
		}
	}
}
