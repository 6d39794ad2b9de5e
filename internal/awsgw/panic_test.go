package awsgw

import (
	"io"
	"strings"
	"testing"
)

// TestResultPanicKeepsProcess: recording the result of an answer that
// was not delivered (cut off here, the grant revoked mid-download) runs on
// a goroutine of its own, which net/http does not recover: a panic in the
// recorder there ended the whole process. It is now logged, and the
// session still ends.
func TestResultPanicKeepsProcess(t *testing.T) {
	e := newEnv(t)
	g := e.grant(walkScope)
	e.auth.PanicOnResults(true)
	body := e.slowDownload(t, g)
	defer body.Close()
	e.auth.End(g, "revoked")
	_, _ = io.Copy(io.Discard, body)
	eventually(t, "the panic to be logged", func() bool {
		return strings.Contains(e.logText(), "panic recording a call's result")
	})
	eventually(t, "the session to end", func() bool { return e.auth.Sessions()[0].Ended() })
}
