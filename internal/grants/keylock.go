package grants

import "sync"

// keyLocks serialises the changes to one grant, or to one identity, by
// its key: a mutex per key in use, dropped when nobody holds or waits for
// it. (Locks striped by a hash of the key made unrelated grants and
// identities wait for each other: a re-read of every identity after a
// listener reconnection waited behind a request of an unrelated grant
// whose key shared its stripe, and in the replica tests, which hold a
// request or a read at a hook while the listener reconnects, that wait
// lasted until the test gave up, about one run in ten.)
type keyLocks struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int // holders and waiters, under keyLocks.mu
}

// lock takes key's lock and returns its release.
func (k *keyLocks) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[string]*keyLock)
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}
