package benchkit

import (
	"flag"
	"os/exec"

	"github.com/airlock-dev/airlock/internal/procpolicy"
)

// PeerSlack is the timer slack the benchmarks start the gateway's peers
// with (Go's ReverseProxy, nginx, PgBouncer). `airlock serve` gives itself
// procpolicy.TimerSlack, which makes its idle threads sleep fewer times a
// call; a peer left at the kernel's 50 µs pays for those wake-ups, so the
// ratio would credit the gateway with a kernel setting any process could
// have (bench/HISTORY.md, "S3 GET 1 KiB by system call: the gateway against
// the ReverseProxy, and nothing on the HTTP side to cut"). By default both
// sides run with the same slack; -peer-slack=50us measures the peers as
// they run unconfigured.
var PeerSlack = procpolicy.TimerSlack

// PeerSlackFlag registers -peer-slack on the command line's flag set.
func PeerSlackFlag() {
	flag.DurationVar(&PeerSlack, "peer-slack", PeerSlack, "timer slack the peers (ReverseProxy, nginx, PgBouncer) start with; the default is airlock serve's own, so both sides run with the same kernel setting (50us: the kernel's default)")
}

// StartPeer starts a peer's command with PeerSlack, which it and every
// thread it makes inherit.
func StartPeer(cmd *exec.Cmd) error { return startWithSlack(cmd, PeerSlack) }

// PeerSlackNote says in a line how the peers were started, for a
// benchmark's output.
func PeerSlackNote() string {
	return "peers start with " + PeerSlack.String() + " of timer slack (-peer-slack); airlock serve gives itself " + procpolicy.TimerSlack.String()
}
