package awsgw

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestCallCtxEndsWithItsParent: the client going away (the request's
// context cancelled) ends the call's context at once as far as its
// readers can tell, with the parent's cause, and closes its channel.
func TestCallCtxEndsWithItsParent(t *testing.T) {
	gone := errors.New("the client went away")
	parent, cancel := context.WithCancelCause(context.Background())
	var c callCtx
	c.init(parent)
	defer c.end()
	done := c.Done()
	if c.Err() != nil || causeOf(&c) != nil {
		t.Fatalf("before its parent ends: %v, %v", c.Err(), causeOf(&c))
	}
	cancel(gone)
	// Err and causeOf look at the parent: no wait for the registration's
	// goroutine.
	if !errors.Is(c.Err(), context.Canceled) || causeOf(&c) != gone {
		t.Fatalf("after its parent ended: %v, %v", c.Err(), causeOf(&c))
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the done channel was not closed")
	}

	// A parent ended already ends the context at its start.
	var late callCtx
	late.init(parent)
	if causeOf(&late) != gone {
		t.Fatalf("a call on an ended request: %v", causeOf(&late))
	}
}

// TestCallCtxCauseAndDerivedContexts: the session's cut is the call's
// cause (causeOf, cutError); contexts derived from the call's and
// functions registered on it end with it, unless stopped first.
func TestCallCtxCauseAndDerivedContexts(t *testing.T) {
	var c callCtx
	c.init(context.WithValue(context.Background(), connKey{}, "v"))
	defer c.end()
	if c.Value(connKey{}) != "v" {
		t.Fatal("the parent's values are not seen")
	}
	child, cancelChild := context.WithCancel(&c)
	defer cancelChild()
	ran := make(chan struct{})
	context.AfterFunc(&c, func() { close(ran) })
	stopped := context.AfterFunc(&c, func() { t.Error("a stopped function ran") })
	if !stopped() {
		t.Fatal("stop did not stop a function registered on a live context")
	}
	cause := errors.New("grant g was revoked")
	c.cancel(cause)
	c.cancel(errors.New("later")) // ignored
	if causeOf(&c) != cause {
		t.Fatalf("cause %v, want the first", causeOf(&c))
	}
	for what, ch := range map[string]<-chan struct{}{"derived context": child.Done(), "registered function": ran} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("the %s did not end with the call's context", what)
		}
	}
	if !errors.Is(child.Err(), context.Canceled) {
		t.Fatalf("derived context: %v", child.Err())
	}
	// Registered after the end: runs at once, and cannot be stopped.
	again := make(chan struct{})
	if stop := context.AfterFunc(&c, func() { close(again) }); stop() {
		t.Fatal("stop reported stopping a function on an ended context")
	}
	<-again
}

// TestH1TransportCallCtxCuts: a call's own context cuts the upstream
// connection with no context.AfterFunc of h1Conn's: the client going
// away fails a read waiting for the answer's header, with its cause;
// the session's cut fails one waiting in the body; the connection of a
// call ended that way is not reused, and one of a call read whole is.
func TestH1TransportCallCtxCuts(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var upstreamCancelled atomic.Int64
	srv, conns := waitingServer(t, release, &upstreamCancelled)
	tr := newH1Transport(UpstreamTransport())
	defer tr.CloseIdleConnections()

	get := func(c *callCtx, path string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(c, http.MethodGet, srv.URL+path, nil)
		if err != nil {
			return nil, err
		}
		return tr.RoundTrip(req)
	}
	// A call read whole leaves its connection for the next.
	var ok callCtx
	ok.init(context.Background())
	resp, err := get(&ok, "/ok")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(resp.Body); err != nil || string(b) != "ok" {
		t.Fatalf("answer %q, %v", b, err)
	}
	resp.Body.Close()
	ok.end()

	gone := errors.New("the client went away")
	reqCtx, clientGone := context.WithCancelCause(context.Background())
	var waiting callCtx
	waiting.init(reqCtx)
	time.AfterFunc(50*time.Millisecond, func() { clientGone(gone) })
	errc := make(chan error, 1)
	go func() {
		_, err := get(&waiting, "/header")
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, gone) {
			t.Fatalf("waiting for the header: %v, want the client's cause", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the client's going away did not fail a read waiting for the header")
	}
	waiting.end()
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections, want the first reused", n)
	}

	var streaming callCtx
	streaming.init(context.Background())
	resp, err = get(&streaming, "/body")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 4)
	n, _ := io.ReadFull(resp.Body, buf[:2])
	time.AfterFunc(50*time.Millisecond, func() { streaming.cancel(errors.New("grant g was revoked")) })
	if _, err := resp.Body.Read(buf[n:]); err == nil {
		t.Fatal("a read of a body whose call was cut succeeded")
	}
	streaming.end()
	eventually(t, "the upstream to see both cut requests end", func() bool { return upstreamCancelled.Load() == 2 })

	var next callCtx
	next.init(context.Background())
	defer next.end()
	if _, err := get(&next, "/ok"); err != nil {
		t.Fatal(err)
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want a new one after each cut", n)
	}
}

// callCtxAllocsMax is what a call's context costs with a request context
// that can end, as net/http's server gives one: the registration on it
// (context.AfterFunc's context and stop func, its func, the request
// context's children map, two, and its done channel), and the call's own
// done channel, asked for. WithCancelCause on the request's context and
// context.AfterFunc on that, as before callCtx, were ten here
// (bench/HISTORY.md, "S3 GET 1 KiB: one context a call").
const callCtxAllocsMax = 7

func TestCallCtxAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation bounds hold only without the race detector")
	}
	f := func() {
		// A fresh request context each time, as each call has its own.
		req, cancel := context.WithCancel(context.Background())
		c := new(callCtx)
		c.init(req)
		c.Done()
		c.end()
		cancel()
	}
	// The request context and its cancel func, and c, are the test's.
	const own = 3
	f()
	if n := testing.AllocsPerRun(200, f); n > own+callCtxAllocsMax {
		t.Errorf("a call's context allocates %v times, want at most %d", n-own, callCtxAllocsMax)
	} else {
		t.Logf("%v allocations", n-own)
	}
}

// TestClientGoneCancelsAWaitingUpstream: through the whole gateway, a
// client that hangs up while the upstream has not yet answered a GET
// ends the upstream request at once (h1Transport's connection, cut by
// the call's context), and so does a grant revoked meanwhile.
func TestClientGoneCancelsAWaitingUpstream(t *testing.T) {
	got := make(chan struct{}, 2)
	cancelled := make(chan struct{}, 2)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- struct{}{}
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-time.After(10 * time.Second): // bounds a failing run
		}
	}))
	defer up.Close()
	e := newEnv(t, func(o *Options) { o.Targets[0].Endpoint = up.URL })
	waitFor := func(what string, ch chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not within 5s", what)
		}
	}

	g := e.grant(walkScope)
	ctx, hangUp := context.WithCancel(context.Background())
	req := e.signed(g, http.MethodGet, "/logs/app/a.log", nil).WithContext(ctx)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor("the upstream to have the request", got)
	hangUp()
	waitFor("the upstream request to end after the client hung up", cancelled)
	<-errc

	g2 := e.grant(walkScope)
	go func() {
		resp, err := http.DefaultClient.Do(e.signed(g2, http.MethodGet, "/logs/app/b.log", nil))
		if err == nil {
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("a call cut while waiting for the upstream: %d, want 403", resp.StatusCode)
			}
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor("the upstream to have the second request", got)
	e.auth.End(g2, "revoked")
	waitFor("the upstream request to end after the grant was revoked", cancelled)
	if err := <-errc; err != nil {
		t.Fatalf("the revoked call: %v", err)
	}
}
