package awsgw

import (
	"net"
	"syscall"
)

// canSplice says whether (*net.TCPConn).ReadFrom splices from a socket
// here; tests turn it off to compare the copy.
var canSplice = true

// upstreamAlive reports whether c has neither failed nor been closed by
// its peer: a peek that does not wait finds nothing to read yet (or
// finds data). After a failed splice it tells whose side failed.
func upstreamAlive(c *net.TCPConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var b [1]byte
	if err := raw.Control(func(fd uintptr) {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = n > 0 || err == syscall.EAGAIN
	}); err != nil {
		return false
	}
	return alive
}
