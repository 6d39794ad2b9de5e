package grants

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// Bounds of a page of the approver's queue (Pending).
const (
	// DefaultPendingPage is the requests a page holds when the caller
	// names no limit.
	DefaultPendingPage = 100
	// MaxPendingPage is the most a caller may ask for in one page. Each
	// identity may hold MaxPendingPerIdentity requests, but the queue is
	// every agent's: the whole of it in one answer grew the server's
	// memory, the answer and the client's without bound.
	MaxPendingPage = 1000
	// PendingScan bounds the pending requests one page reads, whatever it
	// keeps: a person sees only the requests an approve policy lets them
	// decide, and a page of a few of those among many others' would
	// otherwise read every pending request. A page that stops there holds
	// fewer than its limit (possibly none) and a cursor to go on from.
	PendingScan = 10 * MaxPendingPage
)

// SetPendingScan changes the bound on the pending requests a page of the
// queue reads (PendingScan unless set), for a test that needs a page to
// stop there without writing thousands of requests.
func (s *Service) SetPendingScan(n int) { s.pendingScan.Store(int64(max(n, 1))) }

// PendingQuery selects a page of the approver's queue.
type PendingQuery struct {
	// After is the cursor: the Next of the page before, "" for the first.
	After string
	// Limit is the most requests the page holds: 1 to MaxPendingPage,
	// DefaultPendingPage if 0, MaxPendingPage if more.
	Limit int
}

// PendingPage is one page of the approver's queue.
type PendingPage struct {
	Grants []model.Grant
	// Next is the cursor of the next page (PendingQuery.After), "" when
	// no request the caller may decide follows.
	Next string
}

// Pending answers a page of the requests the caller may decide: pending,
// not the caller's own, and permitted by an approve policy; oldest first
// (RequestedAt, then ID), those closest to their deadline. Which requests
// a person may decide is the policies' answer, not a column, so the store
// is read through the cursor in batches and each request checked here;
// every page checks again under the policies in force then. A page costs
// at most its limit (and a batch) in memory and PendingScan requests in
// reading, however long the queue.
//
// The cursor names the caller (the view it was written for), and another
// caller's is refused. It may name a request the caller cannot decide
// (where a page stopped at PendingScan): that says no more than GET
// /v1/grants, which lists every grant to every person.
func (s *Service) Pending(ctx context.Context, caller model.Identity, q PendingQuery) (PendingPage, error) {
	if caller.Kind != model.Human {
		return PendingPage{}, apierr.Forbidden("", "only people approve grants")
	}
	limit := pageLimit(q.Limit, DefaultPendingPage, MaxPendingPage)
	tag := pendingTag(caller)
	var after store.GrantKey
	if q.After != "" {
		at, id, err := decodeCursor(q.After, pendingCursorVersion, tag)
		if err != nil {
			return PendingPage{}, err
		}
		after = store.GrantKey{RequestedAt: at, ID: id}
	}
	page := PendingPage{Grants: []model.Grant{}}
	// The first batch is the page and one more (whether a next page
	// exists is known without a last, empty one); later ones, needed only
	// when the caller may decide few of those read, grow to the most a
	// page holds, so a small limit does not take thousands of reads.
	batch := limit + 1
	scan := int(s.pendingScan.Load())
	for scanned := 0; scanned < scan; {
		n := min(batch, scan-scanned)
		gs, err := s.st.Grants(ctx, store.GrantFilter{Status: []model.GrantStatus{model.Pending}, After: after, Limit: n})
		if err != nil {
			return PendingPage{}, err
		}
		scanned += len(gs)
		for _, g := range gs {
			if _, _, err := s.mayDecide(caller, g, "approve"); err == nil {
				if len(page.Grants) == limit {
					last := page.Grants[limit-1]
					page.Next = pendingCursor(store.GrantKey{RequestedAt: last.RequestedAt, ID: last.ID}, tag)
					return page, nil
				}
				page.Grants = append(page.Grants, g)
			}
			after = store.GrantKey{RequestedAt: g.RequestedAt, ID: g.ID}
		}
		if len(gs) < n {
			return page, nil // no pending request follows
		}
		batch = min(2*batch, MaxPendingPage+1)
	}
	page.Next = pendingCursor(after, tag)
	return page, nil
}

// EachPending answers the whole of the caller's queue a page at a time,
// handing each page to fn as it is read.
func (s *Service) EachPending(ctx context.Context, caller model.Identity, fn func([]model.Grant) error) error {
	return eachPage(func(after string) ([]model.Grant, string, error) {
		page, err := s.Pending(ctx, caller, PendingQuery{After: after, Limit: MaxPendingPage})
		return page.Grants, page.Next, err
	}, fn)
}

// pendingCursorVersion marks a cursor of the approver's queue (the
// encoding is the review's: encodeCursor).
const pendingCursorVersion = "p1"

func pendingCursor(k store.GrantKey, tag string) string {
	return encodeCursor(pendingCursorVersion, k.RequestedAt, tag, k.ID)
}

// pendingTag names the caller's queue: which requests a page keeps is the
// caller's to decide, so a cursor is good for its caller alone. The first
// 8 bytes of a SHA-256 of the name, as filterTag.
func pendingTag(caller model.Identity) string {
	h := sha256.New()
	h.Write([]byte("pending:" + strconv.Itoa(len(caller.Name)) + ":" + caller.Name))
	return hex.EncodeToString(h.Sum(nil)[:8])
}
