package benchkit

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStartPeerSetsSlack: a peer started by StartPeer runs with PeerSlack,
// whatever the benchmark's own threads have; without it, the ReverseProxy
// and PgBouncer would run at the kernel's 50 µs while airlock serve runs at
// its own 500.
func TestStartPeerSetsSlack(t *testing.T) {
	defer func(old time.Duration) { PeerSlack = old }(PeerSlack)
	for _, slack := range []time.Duration{300 * time.Microsecond, 50 * time.Microsecond} {
		PeerSlack = slack
		cmd := exec.Command("sleep", "30")
		if err := StartPeer(cmd); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/timerslack_ns")
		cmd.Process.Kill()
		cmd.Wait()
		if err != nil {
			t.Fatalf("reading the peer's slack: %v", err)
		}
		got, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if time.Duration(got) != slack {
			t.Errorf("peer started with PeerSlack %v runs with %v", slack, time.Duration(got))
		}
	}
}
