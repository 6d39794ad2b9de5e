package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/serverkeys"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
)

// Verify checks the whole log against its checkpoints and the witness copy
// of the newest checkpoint kept outside the database, and every grant and
// session row against what the log implies.
func (s *Server) Verify(ctx context.Context) (auditlog.Report, error) {
	// The witness is read before the store is synced, so it can never be
	// ahead of what is verified.
	witness, err := readWitness(s.Config.DataDir)
	if err != nil {
		return auditlog.Report{}, err
	}
	// Session summaries are written lazily; write them first so that rows
	// and log agree on every call recorded before the check.
	s.Service.Fresh(ctx)
	if err := s.log.Sync(ctx); err != nil {
		return auditlog.Report{}, err
	}
	return auditlog.VerifyWith(ctx, s.store, s.verifier, auditlog.VerifyOptions{Witness: witness, State: review.NewChecker(s.store)})
}

func readWitness(dataDir string) ([]byte, error) {
	witness, err := os.ReadFile(filepath.Join(dataDir, WitnessFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return witness, err
}

// OfflineInput is what offline verification trusts beyond the directory.
type OfflineInput struct {
	// Key is the pinned verifier key; nil means the directory's own
	// log-signing.pub (which whoever controls the directory can replace).
	Key note.Verifier
	// Witness is a checkpoint kept elsewhere; nil means the directory's
	// own witness file.
	Witness []byte
	// CredentialKeyFile is the configuration's keys.credential_key_file:
	// the journal's seals are derived from the credential key, which is
	// read where the server reads it ($AIRLOCK_CREDENTIAL_KEY, this file,
	// or the directory's credential.key), never created.
	CredentialKeyFile string
}

// VerifyOffline verifies a data directory without a running server. It
// opens everything read-only and writes nothing: no key is created, the
// journal is read and checked in memory (never copied into the database),
// and the database is opened immutable (or, when it has a write-ahead log,
// from a private copy).
func VerifyOffline(ctx context.Context, dataDir string, in OfflineInput) (auditlog.Report, error) {
	path := filepath.Join(dataDir, DatabaseFile)
	if _, err := os.Stat(path); err != nil {
		return auditlog.Report{}, fmt.Errorf("no Airlock database in %s (with `store: postgres://…`, run `airlock audit verify` against the server instead): %w", dataDir, err)
	}
	v := in.Key
	if v == nil {
		var err error
		if v, err = auditlog.LoadVerifier(dataDir); err != nil {
			return auditlog.Report{}, err
		}
	}
	witness := in.Witness
	if witness == nil {
		var err error
		if witness, err = readWitness(dataDir); err != nil {
			return auditlog.Report{}, err
		}
	}
	st, cleanup, err := sqlitestore.OpenReadOnly(ctx, path)
	if err != nil {
		return auditlog.Report{}, err
	}
	defer cleanup()
	defer st.Close()
	// A journal that does not continue the log is a finding, not a reason
	// to stop: the rest of the directory is still checked.
	journal, jerr := readJournal(ctx, st, dataDir, in.CredentialKeyFile)
	return auditlog.VerifyWith(ctx, st, v, auditlog.VerifyOptions{Witness: witness, State: review.NewChecker(st), Journal: journal, JournalErr: jerr})
}

// readJournal reads what an unclean stop left only in the journal, read-only.
// The seal key is derived from the server's credential key, read where the
// server reads it (serverkeys.LoadCredential), never created.
func readJournal(ctx context.Context, st *sqlitestore.Store, dataDir, credentialKeyFile string) ([]store.LogEntry, error) {
	dir := filepath.Join(dataDir, JournalDir)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	cp, err := st.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		cp = store.Checkpoint{}
	} else if err != nil {
		return nil, err
	}
	credKey, _, err := serverkeys.LoadCredential(serverkeys.Sources{DataDir: dataDir, CredentialKeyFile: credentialKeyFile})
	if errors.Is(err, fs.ErrNotExist) {
		credKey = nil
	} else if err != nil {
		return nil, err
	}
	es, err := auditlog.ReadJournal(dir, journalKey(credKey), cp)
	if err != nil && credKey == nil {
		return nil, fmt.Errorf("%w (and %s is missing, so the journal's seals cannot be checked)", err, CredentialKeyFile)
	}
	return es, err
}
