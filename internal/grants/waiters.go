package grants

import (
	"sync"

	"github.com/airlock-dev/airlock/internal/apierr"
)

// Long polls (GET /v1/grants/{id}?wait=…) hold a goroutine, a connection
// and a wake-up channel each. They are bounded: a caller may wait only on a
// grant that exists and that it may see (anything else is a 404 at once,
// and leaves nothing behind), at most MaxWaitersPerIdentity at a time per
// identity and MaxWaiters in total; beyond that the wait is refused with a
// 429. The channel of a grant is dropped when its last waiter leaves, so
// waits that time out do not accumulate.

// Default bounds on open long polls.
const (
	DefaultMaxWaiters            = 4096
	DefaultMaxWaitersPerIdentity = 32
)

// waiters are the open long polls and the channels that wake them.
type waiters struct {
	mu       sync.Mutex
	byGrant  map[string]*watch
	byCaller map[string]int
	total    int
	max      int
	maxPer   int
	// stopped is closed by Service.StopWaits: the server is stopping.
	stopped  chan struct{}
	stopOnce sync.Once
}

// watch is the channel closed at grant id's next change, and how many
// waiters hold it.
type watch struct {
	ch chan struct{}
	n  int
}

func newWaiters(max, maxPer int) *waiters {
	if max <= 0 {
		max = DefaultMaxWaiters
	}
	if maxPer <= 0 {
		maxPer = DefaultMaxWaitersPerIdentity
	}
	return &waiters{byGrant: map[string]*watch{}, byCaller: map[string]int{}, max: max, maxPer: maxPer, stopped: make(chan struct{})}
}

// admit counts one more waiter for caller, or refuses it; release uncounts it.
func (w *waiters) admit(caller string) (release func(), err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byCaller[caller] >= w.maxPer {
		return nil, apierr.TooMany("%s already has %d waits open; wait on fewer grants at once", caller, w.maxPer)
	}
	if w.total >= w.max {
		return nil, apierr.TooMany("too many waits open (%d); try again shortly", w.max)
	}
	w.byCaller[caller]++
	w.total++
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.total--
			if w.byCaller[caller]--; w.byCaller[caller] <= 0 {
				delete(w.byCaller, caller)
			}
		})
	}, nil
}

// watch returns a channel closed at grant id's next change, and the
// function to call when no longer waiting on it.
func (w *waiters) watch(id string) (<-chan struct{}, func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e := w.byGrant[id]
	if e == nil {
		e = &watch{ch: make(chan struct{})}
		w.byGrant[id] = e
	}
	e.n++
	return e.ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		// notify may have closed and dropped e, and a new watch taken its
		// place: only e's own count is ours to change.
		if e.n--; e.n == 0 && w.byGrant[id] == e {
			delete(w.byGrant, id)
		}
	}
}

// notify wakes everyone waiting for grant id to change.
func (w *waiters) notify(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e := w.byGrant[id]; e != nil {
		close(e.ch)
		delete(w.byGrant, id)
	}
}

// open returns how many grants have waiters and how many waiters there are.
func (w *waiters) open() (grants, total int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.byGrant), w.total
}

// notify wakes everyone waiting for grant id to change.
func (s *Service) notify(id string) { s.waits.notify(id) }

// StopWaits ends every long poll, open or to come, at once with a 503: the
// server is stopping. A wait may last a minute (90 s over /mcp), and a
// stop that let it run held its connection, and the log, open that long.
// A 503 rather than the grant still pending: /mcp's wait, in process,
// would take a pending answer for a wait to make again, and make it at
// once, for as long as the stop let it.
func (s *Service) StopWaits() { s.waits.stopOnce.Do(func() { close(s.waits.stopped) }) }

// ErrStopping is the answer of the long polls StopWaits ends: an expected
// part of a stop, which the API logs as such, not as a failed call.
var ErrStopping = apierr.Unavailable("the server is stopping: the grant is still pending; wait again in a moment (through another replica, or this one once it is back)")

// OpenWaits returns how many grants have long polls waiting on them and how
// many long polls are open, for monitoring and tests.
func (s *Service) OpenWaits() (grants, waiters int) { return s.waits.open() }
