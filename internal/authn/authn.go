// Package authn authenticates API callers by their bearer key.
//
// Keys are random strings handed out once ("alk_" + 43 base64url chars, 256
// bits). Airlock keeps only their SHA-256: a leaked database does not leak a
// usable key, and a high-entropy key needs no slow password hash. Lookups go
// through an in-memory directory keyed by the hash, and the final check is a
// constant-time comparison so response timing says nothing about how close a
// guess came.
package authn

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"sync"

	"github.com/airlock-dev/airlock/internal/model"
)

// KeyPrefix marks Airlock API keys so they are recognisable in secret scanners.
const KeyPrefix = "alk_"

// NewKey returns a fresh API key and its hex SHA-256.
func NewKey() (key, sha string) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("authn: crypto/rand failed: " + err.Error()) // never happens on supported platforms
	}
	key = KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, HashKey(key)
}

// HashKey returns the lowercase hex SHA-256 of a key, the form stored and
// configured as key_sha256.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// KeyID names the key whose lowercase hex SHA-256 is keySHA256 in records
// that must tell keys apart without holding the key or its hash (a
// decision's record): "k_" and the first 16 hex digits of the SHA-256 of
// "airlock-key-id:" followed by the hash. An auditor finds it from an
// identity's key_sha256 with
// printf 'airlock-key-id:%s' HASH | sha256sum | cut -c1-16. It is "" for
// an identity without a key.
func KeyID(keySHA256 string) string {
	if keySHA256 == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("airlock-key-id:" + strings.ToLower(keySHA256)))
	return "k_" + hex.EncodeToString(sum[:8])
}

// Directory maps key hashes to identities. It is safe for concurrent use.
//
// Two stored identities may hold one key hash: an identity taken out of
// the configuration stays, disabled, when its key is given to another
// (an identity renamed, say). A key resolves to the enabled identity that
// holds it, never to the disabled one, whatever the order the identities
// come in; a key that two enabled identities hold (the configuration
// refuses that among its own) resolves to neither.
type Directory struct {
	mu     sync.RWMutex
	byHash map[string]model.Identity
	byName map[string]model.Identity
}

// NewDirectory returns a directory holding ids.
func NewDirectory(ids []model.Identity) *Directory {
	d := &Directory{}
	d.Replace(ids)
	return d
}

// Replace swaps in a new set of identities.
func (d *Directory) Replace(ids []model.Identity) {
	byName := make(map[string]model.Identity, len(ids))
	for _, id := range ids {
		byName[id.Name] = id
	}
	holders := map[string][]model.Identity{}
	for _, id := range byName {
		if h := strings.ToLower(id.KeySHA256); h != "" {
			holders[h] = append(holders[h], id)
		}
	}
	byHash := make(map[string]model.Identity, len(holders))
	for h, ids := range holders {
		if id, ok := resolve(ids); ok {
			byHash[h] = id
		}
	}
	d.mu.Lock()
	d.byHash, d.byName = byHash, byName
	d.mu.Unlock()
}

// Put adds or replaces one identity.
func (d *Directory) Put(id model.Identity) {
	d.mu.Lock()
	defer d.mu.Unlock()
	old := d.byName[id.Name]
	d.byName[id.Name] = id
	for _, h := range []string{strings.ToLower(old.KeySHA256), strings.ToLower(id.KeySHA256)} {
		if h != "" {
			d.reindex(h)
		}
	}
}

// reindex resolves key hash h again from every identity holding it. The
// caller holds d.mu.
func (d *Directory) reindex(h string) {
	var ids []model.Identity
	for _, id := range d.byName {
		if strings.ToLower(id.KeySHA256) == h {
			ids = append(ids, id)
		}
	}
	if id, ok := resolve(ids); ok {
		d.byHash[h] = id
	} else {
		delete(d.byHash, h)
	}
}

// resolve picks the identity a key held by ids signs in as: the only
// enabled one; if none is enabled, a disabled one (refused as such); if
// several are, none.
func resolve(ids []model.Identity) (model.Identity, bool) {
	var enabled []model.Identity
	for _, id := range ids {
		if !id.Disabled {
			enabled = append(enabled, id)
		}
	}
	switch {
	case len(enabled) == 1:
		return enabled[0], true
	case len(enabled) == 0 && len(ids) > 0:
		return ids[0], true
	}
	return model.Identity{}, false
}

// People returns the enabled people (humans), in no particular order:
// those who may approve, where an approve policy permits them.
func (d *Directory) People() []model.Identity {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var out []model.Identity
	for _, id := range d.byName {
		if id.Kind == model.Human && !id.Disabled {
			out = append(out, id)
		}
	}
	return out
}

// Lookup returns the identity named name.
func (d *Directory) Lookup(name string) (model.Identity, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	id, ok := d.byName[name]
	return id, ok
}

// Authenticate resolves a presented key to an enabled identity.
func (d *Directory) Authenticate(key string) (model.Identity, bool) {
	if key == "" {
		return model.Identity{}, false
	}
	h := HashKey(key)
	d.mu.RLock()
	id, ok := d.byHash[h]
	d.mu.RUnlock()
	if !ok || id.Disabled {
		return model.Identity{}, false
	}
	// The map lookup already matched the hash; the constant-time compare is
	// the check we rely on, and keeps the code honest if the index changes.
	if subtle.ConstantTimeCompare([]byte(h), []byte(strings.ToLower(id.KeySHA256))) != 1 {
		return model.Identity{}, false
	}
	return id, true
}
