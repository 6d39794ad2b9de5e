package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/model"
)

// Sessions are kept in memory, keyed by the SHA-256 of the random id the
// browser holds in its cookie: a dump of the table does not hand out
// usable cookies. A session ends at its absolute lifetime, after an idle
// period, at sign-out, or when the server restarts (people sign in again).

// session is one signed-in person.
type session struct {
	identity string // the identity's name; resolved again on every request
	csrf     string // the per-session token every form carries
	created  time.Time
	seen     time.Time
	via      string // "key" or "sso", for the log line
	// key is the SHA-256 of the API key a "key" sign-in used: replacing a
	// leaked key must also end the sessions opened with it (on another
	// replica, the directory learns of the new key without a restart).
	key string
	// until, if set, ends the session before its lifetime: an SSO
	// sign-in's ends when the ID token that opened it expires. The
	// provider vouched for the person (and their required_groups) that
	// long; someone it has since disabled, or taken out of the groups
	// the console requires, kept the console, and its Approve button,
	// for the whole 8 hours.
	until time.Time
	// signIn is the credential the session was opened with, recorded
	// with every decision made in it: the key's id, or the ID token's
	// issuer and subject.
	signIn model.SignIn
}

// sessions is the table of open sessions, bounded in size.
type sessions struct {
	mu   sync.Mutex
	byID map[[32]byte]*session
	clk  clock.Clock
	ttl  time.Duration // absolute lifetime
	idle time.Duration // ends after this long without a request
	max  int
}

func newSessions(clk clock.Clock, ttl, idle time.Duration, max int) *sessions {
	return &sessions{byID: map[[32]byte]*session{}, clk: clk, ttl: ttl, idle: idle, max: max}
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("console: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func hashID(id string) [32]byte { return sha256.Sum256([]byte(id)) }

// maxPerIdentity bounds one person's open sessions: beyond it their own
// oldest goes. Without it, one person signing in again and again (a
// script, a stolen key) would fill the table and push every other
// person's session out.
const maxPerIdentity = 32

// create opens a session for identity and returns the id for the cookie;
// keySHA is the key's hash for a key sign-in, "" otherwise; until, if not
// zero, ends it early (session.until); signIn is what its decisions
// record (session.signIn). An identity
// with maxPerIdentity sessions loses its oldest. When the table is full,
// expired sessions are dropped first, then the oldest one.
func (s *sessions) create(identity, via, keySHA string, until time.Time, signIn model.SignIn) (string, *session) {
	id := randomToken()
	now := s.clk.Now()
	ses := &session{identity: identity, csrf: randomToken(), created: now, seen: now, via: via, key: strings.ToLower(keySHA), until: until, signIn: signIn}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.countLocked(identity); n >= maxPerIdentity {
		s.dropOldestLocked(identity)
	}
	if len(s.byID) >= s.max {
		s.sweepLocked(now)
	}
	if len(s.byID) >= s.max {
		s.dropOldestLocked("")
	}
	s.byID[hashID(id)] = ses
	return id, ses
}

// countLocked is how many sessions identity holds.
func (s *sessions) countLocked(identity string) int {
	n := 0
	for _, v := range s.byID {
		if v.identity == identity {
			n++
		}
	}
	return n
}

// dropOldestLocked removes the oldest session of identity ("" for any).
func (s *sessions) dropOldestLocked(identity string) {
	var oldest [32]byte
	var t time.Time
	for k, v := range s.byID {
		if (identity == "" || v.identity == identity) && (t.IsZero() || v.created.Before(t)) {
			oldest, t = k, v.created
		}
	}
	if !t.IsZero() {
		delete(s.byID, oldest)
	}
}

func (s *sessions) expired(ses *session, now time.Time) bool {
	return !now.Before(ses.created.Add(s.ttl)) || !now.Before(ses.seen.Add(s.idle)) ||
		(!ses.until.IsZero() && !now.Before(ses.until))
}

func (s *sessions) sweepLocked(now time.Time) {
	for k, v := range s.byID {
		if s.expired(v, now) {
			delete(s.byID, k)
		}
	}
}

// get returns the live session with cookie id, or nil; touch marks it
// used (the queue's background polling does not, so an open tab nobody
// looks at still goes idle). An expired session is removed.
func (s *sessions) get(id string, touch bool) *session {
	if id == "" {
		return nil
	}
	k := hashID(id)
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ses := s.byID[k]
	if ses == nil {
		return nil
	}
	if s.expired(ses, now) {
		delete(s.byID, k)
		return nil
	}
	if touch {
		ses.seen = now
	}
	cp := *ses
	return &cp
}

// drop ends the session with cookie id.
func (s *sessions) drop(id string) { s.dropHashed(hashID(id)) }

// dropHashed ends the session whose cookie id hashes to k (hashID).
func (s *sessions) dropHashed(k [32]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, k)
}

// dropIdentity ends every session of identity (it was disabled or removed).
func (s *sessions) dropIdentity(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.byID {
		if v.identity == name {
			delete(s.byID, k)
		}
	}
}

// tokenOK compares a presented CSRF token with the expected one in
// constant time.
func tokenOK(want, got string) bool {
	if want == "" || got == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}
