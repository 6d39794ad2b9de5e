package server

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// How airlock serve stops on SIGTERM or SIGINT (README, "Stopping"). The
// API and every gateway stop together, not one after the other, so that
// the bounds do not add up:
//
//  1. every listener stops accepting, and long polls on pending grants
//     answer at once with the grant as it is (grants.Service.StopWaits);
//  2. calls in flight get StopGrace to finish, idle connections being
//     closed as soon as they are idle;
//  3. the connections left are then closed (a transfer's is cut, a
//     PostgreSQL session is ended with admin_shutdown), and their handlers
//     get stopCut to return;
//  4. the service and the log close: what the recorder holds is appended,
//     the journal is flushed, and what the journal holds is copied into
//     the store within its own bound (auditlog.Options.CloseCopyTimeout);
//     what does not make it in stays in the journal for the next start.
//     The whole step is bounded by closeBound (Server.Close): a store
//     that does not answer is left behind, as a crash would leave it.
const (
	// StopGrace is how long calls in flight get to finish once a stop
	// begins.
	StopGrace = 5 * time.Second
	// stopCut is how long a listener's handlers get to return once their
	// connections were closed at the end of StopGrace. A handler that
	// does not (one blocked on something that ignores its context) is
	// left behind: the process is ending.
	stopCut = 2 * time.Second
)

// inflight counts a server's running handlers, so that a stop can wait
// for them after closing their connections. http.Server does not: once
// Close has closed the connections, their handlers may still be running,
// and closing the log under them would lose what they were recording.
type inflight struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed while n == 0
}

func newInflight() *inflight {
	f := &inflight{idle: make(chan struct{})}
	close(f.idle)
	return f
}

func (f *inflight) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		if f.n == 0 {
			f.idle = make(chan struct{})
		}
		f.n++
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			if f.n--; f.n == 0 {
				close(f.idle)
			}
			f.mu.Unlock()
		}()
		h.ServeHTTP(w, r)
	})
}

// wait returns true once no handler runs, false if some still do after d.
func (f *inflight) wait(d time.Duration) bool {
	f.mu.Lock()
	idle := f.idle
	f.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-idle:
		return true
	case <-t.C:
		return false
	}
}

// stopHTTP stops hs, whose handlers f counts: its listeners close at once,
// its idle connections as they become idle, and requests in flight run
// until deadline. Then cut runs (it ends what the handlers wait on, such
// as a gateway's transfers; it may be nil), every connection left is
// closed, and the handlers get stopCut to return. It reports whether the
// requests in flight all finished by the deadline.
func stopHTTP(hs *http.Server, f *inflight, deadline time.Time, cut func()) bool {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	finished := hs.Shutdown(ctx) == nil
	if cut != nil {
		cut()
	}
	if !finished {
		// Shutdown leaves the connections still in use open: a client
		// that holds one (a slow download, an upload that stalls, a
		// request whose answer it never reads) held the stop for as long
		// as it liked.
		_ = hs.Close()
		f.wait(stopCut)
	}
	return finished
}
