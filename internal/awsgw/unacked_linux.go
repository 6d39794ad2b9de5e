package awsgw

import (
	"net"
	"syscall"
	"unsafe"
)

// unacked is how many bytes written to c its peer has not acknowledged
// (sent or not): SIOCOUTQ, the same request number as TIOCOUTQ.
func unacked(c net.Conn) (int64, bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var q int32
	var errno syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCOUTQ, uintptr(unsafe.Pointer(&q)))
	}); err != nil || errno != 0 {
		return 0, false
	}
	return int64(q), true
}
