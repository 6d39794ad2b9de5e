package pggw

import (
	"io"
	"sync"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Reusing the upstream login's pgproto3.Frontend.
//
// pgconn builds a Frontend for every upstream login, with an 8 KiB read
// buffer from pgx's own buffer pool. After Hijack the relay reads the socket
// itself and the Frontend was dropped without its buffer going back to that
// pool: 9 KiB of garbage per session start (the buffer and the Frontend's
// message structs), more than a third of what a login allocated, which
// is what an idle connection's memory (VmRSS) grows by until a
// collection. Frontends of logins that ended cleanly (nothing left
// unread) are kept here for the next logins instead. A Frontend reads and
// writes through its poolIO, pointed at the new connection at each use and
// cleared when it is put back.

// pooledFrontend is a Frontend and the reader/writer it was built on.
type pooledFrontend struct {
	f  *pgproto3.Frontend
	io poolIO
}

// poolIO is a Frontend's connection, changed between uses.
type poolIO struct {
	r io.Reader
	w io.Writer
}

func (p *poolIO) Read(b []byte) (int, error)  { return p.r.Read(b) }
func (p *poolIO) Write(b []byte) (int, error) { return p.w.Write(b) }

// frontends holds *pooledFrontend whose Frontend has the maximum message
// size maxLoginMessage (pgconn changes it only for a configured
// MaxProtocolMessageBodyLen, and such logins are not pooled).
var frontends sync.Pool

// maxLoginMessage bounds a message of the upstream's login (authentication
// requests, ParameterStatus, BackendKeyData, an ErrorResponse): pgproto3's
// own bound is PostgreSQL's 1 GiB, and its reader allocates a message's
// declared length before the body arrives, so an upstream (or whatever
// answers at its address) declaring a large one made every login
// allocate that much and hold it until StartupTimeout. A login's messages
// are a few hundred bytes; libpq takes any but a row, a notice or an
// error over 30000 bytes for a lost sync.
const maxLoginMessage = 1 << 20

// getFrontend returns a Frontend on r and w, a kept one if any.
func getFrontend(r io.Reader, w io.Writer) *pooledFrontend {
	pf, _ := frontends.Get().(*pooledFrontend)
	if pf == nil {
		pf = &pooledFrontend{}
		pf.f = pgproto3.NewFrontend(&pf.io, &pf.io)
		pf.f.SetMaxBodyLen(maxLoginMessage)
	}
	pf.io = poolIO{r: r, w: w}
	return pf
}

// putFrontend keeps pf for another login. The caller has checked that its
// login ended at a message boundary with nothing read ahead.
func putFrontend(pf *pooledFrontend) {
	pf.io = poolIO{}
	frontends.Put(pf)
}
