// Package netpark parks idle network connections without a goroutine.
//
// Why: a Go server that relays between sockets keeps a goroutine blocked
// reading each socket it waits on. A blocked goroutine costs its stack
// (2-8 KiB, more after a deep call) and its g; a PostgreSQL session that
// sits idle for hours through a gateway holds two of them (the client side
// and the upstream side), many times what a C proxy such as PgBouncer
// keeps for an idle client (a few hundred bytes). Parking lets such a
// goroutine return, its stack freed, and starts a new one when the socket
// has something to read.
//
// How: a Poller owns one epoll instance and one goroutine blocked in
// epoll_wait. Wrap returns a *Conn for a connection with a file descriptor
// (plain TCP or Unix sockets). (*Conn).Park registers the descriptor,
// obtained inside syscall.RawConn.Control so that it is never used after
// the connection is closed, for EPOLLIN|EPOLLRDHUP|EPOLLONESHOT, and
// returns at once: the caller's goroutine may then return. When the socket
// becomes readable, or its peer hangs up, the poller removes the
// registration and runs the wake callback on a new goroutine, which
// resumes reading the connection as usual (through Go's own netpoller).
// Closing a parked Conn, or the Poller, removes the registration before the
// descriptor is closed and runs the callback too, so that whatever resumes
// sees the closed connection and ends: a parked connection is never
// forgotten. A panic in a callback is recovered and logged; the process
// keeps running.
//
// Shedding: a parked connection still holds its net.Conn, Go's netFD and
// addresses (about 300 bytes of heap per TCP socket) and the runtime's
// poll descriptor (512 bytes outside the heap). (*Conn).Shed, and the
// poller's sweep for connections parked longer than ShedAfter, keep a
// duplicate of the socket's descriptor, move the registration to it and
// close the net.Conn. The next use of the *Conn (a read after the wake-up,
// a write, a deadline, a raw call) rebuilds a net.Conn with net.FileConn
// and moves the registration back if it is still parked; Close closes the
// bare descriptor, once, under the Conn's lock. Only plain TCP connections
// that are parked, with no deadline set and no call in progress, are
// shed, so that nothing the net.Conn held is lost. While shed, LocalAddr
// and RemoteAddr read the socket; they are nil once it is closed.
//
// Limits:
//   - Linux only. Elsewhere Wrap returns the connection unchanged, there is
//     no *Conn to park, and callers keep a goroutine blocked as before.
//   - Only connections that expose a descriptor (syscall.Conn) can be
//     parked. A TLS connection cannot: it may hold decrypted bytes that the
//     socket will never signal again, and its own buffers stay allocated
//     anyway. Park the TCP connection under TLS only when the caller knows
//     nothing is buffered above it; package pggw parks plain connections only.
//   - The caller must have nothing buffered from the connection when it
//     parks: the wake-up is for new bytes on the socket only.
//   - Deadlines do not apply while parked: a parked connection waits until
//     it is readable, hung up or closed. A caller that needs a time limit
//     on an idle connection closes it from its own timer, which wakes it.
//   - Parking costs two epoll_ctl calls and a goroutine start per idle
//     period, so park after a connection has been idle for a while, not
//     between the messages of a busy one.
package netpark
