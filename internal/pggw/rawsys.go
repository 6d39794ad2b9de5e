package pggw

import (
	"syscall"
	"unsafe"
)

// Socket reads and writes without the runtime's system-call bookkeeping.
//
// Both sockets of a session are the net package's, which are always
// non-blocking, so read(2) and write(2) on them return at once: with data,
// with what fitted, or with EAGAIN. Made through syscall.Read and
// syscall.Write (as net.Conn does), every one of them also goes through
// the scheduler's entersyscall and exitsyscall, which mark the goroutine's
// P as in a system call (for sysmon to take it away if the call lasts) and
// wake sysmon if it was asleep because the process was idle; sysmon then
// polls every 20 µs for a millisecond. A relay whose process goes idle
// between round trips of ~100 µs pays that on nearly every statement
// (bench/HISTORY.md, "What bounds the relay now": sysmon 15% of the
// relay's CPU). A raw system call skips the bookkeeping. It is safe only
// because the descriptor never blocks (a blocking one would hold a P for
// as long as the call waits), so these are called only from the callbacks
// of a net.Conn's syscall.RawConn; the waiting itself still goes through
// the runtime's poller, which calls the callback again once the socket is
// ready. Unlike syscall.Read and syscall.Write they tell the race
// detector nothing: the bytes come from and go to other processes, or to
// tests' goroutines that never share memory with the relay through them.
//
// Measured (bench/HISTORY.md, "Raw system calls"): the relay's CPU per
// statement in BenchmarkRelay fell by a quarter to a third.

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
