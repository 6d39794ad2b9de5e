// Package witness publishes the audit log's signed checkpoints to witnesses
// outside the machine, so that someone who can delete the log's tail and
// data_dir/checkpoint together still cannot make the log look shorter (or
// rewritten) than it was.
//
// A [Publisher] takes each new checkpoint from the log
// (auditlog.Options.OnCheckpoint) without ever blocking it, and hands the
// newest one to every configured target from the target's own goroutine, at
// most every [Options.MinInterval] (200 ms by default, so within a second of
// its signing when the witness answers). A target that fails is retried
// with a growing pause (up to [Options.MaxBackoff]); failures are logged
// with slog and never affect appends. The kinds of target:
//
//   - [KindCommand] runs a command with the signed checkpoint on its stdin,
//     bounded by a timeout; a zero exit status is success.
//   - [KindPost] POSTs the signed checkpoint (text/plain) to a URL; a 2xx
//     answer is success.
//   - [KindTlogWitness] speaks the C2SP tlog-witness protocol
//     (https://c2sp.org/tlog-witness): POST <url>/add-checkpoint with
//     "old N", the RFC 6962 consistency proof from size N (the size the
//     witness last cosigned) and the checkpoint; the answer is the
//     witness's cosignature lines (https://c2sp.org/tlog-cosignature),
//     which are checked against its configured key. A 409 answer carries
//     the size the witness holds; the request is then made again with a
//     proof from that size (this is also how the first request after a
//     start learns it). A witness that holds a bigger tree than the log, or
//     refuses the proof (422), is evidence that the log was cut short or
//     rewritten, and is logged as an error.
//
// The tlog-witnesses are asked together, one round per checkpoint, so their
// cosignatures are on the same checkpoint: the log's signed note with every
// cosignature line appended is kept as the cosigned checkpoint
// ([Publisher.Cosigned], and [Options.CosignedPath] on disk), which
// cosig.VerifyCosigned checks and `airlock audit verify --witness` takes.
// The time of each witness's newest cosignature is kept too
// ([Options.TimesPath]), so that an older one replayed in its place is
// refused after a restart as before it.
package witness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/safefile"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/witness/cosig"
)

// Kind is a kind of target.
type Kind string

// The kinds of target.
const (
	KindTlogWitness Kind = "tlog-witness"
	KindPost        Kind = "post"
	KindCommand     Kind = "command"
)

// DefaultTimeout bounds one publication to one target.
const DefaultTimeout = 10 * time.Second

// Target is one place checkpoints are published to.
type Target struct {
	// Name labels the target in logs and Status; by default its URL
	// without query, or the command's program.
	Name string
	Kind Kind
	// URL is the POST URL (KindPost), or the witness's submission prefix
	// (KindTlogWitness: requests go to URL + "/add-checkpoint").
	URL string
	// Key is the witness's cosignature/v1 vkey (KindTlogWitness).
	Key string
	// Command is the program and its arguments (KindCommand).
	Command []string
	// Timeout bounds one attempt; DefaultTimeout if zero.
	Timeout time.Duration
}

// Options configures a Publisher.
type Options struct {
	// Store is the log's store, read for consistency proofs.
	Store store.Store
	// Verifier is the log's key. A checkpoint read from Store rather than
	// offered by the log (another replica's, newer than the one offered)
	// is used only if this key signed it; without a Verifier, never.
	Verifier note.Verifier
	Targets  []Target
	// CosignedPath, if set, receives the newest cosigned checkpoint
	// (written to a temporary file, synced and renamed into place).
	CosignedPath string
	// TimesPath, if set, keeps the time of the newest cosignature taken
	// from each tlog-witness (JSON: its verifier key to the time), written
	// like CosignedPath before the cosignatures of a round count. New
	// reads it, and fails if it exists but cannot be read: without it, an
	// older cosignature replayed within cosig.MaxSkew of a request after a
	// restart would be taken.
	TimesPath string
	Logger    *slog.Logger
	// Client makes the HTTP requests; by default one that follows no
	// redirects (a redirect could lead a loopback-only plain http URL
	// elsewhere).
	Client *http.Client
	// Clock is what a witness's cosignature time is checked against
	// (clock.Real if nil): the publisher takes a cosignature only if it is
	// dated from cosig.MaxSkew before the request was sent to
	// cosig.MaxSkew after the answer, and not before that witness's
	// previous one, so that an old cosignature of the same checkpoint
	// replayed in the witness's place does not pass for its answer.
	Clock clock.Clock
	// MinInterval is the least time between two publications to a target
	// (default 200 ms). MaxBackoff caps the pause before retrying a failed
	// one (default one minute; the first pause is MinInterval or 100 ms).
	MinInterval, MaxBackoff time.Duration
}

// Status is what a target has done so far.
type Status struct {
	Name      string
	Kind      Kind
	Published int64  // size of the newest checkpoint it took (0: none yet)
	Attempts  int    // publications tried, successful or not
	Failures  int    // of which failed
	LastError string // the newest failure's error, cleared by a success
	// Evidence is the newest failure that shows the log misbehaved (the
	// witness holds a bigger or different tree, or refused the proof:
	// the log was cut short, restored from an older copy or rewritten),
	// and EvidenceKind its auditlog problem kind; both are cleared only
	// by a success, so that a witness unreachable since keeps them.
	// airlock audit verify reports them as problems.
	Evidence, EvidenceKind string
}

// Publisher publishes checkpoints to the targets. Its methods are safe for
// concurrent use.
type Publisher struct {
	opts   Options
	logger *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	latest   store.Checkpoint
	cosigned []byte
	status   []Status
	changed  chan struct{} // closed and replaced when status changes
	kicks    []chan struct{}
}

// New checks the targets and starts a goroutine per command and post target
// and one for all the tlog-witnesses. It loads the cosigned checkpoint left
// at CosignedPath by an earlier run, if any.
func New(opts Options) (*Publisher, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MinInterval <= 0 {
		opts.MinInterval = 200 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Minute
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real
	}
	if opts.Client == nil {
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Publisher{opts: opts, logger: opts.Logger, ctx: ctx, cancel: cancel, changed: make(chan struct{})}
	var workers []*worker
	var tlogs []*tlogClient
	var tlogIdx []int
	for i, t := range opts.Targets {
		if t.Timeout <= 0 {
			t.Timeout = DefaultTimeout
		}
		if t.Name == "" {
			t.Name = defaultName(t)
		}
		opts.Targets[i] = t
		p.status = append(p.status, Status{Name: t.Name, Kind: t.Kind})
		switch t.Kind {
		case KindTlogWitness:
			if opts.Store == nil {
				cancel()
				return nil, errors.New("witness: a tlog-witness needs the log's store for consistency proofs")
			}
			v, err := cosig.NewVerifier(t.Key)
			if err != nil {
				cancel()
				return nil, fmt.Errorf("witness %s: %w", t.Name, err)
			}
			tlogs = append(tlogs, &tlogClient{p: p, t: t, v: v})
			tlogIdx = append(tlogIdx, i)
		case KindPost:
			workers = append(workers, &worker{name: t.Name, idx: []int{i}, publish: p.postFunc(t)})
		case KindCommand:
			if len(t.Command) == 0 || t.Command[0] == "" {
				cancel()
				return nil, fmt.Errorf("witness %s: no command", t.Name)
			}
			workers = append(workers, &worker{name: t.Name, idx: []int{i}, publish: p.commandFunc(t)})
		default:
			cancel()
			return nil, fmt.Errorf("witness %s: unknown kind %q", t.Name, t.Kind)
		}
	}
	if opts.CosignedPath != "" {
		if b, err := os.ReadFile(opts.CosignedPath); err == nil {
			p.cosigned = b
		}
	}
	if len(tlogs) > 0 {
		if err := p.loadNewest(tlogs); err != nil {
			cancel()
			return nil, err
		}
		workers = append(workers, &worker{name: "tlog-witnesses", idx: tlogIdx, round: tlogs})
	}
	for _, w := range workers {
		w.kick = make(chan struct{}, 1)
		p.kicks = append(p.kicks, w.kick)
		p.wg.Add(1)
		go p.run(w)
	}
	return p, nil
}

// defaultName labels a target without leaking a URL's query or userinfo.
func defaultName(t Target) string {
	if t.Kind == KindCommand && len(t.Command) > 0 {
		return filepath.Base(t.Command[0])
	}
	if u, err := url.Parse(t.URL); err == nil {
		return u.Scheme + "://" + u.Host + u.Path
	}
	return string(t.Kind)
}

// Offer hands the publisher a new checkpoint. It never blocks; only the
// newest checkpoint offered is published. It fits
// auditlog.Options.OnCheckpoint.
func (p *Publisher) Offer(cp store.Checkpoint) {
	p.mu.Lock()
	if cp.Size < p.latest.Size {
		p.mu.Unlock()
		return
	}
	p.latest = cp
	p.mu.Unlock()
	for _, k := range p.kicks {
		select {
		case k <- struct{}{}:
		default:
		}
	}
}

// Cosigned returns the newest cosigned checkpoint (nil if none yet): the
// log's signed note followed by the tlog-witnesses' cosignature lines.
func (p *Publisher) Cosigned() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.cosigned)
}

// Status returns every target's status, in configuration order.
func (p *Publisher) Status() []Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Status(nil), p.status...)
}

// WaitUntil waits until cond holds for the targets' statuses, or ctx ends.
func (p *Publisher) WaitUntil(ctx context.Context, cond func([]Status) bool) error {
	for {
		p.mu.Lock()
		ok, ch := cond(p.status), p.changed
		p.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops publishing, cancelling publications in flight.
func (p *Publisher) Close() {
	p.cancel()
	p.wg.Wait()
}

// worker publishes to one target, or to all tlog-witnesses in rounds.
type worker struct {
	name    string
	idx     []int // the targets' indexes in status
	publish func(ctx context.Context, cp store.Checkpoint) error
	round   []*tlogClient
	kick    chan struct{}
}

func (p *Publisher) run(w *worker) {
	defer p.wg.Done()
	var done int64 // size of the newest checkpoint published
	for {
		select {
		case <-w.kick:
		case <-p.ctx.Done():
			return
		}
		// Publish the newest checkpoint until it succeeds; a failure is
		// retried after a growing pause, whatever arrives meanwhile, so a
		// dead witness is not hammered under load.
		for backoff := time.Duration(0); ; {
			p.mu.Lock()
			cp := p.latest
			p.mu.Unlock()
			if cp.Size == 0 || cp.Size <= done {
				break
			}
			var err error
			if w.round != nil {
				err = p.tlogRound(w, cp)
			} else {
				t := p.opts.Targets[w.idx[0]]
				ctx, cancel := context.WithTimeout(p.ctx, t.Timeout)
				err = w.publish(ctx, cp)
				cancel()
				p.report(w.idx[0], cp.Size, err)
			}
			pause := p.opts.MinInterval
			if err == nil {
				done = cp.Size
			} else {
				backoff = min(max(2*backoff, p.opts.MinInterval, 100*time.Millisecond), p.opts.MaxBackoff)
				pause = backoff
			}
			select {
			case <-time.After(pause):
			case <-p.ctx.Done():
				return
			}
		}
	}
}

// report records one attempt's outcome and logs a failure. The log line
// comes first, so whoever sees the new status can also see why.
func (p *Publisher) report(i int, size int64, err error) {
	if err != nil && p.ctx.Err() == nil {
		p.mu.Lock()
		name, kind := p.status[i].Name, p.status[i].Kind
		p.mu.Unlock()
		level := slog.LevelWarn
		var ev *evidenceError
		if errors.As(err, &ev) {
			level = slog.LevelError
		}
		p.logger.Log(p.ctx, level, "publishing the audit log's checkpoint to a witness failed", "witness", name, "kind", string(kind), "size", size, "err", err)
	}
	p.mu.Lock()
	s := &p.status[i]
	s.Attempts++
	if err != nil {
		s.Failures++
		s.LastError = err.Error()
		if ev := (*evidenceError)(nil); errors.As(err, &ev) {
			s.Evidence, s.EvidenceKind = err.Error(), ev.kind
		}
	} else {
		s.Published, s.LastError, s.Evidence, s.EvidenceKind = size, "", "", ""
	}
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
}

// evidenceError is a failure that shows the log misbehaved: a witness
// holds a bigger or different tree than the log, or refuses its proof.
type evidenceError struct {
	kind string // auditlog.KindTruncated or auditlog.KindCheckpointMismatch
	msg  string
}

func (e *evidenceError) Error() string { return e.msg }

func (p *Publisher) postFunc(t Target) func(ctx context.Context, cp store.Checkpoint) error {
	return func(ctx context.Context, cp store.Checkpoint) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(cp.Note))
		if err != nil {
			return errors.New("bad URL")
		}
		req.Header.Set("Content-Type", "text/plain; charset=utf-8")
		resp, err := p.opts.Client.Do(req)
		if err != nil {
			return redactURLError(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseSize))
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("answered %s", resp.Status)
		}
		return nil
	}
}

// redactURLError drops the URL (which may carry a token in its query) from
// an HTTP client error.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

func (p *Publisher) commandFunc(t Target) func(ctx context.Context, cp store.Checkpoint) error {
	return func(ctx context.Context, cp store.Checkpoint) error {
		cmd := exec.CommandContext(ctx, t.Command[0], t.Command[1:]...)
		cmd.Stdin = bytes.NewReader(cp.Note)
		cmd.Env = append(os.Environ(), "AIRLOCK_CHECKPOINT_SIZE="+strconv.FormatInt(cp.Size, 10))
		var stderr limitedBuffer
		cmd.Stderr = &stderr
		// A child that keeps the pipes open must not hold the worker past
		// its timeout.
		cmd.WaitDelay = time.Second
		err := cmd.Run()
		if ctx.Err() != nil {
			return fmt.Errorf("no answer within %s", t.Timeout)
		}
		if err != nil {
			if msg := strings.TrimSpace(stderr.String()); msg != "" {
				return fmt.Errorf("%w: %s", err, msg)
			}
			return err
		}
		return nil
	}
}

// limitedBuffer keeps the first 1 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 1024 - len(l.b); room > 0 {
		l.b = append(l.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return strings.ToValidUTF8(string(l.b), "?") }

// errBehind is a tlog-witness holding a newer tree than the checkpoint
// offered, which the store also holds: another replica of a shared log
// published it first. The round is made again with the store's newest.
var errBehind = errors.New("the witness holds a newer checkpoint of the log than the one offered")

// freshest returns the store's newest checkpoint if it is newer than cp,
// signed by the log's key and of the same log (origin) as cp. With several replicas appending to one log,
// each offers only the checkpoints it signed; the witness may already hold
// a newer one. A newer row the key did not sign was added to the database
// behind the log's back: it is neither sent nor taken as the log's size.
func (p *Publisher) freshest(ctx context.Context, cp store.Checkpoint) store.Checkpoint {
	if p.opts.Store == nil || p.opts.Verifier == nil {
		return cp
	}
	latest, err := p.opts.Store.LatestCheckpoint(ctx)
	if err != nil || latest.Size <= cp.Size {
		return cp
	}
	size, root, err := auditlog.OpenCheckpoint(latest.Note, p.opts.Verifier)
	if err != nil || size != latest.Size || !bytes.Equal(root[:], latest.Root) || auditlog.CheckpointOrigin(latest.Note) != auditlog.CheckpointOrigin(cp.Note) {
		p.logger.Error("the store's newest checkpoint is not one the log's key signed for this log; publishing the log's own (run airlock audit verify)", "checkpoint", latest.ID, "size", latest.Size)
		return cp
	}
	return latest
}

// tlogRound asks every tlog-witness to cosign cp, or the store's newest
// checkpoint if that is newer, concurrently, and keeps the checkpoint with
// the cosignatures it got.
func (p *Publisher) tlogRound(w *worker, cp store.Checkpoint) error {
	lines := make([][]byte, len(w.round))
	errs := make([]error, len(w.round))
	for try := 0; ; try++ {
		cp = p.freshest(p.ctx, cp)
		behind := false
		var wg sync.WaitGroup
		for i, c := range w.round {
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(p.ctx, c.t.Timeout)
				defer cancel()
				lines[i], errs[i] = c.add(ctx, cp)
			})
		}
		wg.Wait()
		for _, err := range errs {
			behind = behind || errors.Is(err, errBehind)
		}
		if !behind || try == 2 {
			break
		}
	}
	// A cosignature counts only once its time is on disk, so that after
	// a restart an older one replayed in the witness's place is still
	// refused.
	if p.opts.TimesPath != "" && slices.ContainsFunc(lines, func(l []byte) bool { return l != nil }) {
		if err := p.saveNewest(w.round); err != nil {
			for i := range lines {
				if lines[i] != nil {
					lines[i], errs[i] = nil, fmt.Errorf("the witness's cosignature was not taken: keeping its time failed: %w", err)
				}
			}
		}
	}
	// Reported once the cosigned checkpoint is kept, so that a status
	// showing a size means its cosignature can be read.
	defer func() {
		for i := range w.round {
			p.report(w.idx[i], cp.Size, errs[i])
		}
	}()
	var sigs []byte
	for _, l := range lines {
		sigs = append(sigs, l...)
	}
	if len(sigs) > 0 {
		out := cosig.AppendSignatures(cp.Note, sigs)
		p.mu.Lock()
		p.cosigned = out
		p.mu.Unlock()
		if p.opts.CosignedPath != "" {
			if err := safefile.WriteAtomic(p.opts.CosignedPath, out, 0o644); err != nil {
				p.logger.Warn("writing the cosigned checkpoint", "path", p.opts.CosignedPath, "err", err)
			}
		}
	}
	return errors.Join(errs...)
}

// maxTimesFile bounds Options.TimesPath: an entry of about 150 bytes per
// configured tlog-witness.
const maxTimesFile = 1 << 20

// loadNewest sets each tlog-witness's newest cosignature time from
// Options.TimesPath, or from the cosigned checkpoint the previous run kept
// if that one is newer (releases before the times file kept only that). A
// missing file is a first start.
func (p *Publisher) loadNewest(tlogs []*tlogClient) error {
	var times map[string]time.Time
	if path := p.opts.TimesPath; path != "" {
		b, err := auditlog.ReadFileMax(path, maxTimesFile)
		if err == nil {
			if err = json.Unmarshal(b, &times); err != nil {
				err = fmt.Errorf("%s: %w", path, err)
			}
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("witness: reading the time of each tlog-witness's newest cosignature: %w (without it, an older cosignature replayed in a witness's place would be taken: restore the file, or move it aside to start without it)", err)
		}
	}
	for _, c := range tlogs {
		c.newest = times[c.t.Key]
		n, err := note.Open(p.cosigned, note.VerifierList(c.v))
		if err != nil {
			continue
		}
		for _, s := range n.Sigs {
			if at := cosig.SignatureTime(s); s.Name == c.v.Name() && s.Hash == c.v.KeyHash() && at.After(c.newest) {
				c.newest = at
			}
		}
	}
	return nil
}

// saveNewest writes each tlog-witness's newest cosignature time to
// Options.TimesPath.
func (p *Publisher) saveNewest(round []*tlogClient) error {
	times := make(map[string]time.Time, len(round))
	for _, c := range round {
		if !c.newest.IsZero() {
			times[c.t.Key] = c.newest.UTC()
		}
	}
	b, err := json.MarshalIndent(times, "", "  ")
	if err != nil {
		return err
	}
	return safefile.WriteAtomic(p.opts.TimesPath, append(b, '\n'), 0o644)
}

// tlogClient is one tlog-witness and what the publisher knows of its state.
type tlogClient struct {
	p *Publisher
	t Target
	v *cosig.Verifier
	// known is the size the witness holds, as far as we know (0 until it
	// cosigns or tells us), and knownFrontier that tree's frontier when it
	// is one of our checkpoints (nil: rebuilt from the entries).
	known         int64
	knownFrontier []byte
	// newest is the time of the newest cosignature taken from the witness.
	newest time.Time
}

// add submits cp with a proof from the size the witness holds, learning
// that size from a 409 answer, and returns the witness's verified
// cosignature line.
func (c *tlogClient) add(ctx context.Context, cp store.Checkpoint) ([]byte, error) {
	old, frontier := c.known, c.knownFrontier
	for range 3 {
		if old > cp.Size {
			if c.p.freshest(ctx, cp).Size >= old {
				return nil, errBehind
			}
			return nil, &evidenceError{auditlog.KindTruncated, fmt.Sprintf("the witness holds a tree of %d entries but the log has only %d: the log was cut short", old, cp.Size)}
		}
		var proof tlog.TreeProof
		if old > 0 && old < cp.Size {
			var err error
			if proof, err = auditlog.ProveConsistency(ctx, c.p.opts.Store, old, frontier, cp.Size); err != nil {
				return nil, fmt.Errorf("making the consistency proof from %d to %d: %w", old, cp.Size, err)
			}
		}
		sent := c.p.opts.Clock.Now()
		status, body, err := c.post(ctx, FormatAddCheckpoint(old, proof, cp.Note))
		if err != nil {
			return nil, err
		}
		switch status {
		case http.StatusOK:
			line, err := c.cosignature(cp.Note, body, sent)
			if err != nil {
				return nil, err
			}
			c.known, c.knownFrontier = cp.Size, cp.Frontier
			return line, nil
		case http.StatusConflict:
			n, err := ParseSize(body)
			if err != nil {
				return nil, fmt.Errorf("the witness answered 409 without a tree size: %v", err)
			}
			if n == old {
				// Only a different root at the same size gets 409 with the
				// size we sent.
				return nil, &evidenceError{auditlog.KindCheckpointMismatch, fmt.Sprintf("the witness holds a different tree of %d entries than the log: the log was rewritten", n)}
			}
			old, frontier = n, c.p.frontierOf(ctx, n)
			c.known, c.knownFrontier = n, frontier
		case http.StatusUnprocessableEntity:
			c.known, c.knownFrontier = 0, nil
			return nil, &evidenceError{auditlog.KindCheckpointMismatch, fmt.Sprintf("the witness refused the consistency proof from %d to %d entries: the log's entries changed", old, cp.Size)}
		case http.StatusForbidden:
			return nil, errors.New("the witness answered 403: it does not trust the log's signing key (configure the log's key, from GET /v1/audit/checkpoint or log-signing.pub, on the witness)")
		case http.StatusNotFound:
			return nil, errors.New("the witness answered 404: it does not know this log's origin (configure it on the witness)")
		default:
			return nil, fmt.Errorf("the witness answered %d", status)
		}
	}
	return nil, errors.New("the witness keeps answering 409 with another size")
}

// frontierOf returns the frontier stored with a checkpoint of size n, if
// the store can find one (store.CheckpointFinder), so that a proof from the
// size a witness learned from another replica need not rebuild that tree
// from the entries; nil otherwise (ProveConsistency then rebuilds it).
func (p *Publisher) frontierOf(ctx context.Context, n int64) []byte {
	f, ok := p.opts.Store.(store.CheckpointFinder)
	if !ok {
		return nil
	}
	cp, err := f.CheckpointOfSize(ctx, n)
	if err != nil {
		return nil
	}
	return cp.Frontier
}

func (c *tlogClient) post(ctx context.Context, body []byte) (int, []byte, error) {
	u := strings.TrimSuffix(c.t.URL, "/") + "/add-checkpoint"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, errors.New("bad witness URL")
	}
	resp, err := c.p.opts.Client.Do(req)
	if err != nil {
		return 0, nil, redactURLError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return 0, nil, fmt.Errorf("reading the witness's answer: %w", redactURLError(err))
	}
	if len(b) > MaxResponseSize {
		return 0, nil, fmt.Errorf("the witness's answer is over %d bytes", MaxResponseSize)
	}
	return resp.StatusCode, b, nil
}

// cosignature checks a 200 answer to a request sent at sent: signature
// lines, of which the one by the configured witness key must verify on the
// checkpoint and be fresh (Options.Clock). Lines by other keys are
// ignored, as the protocol requires. It returns that one line.
func (c *tlogClient) cosignature(checkpoint, body []byte, sent time.Time) ([]byte, error) {
	if len(body) == 0 || !bytes.HasSuffix(body, []byte("\n")) {
		return nil, errors.New("the witness's answer is not signature lines")
	}
	// Anything else (an empty line above all) would move the split
	// between the note's text and its signatures once appended, and the
	// cosignature would be checked over other text than the checkpoint.
	for line := range bytes.Lines(body) {
		if !bytes.HasPrefix(line, []byte("— ")) {
			return nil, errors.New("the witness's answer is not signature lines")
		}
	}
	n, err := note.Open(append(bytes.Clone(checkpoint), body...), note.VerifierList(c.v))
	if err != nil {
		var unv *note.UnverifiedNoteError
		if errors.As(err, &unv) {
			return nil, fmt.Errorf("the witness's answer has no cosignature by its key %s", c.v.Name())
		}
		return nil, fmt.Errorf("the witness's cosignature does not verify: %w", err)
	}
	for _, s := range n.Sigs {
		if s.Name == c.v.Name() && s.Hash == c.v.KeyHash() {
			at, now := cosig.SignatureTime(s), c.p.opts.Clock.Now()
			switch {
			case at.Before(sent.Add(-cosig.MaxSkew)):
				return nil, fmt.Errorf("the witness's cosignature is dated %s, more than %s before the request was sent (%s): an old cosignature replayed in its place, or its clock is wrong", at.Format(time.RFC3339), cosig.MaxSkew, sent.UTC().Format(time.RFC3339))
			case at.Before(c.newest):
				return nil, fmt.Errorf("the witness's cosignature is dated %s, before its previous one (%s): an old cosignature replayed in its place", at.Format(time.RFC3339), c.newest.Format(time.RFC3339))
			case at.After(now.Add(cosig.MaxSkew)):
				return nil, fmt.Errorf("the witness's cosignature is dated %s, more than %s after now (%s): its clock is wrong", at.Format(time.RFC3339), cosig.MaxSkew, now.UTC().Format(time.RFC3339))
			}
			c.newest = at
			return []byte("— " + s.Name + " " + s.Base64 + "\n"), nil
		}
	}
	return nil, fmt.Errorf("the witness's answer has no cosignature by its key %s", c.v.Name())
}
