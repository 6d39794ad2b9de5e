package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/gateway/gatewaytest"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/serverkeys"
	"github.com/airlock-dev/airlock/internal/store"
)

// laggingImage runs a server on e and returns a copy of its data directory
// as a crash leaves it when the journal is ahead of the database: the
// database and witness from after a grant's session started (n1 entries),
// the journal from after calls were recorded in it (n2). Calls are appended
// through the journal; grant changes are store transactions.
func laggingImage(t *testing.T, e *auditEnv) (image string, n1, n2 int64) {
	t.Helper()
	ctx := context.Background()
	s := openServer(t, e.cfg)
	defer s.Close()
	g, err := s.Service.Request(ctx, bot, grants.RequestInput{Target: "aws-prod",
		Scope: []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, Duration: "5m", Reason: "lagging"})
	if err != nil {
		t.Fatal(err)
	}
	gg, err := s.Service.Authority().Lookup(g.CredentialID)
	if err != nil {
		t.Fatal(err)
	}
	ses, err := s.Service.Authority().StartSession(ctx, gg, "test-client")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.log.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	n1 = s.log.Size()
	image = filepath.Join(t.TempDir(), "data")
	if err := os.CopyFS(image, os.DirFS(e.dataDir)); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(image, JournalDir)); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"logs/app/a.log", "logs/app/b.log"} {
		if err := gatewaytest.Record(ctx, ses, gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::" + key, Allowed: true, BytesOut: 10}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.log.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	n2 = s.log.Size()
	if err := os.CopyFS(filepath.Join(image, JournalDir), os.DirFS(filepath.Join(e.dataDir, JournalDir))); err != nil {
		t.Fatal(err)
	}
	// Key files as the server keeps them (CopyFS does not keep modes).
	for _, f := range []string{CredentialKeyFile, "log-signing.key"} {
		if err := os.Chmod(filepath.Join(image, f), 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if n2 <= n1 {
		t.Fatalf("no calls journaled: %d, %d entries", n1, n2)
	}
	return image, n1, n2
}

// reseal rewrites the journal frames of image that hold entries from
// seq from on, with magic and a seal under key, as someone holding key
// would write them ("ALJ3" seals cover the magic, first seq, count and
// each entry's length and leaf hash; "ALJ2" seals the magic and the
// payload; "ALJ1" seals the payload alone).
func reseal(t *testing.T, image string, from int64, magic string, key []byte) {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(image, JournalDir, "*.seg"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no journal segments in %s: %v", image, err)
	}
	done := 0
	for _, path := range segs {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+12 <= len(b) && strings.HasPrefix(string(b[off:off+4]), "ALJ"); {
			n := int(binary.BigEndian.Uint32(b[off+4:]))
			payload := b[off+12 : off+12+n]
			first := int64(binary.BigEndian.Uint64(payload))
			count := int64(binary.BigEndian.Uint32(payload[8:]))
			if first+count > from {
				copy(b[off:], magic)
				m := hmac.New(sha256.New, key)
				switch magic {
				case "ALJ3":
					m.Write([]byte(magic))
					m.Write(payload[:12])
					for p, k := payload[12:n-sha256.Size], int64(0); k < count; k++ {
						l := binary.BigEndian.Uint32(p)
						h := sha256.Sum256(append([]byte{0}, p[4:4+l]...))
						m.Write(p[:4])
						m.Write(h[:])
						p = p[4+l:]
					}
				case "ALJ2":
					m.Write([]byte(magic))
					m.Write(payload[:n-sha256.Size])
				default:
					m.Write(payload[:n-sha256.Size])
				}
				copy(payload[n-sha256.Size:], m.Sum(nil))
				binary.BigEndian.PutUint32(b[off+8:], crc32.Checksum(payload, crc32.MakeTable(crc32.Castagnoli)))
				done++
			}
			off += 12 + n
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if done == 0 {
		t.Fatalf("no journal frame holds entries from %d on", from)
	}
}

// The journal's entries become signed log entries at the next start, so
// its seal must take what signing takes. With the signing key kept away
// from data_dir and the credential key in it, whoever can read
// credential.key and write journal/ used to add entries (sealed under the
// credential key's derived key) that the next start signed into the log.
// Now frames are sealed under a key derived from the signing key; frames of
// the first format (credential key) the store does not hold yet are
// replayed only where the credential key is no easier to reach than the
// signing key, so that an upgrade after a crash loses nothing.
func TestJournalSealNeedsSigningKey(t *testing.T) {
	for _, signerOutside := range []bool{false, true} {
		t.Run(fmt.Sprintf("signer-outside-data-dir=%v", signerOutside), func(t *testing.T) {
			e := newAuditEnv(t)
			var signerFile string
			if signerOutside {
				signerFile = filepath.Join(t.TempDir(), "log-signing.key")
				if err := os.Rename(filepath.Join(e.dataDir, "log-signing.key"), signerFile); err != nil {
					t.Fatal(err)
				}
				e.cfg.Keys.LogSigningKeyFile = signerFile
			}
			image, n1, n2 := laggingImage(t, e)
			credKey, err := os.ReadFile(filepath.Join(image, CredentialKeyFile))
			if err != nil {
				t.Fatal(err)
			}
			pinned := pinnedKey(t, e.dataDir)
			seal, _, err := serverkeys.LoadJournalSeal(serverkeys.Sources{DataDir: image, SigningKeyFile: signerFile, Getenv: func(string) string { return "" }})
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name  string
				magic string // "" leaves the frames as the server wrote them
				key   []byte
				want  string // "" means the start replays the journal
			}{
				{"as-written", "", nil, ""},
				{"current-format-resealed-under-its-key", "ALJ3", seal, ""},
				{"second-format-under-its-key", "ALJ2", seal, ""},
				{"current-format-under-credential-key", "ALJ3", legacyJournalKey(credKey), "seal does not match"},
				{"second-format-under-credential-key", "ALJ2", legacyJournalKey(credKey), "seal does not match"},
				{"first-format-under-credential-key", "ALJ1", legacyJournalKey(credKey), map[bool]string{false: "", true: "could have been forged"}[signerOutside]},
			} {
				t.Run(tc.name, func(t *testing.T) {
					dir := filepath.Join(t.TempDir(), "data")
					if err := os.CopyFS(dir, os.DirFS(image)); err != nil {
						t.Fatal(err)
					}
					for _, f := range []string{CredentialKeyFile, "log-signing.key"} {
						if err := os.Chmod(filepath.Join(dir, f), 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
							t.Fatal(err)
						}
					}
					if tc.magic != "" {
						reseal(t, dir, n1, tc.magic, tc.key)
					}
					// Offline verification reads the journal as a start would.
					rep, err := VerifyOffline(context.Background(), dir, OfflineInput{Key: pinned, SigningKeyFile: signerFile})
					if err != nil {
						t.Fatal(err)
					}
					if rep.OK != (tc.want == "") {
						t.Errorf("audit verify: OK=%v, problems %+v", rep.OK, rep.Problems)
					}
					if tc.want != "seal does not match" && rep.Journaled != n2-n1 {
						// What a start would replay, or (first format, refused)
						// what the operator must decide on: listed either way.
						t.Errorf("audit verify counts %d entries only in the journal, want %d", rep.Journaled, n2-n1)
					}
					cfg := *e.cfg
					cfg.DataDir = dir
					s, err := Open(context.Background(), &cfg, slog.New(slog.DiscardHandler))
					if tc.want == "" {
						if err != nil {
							t.Fatalf("start: %v", err)
						}
						defer s.Close()
						var calls int
						if err := s.store.ScanLog(context.Background(), n1, n2, func(e store.LogEntry) error {
							if strings.Contains(string(e.Data), `:::logs/app/`) {
								calls++
							}
							return nil
						}); err != nil {
							t.Fatal(err)
						}
						if calls != 2 {
							t.Fatalf("entries %d-%d hold %d of the 2 journaled calls after the start", n1, n2-1, calls)
						}
						return
					}
					if err == nil {
						s.Close()
						t.Fatalf("start took journal entries %d-%d sealed under the credential key", n1, n2-1)
					}
					if !strings.Contains(err.Error(), tc.want) {
						t.Fatalf("start: %v, want %q", err, tc.want)
					}
					if tc.magic == "ALJ1" && (!errors.Is(err, auditlog.ErrLegacyJournal) || !strings.Contains(err.Error(), "airlock audit verify")) {
						t.Fatalf("start: %v, want ErrLegacyJournal with what to do", err)
					}
				})
			}
		})
	}
}

// With the signing key kept away from data_dir, verifying the directory
// with a pinned key (--data-dir --key, no --config) looked for the key in
// data_dir, as a start without configuration would: whoever can write
// data_dir could put a key of their own there and seal journal frames
// under it, and verify took those entries as the journal's, checking the
// rows against them. A signing key that is not the pinned one seals
// nothing verify trusts.
func TestVerifyOfflineJournalSealNeedsPinnedKey(t *testing.T) {
	e := newAuditEnv(t)
	signerFile := filepath.Join(t.TempDir(), "log-signing.key")
	if err := os.Rename(filepath.Join(e.dataDir, "log-signing.key"), signerFile); err != nil {
		t.Fatal(err)
	}
	e.cfg.Keys.LogSigningKeyFile = signerFile
	image, _, _ := laggingImage(t, e)
	pinned := pinnedKey(t, e.dataDir)

	// As the server wrote it, with the key where the configuration says.
	rep, err := VerifyOffline(context.Background(), image, OfflineInput{Key: pinned, SigningKeyFile: signerFile})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Journaled == 0 {
		t.Fatalf("untouched image: OK=%v journaled=%d %s", rep.OK, rep.Journaled, problems(rep))
	}

	// Mallory's key in data_dir, the frames resealed under it.
	mallory, err := serverkeys.Generate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(mallory.SignerFrom)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(image, "log-signing.key"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	reseal(t, image, 0, "ALJ3", mallory.JournalSeal)
	rep, err = VerifyOffline(context.Background(), image, OfflineInput{Key: pinned})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(problems(rep))
	if rep.OK || !strings.Contains(problems(rep), auditlog.KindJournal) {
		t.Fatalf("journal sealed under a key planted in data_dir: OK=%v journaled=%d %s", rep.OK, rep.Journaled, problems(rep))
	}
}
