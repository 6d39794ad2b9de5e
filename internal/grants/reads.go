package grants

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"slices"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// An agent sees only its own grants and sessions; a person sees all. Another
// agent's grant answers "not found" so ids cannot be probed.

// Get returns one grant the caller may see.
// Its record is proven against the log on every call (grantproof.go).
func (s *Service) Get(ctx context.Context, caller model.Identity, id string) (model.Grant, error) {
	g, err := s.visibleGrant(ctx, caller, id)
	if err != nil {
		return g, err
	}
	gs := []model.Grant{g}
	err = s.proveGrants(ctx, gs)
	return gs[0], err
}

// visibleGrant is Get without the proof: the grant's row, after
// freshSessions.
func (s *Service) visibleGrant(ctx context.Context, caller model.Identity, id string) (model.Grant, error) {
	s.freshSessions(ctx)
	g, err := s.st.Grant(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !canSee(caller, g.Identity)) {
		return model.Grant{}, apierr.NotFound("no grant %s", apierr.Quote(id))
	}
	return g, err
}

// freshSessions writes pending session summaries before a read (this
// replica's, then every other live replica's: fresh.go), and waits
// for the store to hold every log entry committed so far (the log's journal
// copies them in the background), so that usage, sessions and their entries
// include every call recorded before the read began. If the log cannot be
// written the read goes on with what is stored: reviewing must not depend
// on the log taking writes.
func (s *Service) freshSessions(ctx context.Context) {
	if err := s.rec.Flush(ctx); err != nil {
		s.logger.Warn("session results or summaries may be missing from this read", "err", err)
	}
	s.freshReplicas(ctx)
	if err := s.log.Sync(ctx); err != nil {
		s.logger.Warn("the log's newest entries may be missing from this read", "err", err)
	}
}

func canSee(caller model.Identity, holder string) bool {
	return caller.Kind == model.Human || caller.Name == holder
}

// Wait returns the grant once it is no longer pending, or when max passes
// or ctx ends (returning the grant as it is then, still pending), or fails
// with a 503 when the server stops (StopWaits). A grant that does not
// exist, or that the caller may not see, is a 404 at once; a caller with
// too many waits open, or too many open in total, is refused with a 429
// (see waiters).
func (s *Service) Wait(ctx context.Context, caller model.Identity, id string, max time.Duration) (model.Grant, error) {
	g, err := s.Get(ctx, caller, id)
	if err != nil || g.Status != model.Pending {
		return g, err
	}
	release, err := s.waits.admit(caller.Name)
	if err != nil {
		return model.Grant{}, err
	}
	defer release()
	timeout, cancel := context.WithTimeout(ctx, max)
	defer cancel()
	for {
		ch, unwatch := s.waits.watch(id) // before reading, so no change is missed
		// Read with ctx, not timeout: the wait ending mid-read must return
		// the grant as it is, not a failed read. If the caller goes away
		// mid-read, the grant as last read is the answer, as for a wait
		// that ends in the select below.
		last := g
		g, err = s.Get(ctx, caller, id)
		if err != nil && ctx.Err() != nil {
			unwatch()
			return last, nil
		}
		if err != nil || g.Status != model.Pending {
			unwatch()
			return g, err
		}
		select {
		case <-ch:
			unwatch()
		case <-timeout.Done():
			unwatch()
			return g, nil
		case <-s.waits.stopped:
			unwatch()
			return model.Grant{}, ErrStopping
		}
	}
}

// Bounds of a page of a session's events (Session).
const (
	// DefaultEventsPage is the events a page holds when the caller names
	// no limit.
	DefaultEventsPage = 1000
	// MaxEventsPage is the most a caller may ask for in one page. A
	// PostgreSQL session of an agent holding a long grant records an
	// event per statement, millions of them: the whole recording in one
	// answer read hundreds of megabytes into the server's memory, and a
	// reviewer's click could exhaust it.
	MaxEventsPage = 5000
)

// EventsQuery selects a page of a session's events.
type EventsQuery struct {
	// After is the cursor: the page starts after the log entry of this
	// sequence number (SessionPage.Next of the page before); 0 from the
	// start.
	After int64
	// Limit is the most events the page holds: 1 to MaxEventsPage,
	// DefaultEventsPage if 0, MaxEventsPage if more.
	Limit int
}

// SessionPage is a session's record and one page of its log entries.
type SessionPage struct {
	Session model.Session
	Entries []store.LogEntry
	// Void are the sequence numbers of the entries of the page that a
	// log.refused entry names, in order: their callers were told they
	// failed, and the record does not count them.
	Void []int64
	// Next is the cursor of the next page (EventsQuery.After), or 0 when
	// no entry of the session follows.
	Next int64
}

// Session returns a session's record (proven against the log on every
// page, as each answer shows it) and a page of its log entries in log
// order: at most q's limit of them are read, whatever the session holds.
// The first page derives the grant's whole log; the next ones continue
// that derivation, and check their entries against it (sessionproof.go).
func (s *Service) Session(ctx context.Context, caller model.Identity, id string, q EventsQuery) (SessionPage, error) {
	s.freshSessions(ctx)
	ses, err := s.st.Session(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !canSee(caller, ses.Identity)) {
		return SessionPage{}, apierr.NotFound("no session %s", apierr.Quote(id))
	}
	if err != nil {
		return SessionPage{}, err
	}
	limit := pageLimit(q.Limit, DefaultEventsPage, MaxEventsPage)
	after := max(q.After, 0)
	var changed []string
	if p, ok := s.proofs.get(id, ses.GrantID, s.clk.Now()); ok {
		page, ok, stale, err := s.provenPage(ctx, p, ses, after, limit)
		if err != nil || ok {
			return page, err
		}
		// What the proof was derived from is no longer what the log
		// holds: prove this page from the whole log, saying so (unless
		// a log.refused entry voids an entry it counted).
		s.proofs.drop(p)
		if !stale {
			changed = []string{"log entries of this session differ from those an earlier page read: one was changed, removed, added or moved since (run airlock audit verify)"}
		}
	}
	// One more than the page: whether a next page exists is known
	// without a last, empty one.
	entries, err := s.st.LogEntries(ctx, store.LogFilter{SessionID: id, After: after, Limit: limit + 1})
	if err != nil {
		return SessionPage{Session: ses}, err
	}
	page := SessionPage{Entries: entries}
	if len(entries) > limit {
		page.Entries = entries[:limit]
		page.Next = page.Entries[limit-1].Seq
	}
	// A proof of the session is kept for its next pages (and again
	// after a change, so that it is not derived anew on each of them).
	p := newSessionProof(id, ses.GrantID, s.clk.Now())
	if err := p.dv.read(ctx, s.st, ses.GrantID); err != nil {
		return SessionPage{Session: ses}, err
	}
	p.dv.problems = append(p.dv.problems, changed...)
	page.Void = p.dv.voidIn(page.Entries)
	if page.Next != 0 || changed != nil {
		s.proofs.put(p, p.dv.d.SessionCount(), s.clk.Now())
	}
	ses.LogMismatch = sessionMismatch(p.dv.d, p.dv.problems, ses, ses.GrantID)
	page.Session = ses
	return page, nil
}

// provenPage is Session's page read with proof p kept from a page before;
// ok is false if the log no longer holds what p was derived from, or
// (stale) a log.refused entry appended since voids an entry it counted.
func (s *Service) provenPage(ctx context.Context, p *sessionProof, ses model.Session, after int64, limit int) (page SessionPage, ok, stale bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	page.Entries, page.Next, ok, err = p.page(ctx, s.st, after, limit)
	if err != nil || !ok {
		return SessionPage{Session: ses}, ok, p.dv.stale, err
	}
	ses.LogMismatch = sessionMismatch(p.dv.d, p.dv.problems, ses, p.grant)
	page.Session = ses
	page.Void = p.dv.voidIn(page.Entries)
	s.proofs.put(p, p.dv.d.SessionCount(), s.clk.Now())
	return page, true, false, nil
}

// Bounds of a page of a grant's sessions (GrantSessions).
const (
	// DefaultSessionsPage is the sessions a page holds when the caller
	// names no limit.
	DefaultSessionsPage = 100
	// MaxSessionsPage is the most a caller may ask for in one page. A
	// grant whose client opens a connection per statement holds hundreds
	// of thousands of sessions, and all of them were one answer.
	MaxSessionsPage = 1000
)

// SessionsQuery selects a page of a grant's sessions.
type SessionsQuery struct {
	// After is the cursor: the Next of the page before, "" for the first.
	After string
	// Limit is the most sessions the page holds: 1 to MaxSessionsPage,
	// DefaultSessionsPage if 0, MaxSessionsPage if more.
	Limit int
}

// SessionsPage is one page of a grant's sessions.
type SessionsPage struct {
	Sessions []model.Session
	// Next is the cursor of the next page (SessionsQuery.After), "" when
	// no session follows.
	Next string
}

// GrantSessions returns a page of the sessions of a grant the caller may
// see, in the order their starts were stored (sessionsInLogOrder: both
// stores), or, on a store that does not keep that order, in the order
// they started (then by id).
// Every page checks that the caller may see the grant; a cursor names its
// grant, and one of another grant is refused. Each session of the page is
// proven against the log, its entries read again: a page costs its
// sessions' entries (grantproof.go), not the grant's whole log.
func (s *Service) GrantSessions(ctx context.Context, caller model.Identity, id string, q SessionsQuery) (SessionsPage, error) {
	if _, err := s.visibleGrant(ctx, caller, id); err != nil {
		return SessionsPage{}, err
	}
	limit := pageLimit(q.Limit, DefaultSessionsPage, MaxSessionsPage)
	tag := grantTag(id)
	if lo, ok := s.st.(store.SessionLogOrder); ok {
		return s.sessionsInLogOrder(ctx, lo, id, q.After, limit, tag)
	}
	f := store.SessionFilter{GrantID: id, Limit: limit + 1} // one more: is there a next page?
	if q.After != "" {
		at, sid, err := decodeCursor(q.After, sessionsCursorVersion, tag)
		if err != nil {
			return SessionsPage{}, err
		}
		f.After = store.SessionKey{StartedAt: at, ID: sid}
	}
	ss, err := s.st.SessionsPage(ctx, f)
	if err != nil {
		return SessionsPage{}, err
	}
	page := SessionsPage{Sessions: ss}
	if len(ss) > limit {
		page.Sessions = ss[:limit]
		last := page.Sessions[limit-1]
		page.Next = encodeCursor(sessionsCursorVersion, last.StartedAt, tag, last.ID)
	}
	if page.Sessions == nil {
		page.Sessions = []model.Session{}
	}
	return page, s.proveSessions(ctx, id, page.Sessions)
}

// sessionsInLogOrder is GrantSessions on a store that keeps the order
// the sessions' starts were stored in (store.SessionLogOrder): the cursor
// is the log sequence of the last session's start (and its id), not its
// StartedAt, which is its replica's time taken before the start was
// stored: a session another replica (its clock behind, or its start
// stored late), or one process after a step of its clock back, stored
// after a page was read could sort before that page's cursor, and no
// later page held it.
func (s *Service) sessionsInLogOrder(ctx context.Context, lo store.SessionLogOrder, id, after string, limit int, tag string) (SessionsPage, error) {
	var afterSeq int64
	var afterID string
	if after != "" {
		at, sid, err := decodeCursor(after, sessionsSeqCursorVersion, tag)
		if err != nil {
			return SessionsPage{}, err
		}
		afterSeq, afterID = at.UnixNano(), sid
	}
	ss, seqs, err := lo.SessionsInLogOrder(ctx, id, afterSeq, afterID, limit+1) // one more: is there a next page?
	if err != nil {
		return SessionsPage{}, err
	}
	page := SessionsPage{Sessions: ss}
	if len(ss) > limit {
		page.Sessions = ss[:limit]
		// The sequence rides in the cursor's time field: the same
		// encoding, another version.
		page.Next = encodeCursor(sessionsSeqCursorVersion, time.Unix(0, seqs[limit-1]), tag, ss[limit-1].ID)
	}
	if page.Sessions == nil {
		page.Sessions = []model.Session{}
	}
	return page, s.proveSessions(ctx, id, page.Sessions)
}

// grantTag names the grant a cursor of its sessions belongs to.
func grantTag(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:8])
}

// HistoryPage is one page of a grant's log entries.
type HistoryPage struct {
	Entries []store.LogEntry
	// Void are the sequence numbers of the entries of the page that a
	// log.refused entry names (SessionPage.Void).
	Void []int64
	// Next is the cursor of the next page (EventsQuery.After), or 0 when
	// no entry of the grant follows.
	Next int64
	// LogMismatch lists the problems proving the page met: entries that
	// are not as the log holds them, or that differ from those an
	// earlier read of the grant read.
	LogMismatch []string
}

// History returns a page of a grant's log entries in log order, for
// `airlock grant show`: at most q's limit of them, whatever the grant
// holds (a grant of a long session holds millions, and all of them were
// one answer). The page is proven as a page of a session's events is: with
// the derivation of the grant's log kept by the read before (the grant's
// Get, or the page before: grantproof.go), each entry read is checked
// against a hash chain over all the grant's entries, so a page costs the
// page, at most 2*proofMarkEvery entries more, the grant's first entry and
// those appended since (not the grant's own entries, which the page does
// not show unless it holds them: a grant of commands scattered among its
// calls has thousands); without one the grant's whole log is derived.
func (s *Service) History(ctx context.Context, caller model.Identity, id string, q EventsQuery) (HistoryPage, error) {
	if _, err := s.visibleGrant(ctx, caller, id); err != nil { // syncs the log
		return HistoryPage{}, err
	}
	limit := pageLimit(q.Limit, DefaultEventsPage, MaxEventsPage)
	after := max(q.After, 0)
	var changed []string
	if p, ok := s.grantProofs.get(id, id, s.clk.Now()); ok {
		page, ok, stale, err := s.provenHistory(ctx, p, after, limit)
		if err != nil || ok {
			return page, err
		}
		// What the proof was derived from is no longer what the log
		// holds: prove this page from the whole log, saying so (unless
		// a log.refused entry voids an entry it counted).
		s.grantProofs.drop(p)
		if !stale {
			changed = []string{grantDiffer}
		}
	}
	entries, err := s.st.LogEntries(ctx, store.LogFilter{GrantID: id, After: after, Limit: limit + 1}) // one more: is there a next page?
	if err != nil {
		return HistoryPage{}, err
	}
	page := HistoryPage{Entries: entries}
	if len(entries) > limit {
		page.Entries = entries[:limit]
		page.Next = page.Entries[limit-1].Seq
	}
	p := newGrantProof(id, s.clk.Now())
	if err := p.dv.read(ctx, s.st, id); err != nil {
		return HistoryPage{}, err
	}
	p.dv.problems = append(p.dv.problems, changed...)
	page.LogMismatch = slices.Clone(p.dv.problems)
	page.Void = p.dv.voidIn(page.Entries)
	s.keepGrantProof(p, changed != nil)
	return page, nil
}

// provenHistory is History's page read with proof p kept from a read
// before; ok is false if the log no longer holds what p was derived from,
// or (stale) a log.refused entry appended since voids an entry it counted.
func (s *Service) provenHistory(ctx context.Context, p *grantProof, after int64, limit int) (page HistoryPage, ok, stale bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ok, err := p.check(ctx, s.st, false, nil); err != nil || !ok {
		return HistoryPage{}, false, p.dv.stale, err
	}
	page.Entries, page.Next, ok, err = p.all.page(ctx, s.st, store.LogFilter{GrantID: p.grant}, after, limit)
	if err != nil || !ok {
		return HistoryPage{}, ok, false, err
	}
	page.LogMismatch = slices.Clone(p.dv.problems)
	page.Void = p.dv.voidIn(page.Entries)
	s.keepGrantProof(p, false)
	return page, true, false, nil
}
