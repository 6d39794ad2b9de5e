package grants_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
)

// endingRead is a store whose next read of grant id ends that grant (as
// the holder's end_grant, run beside it, does) after reading it, and
// returns what it read: the caller holds an active record of a grant whose
// end has committed.
type endingRead struct {
	*sqlitestore.Store
	mu  sync.Mutex
	id  string
	end func()
}

func (e *endingRead) Grant(ctx context.Context, id string) (model.Grant, error) {
	g, err := e.Store.Grant(ctx, id)
	e.mu.Lock()
	end := e.end
	if id == e.id {
		e.end = nil
	}
	e.mu.Unlock()
	if id == e.id && end != nil {
		end()
	}
	return g, err
}

// A command recorded (run_with_grant, airlock exec) or credentials issued
// while the holder ends the grant are refused once the end has committed,
// not logged after it. On a single server (SQLite) they were: following
// the README, an MCP session's end_grant and run_with_grant side by side
// left the grant's log with grant.ended (#35) and then grant.command
// (#36), a command "run under" a grant that had ended. AppendLive checks
// the grant under the writer only on a shared log.
func TestNothingLoggedUnderAGrantAfterItsEnd(t *testing.T) {
	t.Parallel()
	race := &endingRead{}
	h := newHarness(t, harnessOptions{Store: func(s store.Store) store.Store {
		race.Store = s.(*sqlitestore.Store)
		return race
	}})
	for _, c := range []struct {
		name string
		call func(id string) error
		typ  string
	}{
		{"command", func(id string) error {
			return h.Svc.RecordCommand(h.ctx, h.id(bot), id, []string{"psql", "-c", "select 1"}, grants.CommandViaMCP)
		}, "grant.command"},
		{"credentials", func(id string) error {
			_, err := h.Svc.Credentials(h.ctx, h.id(bot), id)
			return err
		}, "grant.credentials_issued"},
	} {
		g := h.request(bot, autoReq("10m"), model.Active)
		race.mu.Lock()
		race.id, race.end = g.ID, func() {
			if _, err := h.Svc.End(h.ctx, h.id(bot), g.ID, "done"); err != nil {
				t.Errorf("%s: end: %v", c.name, err)
			}
		}
		race.mu.Unlock()
		err := c.call(g.ID)
		wantAPIErr(t, err, 409, apierr.CodeConflict, "")
		h.syncLog()
		types := h.types(g.ID)
		ended := slices.Index(types, "grant.ended")
		if ended < 0 {
			t.Fatalf("%s: the grant did not end: %v", c.name, types)
		}
		if slices.Contains(types[ended:], c.typ) {
			t.Errorf("%s: %s logged after grant.ended: %v", c.name, c.typ, types)
		}
	}
	h.verifyLog()
}
