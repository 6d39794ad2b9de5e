package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/httpapi"
	"github.com/airlock-dev/airlock/internal/witness"
	"github.com/airlock-dev/airlock/internal/witness/cosig"
	"github.com/airlock-dev/airlock/internal/witness/witnesstest"
)

// TestServerPublishesToWitnesses: airlock serve's configuration with
// audit.witnesses publishes the log's checkpoints to a tlog-witness on
// loopback, keeps checkpoint.cosigned (and the cosignature's time, in
// witness-times.json) in data_dir and serves it from
// GET /v1/audit/checkpoint.
func TestServerPublishesToWitnesses(t *testing.T) {
	cfg, w, v, key := witnessEnv(t)
	dataDir := cfg.DataDir
	srv, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.log.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	size := srv.log.Latest().Size
	if size == 0 {
		t.Fatal("the log is empty after start; nothing to witness")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.witnesses.WaitUntil(ctx, func(ss []witness.Status) bool { return ss[0].Published >= size }); err != nil {
		t.Fatalf("not published: %v %+v", err, srv.witnesses.Status())
	}
	if st, _ := w.State(LogOrigin(v)); st.Size != size {
		t.Fatalf("witness holds %d, log %d", st.Size, size)
	}

	req := httptest.NewRequest("GET", "/v1/audit/checkpoint", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	rec := httptest.NewRecorder()
	srv.Handler.ServeHTTP(rec, req)
	var resp httpapi.CheckpointResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); rec.Code != http.StatusOK || err != nil {
		t.Fatalf("GET /v1/audit/checkpoint: %d %s", rec.Code, rec.Body)
	}
	c, err := cosig.VerifyCosigned([]byte(resp.Cosigned), v, LogOrigin(v), []string{w.VerifierKey()}, time.Now())
	if err != nil {
		t.Fatalf("cosigned from the API: %v\n%s", err, resp.Cosigned)
	}
	if c.Size != size {
		t.Fatalf("cosigned size %d, want %d", c.Size, size)
	}
	onDisk, err := os.ReadFile(filepath.Join(dataDir, CosignedFile))
	if err != nil || !bytes.Equal(onDisk, []byte(resp.Cosigned)) {
		t.Fatalf("%s differs from the API's: %v", CosignedFile, err)
	}
	// The witness's cosignature time is kept for the next start.
	var times map[string]time.Time
	if b, err := os.ReadFile(filepath.Join(dataDir, WitnessTimesFile)); err != nil || json.Unmarshal(b, &times) != nil || !times[w.VerifierKey()].Equal(c.Cosignatures[0].Time) {
		t.Fatalf("%s: %v %v, want %s", WitnessTimesFile, err, times, c.Cosignatures[0].Time)
	}
}

// TestServerRefusesUnreadableWitnessTimes: a witness-times.json that
// cannot be read stops airlock serve's start, naming the file, rather than
// letting it start without the times (and take an older cosignature
// replayed in a witness's place).
func TestServerRefusesUnreadableWitnessTimes(t *testing.T) {
	cfg, _, _, _ := witnessEnv(t)
	path := filepath.Join(cfg.DataDir, WitnessTimesFile)
	if err := os.WriteFile(path, []byte("{\"torn"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, err := Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		srv.Close()
		t.Fatal("started with an unreadable witness-times.json")
	}
	if !strings.Contains(err.Error(), path) {
		t.Fatalf("the refusal does not name the file: %v", err)
	}
}

// witnessEnv writes a configuration whose audit.witnesses is a
// tlog-witness on loopback that trusts the log's key, created before the
// server starts as its operator would. It returns the configuration, the
// witness, the log's verifier and a person's API key.
func witnessEnv(t *testing.T) (*config.Config, *witnesstest.Witness, note.Verifier, string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "policies"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The log's key exists before the server starts, so that the witness
	// can be told about it, as its operator would be.
	dataDir := filepath.Join(dir, "data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	_, v, err := auditlog.LoadOrCreateKey(dataDir, keyName)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := os.ReadFile(filepath.Join(dataDir, auditlog.VerifierKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	w, err := witnesstest.New("witness.test/w1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddLog(LogOrigin(v), strings.TrimSpace(string(vkey))); err != nil {
		t.Fatal(err)
	}
	ws := httptest.NewServer(w)
	t.Cleanup(ws.Close)

	key, sha := authn.NewKey()
	cfgYAML := fmt.Sprintf(`data_dir: data
policies: policies
identities:
  - {name: alice, kind: human, key_sha256: %s}
audit:
  witnesses:
    - {kind: tlog-witness, url: %q, key: %q}
`, sha, ws.URL, w.VerifierKey())
	cfgPath := filepath.Join(dir, "airlock.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, w, v, key
}

// TestVerifyReportsWitnessEvidence: a log restored from an older copy
// (database, journal and data_dir/checkpoint together) is consistent in
// itself. The tlog-witness, which cosigned a bigger tree, refuses its
// checkpoints after the restart; that refusal was only an ERROR line in
// the server's log, and `airlock audit verify` said OK.
func TestVerifyReportsWitnessEvidence(t *testing.T) {
	cfg, w, v, _ := witnessEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := Open(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.log.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	size := srv.log.Latest().Size
	if err := srv.witnesses.WaitUntil(ctx, func(ss []witness.Status) bool { return ss[0].Published >= size }); err != nil {
		t.Fatalf("not published: %v %+v", err, srv.witnesses.Status())
	}
	srv.Close()
	// What the witness holds once the log went on past the copy that was
	// put back: a bigger tree.
	st, _ := w.State(LogOrigin(v))
	w.SetState(LogOrigin(v), witnesstest.State{Size: st.Size + 5, Root: st.Root})

	srv, err = Open(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := srv.witnesses.WaitUntil(ctx, func(ss []witness.Status) bool { return ss[0].Failures > 0 }); err != nil {
		t.Fatalf("the witness was not asked after the restart: %v %+v", err, srv.witnesses.Status())
	}
	rep, err := srv.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantProblems(t, "verify", rep, "truncated", fmt.Sprintf("the witness holds a tree of %d entries but the log has only", st.Size+5))
}
