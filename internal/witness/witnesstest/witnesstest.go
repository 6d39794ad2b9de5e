// Package witnesstest is a small tlog-witness (https://c2sp.org/tlog-witness)
// for tests: it keeps the newest cosigned size and root per log origin in
// memory, checks the log's signature and the RFC 6962 consistency proof
// (golang.org/x/mod/sumdb/tlog), and answers with a cosignature/v1 line
// (https://c2sp.org/tlog-cosignature). It follows the protocol's rules on
// status codes: 400 for a malformed request or an old size above the
// checkpoint's, 404 for an unknown origin, 403 when no trusted key signed
// it, 409 (with the size it holds, as text/x.tlog.size) when the old size
// is not the one it holds or the same size comes with another root, 422 for
// a proof that does not verify. Checking and updating the state happen
// under one lock, as the protocol requires.
package witnesstest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlock-dev/airlock/internal/witness"
	"github.com/airlock-dev/airlock/internal/witness/cosig"
)

// Witness is an in-memory tlog-witness. It is an http.Handler serving
// POST /add-checkpoint.
type Witness struct {
	signer *cosig.Signer

	mu       sync.Mutex
	logs     map[string]note.Verifier // origin → the log's key
	state    map[string]State
	requests int
	// conflicts counts the 409 answers.
	conflicts int
}

// State is what the witness holds for one log.
type State struct {
	Size int64
	Root tlog.Hash
}

// New returns a witness named name with a fresh key; now gives the
// cosignatures' timestamps (time.Now if nil).
func New(name string, now func() time.Time) (*Witness, error) {
	s, err := cosig.GenerateSigner(name, rand.Reader, now)
	if err != nil {
		return nil, err
	}
	return &Witness{signer: s, logs: map[string]note.Verifier{}, state: map[string]State{}}, nil
}

// VerifierKey is the witness's cosignature/v1 vkey.
func (w *Witness) VerifierKey() string { return w.signer.VerifierKey() }

// AddLog trusts the log with this origin, signed by the key vkey
// (note.NewVerifier's format).
func (w *Witness) AddLog(origin, vkey string) error {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.logs[origin] = v
	w.mu.Unlock()
	return nil
}

// State returns what the witness holds for origin.
func (w *Witness) State(origin string) (State, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := w.state[origin]
	return s, ok
}

// SetState overwrites what the witness holds for origin, as if it had
// cosigned such a checkpoint before.
func (w *Witness) SetState(origin string, s State) {
	w.mu.Lock()
	w.state[origin] = s
	w.mu.Unlock()
}

// Requests counts the add-checkpoint requests received.
func (w *Witness) Requests() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.requests
}

// Conflicts counts the add-checkpoint requests answered 409 (the old
// size the client sent is not the one the witness holds).
func (w *Witness) Conflicts() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.conflicts
}

// ServeHTTP implements http.Handler.
func (w *Witness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/add-checkpoint" {
		http.NotFound(rw, r)
		return
	}
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		http.Error(rw, "use POST", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, witness.MaxRequestSize+1))
	if err != nil {
		http.Error(rw, "reading the request", http.StatusBadRequest)
		return
	}
	status, out := w.add(body)
	if status == http.StatusConflict {
		w.mu.Lock()
		w.conflicts++
		w.mu.Unlock()
	}
	switch status {
	case http.StatusOK:
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	case http.StatusConflict:
		rw.Header().Set("Content-Type", witness.SizeContentType)
	default:
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	rw.WriteHeader(status)
	rw.Write(out)
}

// add runs the protocol's checks in its order and returns the status and
// body of the answer.
func (w *Witness) add(body []byte) (int, []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.requests++
	old, proof, msg, err := witness.ParseAddCheckpoint(body)
	if err != nil {
		return http.StatusBadRequest, []byte(err.Error() + "\n")
	}
	text, err := unverifiedText(msg)
	if err != nil {
		return http.StatusBadRequest, []byte("malformed checkpoint\n")
	}
	origin, _, _ := strings.Cut(text, "\n")
	v, ok := w.logs[origin]
	if !ok {
		return http.StatusNotFound, []byte("unknown log origin\n")
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		var unv *note.UnverifiedNoteError
		var inv *note.InvalidSignatureError
		if errors.As(err, &unv) || errors.As(err, &inv) {
			return http.StatusForbidden, []byte("no valid signature by a trusted key\n")
		}
		return http.StatusBadRequest, []byte("malformed checkpoint\n")
	}
	cp, err := cosig.ParseCheckpoint(n.Text)
	if err != nil {
		return http.StatusBadRequest, []byte(err.Error() + "\n")
	}
	if old > cp.Size {
		return http.StatusBadRequest, []byte("old size above the checkpoint's\n")
	}
	cur := w.state[origin]
	if old != cur.Size {
		return http.StatusConflict, fmt.Appendf(nil, "%d\n", cur.Size)
	}
	switch {
	case old == 0:
		if len(proof) != 0 {
			return http.StatusUnprocessableEntity, []byte("a proof from size 0 must be empty\n")
		}
	case old == cp.Size:
		if cp.Root != cur.Root {
			return http.StatusConflict, fmt.Appendf(nil, "%d\n", cur.Size)
		}
		if len(proof) != 0 {
			return http.StatusUnprocessableEntity, []byte("a proof between equal sizes must be empty\n")
		}
	default:
		if err := tlog.CheckTree(proof, cp.Size, cp.Root, old, cur.Root); err != nil {
			return http.StatusUnprocessableEntity, []byte("the consistency proof does not verify\n")
		}
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, w.signer)
	if err != nil {
		return http.StatusInternalServerError, []byte("signing\n")
	}
	w.state[origin] = State{Size: cp.Size, Root: cp.Root}
	return http.StatusOK, signed[len(n.Text)+1:] // the cosignature line
}

// unverifiedText returns a signed note's text, without checking signatures.
func unverifiedText(msg []byte) (string, error) {
	i := strings.LastIndex(string(msg), "\n\n")
	if i < 0 {
		return "", errors.New("malformed note")
	}
	return string(msg[:i+1]), nil
}
