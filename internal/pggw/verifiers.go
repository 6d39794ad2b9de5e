package pggw

import (
	"crypto/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
)

// Each grant's SCRAM verifier is derived once, not at every login.
//
// Deriving one was PBKDF2 with 4096 iterations, about 0.9 ms of CPU here
// (one iteration now: scram.go). Deriving it per login, as the gateway did, made every connection pay it.
// It also let a client with no credential make the gateway pay it at
// will: a proof of zeros costs the client nothing. A flood of such
// attempts, even within the startup cap, kept the cores busy, and every
// working session with them. PostgreSQL stores the verifier per role and
// never runs PBKDF2 at login (the client does). The gateway now does the
// same per grant:
//   - at activation, in the grant's watcher, for the grants of its own
//     targets, so a login never waits for it;
//   - at first use for any other grant (a credential presented at the
//     wrong gateway, which is then refused by name once its holder has
//     proved the secret), kept while the grant lives.
// An unknown name gets a mock verifier from a per-process key: two HMACs,
// the same salt every time, like a real grant.

// maxLazyVerifiers bounds the verifiers kept for grants this gateway does
// not serve; past it, ended grants' are dropped, and if that is not
// enough a new one is derived without being kept.
const maxLazyVerifiers = 1024

// verifiers holds the gateway's SCRAM verifiers by grant ID.
type verifiers struct {
	mock    [32]byte     // key of the mock verifiers of unknown names
	derived atomic.Int64 // verifiers derived (PBKDF2 runs), for tests

	mu   sync.Mutex
	m    map[string]*verifierSlot
	lazy int // slots made at first use (not by prepare)
}

type verifierSlot struct {
	gr   *gateway.Grant
	lazy bool
	once sync.Once
	v    *scramVerifier
	err  error
}

func newVerifiers() *verifiers {
	vs := &verifiers{m: map[string]*verifierSlot{}}
	if _, err := rand.Read(vs.mock[:]); err != nil {
		panic("pggw: no randomness for the mock SCRAM key: " + err.Error())
	}
	return vs
}

func (vs *verifiers) get(sl *verifierSlot) (*scramVerifier, error) {
	sl.once.Do(func() {
		vs.derived.Add(1)
		sl.v, sl.err = newSCRAMVerifier(sl.gr.Secret)
	})
	return sl.v, sl.err
}

// prepare derives gr's verifier now and keeps it until drop: called by the
// watcher of a grant of this gateway's targets.
func (vs *verifiers) prepare(gr *gateway.Grant) {
	vs.mu.Lock()
	sl, ok := vs.m[gr.ID]
	switch {
	case ok && sl.gr == gr && sl.lazy:
		sl.lazy = false
		vs.lazy--
	case !ok || sl.gr != gr:
		if ok && sl.lazy {
			vs.lazy--
		}
		sl = &verifierSlot{gr: gr}
		vs.m[gr.ID] = sl
	}
	vs.mu.Unlock()
	_, _ = vs.get(sl) // an error is seen again, and reported, at login
}

// drop forgets gr's verifier (the grant ended).
func (vs *verifiers) drop(gr *gateway.Grant) {
	vs.mu.Lock()
	if sl, ok := vs.m[gr.ID]; ok && sl.gr == gr {
		delete(vs.m, gr.ID)
		if sl.lazy {
			vs.lazy--
		}
	}
	vs.mu.Unlock()
}

// forLogin returns the verifier to check a login as user against: gr's
// (deriving it if no one has yet), or, for no grant, user's mock verifier.
func (vs *verifiers) forLogin(user string, gr *gateway.Grant) (v *scramVerifier, known bool, err error) {
	if gr == nil {
		return mockSCRAMVerifier(vs.mock[:], user), false, nil
	}
	vs.mu.Lock()
	sl, ok := vs.m[gr.ID]
	if ok && sl.gr != gr {
		ok = false // a grant object the Authority replaced: derive again
	}
	if !ok {
		sl = &verifierSlot{gr: gr, lazy: true}
		if vs.lazy >= maxLazyVerifiers {
			vs.sweepLocked(time.Now())
		}
		if vs.lazy < maxLazyVerifiers {
			if old, had := vs.m[gr.ID]; had && old.lazy {
				vs.lazy--
			}
			vs.m[gr.ID] = sl
			vs.lazy++
		}
	}
	vs.mu.Unlock()
	v, err = vs.get(sl)
	return v, true, err
}

// sweepLocked drops the lazily made verifiers of grants that have ended.
func (vs *verifiers) sweepLocked(now time.Time) {
	for id, sl := range vs.m {
		if sl.lazy && !sl.gr.Live(now) {
			delete(vs.m, id)
			vs.lazy--
		}
	}
}

// has reports whether gr's verifier is kept.
func (vs *verifiers) has(gr *gateway.Grant) bool {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	sl, ok := vs.m[gr.ID]
	return ok && sl.gr == gr
}
