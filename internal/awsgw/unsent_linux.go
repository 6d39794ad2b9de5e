package awsgw

import (
	"net"
	"syscall"
	"unsafe"
)

// siocOUTQNSD is Linux's SIOCOUTQNSD: the bytes in a TCP socket's send
// queue that were never sent (Linux 2.6.39 and later).
const siocOUTQNSD = 0x894b

// unsent is how many bytes written to c its kernel has not sent yet.
func unsent(c net.Conn) (int64, bool) {
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
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, siocOUTQNSD, uintptr(unsafe.Pointer(&q)))
	}); err != nil || errno != 0 {
		return 0, false
	}
	return int64(q), true
}
