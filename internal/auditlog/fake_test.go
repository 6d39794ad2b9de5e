package auditlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// fakeStore is an in-memory store.Store holding identities, the log and its
// checkpoints, with SQLite-like transactions and savepoints. Tests tamper with
// it through its exported-to-the-test fields under mu.
type fakeStore struct {
	mu      sync.Mutex
	entries []store.LogEntry
	cps     []store.Checkpoint
	idents  map[string]model.Identity
	nextCP  int64

	writer     chan struct{}           // one transaction at a time
	failCommit func(entries int) error // if set and it returns an error, Commit fails with it
	commits    int
}

func newFakeStore() *fakeStore {
	return &fakeStore{idents: map[string]model.Identity{}, nextCP: 1, writer: make(chan struct{}, 1)}
}

var errFakeUnsupported = errors.New("fake store: not supported")

func cloneEntry(e store.LogEntry) store.LogEntry {
	e.Data = bytes.Clone(e.Data)
	e.LeafHash = bytes.Clone(e.LeafHash)
	return e
}

func cloneCP(c store.Checkpoint) store.Checkpoint {
	c.Root = bytes.Clone(c.Root)
	c.Note = bytes.Clone(c.Note)
	c.Frontier = bytes.Clone(c.Frontier)
	return c
}

func (s *fakeStore) Identity(ctx context.Context, name string) (model.Identity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.idents[name]
	if !ok {
		return model.Identity{}, store.ErrNotFound
	}
	return id, nil
}

func (s *fakeStore) Identities(ctx context.Context) ([]model.Identity, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.SortedFunc(maps.Values(s.idents), func(a, b model.Identity) int {
		return bytes.Compare([]byte(a.Name), []byte(b.Name))
	}), nil
}

func (s *fakeStore) Grant(ctx context.Context, id string) (model.Grant, error) {
	return model.Grant{}, errFakeUnsupported
}
func (s *fakeStore) GrantRecord(ctx context.Context, id string) (model.Grant, error) {
	return model.Grant{}, errFakeUnsupported
}
func (s *fakeStore) Grants(ctx context.Context, f store.GrantFilter) ([]model.Grant, error) {
	return nil, errFakeUnsupported
}
func (s *fakeStore) Session(ctx context.Context, id string) (model.Session, error) {
	return model.Session{}, errFakeUnsupported
}
func (s *fakeStore) Sessions(ctx context.Context, grantID string) ([]model.Session, error) {
	return nil, errFakeUnsupported
}
func (s *fakeStore) SessionsPage(ctx context.Context, f store.SessionFilter) ([]model.Session, error) {
	return nil, errFakeUnsupported
}

func (s *fakeStore) LogSize(ctx context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.entries)), nil
}

func (s *fakeStore) ScanLog(ctx context.Context, from, to int64, fn func(store.LogEntry) error) error {
	s.mu.Lock()
	var es []store.LogEntry
	for _, e := range s.entries {
		if e.Seq >= from && e.Seq < to {
			es = append(es, cloneEntry(e))
		}
	}
	s.mu.Unlock()
	slices.SortStableFunc(es, func(a, b store.LogEntry) int { return int(a.Seq - b.Seq) })
	for _, e := range es {
		if err := fn(e); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeStore) LogEntries(ctx context.Context, f store.LogFilter) ([]store.LogEntry, error) {
	return nil, errFakeUnsupported
}

func (s *fakeStore) ScanCheckpoints(ctx context.Context, fn func(store.Checkpoint) error) error {
	s.mu.Lock()
	cps := make([]store.Checkpoint, len(s.cps))
	for i, c := range s.cps {
		cps[i] = cloneCP(c)
	}
	s.mu.Unlock()
	slices.SortStableFunc(cps, func(a, b store.Checkpoint) int { return int(a.ID - b.ID) })
	for _, c := range cps {
		if err := fn(c); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeStore) LatestCheckpoint(ctx context.Context) (store.Checkpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *store.Checkpoint
	for i := range s.cps {
		if best == nil || s.cps[i].ID > best.ID {
			best = &s.cps[i]
		}
	}
	if best == nil {
		return store.Checkpoint{}, store.ErrNotFound
	}
	return cloneCP(*best), nil
}

func (s *fakeStore) Begin(ctx context.Context) (store.Tx, error) {
	select {
	case s.writer <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	idents := maps.Clone(s.idents)
	s.mu.Unlock()
	return &fakeTx{s: s, idents: idents}, nil
}

func (s *fakeStore) Close() error { return nil }

type fakeSavepoint struct {
	name           string
	nEntries, nCPs int
	idents         map[string]model.Identity
}

type fakeTx struct {
	s       *fakeStore
	entries []store.LogEntry
	cps     []store.Checkpoint
	idents  map[string]model.Identity
	sps     []fakeSavepoint
	done    bool
}

func (t *fakeTx) Grant(ctx context.Context, id string) (model.Grant, error) {
	return model.Grant{}, errFakeUnsupported
}
func (t *fakeTx) CreateGrant(ctx context.Context, g model.Grant) error { return errFakeUnsupported }
func (t *fakeTx) UpdateGrant(ctx context.Context, g model.Grant) error { return errFakeUnsupported }
func (t *fakeTx) GrantByCredential(ctx context.Context, credentialID string) (model.Grant, error) {
	return model.Grant{}, errFakeUnsupported
}
func (t *fakeTx) OpenGrants(ctx context.Context) ([]model.Grant, error) {
	return nil, errFakeUnsupported
}

func (t *fakeTx) Identity(ctx context.Context, name string) (model.Identity, error) {
	id, ok := t.idents[name]
	if !ok {
		return model.Identity{}, store.ErrNotFound
	}
	return id, nil
}

func (t *fakeTx) PutIdentity(ctx context.Context, id model.Identity) error {
	if t.done {
		return errors.New("fake: tx done")
	}
	t.idents[id.Name] = id
	return nil
}

func (t *fakeTx) PutSession(ctx context.Context, s model.Session) error    { return errFakeUnsupported }
func (t *fakeTx) InsertSession(ctx context.Context, s model.Session) error { return errFakeUnsupported }
func (t *fakeTx) EndSession(ctx context.Context, s model.Session) (bool, error) {
	return false, errFakeUnsupported
}

func (t *fakeTx) nextSeq() int64 {
	if n := len(t.entries); n > 0 {
		return t.entries[n-1].Seq + 1
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	if n := len(t.s.entries); n > 0 {
		return t.s.entries[n-1].Seq + 1
	}
	return 0
}

func (t *fakeTx) AppendLog(ctx context.Context, entries []store.LogEntry) error {
	if t.done {
		return errors.New("fake: tx done")
	}
	next := t.nextSeq()
	for _, e := range entries {
		if e.Seq != next {
			return fmt.Errorf("%w: entry %d, expected %d", store.ErrConflict, e.Seq, next)
		}
		t.entries = append(t.entries, cloneEntry(e))
		next++
	}
	return nil
}

func (t *fakeTx) PutCheckpoint(ctx context.Context, c store.Checkpoint) error {
	if t.done {
		return errors.New("fake: tx done")
	}
	t.cps = append(t.cps, cloneCP(c))
	return nil
}

func (t *fakeTx) Savepoint(ctx context.Context, name string) error {
	t.sps = append(t.sps, fakeSavepoint{name: name, nEntries: len(t.entries), nCPs: len(t.cps), idents: maps.Clone(t.idents)})
	return nil
}

func (t *fakeTx) find(name string) (int, error) {
	for i := len(t.sps) - 1; i >= 0; i-- {
		if t.sps[i].name == name {
			return i, nil
		}
	}
	return 0, fmt.Errorf("fake: no such savepoint: %s", name)
}

// RollbackTo undoes changes since the savepoint and, like SQLite, keeps it.
func (t *fakeTx) RollbackTo(ctx context.Context, name string) error {
	i, err := t.find(name)
	if err != nil {
		return err
	}
	sp := t.sps[i]
	t.entries = t.entries[:sp.nEntries]
	t.cps = t.cps[:sp.nCPs]
	t.idents = maps.Clone(sp.idents)
	t.sps = t.sps[:i+1]
	return nil
}

func (t *fakeTx) Release(ctx context.Context, name string) error {
	i, err := t.find(name)
	if err != nil {
		return err
	}
	t.sps = t.sps[:i]
	return nil
}

func (t *fakeTx) Commit() error {
	if t.done {
		return errors.New("fake: tx done")
	}
	t.done = true
	defer func() { <-t.s.writer }()
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	if f := t.s.failCommit; f != nil {
		if err := f(len(t.entries)); err != nil {
			return err
		}
	}
	t.s.entries = append(t.s.entries, t.entries...)
	for _, c := range t.cps {
		c.ID = t.s.nextCP
		t.s.nextCP++
		t.s.cps = append(t.s.cps, c)
	}
	t.s.idents = t.idents
	t.s.commits++
	return nil
}

func (t *fakeTx) Rollback() error {
	if t.done {
		return errors.New("fake: tx done")
	}
	t.done = true
	<-t.s.writer
	return nil
}
