package gateway

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"time"
)

// Rejections are attempts nobody authenticated, so their rate is the
// attacker's to choose: a port scan or a password flood must not turn into
// one durable log write (and one disk sync) per attempt. RejectAggregator
// keeps every attempt in the log, some individually and the rest counted:
//
//   - Attempts are grouped by key: gateway, source host (the client address
//     without its port), reason, target and grant.
//   - Within one interval the first PerKey attempts of each key, and at
//     most MaxIndividual attempts in all, are written individually
//     (gateway.rejected), durable before Reject returns.
//   - Every further attempt is counted in memory, and each key's count is
//     written as one summary (gateway.rejected_summary: count, first and
//     last time, a few of the credential ids presented) when the interval
//     ends or the process stops (Close).
//   - At most MaxKeys keys are held per interval; attempts under a further
//     key are counted in one overflow summary per gateway (client "*",
//     reason "other reasons (too many distinct sources or reasons)").
//
// So the log holds every attempt, individually or in a count; what a crash
// can lose is the counts of the interval in progress.

// RejectionSummary is one gateway.rejected_summary entry: attempts of one
// key that were counted rather than written one by one.
type RejectionSummary struct {
	Gateway string `json:"gateway"`
	// Client is the source host (no port), or "*" for the overflow summary.
	Client  string `json:"client"`
	Reason  string `json:"reason"`
	Target  string `json:"target,omitempty"`
	GrantID string `json:"grant_id,omitempty"`
	// Count is how many attempts this summary stands for; none of them is
	// also in the log individually.
	Count int       `json:"count"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// CredentialIDs are up to maxSampleIDs distinct credential ids the
	// attempts presented (never a secret).
	CredentialIDs []string `json:"credential_ids,omitempty"`
}

// RejectPolicy bounds what RejectAggregator writes. Zero fields take the
// defaults.
type RejectPolicy struct {
	// Interval is how long attempts are counted before their summaries are
	// written; 10s by default.
	Interval time.Duration
	// PerKey is how many attempts of one key are written individually per
	// interval; 3 by default.
	PerKey int
	// MaxIndividual is how many attempts in all are written individually
	// per interval; 100 by default.
	MaxIndividual int
	// MaxKeys bounds the keys counted per interval (the memory an attacker
	// can make the aggregator hold); 1024 by default.
	MaxKeys int
}

const (
	defaultRejectInterval   = 10 * time.Second
	defaultRejectPerKey     = 3
	defaultRejectIndividual = 100
	defaultRejectMaxKeys    = 1024
	maxSampleIDs            = 4
	maxKeyReason            = 256
	overflowReason          = "other reasons (too many distinct sources or reasons)"
)

type rejectKey struct{ gateway, client, reason, target, grant string }

type rejectCount struct {
	individual int
	sum        RejectionSummary
}

// RejectAggregator implements the policy above over two writers: one for
// an individual rejection, one for a summary. It is safe for concurrent use.
type RejectAggregator struct {
	p            RejectPolicy
	now          func() time.Time
	writeOne     func(context.Context, Rejection) error
	writeSummary func(context.Context, RejectionSummary) error

	mu         sync.Mutex
	start      time.Time // of the current interval; zero before the first attempt
	individual int
	keys       map[rejectKey]*rejectCount
	// flushMu serialises summary writes, so that summaries reach the log
	// in interval order.
	flushMu sync.Mutex
}

// NewRejectAggregator returns an aggregator writing through writeOne and
// writeSummary, reading time from now (time.Now if nil; tests pass a
// controllable clock).
func NewRejectAggregator(p RejectPolicy, now func() time.Time,
	writeOne func(context.Context, Rejection) error,
	writeSummary func(context.Context, RejectionSummary) error) *RejectAggregator {
	if p.Interval <= 0 {
		p.Interval = defaultRejectInterval
	}
	if p.PerKey <= 0 {
		p.PerKey = defaultRejectPerKey
	}
	if p.MaxIndividual <= 0 {
		p.MaxIndividual = defaultRejectIndividual
	}
	if p.MaxKeys <= 0 {
		p.MaxKeys = defaultRejectMaxKeys
	}
	if now == nil {
		now = time.Now
	}
	return &RejectAggregator{p: p, now: now, writeOne: writeOne, writeSummary: writeSummary, keys: map[rejectKey]*rejectCount{}}
}

// SourceHost is the host part of a Rejection's Client ("addr:port" with an
// optional " user agent" after it).
func SourceHost(client string) string {
	if i := strings.IndexByte(client, ' '); i >= 0 {
		client = client[:i]
	}
	if h, _, err := net.SplitHostPort(client); err == nil {
		return h
	}
	return client
}

// Reject records r: individually (durable when it returns) or counted
// toward its key's summary (written at the interval's end). A summary due
// is written first, so that the log stays in time order.
func (a *RejectAggregator) Reject(ctx context.Context, r Rejection) error {
	now := a.now()
	// A summary that cannot be written is kept for the next try, and the
	// periodic Flush reports the error; this attempt counts either way.
	_ = a.flush(ctx, now, false)
	reason := r.Reason
	if len(reason) > maxKeyReason {
		reason = reason[:maxKeyReason]
	}
	k := rejectKey{gateway: r.Gateway, client: SourceHost(r.Client), reason: reason, target: r.Target, grant: r.GrantID}
	a.mu.Lock()
	if a.start.IsZero() {
		a.start = now
	}
	c := a.keys[k]
	if c == nil {
		if len(a.keys) >= a.p.MaxKeys {
			k = rejectKey{gateway: r.Gateway, client: "*", reason: overflowReason}
			c = a.keys[k]
		}
		if c == nil {
			c = &rejectCount{sum: RejectionSummary{Gateway: k.gateway, Client: k.client, Reason: k.reason, Target: k.target, GrantID: k.grant}}
			if k.client == "*" {
				// The overflow entry never writes attempts one by one.
				c.individual = a.p.PerKey
			}
			a.keys[k] = c
		}
	}
	if c.individual < a.p.PerKey && a.individual < a.p.MaxIndividual {
		c.individual++
		a.individual++
		a.mu.Unlock()
		return a.writeOne(ctx, r)
	}
	s := &c.sum
	if s.Count == 0 {
		s.First = now
	}
	s.Count++
	s.Last = now
	if r.CredentialID != "" && len(s.CredentialIDs) < maxSampleIDs && !slices.Contains(s.CredentialIDs, r.CredentialID) {
		s.CredentialIDs = append(s.CredentialIDs, truncateID(r.CredentialID))
	}
	a.mu.Unlock()
	return nil
}

func truncateID(id string) string {
	if len(id) > 128 {
		return id[:128]
	}
	return id
}

// Flush writes the summaries of an interval that has ended by now. The
// control plane calls it periodically; it does nothing before then.
func (a *RejectAggregator) Flush(ctx context.Context) error {
	return a.flush(ctx, a.now(), false)
}

// Close writes every summary pending, whether or not its interval has
// ended: the process is stopping.
func (a *RejectAggregator) Close(ctx context.Context) error {
	return a.flush(ctx, a.now(), true)
}

// flush starts a new interval if the current one has ended (or if all)
// and writes the old one's summaries. A summary that cannot be written is
// merged back, to be written with the next interval's.
func (a *RejectAggregator) flush(ctx context.Context, now time.Time, all bool) error {
	a.mu.Lock()
	if a.start.IsZero() || (!all && now.Sub(a.start) < a.p.Interval) {
		a.mu.Unlock()
		return nil
	}
	old := a.keys
	a.keys = map[rejectKey]*rejectCount{}
	a.start, a.individual = time.Time{}, 0
	a.mu.Unlock()

	var due []RejectionSummary
	for _, c := range old {
		if c.sum.Count > 0 {
			due = append(due, c.sum)
		}
	}
	if len(due) == 0 {
		return nil
	}
	// A stable order: by first attempt.
	slices.SortFunc(due, func(x, y RejectionSummary) int { return x.First.Compare(y.First) })
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	for i, s := range due {
		if err := a.writeSummary(ctx, s); err != nil {
			a.requeue(due[i:])
			return err
		}
	}
	return nil
}

// requeue merges summaries that could not be written into the current
// interval's counts.
func (a *RejectAggregator) requeue(sums []RejectionSummary) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.start.IsZero() {
		a.start = a.now()
	}
	for _, s := range sums {
		k := rejectKey{gateway: s.Gateway, client: s.Client, reason: s.Reason, target: s.Target, grant: s.GrantID}
		c := a.keys[k]
		if c == nil {
			if len(a.keys) >= a.p.MaxKeys {
				k = rejectKey{gateway: s.Gateway, client: "*", reason: overflowReason}
				c = a.keys[k]
			}
			if c == nil {
				c = &rejectCount{individual: a.p.PerKey, sum: RejectionSummary{Gateway: k.gateway, Client: k.client, Reason: k.reason, Target: k.target, GrantID: k.grant}}
				a.keys[k] = c
			}
		}
		d := &c.sum
		if d.Count == 0 || s.First.Before(d.First) {
			d.First = s.First
		}
		if s.Last.After(d.Last) {
			d.Last = s.Last
		}
		d.Count += s.Count
		for _, id := range s.CredentialIDs {
			if len(d.CredentialIDs) < maxSampleIDs && !slices.Contains(d.CredentialIDs, id) {
				d.CredentialIDs = append(d.CredentialIDs, id)
			}
		}
	}
}
