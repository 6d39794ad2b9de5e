package pggw

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net"
	"runtime"
	"strconv"
	"testing"
	"testing/cryptotest"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
)

// maxLoginAuthAllocs and maxLoginAuthBytes bound what the gateway's side of
// a successful SCRAM login allocates (authenticate: both round trips, the
// proof checked, the server's signature sent), without the client's or the
// sockets' own. A login's garbage fills the heap up to its goal, and the
// pages it fills stay resident (bench/HISTORY.md, "Where an idle
// connection's VmRSS goes"). Measured 2026-12-05 (three runs of 50
// logins): 45 allocations and 2,640-3,107 bytes per login while the
// refusal for a wrong password was made before the exchange (a formatted
// message) and scramServer.final allocated 22 times; 32 and 1,808-2,328
// since. The bytes move with the pools' state between runs, so only the
// count is held. Under the race detector sync.Pool drops a quarter of what
// is put back, and the pooled reader and its buffer are made again: 35
// in two runs, so 36 there.
const maxLoginAuthAllocs, maxLoginAuthAllocsRace = 32, 36

func TestAuthenticateAllocations(t *testing.T) {
	gw, auth := fuzzGateway(t)
	gr := auth.Add(gatewaytest.Spec{Target: "db", TargetKind: "postgres", Scope: []string{"pg:select orders.public.*"}})
	v, known, err := gw.scram.forLogin(gr.CredentialID, gr)
	if err != nil || !known {
		t.Fatalf("verifier: known %v, %v", known, err)
	}
	mac := func(key, msg []byte) []byte {
		h := hmac.New(sha256.New, key)
		h.Write(msg)
		return h.Sum(nil)
	}
	salted, err := pbkdf2.Key(sha256.New, gr.Secret, v.salt, scramIterations, sha256.Size)
	if err != nil {
		t.Fatal(err)
	}
	clientKey := mac(salted, []byte("Client Key"))

	// The server's nonces come from crypto/rand, made deterministic: read
	// them ahead, then start the stream again for the logins.
	const runs = 50
	cryptotest.SetGlobalRandom(t, 1)
	const cnonce = "rOprNGfwEbeRWgbNEkqO"
	inputs := make([][]byte, runs)
	for i := range inputs {
		nb := make([]byte, scramNonceBytes)
		rand.Read(nb)
		nonce := cnonce + base64.RawStdEncoding.EncodeToString(nb)
		clientFirstBare := "n=,r=" + cnonce
		serverFirst := "r=" + nonce + ",s=" + base64.StdEncoding.EncodeToString(v.salt) + ",i=" + strconv.Itoa(scramIterations)
		withoutProof := "c=biws,r=" + nonce
		sig := mac(v.storedKey, []byte(clientFirstBare+","+serverFirst+","+withoutProof))
		proof := make([]byte, sha256.Size)
		for j := range proof {
			proof[j] = clientKey[j] ^ sig[j]
		}
		b, _ := (&pgproto3.SASLInitialResponse{AuthMechanism: scramMechanism, Data: []byte("n,," + clientFirstBare)}).Encode(nil)
		b, _ = (&pgproto3.SASLResponse{Data: []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof))}).Encode(b)
		inputs[i] = b
	}
	cryptotest.SetGlobalRandom(t, 1)
	conns := make([]*conn, runs)
	for i := range conns {
		server, peer := net.Pipe()
		t.Cleanup(func() { server.Close(); peer.Close() })
		c := newConn(gw, server)
		c.br = getIdleReader(bytes.NewReader(inputs[i]))
		c.cwb = newFlushWriter(io.Discard)
		conns[i] = c
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, c := range conns {
		if err := c.authenticate(gr.CredentialID, gr); err != nil {
			t.Fatalf("login refused: %v", err)
		}
		// Its read buffer back to the pool, for the next login, as a
		// session that parks gives it back.
		putIdleReader(c.br)
	}
	runtime.ReadMemStats(&after)
	allocs := int64(after.Mallocs-before.Mallocs) / runs
	bytes := int64(after.TotalAlloc-before.TotalAlloc) / runs
	t.Logf("authenticate, a successful login: %d allocations, %d bytes", allocs, bytes)
	bound := int64(maxLoginAuthAllocs)
	if raceOn {
		bound = maxLoginAuthAllocsRace
	}
	if allocs > bound {
		t.Errorf("a login's authentication allocates %d times (%d bytes); want at most %d (race detector on: %v)", allocs, bytes, bound, raceOn)
	}
}
