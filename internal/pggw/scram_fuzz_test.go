package pggw

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
)

// FuzzSCRAM runs the server's side of SCRAM-SHA-256 against whatever a
// client sends, and against a client written here from RFC 5802 and
// RFC 7677 alone. A malformed message is refused, never a panic; a client
// that follows the RFCs, with any nonce and any extension attributes,
// logs in and gets the server signature the RFC defines; a correct proof
// never logs in an unknown credential; and no message logs in that does
// not carry the proof the RFC computes for it.
func FuzzSCRAM(f *testing.F) {
	salt := []byte("0123456789abcdef")
	const secret = "pencil"
	v, err := deriveSCRAMVerifier(secret, salt, scramIterations)
	if err != nil {
		f.Fatal(err)
	}
	salted, err := pbkdf2.Key(sha256.New, secret, salt, scramIterations, sha256.Size)
	if err != nil {
		f.Fatal(err)
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")

	f.Add([]byte("n,,n=,r=rOprNGfwEbeRWgbNEkqO"), []byte(""), true, true)
	f.Add([]byte("y,,n=user,r=abc,x=ext"), []byte("e=1"), true, false)
	f.Add([]byte("n,,n=,r=abc"), []byte("c=biws,r=abc,p=AAAA"), false, true)
	f.Add([]byte("n,,n=,r=abc"), []byte("c=biws,r=abc,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="), false, true)
	f.Add([]byte("p=tls-server-end-point,,n=,r=x"), []byte(""), true, true)
	f.Add([]byte("n,a=admin,n=,r=x"), []byte(""), true, true)
	f.Add([]byte("n,,m=ext,n=,r=x"), []byte(""), true, true)
	f.Add([]byte("n,,n=,r="), []byte(""), true, true)
	f.Add([]byte("n,,n=,r=a"), []byte("c=biws,r=a,p=\n"), false, true)
	f.Fuzz(func(t *testing.T, first, final []byte, build, known bool) {
		s := &scramServer{v: v, known: known}
		serverFirst, err := s.first(first)
		if err != nil {
			return
		}
		// What was accepted is a client-first-message: gs2 flag n or y,
		// no authzid, n= then a printable nonce the server's extends.
		m := string(first)
		bare := m[3:]
		if !strings.HasPrefix(m, "n,,") && !strings.HasPrefix(m, "y,,") {
			t.Fatalf("client-first %q accepted", first)
		}
		attrs := strings.Split(bare, ",")
		if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") || len(attrs[1]) < 3 {
			t.Fatalf("client-first %q accepted", first)
		}
		cnonce := attrs[1][2:]
		nonce, rest, _ := strings.Cut(strings.TrimPrefix(serverFirst, "r="), ",")
		if !strings.HasPrefix(nonce, cnonce) || len(nonce) <= len(cnonce) || !printable(nonce) {
			t.Fatalf("server nonce %q does not extend the client's %q", nonce, cnonce)
		}
		if want := "s=" + base64.StdEncoding.EncodeToString(salt) + ",i=" + strconv.Itoa(scramIterations); rest != want {
			t.Fatalf("server-first %q", serverFirst)
		}
		// The RFC's computation for a client-final-message without its proof.
		proofFor := func(withoutProof string) []byte {
			sig := mac(v.storedKey, bare+","+serverFirst+","+withoutProof)
			p := make([]byte, sha256.Size)
			for i := range p {
				p[i] = clientKey[i] ^ sig[i]
			}
			return p
		}
		if build {
			// An RFC client: channel binding data is the gs2 header in
			// base64; the fuzzer's bytes, where they can be one, are an
			// extension attribute before the proof.
			withoutProof := "c=" + base64.StdEncoding.EncodeToString(first[:3]) + ",r=" + nonce
			if ext := string(final); len(ext) >= 2 && ext[1] == '=' && ext[0] >= 'a' && ext[0] <= 'z' && ext[0] != 'p' &&
				!strings.ContainsAny(ext, ",\x00") {
				withoutProof += "," + ext
			}
			msg := withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proofFor(withoutProof))
			got, ok, err := s.final([]byte(msg))
			if err != nil {
				t.Fatalf("RFC client-final %q refused: %v", msg, err)
			}
			if ok != known {
				t.Fatalf("RFC client-final %q: ok %v for a credential known %v", msg, ok, known)
			}
			if ok {
				want := "v=" + base64.StdEncoding.EncodeToString(mac(v.serverKey, bare+","+serverFirst+","+withoutProof))
				if string(got) != want {
					t.Fatalf("server-final %q, want %q", got, want)
				}
			}
			return
		}
		_, ok, _ := s.final(final)
		if !ok {
			return
		}
		i := bytes.LastIndex(final, []byte(",p="))
		if i < 0 || !known {
			t.Fatalf("client-final %q logged in (known %v)", final, known)
		}
		proof, err := base64.StdEncoding.Strict().DecodeString(string(final[i+3:]))
		if err != nil || !bytes.Equal(proof, proofFor(string(final[:i]))) {
			t.Fatalf("client-final %q logged in without the RFC's proof", final)
		}
	})
}
