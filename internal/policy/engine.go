package policy

import (
	"sync"
	"sync/atomic"
)

// Engine holds the current Set behind an atomic pointer, so decisions read
// it without locking and never wait for a reload.
type Engine struct {
	dir         string
	knownTarget func(string) bool
	cur         atomic.Pointer[Set]
	reload      sync.Mutex // one reload at a time, so "changed" is accurate
}

// NewEngine loads dir; the initial load must succeed.
func NewEngine(dir string, knownTarget func(string) bool) (*Engine, error) {
	s, err := Load(dir, knownTarget)
	if err != nil {
		return nil, err
	}
	e := &Engine{dir: dir, knownTarget: knownTarget}
	e.cur.Store(s)
	return e, nil
}

// Current is the Set in force.
func (e *Engine) Current() *Set { return e.cur.Load() }

// Reload loads the directory again. On error the old Set stays in force and
// is returned with the error. changed reports whether the files differ from
// the Set in force (by Hash); an unchanged reload keeps the old Set.
func (e *Engine) Reload() (set *Set, changed bool, err error) {
	e.reload.Lock()
	defer e.reload.Unlock()
	old := e.cur.Load()
	s, err := Load(e.dir, e.knownTarget)
	if err != nil {
		return old, false, err
	}
	if s.Hash() == old.Hash() {
		return old, false, nil
	}
	e.cur.Store(s)
	return s, true, nil
}
