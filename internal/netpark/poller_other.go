//go:build !linux

package netpark

import (
	"errors"
	"log/slog"
	"net"
	"time"
)

// Poller is a stand-in where epoll is not available: Wrap returns
// connections unchanged, so that nothing is ever parked and callers keep
// a goroutine blocked on each connection.
type Poller struct{ log *slog.Logger }

// New returns a poller that parks nothing.
func New(log *slog.Logger) (*Poller, error) {
	if log == nil {
		log = slog.Default()
	}
	return &Poller{log: log}, nil
}

// Wrap returns nc: there is no poller to park it with.
func (p *Poller) Wrap(nc net.Conn) net.Conn { return nc }

// WrapInto returns nc, as Wrap does.
func (p *Poller) WrapInto(_ *Conn, nc net.Conn) net.Conn { return nc }

// Len is always 0.
func (p *Poller) Len() int { return 0 }

// Close does nothing.
func (p *Poller) Close() error { return nil }

func (p *Poller) register(*Conn) (uint64, error) {
	return 0, errors.New("netpark: not supported on this system")
}

func (p *Poller) unregister(*Conn, uint64) {}

// Shed does nothing: there is no *Conn to shed.
func (c *Conn) Shed() bool { return false }

// ShedAfter does nothing.
func (p *Poller) ShedAfter(time.Duration) {}

// ShedWhenCrowded does nothing.
func (p *Poller) ShedWhenCrowded(int) {}

// OnSweep does nothing: there are no sweeps.
func (p *Poller) OnSweep(func(int)) {}

func (c *Conn) restoreLocked() (Waker, error) { return nil, net.ErrClosed }

func (c *Conn) closeBareLocked() {}

func (c *Conn) bareAddrLocked(bool) net.Addr { return nil }
