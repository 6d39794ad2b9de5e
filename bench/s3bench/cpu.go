package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the unit of /proc/PID/stat's times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// cpuTime is the user+system CPU time a process has used so far.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after its closing parenthesis (field 3, state, comes first).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad times", pid)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// selfCPU is this process's CPU time: the benchmark's clients.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// childPID finds this process's child running the named program (testenv
// starts versitygw without handing out its process).
func childPID(name string) int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	me := os.Getpid()
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open || s[open+1:end] != name {
			continue
		}
		f := strings.Fields(s[end+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(me) {
			pid, _ := strconv.Atoi(strings.Fields(s)[0])
			return pid
		}
	}
	return 0
}

// cpuMeter measures the CPU the three parties use during a phase.
type cpuMeter struct {
	gatewayPID, upstreamPID int
}

// cpuUse is CPU time used during a phase, in seconds.
type cpuUse struct {
	Clients  float64 `json:"clients_cpu_s"`
	Gateway  float64 `json:"gateway_cpu_s"`
	Upstream float64 `json:"upstream_cpu_s"`
}

type cpuMark struct{ self, gw, up time.Duration }

func (m cpuMeter) mark() cpuMark {
	gw, _ := cpuTime(m.gatewayPID)
	up, _ := cpuTime(m.upstreamPID)
	return cpuMark{selfCPU(), gw, up}
}

func (m cpuMeter) since(a cpuMark) cpuUse {
	b := m.mark()
	return cpuUse{Clients: (b.self - a.self).Seconds(), Gateway: (b.gw - a.gw).Seconds(), Upstream: (b.up - a.up).Seconds()}
}
