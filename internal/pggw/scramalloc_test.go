package pggw

import (
	"encoding/base64"
	"runtime"
	"testing"
)

// maxSCRAMFinalAllocs bounds what checking a client's proof allocates
// (scramServer.final, the RFC 7677 exchange): a login's garbage fills the
// heap up to its goal, and the pages it fills stay resident (bench/HISTORY.md,
// "Where an idle connection's VmRSS goes"). Measured 2026-12-05: 22
// allocations, 1,892 bytes, while the message was split into strings, the
// authentication message built as a string and copied for each HMAC, each
// HMAC's sum and the decoded proof allocated; 13 and 1,248 since (of them
// crypto/hmac's own: 5 per HMAC).
const (
	maxSCRAMFinalAllocs = 13
	maxSCRAMFinalBytes  = 1300
)

func TestSCRAMFinalAllocations(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, err := deriveSCRAMVerifier("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	const nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	msg := []byte("c=biws,r=" + nonce + ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	s := &scramServer{v: v, known: true, gs2Header: "n,,", clientFirstBare: "n=user,r=rOprNGfwEbeRWgbNEkqO",
		nonce: nonce, serverFirst: "r=" + nonce + ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"}
	if final, ok, err := s.final(msg); !ok || string(final) != "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Fatalf("final %q, ok %v, %v: the exchange no longer checks out", final, ok, err)
	}
	allocs := testing.AllocsPerRun(200, func() { s.final(msg) })
	// Bytes per exchange, from the process's total (AllocsPerRun counts
	// objects only); the test runs alone in its process's package.
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 200
	for range runs {
		s.final(msg)
	}
	runtime.ReadMemStats(&after)
	bytes := int64(after.TotalAlloc-before.TotalAlloc) / runs
	t.Logf("scramServer.final: %.0f allocations, %d bytes", allocs, bytes)
	if allocs > maxSCRAMFinalAllocs || bytes > maxSCRAMFinalBytes {
		t.Errorf("scramServer.final allocates %.0f times, %d bytes; want at most %d and %d", allocs, bytes, maxSCRAMFinalAllocs, maxSCRAMFinalBytes)
	}
}
