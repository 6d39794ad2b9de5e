package cli

import (
	"strings"
	"testing"
)

// TestGrantsSinceRelative: airlock grants --since 1h (and 90m, 7d) lists
// the grants of the last hour, as an auditor types it; before, only an
// absolute time was taken and --since 1h was refused. Garbage is refused
// with a message saying what is taken, and absolute times still work.
func TestGrantsSinceRelative(t *testing.T) {
	l := startServer(t, nil)
	id := l.activeGrant("since")
	for _, args := range [][]string{{"--since", "1h"}, {"--since", "90m"}, {"--since", "7d"}, {"--since", "1d12h", "--until", "2099-01-01"}, {"--since", "2000-01-01"}} {
		code, out, errOut := l.as(l.aliceKey, append([]string{"grants"}, args...)...)
		if code != 0 || !strings.Contains(out, id) {
			t.Errorf("grants %v: exit %d, %q %s; want %s listed", args, code, out, errOut, id)
		}
	}
	// The grant began just now: it was not live between an hour and
	// half an hour ago.
	if code, out, errOut := l.as(l.aliceKey, "grants", "--since", "1h", "--until", "30m"); code != 0 || strings.Contains(out, id) {
		t.Errorf("grants --since 1h --until 30m: exit %d, %q %s; want no %s", code, out, errOut, id)
	}
	for _, bad := range [][]string{{"--since", "yesterday"}, {"--since", "-1h"}, {"--until", "1w"}, {"--since", "1h", "--until", "2h"}} {
		code, out, errOut := l.as(l.aliceKey, append([]string{"grants"}, bad...)...)
		if code == 0 || !strings.Contains(errOut, "duration") && !strings.Contains(errOut, "after since") {
			t.Errorf("grants %v: exit %d, %q %q; want an error saying what is taken", bad, code, out, errOut)
		}
	}
}
