package pggw

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
)

// TestStalledLargeRowLetsSessionEnd: an upstream that stops in the middle
// of a row too large for the relay's buffer (streamed, streamLarge) must
// not keep the session open once its client leaves or it is killed (a
// grant's end): streamLarge held wmu while it waited for the rest of the
// row, and closeAll and kill, which take wmu, waited with it until the
// upstream sent more (FuzzBackendMessages found it).
func TestStalledLargeRowLetsSessionEnd(t *testing.T) {
	for _, how := range []string{"client leaves", "killed"} {
		t.Run(how, func(t *testing.T) {
			gw, auth := fuzzGateway(t)
			gr := auth.Add(gatewaytest.Spec{Target: "db", TargetKind: "postgres", Scope: []string{"pg:select orders.public.*"}})
			sess, err := auth.StartSession(context.Background(), gr, "test")
			if err != nil {
				t.Fatal(err)
			}
			gwc, cl := net.Pipe()
			upc, srv := net.Pipe()
			t.Cleanup(func() { cl.Close(); srv.Close() })
			c := newConn(gw, gwc)
			c.sess, c.t = sess, gw.targets["db"]
			c.st = gw.grantState(gr)
			c.established()
			c.up = upc
			go io.Copy(io.Discard, cl)
			go c.run(upc)

			if _, err := cl.Write([]byte("Q\x00\x00\x00\x0dselect 1\x00")); err != nil {
				t.Fatal(err)
			}
			q := make([]byte, 14)
			if _, err := io.ReadFull(srv, q); err != nil {
				t.Fatalf("the query did not reach the upstream: %v", err)
			}
			// A DataRow of 1 MiB, of which 100 bytes come.
			row := binary.BigEndian.AppendUint32([]byte{'D'}, 4+1<<20)
			row = append(row, make([]byte, 100)...)
			if _, err := srv.Write(row); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond) // the upstream loop is in the row
			if how == "killed" {
				go c.kill(fatal(codeAdminShutdown, "airlock: the grant has ended"))
			} else {
				cl.Close()
			}
			deadline := time.Now().Add(5 * time.Second)
			for !sessionEnded(auth, sess.ID) {
				if time.Now().After(deadline) {
					t.Fatal("the session did not end while the upstream stalled in the middle of a large row")
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

func sessionEnded(auth *gatewaytest.Authority, id string) bool {
	for _, s := range auth.Sessions() {
		if s.ID == id {
			return s.Ended()
		}
	}
	return false
}
