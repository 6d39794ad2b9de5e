package server

import (
	"context"
	"path/filepath"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/pgstore"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
)

// openStore opens the configured store: the PostgreSQL database of
// `store: postgres://…` when it is set, else the embedded SQLite database in
// data_dir. The rest of the server sees only store.Store (verification also
// uses ScanSessions, which both implement, through review.SessionScanner).
//
// With PostgreSQL, data_dir still holds the log signing key, the credential
// key, the log's journal and the witness file: one server per data_dir,
// and, until the log is shared across replicas, one server per database,
// which ClaimSoleServer enforces.
func openStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	if cfg.Store != "" {
		st, err := pgstore.Open(ctx, cfg.Store)
		if err != nil {
			return nil, err
		}
		if err := st.ClaimSoleServer(ctx); err != nil {
			st.Close()
			return nil, err
		}
		return st, nil
	}
	return sqlitestore.Open(ctx, filepath.Join(cfg.DataDir, DatabaseFile))
}
