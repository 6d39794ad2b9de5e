package server

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/serverkeys"
)

// loadKeys loads the credential key and the log signing key (see
// serverkeys for where from). With a PostgreSQL store, whose database
// replicas share, it generates no keys once the database has seen some, and
// refuses keys that differ from the ones the database was first started
// with. It runs after the store is opened, so that the store's migrations
// find their schema as they left it.
func loadKeys(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*serverkeys.Keys, error) {
	create := true
	if cfg.Store != "" {
		seen, err := serverkeys.Recorded(ctx, cfg.Store)
		if err != nil {
			return nil, err
		}
		create = !seen
	}
	k, err := serverkeys.Load(serverkeys.Sources{
		DataDir: cfg.DataDir, CredentialKeyFile: cfg.Keys.CredentialKeyFile, SigningKeyFile: cfg.Keys.LogSigningKeyFile,
		Create: create,
	})
	if err != nil {
		return nil, err
	}
	if err := k.WritePublic(cfg.DataDir); err != nil {
		return nil, err
	}
	if cfg.Store != "" {
		if err := serverkeys.Check(ctx, cfg.Store, k); err != nil {
			return nil, err
		}
	}
	logger.Debug("keys loaded", "credential_key", k.CredentialFrom, "log_signing_key", k.SignerFrom)
	return k, nil
}

// sealWeakerThanSigner reports whether the credential key, from which the
// first journal format's seal key was derived, is a file within dataDir
// while the log signing key is not: an operator who kept the signing key
// away from the data directory, so that a writer of it cannot sign, would
// be undone by a frame sealed the old way, which the next start signs. Such
// frames that the store does not hold yet are then refused. A source
// starting with "$" is an environment variable.
func sealWeakerThanSigner(dataDir, credFrom, signerFrom string) bool {
	inside := func(p string) bool {
		if p == "" || strings.HasPrefix(p, "$") {
			return false
		}
		d, err1 := realPath(dataDir)
		f, err2 := realPath(p)
		if err1 != nil || err2 != nil {
			return false
		}
		rel, err := filepath.Rel(d, f)
		return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
	}
	return inside(credFrom) && !inside(signerFrom)
}

// realPath is p made absolute with its symbolic links resolved, so that a
// key reached through a link into data_dir counts as inside it; a path that
// does not resolve (not there yet) is only made absolute.
func realPath(p string) (string, error) {
	a, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if r, err := filepath.EvalSymlinks(a); err == nil {
		return r, nil
	}
	return a, nil
}
