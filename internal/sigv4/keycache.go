package sigv4

import (
	"crypto/subtle"
	"sync"
)

// keyCache remembers signing keys by access key and scope: deriving one
// costs four HMACs, most of a verification, and a client signs with the
// same key all day. An entry holds the secret it was derived from and is
// used only while Lookup still returns that secret, so a rotated secret is
// never served a stale key.
type keyCache struct {
	mu sync.Mutex
	m  map[string]cachedKey
}

type cachedKey struct {
	secret string
	key    [32]byte
}

// maxCachedKeys bounds the cache; when full it starts over, which is
// cheap and keeps memory flat under a flood of distinct keys.
const maxCachedKeys = 4096

func (c *keyCache) get(secret string, cr *credentials, sc *scratch) [32]byte {
	id := append(sc.id[:0], cr.accessKey...)
	id = append(id, '/')
	id = append(id, cr.scope...)
	sc.id = id
	c.mu.Lock()
	e, ok := c.m[string(id)]
	c.mu.Unlock()
	if ok && subtle.ConstantTimeCompare([]byte(e.secret), []byte(secret)) == 1 {
		return e.key
	}
	k := deriveKey(secret, cr.date, cr.region, cr.service)
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedKeys {
		c.m = make(map[string]cachedKey)
	}
	c.m[string(id)] = cachedKey{secret: secret, key: k}
	c.mu.Unlock()
	return k
}
