package server

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/serverkeys"
)

// TestReplicaKeys: the first server on a PostgreSQL database generates the
// keys and records their fingerprints; a replica with an empty data_dir
// refuses to start rather than generate keys of its own, a replica with
// other keys refuses naming the key, and one given the first one's keys
// (copied files, or the environment) starts.
func TestReplicaKeys(t *testing.T) {
	dsn := pgDatabase(t)
	ctx := context.Background()
	first := pgConfig(t, dsn)
	s := openServer(t, first)
	s.Close()

	open := func(cfg any) error {
		c := pgConfig(t, dsn)
		if f, ok := cfg.(func(dir string)); ok {
			f(c.DataDir)
		}
		s, err := Open(ctx, c, slog.New(slog.DiscardHandler))
		if err == nil {
			s.Close()
		}
		return err
	}

	// An empty data_dir: no keys are made.
	if err := open(nil); err == nil || !strings.Contains(err.Error(), "credential.key does not exist; give this replica the keys the others use") {
		t.Fatalf("replica without keys: %v", err)
	}
	// Keys of its own.
	err := open(func(dir string) {
		if _, err := serverkeys.Generate(dir); err != nil {
			t.Fatal(err)
		}
	})
	if !errors.Is(err, serverkeys.ErrMismatch) || !strings.Contains(err.Error(), "the credential key from ") {
		t.Fatalf("replica with other keys: %v", err)
	}
	// The same credential key but another signing key.
	err = open(func(dir string) {
		if _, err := serverkeys.Generate(dir); err != nil {
			t.Fatal(err)
		}
		copyFile(t, filepath.Join(first.DataDir, CredentialKeyFile), filepath.Join(dir, CredentialKeyFile))
	})
	if !errors.Is(err, serverkeys.ErrMismatch) || !strings.Contains(err.Error(), "the log signing key from ") {
		t.Fatalf("replica with another signing key: %v", err)
	}
	// The first one's key files, copied.
	if err := open(func(dir string) {
		os.MkdirAll(dir, 0o700)
		for _, f := range []string{CredentialKeyFile, serverkeys.SigningKeyFile} {
			copyFile(t, filepath.Join(first.DataDir, f), filepath.Join(dir, f))
		}
	}); err != nil {
		t.Fatalf("replica with the copied keys: %v", err)
	}
	// The same keys from the environment.
	cred, err := os.ReadFile(filepath.Join(first.DataDir, CredentialKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	skey, err := os.ReadFile(filepath.Join(first.DataDir, serverkeys.SigningKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(serverkeys.CredentialKeyEnv, base64.StdEncoding.EncodeToString(cred))
	t.Setenv(serverkeys.SigningKeyEnv, string(skey))
	if err := open(nil); err != nil {
		t.Fatalf("replica with the keys in its environment: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
