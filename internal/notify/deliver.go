package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// SignatureHeader carries a webhook event's signature: "t=<unix
// seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the webhook's secret>".
const SignatureHeader = "X-Airlock-Signature"

// Sign returns the SignatureHeader value for body at t.
func Sign(secret, body []byte, t time.Time) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// delivery is one POST to make.
type delivery struct {
	url   string
	body  []byte
	event string // for logs and the X-Airlock-Event header
	id    string // the event id (webhooks) or grant id (Slack)
}

// sender delivers to one destination in order, one delivery at a time,
// from a bounded queue, retrying failures with backoff.
type sender struct {
	n      *Notifier
	name   string
	secret []byte // signs each attempt when set (generic webhooks)
	queue  chan delivery
	// stop is closed by close: what is queued is then sent, without
	// waiting out backoffs, until ctx is cancelled at the grace's end.
	stop   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	dropped int
}

func (n *Notifier) newSender(name string, secret []byte) *sender {
	ctx, cancel := context.WithCancel(context.Background())
	s := &sender{n: n, name: name, secret: secret, queue: make(chan delivery, n.o.QueueSize), stop: make(chan struct{}), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go s.run()
	return s
}

// enqueue never blocks: a full queue drops the delivery and logs it, since
// a slow receiver must never hold up a grant.
func (s *sender) enqueue(d delivery) {
	select {
	case s.queue <- d:
	default:
		s.mu.Lock()
		s.dropped++
		s.mu.Unlock()
		s.n.logger.Error("notification queue full; dropping", "to", s.name, "event", d.event, "id", d.id)
	}
}

// close sends what is queued (each delivery in flight or queued gets one
// more attempt, no backoff) for at most grace, then drops the rest. A
// shutdown used to cancel the delivery in flight and drop the queue at
// once: the events of the last changes before a restart (a request a
// deciding receiver was to show) were never sent.
func (s *sender) close(grace time.Duration) {
	close(s.stop)
	t := time.AfterFunc(grace, s.cancel)
	<-s.done
	t.Stop()
	s.cancel()
	if left := len(s.queue); left > 0 {
		s.n.logger.Warn("notifications not delivered at shutdown", "to", s.name, "count", left)
	}
}

func (s *sender) run() {
	defer close(s.done)
	for {
		select {
		case d := <-s.queue:
			s.deliver(d)
		case <-s.stop:
			for s.ctx.Err() == nil {
				select {
				case d := <-s.queue:
					s.deliver(d)
				default:
					return
				}
			}
			return
		}
	}
}

// stopping reports whether close has been called.
func (s *sender) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// deliver tries d up to Attempts times, waiting RetryBase, 2×, 4×… (at most
// a minute) between tries. Only network errors, 429 and 5xx are retried: a
// 4xx will not get better.
func (s *sender) deliver(d delivery) {
	delay := s.n.o.RetryBase
	for attempt := 1; ; attempt++ {
		err, retry := s.attempt(d)
		if err == nil {
			return
		}
		if !retry || attempt >= s.n.o.Attempts || s.stopping() {
			s.n.logger.Error("notification not delivered", "to", s.name, "event", d.event, "id", d.id, "attempts", attempt, "err", err)
			return
		}
		s.n.logger.Warn("notification failed; will retry", "to", s.name, "event", d.event, "id", d.id, "attempt", attempt, "retry_in", delay, "err", err)
		// Cut short by close: the next attempt is the last, made at once.
		s.sleep(delay)
		delay = min(2*delay, time.Minute)
	}
}

// sleep waits d on the Notifier's clock, or until the sender is closing.
func (s *sender) sleep(d time.Duration) {
	ch := make(chan struct{})
	t := s.n.clk.AfterFunc(d, func() { close(ch) })
	select {
	case <-ch:
	case <-s.stop:
		t.Stop()
	}
}

func (s *sender) attempt(d delivery) (err error, retry bool) {
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, d.url, bytes.NewReader(d.body))
	if err != nil {
		return errors.New("invalid URL"), false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "airlock-notify/1")
	if s.secret != nil {
		req.Header.Set(SignatureHeader, Sign(s.secret, d.body, s.n.clk.Now()))
		req.Header.Set("X-Airlock-Event", d.event)
		req.Header.Set("X-Airlock-Delivery", d.id)
	}
	resp, err := s.n.o.Client.Do(req)
	if err != nil {
		// The error names the URL, which for Slack is a secret: say less.
		var ue interface{ Timeout() bool }
		if errors.As(err, &ue) && ue.Timeout() {
			return errors.New("timed out"), true
		}
		return errors.New("could not connect or send"), true
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil, false
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return fmt.Errorf("status %d", resp.StatusCode), true
	default:
		return fmt.Errorf("status %d", resp.StatusCode), false
	}
}
