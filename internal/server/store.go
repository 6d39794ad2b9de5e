package server

import (
	"context"
	"path/filepath"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/serverkeys"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/pgstore"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
)

// openStore opens the configured store: the PostgreSQL database of
// `store: postgres://…` when it is set, else the embedded SQLite database in
// data_dir. The rest of the server sees only store.Store (verification also
// uses ScanSessions, which both implement, through review.SessionScanner).
//
// With PostgreSQL, any number of replicas share the database and its one
// log (auditlog.Options.Shared, see logOptions); each keeps its witness
// file in its own data_dir. With SQLite, the journal's lock in data_dir
// keeps a second server off the same directory.
func openStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	// Each store's nil pointer is returned as a nil interface: a typed nil
	// in the Server's store would make its Close (after the error) panic
	// instead of reporting why the store did not open.
	if cfg.Store != "" {
		st, err := pgstore.Open(ctx, cfg.Store)
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	st, err := sqlitestore.Open(ctx, filepath.Join(cfg.DataDir, DatabaseFile))
	if err != nil {
		return nil, err
	}
	return st, nil
}

// logOptions is how the log is opened for the configured store. With SQLite
// (one server), batches are made durable by the journal in data_dir and
// copied into the database in the background. With PostgreSQL, every
// replica appends to the one shared log: a batch is durable when PostgreSQL
// commits it (a replica's disk may die with it, so there is no journal), and
// each batch continues from the newest checkpoint, whichever replica signed
// it, checked with the shared verifier key.
//
// The journal's frames are sealed under a key derived from the signing key
// (serverkeys.Keys.JournalSeal). Frames of the first format, sealed under
// one derived from the credential key, are still read; those the store does
// not hold yet are replayed only where the credential key is no easier to
// reach than the signing key (see sealWeakerThanSigner).
func logOptions(cfg *config.Config, keys *serverkeys.Keys, onCheckpoint func(store.Checkpoint)) auditlog.Options {
	verifier, credKey := keys.Verifier, keys.Credential
	o := auditlog.Options{
		Origin:       LogOrigin(verifier),
		WitnessPath:  filepath.Join(cfg.DataDir, WitnessFile),
		OnCheckpoint: onCheckpoint,
		Rows:         review.StoreRows,
	}
	if cfg.Store != "" {
		o.Shared, o.Verifier = true, verifier
	} else {
		o.JournalDir = filepath.Join(cfg.DataDir, JournalDir)
		o.JournalKey = keys.JournalSeal
		o.LegacyJournalKey = legacyJournalKey(credKey)
		o.LegacyJournalTail = !sealWeakerThanSigner(cfg.DataDir, keys.CredentialFrom, keys.SignerFrom)
	}
	return o
}
