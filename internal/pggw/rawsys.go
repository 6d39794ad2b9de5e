package pggw

import (
	"syscall"
	"unsafe"
)

// Socket reads and writes without the runtime's system-call bookkeeping.
//
// Both sockets of a session are non-blocking, so read(2) and write(2) on
// them return at once: with data, with what fitted, or with EAGAIN. Made
// through syscall.Read and syscall.Write (as net.Conn does), every one
// of them also goes through the scheduler's entersyscall and exitsyscall,
// which hand the goroutine's P over for the call, and wake sysmon if the
// process was idle; sysmon then polls every 20 µs for a millisecond. A
// relay whose process is idle between round trips of ~100 µs pays that
// on nearly every statement (bench/README.md, "What bounds the relay
// now": sysmon 15% of the relay's CPU). A raw system call skips the
// bookkeeping; it is safe only because the descriptor never blocks. The
// waiting itself still goes through the runtime's poller (RawConn.Read
// and RawConn.Write call back here once the socket is ready).

// rawRead is read(2) on a non-blocking descriptor.
func rawRead(fd uintptr, p []byte) (int, error) { return rawIO(syscall.SYS_READ, fd, p) }

// rawWrite is write(2) on a non-blocking descriptor.
func rawWrite(fd uintptr, p []byte) (int, error) { return rawIO(syscall.SYS_WRITE, fd, p) }

// rawIO is read(2) or write(2) (trap) of p on fd, retried on EINTR; -1 and
// the errno on failure, as syscall.Read and syscall.Write.
func rawIO(trap, fd uintptr, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, _, e := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return -1, e
		}
		return int(n), nil
	}
}
