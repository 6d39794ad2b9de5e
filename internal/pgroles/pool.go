package pgroles

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
)

// pool is a few admin connections, enough for grants that start and end
// together without one slow DROP holding up the rest. pgxpool would need a
// module (puddle) this repository does not carry, and admin work is rare
// and short, so a channel of idle connections is all that is needed.
type pool struct {
	cfg  *pgx.ConnConfig
	sem  chan struct{}
	idle chan *pgx.Conn

	mu     sync.Mutex
	closed bool
}

const poolSize = 4

var errClosed = errors.New("pgroles: manager is closed")

func newPool(cfg *pgx.ConnConfig) *pool {
	return &pool{cfg: cfg, sem: make(chan struct{}, poolSize), idle: make(chan *pgx.Conn, poolSize)}
}

// acquire returns a connection for the caller's exclusive use.
func (p *pool) acquire(ctx context.Context) (*pgx.Conn, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		<-p.sem
		return nil, errClosed
	}
	for {
		select {
		case c := <-p.idle:
			if c.IsClosed() {
				continue
			}
			return c, nil
		default:
		}
		c, err := pgx.ConnectConfig(ctx, p.cfg)
		if err != nil {
			<-p.sem
			// pgconn's errors name host, user and database but never the
			// password, so they are safe to pass on.
			return nil, fmt.Errorf("pgroles: connect to admin DSN: %w", err)
		}
		return c, nil
	}
}

// release gives c back. A connection that failed mid-transaction, or whose
// state is unknown, is closed instead of reused.
func (p *pool) release(c *pgx.Conn, broken bool) {
	defer func() { <-p.sem }()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || broken || c.IsClosed() || c.PgConn().TxStatus() != 'I' {
		c.Close(context.Background())
		return
	}
	select {
	case p.idle <- c:
	default:
		c.Close(context.Background())
	}
}

// close closes the idle connections; connections in use are closed by
// release once their holder is done.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for {
		select {
		case c := <-p.idle:
			c.Close(context.Background())
		default:
			return
		}
	}
}
