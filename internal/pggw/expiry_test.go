package pggw

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// slowRows is a COPY FROM STDIN body that sends a row every tick until
// its end.
type slowRows struct {
	tick time.Duration
	end  time.Time
	n    int
}

func (s *slowRows) Read(p []byte) (int, error) {
	if !time.Now().Before(s.end) {
		return 0, io.EOF
	}
	time.Sleep(s.tick)
	s.n++
	return copy(p, fmt.Sprintf("row %d\n", s.n)), nil
}

// TestSessionCutAtExpiryWhenEndIsLate: the grant's expiry passes while the
// control plane's own end of it (Done) is late. A COPY FROM STDIN begun
// just before the expiry must not go on writing after it: the session is
// cut at the expiry, as the AWS gateway's are, and nothing the client
// streamed after it is committed.
func TestSessionCutAtExpiryWhenEndIsLate(t *testing.T) {
	e := newEnv(t, nil)
	ttl := 1500 * time.Millisecond
	g := e.grant(ttl, "pg:insert %s.public.events")
	ctx := ctxT(t, 20*time.Second)
	pc, err := pgconn.Connect(ctx, e.url(g, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(context.Background())
	// Nobody calls e.auth.End: the control plane is late.
	body := &slowRows{tick: 50 * time.Millisecond, end: g.ExpiresAt.Add(3 * time.Second)}
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
