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
// loopback, keeps checkpoint.cosigned in data_dir and serves it from
// GET /v1/audit/checkpoint.
func TestServerPublishesToWitnesses(t *testing.T) {
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
	if err := w.AddLog(logOrigin(v), strings.TrimSpace(string(vkey))); err != nil {
		t.Fatal(err)
	}
	ws := httptest.NewServer(w)
	defer ws.Close()

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
	if st, _ := w.State(logOrigin(v)); st.Size != size {
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
	c, err := cosig.VerifyCosigned([]byte(resp.Cosigned), v, []string{w.VerifierKey()})
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
}
