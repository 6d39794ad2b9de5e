package pggw

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/airlock-dev/airlock/internal/clock"
)

// slowRows is a COPY FROM STDIN body that sends a row every tick, max
// rows in all, calling onRow (if set) before each.
type slowRows struct {
	tick  time.Duration
	max   int
	onRow func(n int)
	n     int
}

func (s *slowRows) Read(p []byte) (int, error) {
	if s.n >= s.max {
		return 0, io.EOF
	}
	time.Sleep(s.tick)
	s.n++
	if s.onRow != nil {
		s.onRow(s.n)
	}
	return copy(p, fmt.Sprintf("row %d\n", s.n)), nil
}

// TestSessionCutAtExpiryWhenEndIsLate: the grant's expiry passes while the
// control plane's own end of it (Done) is late. A COPY FROM STDIN begun
// just before the expiry must not go on writing after it: the session is
// cut at the expiry, as the AWS gateway's are, and nothing the client
// streamed after it is committed.
func TestSessionCutAtExpiryWhenEndIsLate(t *testing.T) {
	fake := clock.NewFake(time.Now())
	e := newEnv(t, func(o *Options) { o.Clock = fake })
	g := e.grant(time.Hour, "pg:insert %s.public.events")
	ctx := ctxT(t, 20*time.Second)
	pc, err := pgconn.Connect(ctx, e.url(g, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	// Nobody calls e.auth.End: the control plane is late.
	// The gateway's clock reaches the expiry once the COPY is under way;
	// the client streams on for about 5 s more.
	body := &slowRows{tick: 50 * time.Millisecond, max: 100, onRow: func(n int) {
		if n == 5 {
			fake.Set(g.ExpiresAt)
		}
	}}
	tag, err := pc.CopyFrom(ctx, body, "copy events (note) from stdin")
	if err == nil {
		t.Errorf("the COPY begun before the grant's expiry went on after it and committed %d rows", tag.RowsAffected())
	}
	var rows int
	if err := e.admin().QueryRow(ctx, "select count(*) from events").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Errorf("%d rows committed by a COPY that ran past the grant's expiry", rows)
	}
}
