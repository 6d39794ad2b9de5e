package pgroles

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// parsedVerifier is a verifier split into its parts.
type parsedVerifier struct {
	iterations           int
	salt                 []byte
	storedKey, serverKey []byte
}

func parseVerifier(t *testing.T, v string) parsedVerifier {
	t.Helper()
	rest, ok := strings.CutPrefix(v, "SCRAM-SHA-256$")
	if !ok {
		t.Fatalf("verifier %q lacks the SCRAM-SHA-256$ prefix", v)
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		t.Fatalf("verifier %q: no $ between parameters and keys", v)
	}
	iter, salt64, ok1 := strings.Cut(params, ":")
	stored64, server64, ok2 := strings.Cut(keys, ":")
	if !ok1 || !ok2 {
		t.Fatalf("verifier %q: malformed", v)
	}
	var p parsedVerifier
	var err error
	if p.iterations, err = strconv.Atoi(iter); err != nil {
		t.Fatalf("verifier iterations %q: %v", iter, err)
	}
	for _, f := range []struct {
		dst *[]byte
		s   string
	}{{&p.salt, salt64}, {&p.storedKey, stored64}, {&p.serverKey, server64}} {
		if *f.dst, err = base64.StdEncoding.DecodeString(f.s); err != nil {
			t.Fatalf("verifier part %q: %v", f.s, err)
		}
	}
	if len(p.storedKey) != 32 || len(p.serverKey) != 32 {
		t.Fatalf("verifier keys are %d and %d bytes, want 32", len(p.storedKey), len(p.serverKey))
	}
	return p
}

// checkProof is the server's side of SCRAM: recover ClientKey from the
// proof and compare its hash with StoredKey; return the ServerSignature.
func checkProof(v parsedVerifier, authMessage string, proof []byte) ([]byte, error) {
	sig := hmacSHA256(v.storedKey, authMessage)
	if len(proof) != len(sig) {
		return nil, errors.New("proof length")
	}
	clientKey := make([]byte, len(sig))
	for i := range sig {
		clientKey[i] = proof[i] ^ sig[i]
	}
	h := sha256.Sum256(clientKey)
	if !hmac.Equal(h[:], v.storedKey) {
		return nil, errors.New("proof does not match StoredKey")
	}
	return hmacSHA256(v.serverKey, authMessage), nil
}

// TestVerifierRFC7677 replays the exchange of RFC 7677 section 3 against a
// verifier made for its password and salt: the client's proof must check
// out and the server signature must be the RFC's.
func TestVerifierRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, err := scramVerifier("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	pv := parseVerifier(t, v)
	if pv.iterations != 4096 || !bytes.Equal(pv.salt, salt) {
		t.Fatalf("verifier %q: wrong iterations or salt", v)
	}
	clientFirstBare := "n=user,r=rOprNGfwEbeRWgbNEkqO"
	serverFirst := "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	clientFinalNoProof := "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	proof, _ := base64.StdEncoding.DecodeString("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
	serverSig, err := checkProof(pv, clientFirstBare+","+serverFirst+","+clientFinalNoProof, proof)
	if err != nil {
		t.Fatalf("RFC 7677 proof rejected: %v", err)
	}
	if got := base64.StdEncoding.EncodeToString(serverSig); got != "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" {
		t.Fatalf("server signature %s, want the RFC's", got)
	}
	// A wrong password must not verify.
	bad, _ := scramVerifier("pencil2", salt, 4096)
	if _, err := checkProof(parseVerifier(t, bad), clientFirstBare+","+serverFirst+","+clientFinalNoProof, proof); err == nil {
		t.Fatal("a verifier for another password accepted the RFC's proof")
	}
}

func TestNewPasswordAndVerifier(t *testing.T) {
	a, err := newPassword()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := newPassword()
	if a == b || len(a) != 43 {
		t.Fatalf("passwords %q and %q: want two different 43-character strings", a, b)
	}
	for _, r := range a {
		if r < 0x21 || r > 0x7e {
			t.Fatalf("password has non-printable-ASCII %q", r)
		}
	}
	v1, _ := newVerifier(a)
	v2, _ := newVerifier(a)
	if v1 == v2 {
		t.Fatal("two verifiers for one password share a salt")
	}
	if strings.Contains(v1, a) {
		t.Fatal("verifier contains the password")
	}
	if p := parseVerifier(t, v1); p.iterations != scramIterations || len(p.salt) != 16 {
		t.Fatalf("verifier %q: want %d iterations and a 16-byte salt", v1, scramIterations)
	}
}

// TestPgxAuthenticatesAgainstVerifier runs pgx's own SCRAM client against a
// loopback server that knows only the verifier: what the real PostgreSQL
// does with pg_hba scram-sha-256, which the test cluster (trust) does not.
func TestPgxAuthenticatesAgainstVerifier(t *testing.T) {
	password, _ := newPassword()
	v, _ := newVerifier(password)
	for _, tc := range []struct {
		name     string
		password string
		wantOK   bool
	}{{"right password", password, true}, {"wrong password", password + "x", false}} {
		t.Run(tc.name, func(t *testing.T) {
			addr, done := fakeSCRAMServer(t, parseVerifier(t, v))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			host, port, _ := net.SplitHostPort(addr)
			cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s user=airlock_g_x dbname=orders sslmode=disable", host, port))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Password = tc.password
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if conn != nil {
				conn.Close(ctx)
			}
			serverErr := <-done
			if tc.wantOK && (err != nil || serverErr != nil) {
				t.Fatalf("client: %v; server: %v", err, serverErr)
			}
			if !tc.wantOK && (err == nil || serverErr == nil) {
				t.Fatalf("wrong password accepted (client err %v, server err %v)", err, serverErr)
			}
		})
	}
}

// fakeSCRAMServer accepts one connection on 127.0.0.1 and runs the server
// side of SCRAM-SHA-256 against v, then sends ReadyForQuery. The channel
// gets nil on a successful authentication.
func fakeSCRAMServer(t *testing.T, v parsedVerifier) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		done <- serveSCRAM(c, v)
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), done
}

func serveSCRAM(c net.Conn, v parsedVerifier) error {
	be := pgproto3.NewBackend(c, c)
	if _, err := be.ReceiveStartupMessage(); err != nil {
		return err
	}
	be.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: []string{"SCRAM-SHA-256"}})
	if err := be.Flush(); err != nil {
		return err
	}
	be.SetAuthType(pgproto3.AuthTypeSASL)
	msg, err := be.Receive()
	if err != nil {
		return err
	}
	init, ok := msg.(*pgproto3.SASLInitialResponse)
	if !ok || init.AuthMechanism != "SCRAM-SHA-256" {
		return fmt.Errorf("want SASLInitialResponse for SCRAM-SHA-256, got %T", msg)
	}
	clientFirst := string(init.Data)
	clientFirstBare, ok := strings.CutPrefix(clientFirst, "n,,")
	if !ok {
		return fmt.Errorf("client-first %q: want no channel binding", clientFirst)
	}
	var clientNonce string
	for _, kv := range strings.Split(clientFirstBare, ",") {
		if n, ok := strings.CutPrefix(kv, "r="); ok {
			clientNonce = n
		}
	}
	nb := make([]byte, 18)
	rand.Read(nb)
	nonce := clientNonce + base64.StdEncoding.EncodeToString(nb)
	serverFirst := fmt.Sprintf("r=%s,s=%s,i=%d", nonce, base64.StdEncoding.EncodeToString(v.salt), v.iterations)
	be.Send(&pgproto3.AuthenticationSASLContinue{Data: []byte(serverFirst)})
	if err := be.Flush(); err != nil {
		return err
	}
	be.SetAuthType(pgproto3.AuthTypeSASLContinue)
	msg, err = be.Receive()
	if err != nil {
		return err
	}
	resp, ok := msg.(*pgproto3.SASLResponse)
	if !ok {
		return fmt.Errorf("want SASLResponse, got %T", msg)
	}
	clientFinal := string(resp.Data)
	i := strings.LastIndex(clientFinal, ",p=")
	if i < 0 {
		return fmt.Errorf("client-final %q has no proof", clientFinal)
	}
	proof, err := base64.StdEncoding.DecodeString(clientFinal[i+3:])
	if err != nil {
		return err
	}
	if !strings.Contains(clientFinal[:i], "r="+nonce) {
		return errors.New("client-final nonce mismatch")
	}
	sig, err := checkProof(v, clientFirstBare+","+serverFirst+","+clientFinal[:i], proof)
	if err != nil {
		be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", Code: "28P01", Message: "password authentication failed"})
		be.Flush()
		return err
	}
	be.Send(&pgproto3.AuthenticationSASLFinal{Data: []byte("v=" + base64.StdEncoding.EncodeToString(sig))})
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := be.Flush(); err != nil {
		return err
	}
	// Wait for the client's Terminate so that the test sees a clean close.
	_, _ = be.Receive()
	return nil
}
