package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/serverkeys"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
	"github.com/airlock-dev/airlock/internal/witness"
)

// Verify checks the whole log against its checkpoints and the witness copy
// of the newest checkpoint kept outside the database, and every grant and
// session row against what the log implies.
func (s *Server) Verify(ctx context.Context) (auditlog.Report, error) {
	return s.verifies.do(ctx, s.verify)
}

func (s *Server) verify(ctx context.Context) (auditlog.Report, error) {
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
	rep, err := auditlog.VerifyWith(ctx, s.store, s.verifier, auditlog.VerifyOptions{Witness: witness, Origin: LogOrigin(s.verifier), State: review.NewChecker(s.store)})
	if err == nil && s.witnesses != nil {
		witnessProblems(&rep, s.witnesses.Status())
	}
	return rep, err
}

// witnessProblems adds to rep what the witnesses hold against the log. A
// log restored from an older copy (database, journal and
// data_dir/checkpoint together) is consistent in itself, so the walk finds
// nothing; a tlog-witness that cosigned a bigger tree refuses its
// checkpoints, and that refusal was only a line in the server's log while
// audit verify said OK.
func witnessProblems(rep *auditlog.Report, ss []witness.Status) {
	for _, st := range ss {
		if st.Evidence == "" {
			continue
		}
		rep.ProblemCount++
		rep.OK = false
		if len(rep.Problems) < auditlog.MaxProblems {
			rep.Problems = append(rep.Problems, auditlog.Problem{Kind: st.EvidenceKind, Seq: -1,
				Detail: fmt.Sprintf("witness %s: %s", st.Name, st.Evidence)})
		}
	}
}

func readWitness(dataDir string) ([]byte, error) {
	witness, err := auditlog.ReadFileMax(filepath.Join(dataDir, WitnessFile), auditlog.MaxCheckpointFile)
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
	// SigningKeyFile is the configuration's keys.log_signing_key_file: the
	// journal's seals are derived from the log signing key, which is read
	// where the server reads it ($AIRLOCK_LOG_SIGNING_KEY, this file, or the
	// directory's log-signing.key), never created. Without it, entries
	// found only in the journal cannot be checked; with Key set, neither
	// can they under a signing key that is not Key's.
	SigningKeyFile string
	// CredentialKeyFile is the configuration's keys.credential_key_file,
	// read likewise: journal frames an earlier release wrote were sealed
	// under a key derived from the credential key.
	CredentialKeyFile string
}

// ErrNoDatabase is VerifyOffline's error for a directory that holds no
// Airlock database: nothing was verified, and the caller said where to
// look (the CLI makes it a usage error, not a failed verification).
var ErrNoDatabase = errors.New("no Airlock database")

// VerifyOffline verifies a data directory without a running server. It
// opens everything read-only and writes nothing: no key is created, the
// journal is read and checked in memory (never copied into the database),
// and the database is opened immutable (or, when it has a write-ahead log,
// from a private copy).
func VerifyOffline(ctx context.Context, dataDir string, in OfflineInput) (auditlog.Report, error) {
	path := filepath.Join(dataDir, DatabaseFile)
	if _, err := os.Stat(path); err != nil {
		return auditlog.Report{}, fmt.Errorf("%w in %s (with `store: postgres://…`, run `airlock audit verify` against the server instead): %w", ErrNoDatabase, dataDir, err)
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
	journal, jerr := readJournal(ctx, st, dataDir, in)
	return auditlog.VerifyWith(ctx, st, v, auditlog.VerifyOptions{Witness: witness, Origin: LogOrigin(v), State: review.NewChecker(st), Journal: journal, JournalErr: jerr})
}

// readJournal reads what an unclean stop left only in the journal, read-only.
// The seal keys are derived from the server's keys, read where the server
// reads them (serverkeys.LoadJournalSeal, LoadCredential), never created;
// frames of the first format that the store does not hold yet are taken
// under the server's rule (sealWeakerThanSigner), so that verify reports
// what a start would refuse.
func readJournal(ctx context.Context, st *sqlitestore.Store, dataDir string, in OfflineInput) ([]store.LogEntry, error) {
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
	src := serverkeys.Sources{DataDir: dataDir, CredentialKeyFile: in.CredentialKeyFile, SigningKeyFile: in.SigningKeyFile}
	var missing []string
	signer, seal, signerFrom, err := serverkeys.LoadJournalSigner(src)
	if errors.Is(err, fs.ErrNotExist) {
		missing = append(missing, "the log signing key")
	} else if err != nil {
		return nil, err
	}
	// With a pinned key, the signing key is looked for in the directory
	// unless the configuration names it elsewhere; whoever can write the
	// directory could put a key of their own there and seal frames under
	// it. A seal counts only if its key is the pinned one.
	wrongKey := ""
	if signer != nil && in.Key != nil && !signerMatches(signer, in.Key) {
		seal, wrongKey = nil, signerFrom
	}
	credKey, credFrom, err := serverkeys.LoadCredential(src)
	if errors.Is(err, fs.ErrNotExist) {
		missing = append(missing, "the credential key (for frames an earlier release sealed)")
	} else if err != nil {
		return nil, err
	}
	keys := auditlog.JournalKeys{Seal: seal}
	if credKey != nil {
		keys.Legacy = legacyJournalKey(credKey)
		keys.LegacyTail = seal != nil && !sealWeakerThanSigner(dataDir, credFrom, signerFrom)
	}
	es, err := auditlog.ReadJournal(dir, keys, cp)
	if errors.Is(err, auditlog.ErrLegacyJournal) {
		// A start refuses them; verify still lists them (counted as
		// journaled, their state checked) beside the problem, so that the
		// operator sees what they hold before keeping or dropping them.
		keys.LegacyTail = true
		if all, err2 := auditlog.ReadJournal(dir, keys, cp); err2 == nil {
			es = all
		}
		return es, err
	}
	if err != nil && wrongKey != "" {
		return nil, fmt.Errorf("%w (and the log signing key found at %s is not the pinned key (--key), so the journal's seals cannot be checked)", err, wrongKey)
	}
	if err != nil && len(missing) > 0 {
		return nil, fmt.Errorf("%w (and %s was not found, so the journal's seals cannot be checked)", err, strings.Join(missing, " and "))
	}
	return es, err
}

// signerMatches reports whether signer is the private half of v: same name,
// same key hash, and a signature by signer that v accepts.
func signerMatches(signer note.Signer, v note.Verifier) bool {
	if signer.Name() != v.Name() || signer.KeyHash() != v.KeyHash() {
		return false
	}
	msg, err := note.Sign(&note.Note{Text: "airlock pinned key check\n"}, signer)
	if err != nil {
		return false
	}
	_, err = note.Open(msg, note.VerifierList(v))
	return err == nil
}
