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

// Directory maps key hashes to identities. It is safe for concurrent use.
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
	byHash := make(map[string]model.Identity, len(ids))
	byName := make(map[string]model.Identity, len(ids))
	for _, id := range ids {
		byName[id.Name] = id
		if id.KeySHA256 != "" {
			byHash[strings.ToLower(id.KeySHA256)] = id
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
	if old, ok := d.byName[id.Name]; ok && old.KeySHA256 != "" {
		delete(d.byHash, strings.ToLower(old.KeySHA256))
	}
	d.byName[id.Name] = id
	if id.KeySHA256 != "" {
		d.byHash[strings.ToLower(id.KeySHA256)] = id
	}
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
