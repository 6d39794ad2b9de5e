package benchkit

import (
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PerfStat is `perf stat -e` counting events on one process while a
// benchmark measures it: counts per call or per transaction hold on a
// busy machine, where times do not.
type PerfStat struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

// StartPerfStat starts `perf stat -x , -e events -p pid` and waits a
// second for it to attach (what it counts in that second, an idle
// process's, is part of the figures).
func StartPerfStat(pid int, events string) (*PerfStat, error) {
	s := &PerfStat{}
	s.cmd = exec.Command("perf", "stat", "-x", ",", "-e", events, "-p", strconv.Itoa(pid))
	s.cmd.Stderr = &s.out
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	time.Sleep(time.Second)
	return s, nil
}

// Stop ends perf stat and returns its counts, each divided by n, as
// PerStat does.
func (s *PerfStat) Stop(n int64) string {
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	_ = s.cmd.Wait()
	return PerStat(s.out.String(), n)
}

// PerStat reads perf stat's CSV output (-x ,: count, unit, event, ...)
// and returns " event count/n" for each event, an uncounted one's
// "<not counted>" or "<not supported>" as perf wrote it; with no event
// in out, "perf stat: " and out, which then says what went wrong.
func PerStat(out string, n int64) string {
	var b strings.Builder
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 || strings.HasPrefix(line, "#") {
			continue
		}
		if c, err := strconv.ParseFloat(f[0], 64); err == nil {
			fmt.Fprintf(&b, " %s %.3f", f[2], c/float64(max(n, 1)))
		} else {
			fmt.Fprintf(&b, " %s %s", f[2], f[0])
		}
	}
	if b.Len() == 0 {
		return "perf stat: " + strings.TrimSpace(out)
	}
	return b.String()
}
