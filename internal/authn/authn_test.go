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
