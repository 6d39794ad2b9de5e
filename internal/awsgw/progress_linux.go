package awsgw

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// clientProgress is what the kernel knows of a TCP connection's sending:
// how many bytes the peer has acknowledged, and whether bytes wait for it
// (sent and not yet acknowledged, or not sent yet).
func clientProgress(c net.Conn) (acked uint64, waiting, ok bool) {
	sc, isSC := c.(syscall.Conn)
	if !isSC {
		return 0, false, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, false, false
	}
	var info *unix.TCPInfo
	var ierr error
	if err := raw.Control(func(fd uintptr) {
		info, ierr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
	}); err != nil || ierr != nil {
		return 0, false, false
	}
	return info.Bytes_acked, info.Unacked > 0 || info.Notsent_bytes > 0, true
}
