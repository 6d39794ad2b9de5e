package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"hash"
	"sync"
)

// keyCache remembers signing keys by access key and scope: deriving one
// costs four HMACs, most of a verification, and a client signs with the
// same key all day. An entry holds the secret it was derived from and is
// used only while Lookup still returns that secret, so a rotated secret is
// never served a stale key.
//
// Each entry also keeps the HMAC-SHA256 states keyed with its key
// (crypto/hmac, Reset between uses): hmac.New per signature hashes the
// two key pads again and allocates six objects, where Reset restores the
// keyed state from the copy crypto/hmac keeps after its first use.
type keyCache struct {
	mu sync.Mutex
	m  map[string]*cachedKey
}

type cachedKey struct {
	secret string
	key    [32]byte
	macs   sync.Pool // of hash.Hash, crypto/hmac keyed with key
}

// maxCachedKeys bounds the cache; when full it starts over, which is
// cheap and keeps memory flat under a flood of distinct keys.
const maxCachedKeys = 4096

// entry returns the cache entry for secret and cr's scope, deriving the
// key when it is not cached.
func (c *keyCache) entry(secret string, cr *credentials, sc *scratch) *cachedKey {
	id := append(sc.id[:0], cr.accessKey...)
	id = append(id, '/')
	id = append(id, cr.scope...)
	sc.id = id
	c.mu.Lock()
	e := c.m[string(id)]
	c.mu.Unlock()
	if e != nil && subtle.ConstantTimeCompare([]byte(e.secret), []byte(secret)) == 1 {
		return e
	}
	e = &cachedKey{secret: secret, key: deriveKey(secret, cr.date, cr.region, cr.service)}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedKeys {
		c.m = make(map[string]*cachedKey)
	}
	c.m[string(id)] = e
	c.mu.Unlock()
	return e
}

// sign returns the signing key for secret and cr's scope, and
// HMAC-SHA256(key, msg) (the signature of a string to sign).
func (c *keyCache) sign(secret string, cr *credentials, sc *scratch, msg []byte) (key, sig [32]byte) {
	e := c.entry(secret, cr, sc)
	m, _ := e.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, e.key[:])
	} else {
		m.Reset()
	}
	m.Write(msg)
	// Summed into the pooled scratch: a slice of a local array passed to
	// an interface method would be moved to the heap.
	copy(sig[:], m.Sum(sc.sum[:0]))
	e.macs.Put(m)
	return e.key, sig
}
