package awsgw

import (
	"context"
	"errors"
	"net/http"
	"time"

	"sync"

	"github.com/airlock-dev/airlock/internal/findings"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/s3err"
)

// Bounds on waiting at a session's end.
const (
	// drainTimeout is how long a session's end waits for cut calls to
	// record their results, so that they land before session.ended.
	drainTimeout = 10 * time.Second
	// recordTimeout bounds a record written on the gateway's own behalf
	// (session start and end, results) after the client has gone.
	recordTimeout = 15 * time.Second
)

// session is one grant's recorded traffic through this gateway.
type session struct {
	gr    *gateway.Grant
	key   sessionKey    // in Gateway.sessions
	ready chan struct{} // closed once rec or err is set
	rec   *gateway.Session
	err   error

	// ctx is cancelled, with the reason as its cause, when the grant ends
	// or the gateway closes; every call's upstream request derives from it.
	ctx    context.Context
	cancel context.CancelCauseFunc

	// resCtx bounds the writing of result records. It is shared by the
	// session's results and replaced once less than half of recordTimeout
	// is left, so each record gets at least recordTimeout/2 without a
	// timer of its own.
	resMu       sync.Mutex
	resCtx      context.Context
	resCancel   context.CancelFunc
	resDeadline time.Time

	mu       sync.Mutex
	inflight int
	ended    bool
	idle     chan struct{} // closed when ended and nothing is in flight
	// calls are the S3 calls in flight (holdCall), which watch cuts when
	// the session ends.
	calls map[*exchange]struct{}
}

// holdCall has x cut when s ends; false if s has ended already (the
// caller then cuts x itself).
func (s *session) holdCall(x *exchange) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	if s.calls == nil {
		s.calls = make(map[*exchange]struct{})
	}
	s.calls[x] = struct{}{}
	return true
}

// releaseCall undoes holdCall once x is over.
func (s *session) releaseCall(x *exchange) {
	s.mu.Lock()
	delete(s.calls, x)
	s.mu.Unlock()
}

// errGrantGone means the session ended between authentication and the call.
var errGrantGone = errors.New("grant ended")

// session returns gr's session, starting it if this is the grant's first
// call, and counts the call as in flight: the caller must call s.done().
// client describes the peer; it is called only when a session starts.
// sessionKey is a session's key in Gateway.sessions: a grant, the IP
// address its calls come from and the fingerprint of the TLS client
// certificate they present, if any (findings.TLSClient).
type sessionKey struct{ grant, ip, tls string }

func (g *Gateway) session(gr *gateway.Grant, r *http.Request, client func() string) (*session, error) {
	// One session per grant and client address: a call from another
	// address starts its own session, so that the control plane sees
	// every address a grant's credentials are used from (findings); so
	// does a call presenting another client certificate (or one where the
	// others presented none), which is another instance at that address.
	// The key is the address of the connection (what findings.IPOf takes
	// from client() too), built as a struct outside the lock: no string is
	// formatted on every call while every call waits on g.mu. A call with
	// no certificate hashes nothing.
	key := sessionKey{grant: gr.ID, ip: findings.IPOf(r.RemoteAddr), tls: findings.TLSClient(r.TLS)}
	for range 2 { // a second try if we raced with the session's end
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			return nil, errClosing
		}
		s := g.sessions[key]
		first := s == nil
		if first {
			s = &session{gr: gr, key: key, ready: make(chan struct{}), idle: make(chan struct{})}
			g.sessions[key] = s
		}
		g.mu.Unlock()
		if first {
			g.start(s, client())
		} else {
			<-s.ready
		}
		if s.err != nil {
			return nil, s.err
		}
		if s.begin() {
			return s, nil
		}
	}
	return nil, errGrantGone
}

// start opens the recorded session and arms its end.
func (g *Gateway) start(s *session, client string) {
	defer close(s.ready)
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	rec, err := g.auth.StartSession(gateway.WithTLSClient(ctx, s.key.tls), s.gr, client)
	if err != nil {
		s.err = err
		g.drop(s)
		return
	}
	s.rec = rec
	s.ctx, s.cancel = context.WithCancelCause(g.base)
	// Close sets closed under g.mu before it waits, so this Add either
	// happens before that Wait or is skipped.
	g.mu.Lock()
	closed := g.closed
	if !closed {
		g.watchers.Add(1)
	}
	g.mu.Unlock()
	if closed {
		s.cancel(errClosing)
		s.err = errClosing
		g.drop(s)
		if err := rec.End(ctx); err != nil {
			g.log.Error("awsgw: recording the end of a session failed", "grant", s.gr.ID, "session", rec.ID, "err", err)
		}
		return
	}
	go g.watch(s)
}

// watch ends s when its grant ends, its expiry passes (should the control
// plane's own timer be late) or the gateway closes.
func (g *Gateway) watch(s *session) {
	defer g.watchers.Done()
	expired := make(chan struct{})
	timer := g.clock.AfterFunc(s.gr.ExpiresAt.Sub(g.now()), func() { close(expired) })
	defer timer.Stop()
	var cause error
	select {
	case <-s.gr.Done():
		cause = endedError(s.gr, g.now())
	case <-expired:
		cause = expiredError(s.gr)
	case <-s.ctx.Done():
		cause = context.Cause(s.ctx)
	}
	s.cancel(cause)

	s.mu.Lock()
	s.ended = true
	if s.inflight == 0 {
		close(s.idle)
	}
	held := make([]*exchange, 0, len(s.calls))
	for x := range s.calls {
		held = append(held, x)
	}
	s.calls = nil
	s.mu.Unlock()
	// The calls in flight are cut now: their upstream requests, and their
	// clients' sides (after holdCall, a call of an ended session is cut
	// by its own handler).
	cause = context.Cause(s.ctx)
	for _, x := range held {
		x.sessionEnded(cause)
	}
	select {
	case <-s.idle:
		s.releaseResultContext()
	case <-time.After(drainTimeout):
		g.log.Error("awsgw: calls still in flight at the end of a session", "grant", s.gr.ID, "session", s.rec.ID)
	}

	g.drop(s)
	if t := g.targets[s.gr.Target]; t != nil {
		t.forget(s.gr.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	if err := s.rec.End(ctx); err != nil {
		g.log.Error("awsgw: recording the end of a session failed", "grant", s.gr.ID, "session", s.rec.ID, "err", err)
	}
}

// resultContext is the context a result record is written under.
func (s *session) resultContext() context.Context {
	s.resMu.Lock()
	defer s.resMu.Unlock()
	now := time.Now()
	if s.resCtx == nil || s.resDeadline.Sub(now) < recordTimeout/2 || s.resCtx.Err() != nil {
		// The previous context is left to expire: records may still be
		// using it.
		s.resDeadline = now.Add(recordTimeout)
		s.resCtx, s.resCancel = context.WithDeadline(context.Background(), s.resDeadline)
	}
	return s.resCtx
}

// releaseResultContext stops the current result context's timer once the
// session's calls are done.
func (s *session) releaseResultContext() {
	s.resMu.Lock()
	defer s.resMu.Unlock()
	if s.resCancel != nil {
		s.resCancel()
		s.resCtx, s.resCancel = nil, nil
	}
}

// begin counts a call in flight; false once the session has ended.
func (s *session) begin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return false
	}
	s.inflight++
	return true
}

func (s *session) done() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight--
	if s.inflight == 0 && s.ended {
		close(s.idle)
	}
}

// endedError is what a caller holding gr's secret is told once gr ended.
func endedError(gr *gateway.Grant, now time.Time) *s3err.Error {
	switch r := gr.EndReason(); r {
	case "":
		if now.Before(gr.ExpiresAt) { // the control plane is ending it right now
			return s3err.New(s3err.AccessDenied, "grant %s is no longer active", gr.ID)
		}
		return expiredError(gr)
	case "expired":
		return expiredError(gr)
	case "revoked":
		return s3err.New(s3err.AccessDenied, "grant %s was revoked", gr.ID)
	default:
		return s3err.New(s3err.AccessDenied, "grant %s has ended (%s)", gr.ID, r)
	}
}

func expiredError(gr *gateway.Grant) *s3err.Error {
	return s3err.New(s3err.ExpiredToken, "The provided token has expired: grant %s expired at %s", gr.ID, gr.ExpiresAt.UTC().Format(time.RFC3339))
}

// drop forgets s, unless a newer session has replaced it.
func (g *Gateway) drop(s *session) {
	g.mu.Lock()
	if g.sessions[s.key] == s {
		delete(g.sessions, s.key)
	}
	g.mu.Unlock()
}
