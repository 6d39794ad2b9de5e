package testenv

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Dynalite runs dynalite, an implementation of DynamoDB's API, in memory
// on a free loopback port until t ends, and returns its URL. dir is the
// repository's e2e/dynalite folder (npm ci there installs it). dynalite
// checks that requests are signed, not the signature: the gateway's
// re-signing is checked by awsfake.
func Dynalite(t testing.TB, dir string) string {
	t.Helper()
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	bin := Tool(t, filepath.Join(dir, "node_modules", ".bin", "dynalite"), "run: (cd e2e/dynalite && npm ci)")
	Tool(t, "node", "install it with: apt-get install nodejs npm")
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--host", "127.0.0.1", "--port", fmt.Sprint(port), "--createTableMs", "0", "--deleteTableMs", "0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if i == 100 {
			t.Fatalf("dynalite did not listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "http://" + addr
}
