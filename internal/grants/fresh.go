package grants

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// Reads that see every replica's sessions. A session's stored summary is
// written lazily by the replica whose gateway serves it (sessions.go), so
// on a shared store a read on one replica would miss the calls another
// has not written yet, and the review query and audit verify would answer
// differently from replica to replica. Before such a read, freshReplicas
// asks every live replica (store.FlushRequester.LiveReplicas) to log its
// queued results and write its pending summaries, with a notice on the
// shared change channel (store.FlushNotice + a request id); each replica
// does, then acknowledges (store.FlushedNotice + the id, with its own id
// as origin). The read waits for every acknowledgement, at most
// freshWait: a replica that does not answer in time (it is dying, or its
// listener is down and it will be swept) is named in a warning, and the
// read goes on with what is stored. A replica that starts after the list
// was read has no calls from before the read began.

// freshWait bounds how long a read waits for the other replicas.
const freshWait = 3 * time.Second

// freshReqs holds the requests this replica waits on and the requests it
// has been asked to serve.
type freshReqs struct {
	mu      sync.Mutex
	waiting map[string]*freshWaiter // request id → its waiter
	asked   []string                // requests to acknowledge after the next flush
	running bool                    // a flush for asked is under way
}

type freshWaiter struct {
	missing map[string]bool // replicas yet to acknowledge
	done    chan struct{}   // closed when missing empties
}

// freshReplicas has every other live replica write its pending session
// summaries, and waits for them (bounded by freshWait). It does nothing
// for a single process.
func (s *Service) freshReplicas(ctx context.Context) {
	fr, ok := s.st.(store.FlushRequester)
	if !ok || s.rep.notifier == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, freshWait)
	defer cancel()
	live, err := fr.LiveReplicas(ctx)
	if err != nil {
		s.logger.Warn("other replicas' newest session summaries may be missing from this read", "err", err)
		return
	}
	w := &freshWaiter{missing: map[string]bool{}, done: make(chan struct{})}
	for _, id := range live {
		if id != s.rep.id {
			w.missing[id] = true
		}
	}
	if len(w.missing) == 0 {
		return
	}
	req := newID("f_")
	s.fresh.mu.Lock()
	if s.fresh.waiting == nil {
		s.fresh.waiting = map[string]*freshWaiter{}
	}
	s.fresh.waiting[req] = w
	s.fresh.mu.Unlock()
	defer func() {
		s.fresh.mu.Lock()
		delete(s.fresh.waiting, req)
		s.fresh.mu.Unlock()
	}()
	if err := fr.NotifyNow(ctx, store.FlushNotice+req, s.rep.id); err != nil {
		s.logger.Warn("other replicas' newest session summaries may be missing from this read", "err", err)
		return
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		s.fresh.mu.Lock()
		var missing []string
		for id := range w.missing {
			missing = append(missing, id)
		}
		s.fresh.mu.Unlock()
		slices.Sort(missing)
		s.logger.Warn("replicas did not write their session summaries in time; their newest calls may be missing from this read",
			"replicas", strings.Join(missing, ","), "waited", freshWait)
	}
}

// freshNotice handles a flush request or acknowledgement from replica
// origin (not this one); it reports whether id was one.
func (s *Service) freshNotice(id, origin string) bool {
	if req, ok := strings.CutPrefix(id, store.FlushedNotice); ok {
		s.fresh.mu.Lock()
		if w := s.fresh.waiting[req]; w != nil && w.missing[origin] {
			delete(w.missing, origin)
			if len(w.missing) == 0 {
				close(w.done)
			}
		}
		s.fresh.mu.Unlock()
		return true
	}
	req, ok := strings.CutPrefix(id, store.FlushNotice)
	if !ok {
		return false
	}
	// Requests that arrive while a flush runs are served by the next one
	// (which starts after they arrived); at most maxAsked wait, beyond
	// which a request goes unanswered and its reader times out.
	const maxAsked = 256
	s.fresh.mu.Lock()
	defer s.fresh.mu.Unlock()
	if len(s.fresh.asked) < maxAsked {
		s.fresh.asked = append(s.fresh.asked, req)
	}
	if !s.fresh.running {
		s.fresh.running = true
		s.rep.syncs.Add(1) // stopListening waits for it
		go func() {
			defer s.rep.syncs.Done()
			s.serveFresh()
		}()
	}
	return true
}

// serveFresh writes this replica's pending session summaries and
// acknowledges the requests that were waiting when it began, until none
// is left.
func (s *Service) serveFresh() {
	fr, ok := s.st.(store.FlushRequester)
	for {
		s.fresh.mu.Lock()
		reqs := s.fresh.asked
		s.fresh.asked = nil
		if len(reqs) == 0 || !ok {
			s.fresh.running = false
			s.fresh.mu.Unlock()
			return
		}
		s.fresh.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), freshWait)
		err := s.rec.Flush(ctx)
		if err != nil {
			// No acknowledgement: the reader must not take this
			// replica's rows for current.
			s.logger.Warn("another replica asked for this replica's session summaries, which cannot be written now", "err", err)
		} else {
			for _, req := range reqs {
				if err := fr.NotifyNow(ctx, store.FlushedNotice+req, s.rep.id); err != nil {
					s.logger.Warn("acknowledging a request for session summaries", "err", err)
					break
				}
			}
		}
		cancel()
	}
}
