package review

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/procpolicy"
	"github.com/airlock-dev/airlock/internal/store"
)

// Rows is where the stored rows come from (a store.Store).
type Rows interface {
	Grants(ctx context.Context, f store.GrantFilter) ([]model.Grant, error)
	Sessions(ctx context.Context, grantID string) ([]model.Session, error)
}

// LogSizer is implemented by Rows that also hold the log (a store.Store),
// so that the Checker knows which entries are only in a journal.
type LogSizer interface {
	LogSize(ctx context.Context) (int64, error)
}

// SessionScanner is implemented by stores that can list every session in
// one pass (the SQLite store); otherwise sessions are read grant by grant.
type SessionScanner interface {
	ScanSessions(ctx context.Context, fn func(model.Session) error) error
}

// IndexChecker is implemented by Rows that keep copies of a record's (or
// a log entry's) fields in columns of their own, which lists and per-grant
// reads filter on (the SQLite store): IndexDiffs describes each copy that
// does not say what the record or entry says. The records and entries are
// checked against the log; without this the copies were trusted unchecked.
type IndexChecker interface {
	IndexDiffs(ctx context.Context) ([]string, error)
}

// Checker derives the review from log entries as auditlog.VerifyWith walks
// them (it implements auditlog.StateChecker), then compares every stored
// grant, session and identity row with it. Entries are decoded on all CPUs,
// ahead of the walk, and applied in order on one goroutine.
type Checker struct {
	rows Rows
	d    *Deriver

	chunk   []chunkEntry
	jobs    chan *parseJob
	ordered chan *parseJob
	free    chan *parseJob // applied jobs, for their buffers to be reused
	done    chan struct{}
	wg      sync.WaitGroup
	errs    []string
	next    int64 // the seq after the newest entry walked
}

type chunkEntry struct {
	seq  int64
	data []byte
}

type parseJob struct {
	in   []chunkEntry
	out  []Parsed
	errs []error
	done chan struct{}
}

const checkChunk = 256

// NewChecker returns a Checker comparing with rows.
func NewChecker(rows Rows) *Checker {
	c := &Checker{rows: rows, d: NewDeriver(), jobs: make(chan *parseJob, 64), ordered: make(chan *parseJob, 64), free: make(chan *parseJob, 130), done: make(chan struct{})}
	for range max(1, procpolicy.Procs()) {
		c.wg.Go(func() {
			var in interner
			for j := range c.jobs {
				j.out = slices.Grow(j.out[:0], len(j.in))[:len(j.in)]
				j.errs = slices.Grow(j.errs[:0], len(j.in))[:len(j.in)]
				for i, e := range j.in {
					j.out[i], j.errs[i] = parse(e.data, &in)
				}
				close(j.done)
			}
		})
	}
	go func() {
		defer close(c.done)
		for j := range c.ordered {
			<-j.done
			for i, p := range j.out {
				err := j.errs[i]
				if err == nil {
					err = c.d.Apply(p)
				}
				if err != nil && len(c.errs) < 100 {
					c.errs = append(c.errs, fmt.Sprintf("entry %d: %v", j.in[i].seq, err))
				}
			}
			// The Deriver keeps no reference into a job's buffers.
			clear(j.in)
			clear(j.out)
			select {
			case c.free <- j:
			default:
			}
		}
	}()
	return c
}

// Prepare implements auditlog.StatePreparer: before the walk, it reads the
// log's log.refused entries (LoadVoid), and those of the journal, so that
// the entries they name, which come before them, are not counted (the
// rows follow what those calls' callers were told: that they failed). The
// walk then checks each log.refused entry it meets against them.
func (c *Checker) Prepare(ctx context.Context, journal []store.LogEntry) error {
	ll, ok := c.rows.(LogLister)
	if !ok {
		return nil
	}
	v, by, err := LoadVoid(ctx, ll, 0)
	if err != nil {
		return err
	}
	for _, e := range journal {
		if !bytes.Contains(e.Data, []byte(RefusedType)) {
			continue
		}
		if seq, rs, err := RefusedRanges(e.Data); err == nil && seq == e.Seq {
			by[seq] = rs
			v.Add(rs)
		}
	}
	c.d.SetVoid(v, by)
	return nil
}

// Entry implements auditlog.StateChecker.
func (c *Checker) Entry(seq int64, data []byte) {
	c.chunk = append(c.chunk, chunkEntry{seq, data})
	c.next = max(c.next, seq+1)
	if len(c.chunk) == checkChunk {
		c.flush()
	}
}

func (c *Checker) flush() {
	if len(c.chunk) == 0 {
		return
	}
	j := &parseJob{in: c.chunk, done: make(chan struct{})}
	select {
	case r := <-c.free:
		c.chunk = r.in[:0]
		j.out, j.errs = r.out, r.errs
	default:
		c.chunk = make([]chunkEntry, 0, checkChunk)
	}
	c.jobs <- j
	c.ordered <- j
}

// Finish implements auditlog.StateChecker: it waits for every entry to be
// applied, then compares the rows.
func (c *Checker) Finish(ctx context.Context) ([]string, error) {
	c.flush()
	close(c.jobs)
	close(c.ordered)
	c.wg.Wait()
	<-c.done
	out := append([]string(nil), c.errs...)
	for _, seq := range c.d.UnconfirmedVoid() {
		out = append(out, fmt.Sprintf("entry %d: its row's type says %s, but the walked log holds no such entry there: the entries it names were left out of the derivation", seq, RefusedType))
	}
	// Entries the store does not hold (only in the journal an unclean
	// stop left, given to the walk) have not reached the rows yet: the
	// rows are written with the entries (StoreRows). A session started
	// there has no row, one ended there an open row, whose counts may
	// trail (SetStored). The size is read before the rows.
	if ls, ok := c.rows.(LogSizer); ok {
		n, err := ls.LogSize(ctx)
		if err != nil {
			return nil, fmt.Errorf("review: reading the log's size: %w", err)
		}
		c.d.SetStored(n)
	}
	stored, err := c.rows.Grants(ctx, store.GrantFilter{})
	if err != nil {
		return nil, fmt.Errorf("review: reading grants: %w", err)
	}
	seen := make(map[string]bool, len(stored))
	var differ []rowDiffs
	for _, g := range stored {
		seen[g.ID] = true
		if ds := GrantDiffs(c.d, g); len(ds) > 0 {
			differ = append(differ, rowDiffs{grant: &g, diffs: ds})
		}
	}
	var missing []string
	for _, id := range c.d.GrantIDs() {
		if !seen[id] {
			missing = append(missing, fmt.Sprintf("grant %s: the log records it but the database has no row for it", id))
		}
	}
	sessSeen := map[string]bool{}
	check := func(s model.Session) error {
		sessSeen[s.ID] = true
		if ds := SessionDiffs(c.d, s); len(ds) > 0 {
			differ = append(differ, rowDiffs{session: &s, diffs: ds})
		}
		return nil
	}
	if sc, ok := c.rows.(SessionScanner); ok {
		err = sc.ScanSessions(ctx, check)
	} else {
		for _, g := range stored {
			var ss []model.Session
			if ss, err = c.rows.Sessions(ctx, g.ID); err != nil {
				break
			}
			for _, s := range ss {
				_ = check(s)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("review: reading sessions: %w", err)
	}
	for _, id := range c.d.SessionIDs() {
		if !sessSeen[id] && c.d.stored(c.d.sessions[id]) {
			missing = append(missing, fmt.Sprintf("session %s: the log records it but the database has no row for it", id))
		}
	}
	if il, ok := c.rows.(IdentityLister); ok {
		ids, err := il.Identities(ctx)
		if err != nil {
			return nil, fmt.Errorf("review: reading identities: %w", err)
		}
		idSeen := make(map[string]bool, len(ids))
		for _, id := range ids {
			idSeen[id.Name] = true
			if ds := IdentityDiffs(c.d, id); len(ds) > 0 {
				differ = append(differ, rowDiffs{identity: &id, diffs: ds})
			}
		}
		// Identities are never deleted (one removed from the
		// configuration is disabled), so every one the log names has a
		// row: its entry and its row commit together.
		for _, name := range c.d.IdentityNames() {
			if !idSeen[name] {
				missing = append(missing, fmt.Sprintf("identity %s: the log records it but the database has no row for it", name))
			}
		}
	}
	if len(differ) > 0 {
		differ = c.againstTail(ctx, differ)
	}
	for _, r := range differ {
		out = append(out, r.diffs...)
	}
	out = append(out, missing...)
	if ic, ok := c.rows.(IndexChecker); ok {
		ds, err := ic.IndexDiffs(ctx)
		if err != nil {
			return nil, fmt.Errorf("review: checking the rows' indexed columns: %w", err)
		}
		out = append(out, ds...)
	}
	return out, nil
}

// GrantDiffs describes how stored grant g differs from what d derived,
// each as "grant <id>: <answer> is …, log says …".
func GrantDiffs(d *Deriver, g model.Grant) []string {
	lg, live, ok := d.Grant(g.ID)
	if !ok {
		return []string{fmt.Sprintf("grant %s: the database has it but the log never recorded it", g.ID)}
	}
	var out []string
	for _, p := range d.Problems(g.ID) {
		out = append(out, fmt.Sprintf("grant %s: %s", g.ID, p))
	}
	for _, m := range DiffGrant(g, lg, live, d.GrantCapped(g.ID)) {
		out = append(out, fmt.Sprintf("grant %s: %s", g.ID, m))
	}
	return out
}

// SessionDiffs is GrantDiffs for a session row.
func SessionDiffs(d *Deriver, s model.Session) []string {
	ls, ended, ok := d.Session(s.ID)
	if !ok {
		return []string{fmt.Sprintf("session %s: the database has it but the log never recorded it", s.ID)}
	}
	var out []string
	for _, m := range DiffSession(s, ls, ended, d.SessionCapped(s.ID)) {
		out = append(out, fmt.Sprintf("session %s: %s", s.ID, m))
	}
	return out
}

// rowDiffs is a stored row (grant, session or identity) that differs from
// the derivation, and how.
type rowDiffs struct {
	grant    *model.Grant
	session  *model.Session
	identity *model.Identity
	diffs    []string
}

// LogTail is implemented by Rows that can also read log entries (a
// store.Store): the Checker then reads the entries committed after the
// walk (see againstTail).
type LogTail interface {
	ScanLog(ctx context.Context, from, to int64, fn func(store.LogEntry) error) error
}

// againstTail checks the rows that differ from the walked log once more,
// against the log as it is now. The rows are read after the walk ends, and
// on a busy server (or replicas sharing a store) a live session's summary
// may be written in between, with calls logged after the walk: such a row
// leads the walked log but matches the log it was written from. Each row
// is reported only if it differs from both. The entries after the walk are
// checked against their leaf hashes here (one that does not match keeps
// every difference); their place in the signed tree is the next check's,
// as for any entry committed after a check began.
func (c *Checker) againstTail(ctx context.Context, differ []rowDiffs) []rowDiffs {
	lt, ok := c.rows.(LogTail)
	if !ok {
		return differ
	}
	sound := true
	err := lt.ScanLog(ctx, c.next, math.MaxInt64, func(e store.LogEntry) error {
		// The store holds this entry, so the row of a session it starts
		// is there too (read before it, it may lead the walk: compared
		// again below).
		c.d.SetStored(max(c.d.unstored, e.Seq+1))
		if h := tlog.RecordHash(e.Data); !bytes.Equal(h[:], e.LeafHash) {
			sound = false
			return errTailStop
		}
		p, err := Parse(bytes.Clone(e.Data)) // a store may reuse e.Data after fn returns
		if err == nil {
			_ = c.d.Apply(p) // an entry that does not fit marks its grant, which then keeps its differences
		}
		return nil
	})
	if err != nil || !sound {
		return differ
	}
	kept := differ[:0]
	for _, r := range differ {
		var again []string
		switch {
		case r.grant != nil:
			again = GrantDiffs(c.d, *r.grant)
		case r.identity != nil:
			again = IdentityDiffs(c.d, *r.identity)
		default:
			again = SessionDiffs(c.d, *r.session)
		}
		if len(again) > 0 {
			kept = append(kept, r)
		}
	}
	return kept
}

var errTailStop = errors.New("review: a log entry after the walk does not match its leaf hash")
