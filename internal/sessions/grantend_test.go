package sessions

import (
	"context"
	"testing"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// recordOnlyTx is a write transaction that can read a grant's record
// without its usage (store.GrantRecordTx), and fails the test if the
// usage is read (Grant).
type recordOnlyTx struct {
	store.Tx
	t      *testing.T
	record model.Grant
	reads  int
}

func (x *recordOnlyTx) Grant(context.Context, string) (model.Grant, error) {
	x.t.Error("Grant read the grant's usage (every session it had) inside the log's writer")
	return x.record, nil
}

func (x *recordOnlyTx) GrantRecord(context.Context, string) (model.Grant, error) {
	x.reads++
	return x.record, nil
}

// TestRecordedGrantEndReadsTheRecordOnly: a session cut off by its grant's
// end, on a store shared by replicas, reads why the grant ended from its
// record, and not its usage, which sums every session the grant had,
// inside the log's writer, for each session the end cuts off.
func TestRecordedGrantEndReadsTheRecordOnly(t *testing.T) {
	g := grant("g_end")
	g.End("expired")
	x := &recordOnlyTx{t: t, record: model.Grant{ID: "g_end", Status: model.Revoked, EndReason: "revoked"}}
	why, err := recordedGrantEnd(context.Background(), x, g)
	if err != nil || why != "revoked" || x.reads != 1 {
		t.Fatalf("recordedGrantEnd: %q, %v after %d record reads; want the record's %q", why, err, x.reads, "revoked")
	}
}
