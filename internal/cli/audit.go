package cli

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/evidence"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/safefile"
	"github.com/airlock-dev/airlock/internal/server"
	"github.com/airlock-dev/airlock/internal/textesc"
	"github.com/airlock-dev/airlock/internal/witness/cosig"
)

func (a *app) auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Check the tamper-evident log; export and check evidence bundles"}
	var dataDir, keyArg, witnessFile, cfgPath, saveHead string
	var witnessKeys []string
	var maxAge time.Duration
	verify := &cobra.Command{
		Use:   "verify [--data-dir DIR] [--config FILE] [--key PUB] [--witness FILE [--witness-key VKEY]… [--max-age DURATION]] [--save-head FILE]",
		Short: "Check every log entry against the signed checkpoints, and every grant, session and identity row against the log; exits 1 on any problem, 2 if there is nothing to check (bad input)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// `--key "$PINNED"` with the variable unset verified against
			// the directory's own key, and exited 0: the pinning a script
			// asked for was silently dropped.
			if err := emptyFlag(cmd, "data-dir", "config", "key", "witness", "witness-key", "save-head"); err != nil {
				return err
			}
			// The head kept is next time's witness: only one checked
			// against a key the caller pinned is worth trusting then.
			if saveHead != "" && keyArg == "" {
				return usagef("--save-head needs --key: the checkpoint kept must be one the pinned key signed")
			}
			// A checkpoint states no time: only a witness's cosignature
			// dates it.
			if cmd.Flags().Changed("max-age") && (maxAge <= 0 || len(witnessKeys) == 0) {
				return usagef("--max-age needs a positive duration and --witness-key: only the named witnesses' cosignatures on --witness date the log")
			}
			var v note.Verifier
			var witness []byte
			var err error
			if keyArg != "" {
				if v, err = loadVerifierKey(keyArg); err != nil {
					return usagef("--key: %v", err)
				}
			}
			if witnessFile != "" {
				if witness, err = auditlog.ReadFileMax(witnessFile, auditlog.MaxCheckpointFile); err != nil {
					return usagef("--witness: %v", err)
				}
				// The whole answer of GET /v1/audit/checkpoint, saved as
				// is, is JSON around the note: say so, rather than report
				// a bad signature, which reads as a tampered log.
				if checkpointAnswer(witness) {
					return usagef("--witness %s holds the JSON answer of GET /v1/audit/checkpoint, not a checkpoint: save its \"checkpoint\" field (jq -r .checkpoint), or \"cosigned\" for the witnesses' cosignatures", witnessFile)
				}
			}
			var cosigned *cosig.Cosigned
			if len(witnessKeys) > 0 {
				// The witness file must carry a valid cosignature from every
				// named witness, over a checkpoint the pinned key signed.
				if witness == nil || v == nil {
					return usagef("--witness-key needs --witness and --key")
				}
				now := time.Now()
				if cosigned, err = cosig.VerifyCosigned(witness, v, server.LogOrigin(v), witnessKeys, now); err != nil {
					return fmt.Errorf("the witness checkpoint is not cosigned as required: %v", err)
				}
				if err := checkMaxAge(cosigned, maxAge, now); err != nil {
					return err
				}
			}
			var rep auditlog.Report
			var head []byte // the newest checkpoint the verification covered
			in := server.OfflineInput{Key: v, Witness: witness}
			if cfgPath != "" {
				// The server's own configuration says where its data
				// directory and its keys are (keys: …).
				if dataDir, in.CredentialKeyFile, in.SigningKeyFile, err = offlineFromConfig(a.errOut, cfgPath, dataDir); err != nil {
					return err
				}
			}
			if dataDir != "" {
				rep, err = server.VerifyOffline(cmd.Context(), dataDir, in)
				if errors.Is(err, server.ErrNoDatabase) {
					// A mistyped --data-dir is the caller's mistake (exit
					// 2), not a log that failed verification (exit 1).
					return usagef("--data-dir: %v", err)
				}
				head = rep.Checkpoint
			} else {
				rep, err = a.client().Verify(cmd.Context())
				if err == nil && (v != nil || witness != nil) {
					head, err = a.checkOnline(cmd, &rep, v, witness)
				}
			}
			if err != nil {
				return describe(err)
			}
			if err := a.printReport(rep); err != nil {
				return err
			}
			a.printAnchors(v, witness, cosigned, dataDir != "")
			if saveHead != "" {
				return a.saveHead(saveHead, head, v)
			}
			return nil
		},
	}
	verify.Flags().StringVar(&dataDir, "data-dir", "", "verify a data directory directly (read-only) instead of asking the server")
	verify.Flags().StringVar(&cfgPath, "config", "", "verify the data directory of this server configuration directly (its data_dir unless --data-dir, and its keys)")
	verify.Flags().StringVar(&keyArg, "key", "", "pinned verifier key (note format, as in log-signing.pub), or a file holding it")
	verify.Flags().StringVar(&witnessFile, "witness", "", "a checkpoint kept outside the data directory (signed note; cosignatures allowed)")
	verify.Flags().StringArrayVar(&witnessKeys, "witness-key", nil, "require a valid cosignature on --witness from this witness (verifier key; repeatable)")
	verify.Flags().DurationVar(&maxAge, "max-age", 0, "fail unless every --witness-key witness cosigned --witness within this long before now (e.g. 24h)")
	verify.Flags().StringVar(&saveHead, "save-head", "", "after a verification that passed, write the newest checkpoint it covered (signed with the --key key) to this file, for the next run's --witness")
	cmd.AddCommand(verify, a.exportCmd(), a.verifyBundleCmd())
	return cmd
}

// checkMaxAge fails if a required witness's cosignature on the witness
// checkpoint is more than maxAge (when set) before now: the log is then
// known to be at least that checkpoint only as of that time, and whatever
// happened to it since, no witness saw. Every named witness counts, as a
// fork needs them all to collude.
func checkMaxAge(c *cosig.Cosigned, maxAge time.Duration, now time.Time) error {
	if maxAge <= 0 {
		return nil
	}
	for _, w := range c.Cosignatures {
		if age := now.Sub(w.Time); age > maxAge {
			return fmt.Errorf("the witness checkpoint (tree size %d) was cosigned by witness %s at %s, %s ago, more than --max-age %s: the log has not been witnessed since (fetch a newer cosigned checkpoint: the \"cosigned\" field of GET /v1/audit/checkpoint)",
				c.Size, w.Witness, w.Time.UTC().Format(time.RFC3339), age.Truncate(time.Second), maxAge)
		}
	}
	return nil
}

// offlineFromConfig is the data directory (dataDir if set, else the
// file's data_dir), the credential key file and the log signing key file of
// configuration path. Several problems with the file are printed to w one
// per line, as serve prints them, before the one-line reason.
func offlineFromConfig(w io.Writer, path, dataDir string) (string, string, string, error) {
	cfg, err := config.Load(path)
	var problems *config.Errors
	if errors.As(err, &problems) && len(problems.List) > 1 {
		fmt.Fprintln(w, textesc.Text(err.Error()))
		return "", "", "", usagef("--config: %s has %d problems (above)", path, len(problems.List))
	}
	if err != nil {
		return "", "", "", usagef("--config: %v", err)
	}
	if cfg.Store != "" {
		return "", "", "", usagef("--config: %s uses store: postgres://…; run airlock audit verify against the server instead", path)
	}
	if dataDir == "" {
		dataDir = cfg.DataDir
	}
	return dataDir, cfg.Keys.CredentialKeyFile, cfg.Keys.LogSigningKeyFile, nil
}

// loadVerifierKey reads a note verifier key given inline or as a file.
func loadVerifierKey(arg string) (note.Verifier, error) {
	if v, err := note.NewVerifier(strings.TrimSpace(arg)); err == nil {
		return v, nil
	}
	b, err := auditlog.ReadFileMax(arg, auditlog.MaxVerifierKeyFile)
	if err != nil {
		return nil, fmt.Errorf("neither a verifier key nor a readable file: %w", err)
	}
	return note.NewVerifier(strings.TrimSpace(string(b)))
}

// checkOnline checks the server's answer against what the caller trusts:
// its newest checkpoint must be signed by the pinned key v, the tree the
// server verified must be a prefix of it, and so must the witness (by an
// RFC 6962 consistency proof checked here, not by the server). It returns
// that newest checkpoint once the tree the server verified was proven a
// prefix of it (nil otherwise).
func (a *app) checkOnline(cmd *cobra.Command, rep *auditlog.Report, v note.Verifier, witness []byte) ([]byte, error) {
	c := a.client()
	ctx := cmd.Context()
	fail := func(kind, format string, args ...any) {
		rep.Problems = append(rep.Problems, auditlog.Problem{Kind: kind, Seq: -1, Detail: fmt.Sprintf(format, args...)})
		rep.ProblemCount++
		rep.OK = false
	}
	// With a pinned key, the log is the one airlock serve names after it:
	// a checkpoint of another log the key signs says nothing about this one.
	origin := ""
	if v != nil {
		origin = server.LogOrigin(v)
	}
	// prove checks that the tree (n, root) is a prefix of the server's
	// newest checkpoint, which it returns (and keeps in last, as signed).
	var last []byte
	prove := func(n int64, root tlog.Hash, what string) (int64, tlog.Hash, bool, error) {
		r, err := c.Consistency(ctx, n)
		if err != nil {
			var ae *apierr.Error
			switch {
			case errors.As(err, &ae) && ae.Code == apierr.CodeConflict:
				fail(auditlog.KindTruncated, "%s covers %d entries, more than the server's newest checkpoint: entries were removed from the end", what, n)
				return 0, tlog.Hash{}, false, nil
			case errors.As(err, &ae):
				// The server answered but proved nothing (its log does
				// not match its own newest checkpoint, typically): a
				// problem of this check, listed with those the server
				// found, rather than an error that would hide them.
				fail(auditlog.KindCheckpointMismatch, "the server did not prove that %s (size %d) is a prefix of its newest checkpoint: %s", what, n, ae.Message)
				return 0, tlog.Hash{}, false, nil
			}
			return 0, tlog.Hash{}, false, err
		}
		size, top, err := auditlog.OpenCheckpoint([]byte(r.Checkpoint), v)
		if err != nil {
			fail(auditlog.KindBadSignature, "the server's newest checkpoint does not verify with the pinned key: %v", err)
			return 0, tlog.Hash{}, false, nil
		}
		if o := auditlog.CheckpointOrigin([]byte(r.Checkpoint)); origin != "" && o != origin {
			fail(auditlog.KindBadSignature, "the server's newest checkpoint is of the log %q, not %q", o, origin)
			return 0, tlog.Hash{}, false, nil
		}
		proof := make(tlog.TreeProof, len(r.Proof))
		for i, s := range r.Proof {
			h, err := base64.StdEncoding.DecodeString(s)
			if err != nil || len(h) != tlog.HashSize {
				return 0, tlog.Hash{}, false, fmt.Errorf("the server sent a malformed proof")
			}
			proof[i] = tlog.Hash(h)
		}
		if n > 0 {
			if err := tlog.CheckTree(proof, size, top, n, root); err != nil {
				fail(auditlog.KindCheckpointMismatch, "%s (size %d, root %s) is not a prefix of the server's checkpoint (size %d): the log was rewritten", what, n, root, size)
				return size, top, false, nil
			}
		}
		last = []byte(r.Checkpoint)
		return size, top, true, nil
	}
	if witness != nil {
		n, root, err := auditlog.OpenCheckpoint(witness, v)
		if o := auditlog.CheckpointOrigin(witness); err == nil && origin != "" && o != origin {
			err = fmt.Errorf("it is of the log %q, not %q: it (and any cosignature on it) says nothing about this log", o, origin)
		}
		if err != nil {
			fail(auditlog.KindBadSignature, "witness checkpoint: %v", err)
		} else if _, _, _, err := prove(n, root, "the witness checkpoint"); err != nil {
			return nil, err
		}
	}
	if v != nil && rep.Size > 0 {
		h, err := base64.StdEncoding.DecodeString(rep.Root)
		if err != nil || len(h) != tlog.HashSize {
			fail(auditlog.KindCheckpointMismatch, "the server's report names no valid root")
		} else if _, _, ok, err := prove(rep.Size, tlog.Hash(h), "the tree the server verified"); err != nil {
			return nil, err
		} else if ok {
			return last, nil
		}
	} else if v != nil {
		if _, _, _, err := prove(0, tlog.Hash{}, "the empty log"); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// saveHead writes head, the newest checkpoint a verification that passed
// covered, to path, for the operator to pass as --witness next time: a
// checkpoint kept outside the data directory that the log must extend,
// which whoever deletes the log's tail with its checkpoints cannot delete.
// The file is replaced whole (a new file renamed over it, and the
// directory synced), so that an interrupted write never leaves the
// previous head cut short, nor a crash the head before it.
func (a *app) saveHead(path string, head []byte, v note.Verifier) error {
	n, root, err := auditlog.OpenCheckpoint(head, v)
	if err != nil || n == 0 {
		// An empty log (or a server that proved nothing newer): there is
		// no head, and the file is left as it was.
		linef(a.errOut, "NOTE --save-head: the log has no signed checkpoint to keep; %s was not written", path)
		return nil
	}
	// Through safefile, as the witness file and the log's keys are
	// written: this copy of the same steps did not sync the directory, so
	// a crash after the rename could bring back the head before it.
	if err := safefile.WriteAtomic(path, head, 0o644); err != nil {
		return fmt.Errorf("--save-head: %v", err)
	}
	if a.output != "json" {
		linef(a.out, "saved checkpoint (tree size %d, root %s) to %s: pass it as --witness next time", n, root, path)
	}
	return nil
}

// printAnchors says, after a verification that passed, what it was
// anchored to outside the data directory: the pinned key, and the witness
// checkpoint the log was found to extend. Without these lines the output
// of a verification with --key and --witness read as that of one trusting
// the directory's own key and checkpoint. Without --key it says, in a
// NOTE, which key was trusted instead: a bare "OK" left a reader to infer
// it from lines that were not there. offline is a --data-dir (or
// --config) verification; else the server's own.
func (a *app) printAnchors(v note.Verifier, witness []byte, cosigned *cosig.Cosigned, offline bool) {
	if a.output == "json" {
		return
	}
	if v == nil {
		where := "the server's own key"
		if offline {
			where = "the data directory's own key (" + auditlog.VerifierKeyFile + ")"
		}
		linef(a.out, "NOTE no --key: the checkpoints were verified with %s, which whoever can re-sign the log can replace; pin the copy of %s taken at setup with --key", where, auditlog.VerifierKeyFile)
		return
	}
	linef(a.out, "pinned key %s: every checkpoint was verified with it, not with a key from the data directory", v.Name())
	if witness == nil {
		return
	}
	if n, root, err := auditlog.OpenCheckpoint(witness, v); err == nil {
		linef(a.out, "witness checkpoint (tree size %d, root %s): the log extends it", n, root)
	}
	// A cosignature is the witness's word for the log's size at its time:
	// how old that is, the reader judges.
	if cosigned != nil {
		for _, c := range cosigned.Cosignatures {
			linef(a.out, "cosigned by witness %s at %s", c.Witness, c.Time.Format(time.RFC3339))
		}
	}
}

func (a *app) exportCmd() *cobra.Command {
	var account, day, out string
	cmd := &cobra.Command{
		Use:   "export --account A --day YYYY-MM-DD -o FILE",
		Short: "Write an evidence bundle: the review rows of one account and day, their log entries and inclusion proofs",
		Long: "Write an evidence bundle: the review rows of one account and day, their log entries and inclusion proofs.\n\n" +
			"Here -o (--output) names the file to write, not an output format.",
		Args: noArgs,
		// -o is the file here: the root's check of it as a format does
		// not apply (a command's own hook replaces its parents').
		PersistentPreRunE: func(*cobra.Command, []string) error { return nil },
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("output") {
				out = a.output
			}
			for _, f := range []struct{ v, name string }{{account, "--account"}, {day, "--day"}, {out, "-o"}} {
				if err := need(f.v, f.name); err != nil {
					return err
				}
			}
			if err := plainValues(cmd, "--account", account); err != nil {
				return err
			}
			if err := dayFlag(cmd, day); err != nil {
				return err
			}
			b, warnings, err := a.client().Export(cmd.Context(), account, day)
			if err != nil {
				return describe(err)
			}
			for _, w := range warnings {
				linef(a.errOut, "WARNING stored row differs from the log (the bundle holds the log's): %s", w)
			}
			if err := os.WriteFile(out, b, 0o644); err != nil {
				return exitf(1, "%v", err)
			}
			linef(a.out, "wrote %s (%d bytes); check it with: airlock audit verify-bundle %s --key log-signing.pub", out, len(b), out)
			return nil
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "AWS account id or environment label")
	cmd.Flags().StringVar(&day, "day", "", "UTC day (YYYY-MM-DD)")
	// The file is the root's -o/--output, whose shorthand a flag of this
	// command's own could not take (pflag refuses to redefine it, and
	// every run of the command panicked).
	return cmd
}

func (a *app) verifyBundleCmd() *cobra.Command {
	var keyArg, originArg string
	cmd := &cobra.Command{
		Use:   "verify-bundle FILE --key PUB [--origin O]",
		Short: "Check an evidence bundle offline against a pinned verifier key; exits 1 if anything in it is not proven, 2 if the file or key cannot be read",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := need(keyArg, "--key"); err != nil {
				return err
			}
			v, err := loadVerifierKey(keyArg)
			if err != nil {
				return usagef("--key: %v", err)
			}
			// A file that cannot be read is the caller's mistake (exit
			// 2), not a bundle that failed (exit 1): a script telling a
			// forged bundle from a mistyped path must be able to.
			f, err := os.Open(args[0])
			if err != nil {
				return usagef("%v", err)
			}
			b, err := io.ReadAll(io.LimitReader(f, evidence.MaxSize+1))
			f.Close()
			if err != nil {
				return usagef("%v", err)
			}
			// The key may sign more than one log: the bundle must be
			// a review of the one airlock serve names after it.
			origin := originArg
			if origin == "" {
				origin = server.LogOrigin(v)
			}
			res, err := evidence.Verify(b, v, origin)
			if err != nil {
				return exitf(1, "bundle verification FAILED: %v", err)
			}
			// A v2 bundle's entry list is not signed: say so, on stderr
			// whatever the output format, so that no script reading the
			// JSON misses it.
			for _, w := range res.Warnings {
				linef(a.errOut, "WARNING %s", w)
			}
			if a.output == "json" {
				return a.printJSON(res)
			}
			list := "the signed statement lists every one"
			if !res.EntriesSigned {
				list = "their list is NOT signed (" + res.Format + ")"
			}
			linef(a.out, "OK: %d grant(s) of account %s on %s, %d log entries proven against the checkpoint of size %d, root %s, signed by %s; %s",
				len(res.Rows), res.Account, res.Day, res.Entries, res.TreeSize, res.Root, v.Name(), list)
			// Entries a log.refused entry names are in the bundle but not
			// in its rows: say which, or the auditor counting the calls
			// in the entries finds more than the rows show.
			if res.Refusals > 0 {
				linef(a.out, "  void: entries %v, named by the %d log.refused entries proven with them (their callers were told the calls failed); the rows leave them out",
					res.Void, res.Refusals)
			}
			// Each proven row with who approved it and its findings (a
			// shared identity, moved credentials): without them the
			// auditor reading "OK" saw no sign of either.
			for _, r := range res.Rows {
				linef(a.out, "  %s %s %s %s reason %q, approved by %s, %d sessions, %d calls, %d denied, findings %s",
					r.Grant, r.Identity, r.Status, dash(r.EndReason), r.Reason, dash(r.ApprovedBy), r.Sessions, r.Calls, r.DeniedCalls, review.FindingKinds(r.Findings))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyArg, "key", "", "pinned verifier key (note format, as in log-signing.pub), or a file holding it")
	cmd.Flags().StringVar(&originArg, "origin", "", "the log's origin, the first line of its checkpoints (default airlock/<the key's 8-hex-digit hash>, as airlock serve names its log)")
	return cmd
}

// unproven marks a review row whose stored record the log does not prove.
func unproven(mismatch []string) string {
	if len(mismatch) == 0 {
		return ""
	}
	return review.UnprovenMark
}

// warnUnproven lists on w, after a review, what each unproven row's
// record says that the log does not, and fails the command.
func (a *app) warnUnproven(w io.Writer, rows []review.Row) error {
	n := 0
	for _, r := range rows {
		for _, m := range r.LogMismatch {
			linef(w, "WARNING grant %s: %s", r.Grant, m)
		}
		if len(r.LogMismatch) > 0 {
			n++
		}
	}
	if n > 0 {
		return exitf(1, "%d row(s) marked !NOT-IN-LOG differ from the audit log: the database was changed outside Airlock (run airlock audit verify)", n)
	}
	return nil
}

// printMismatch prints a loud warning for a record the log does not prove.
func printMismatch(w io.Writer, what string, mismatch []string) {
	if len(mismatch) == 0 {
		return
	}
	linef(w, "!!! WARNING: %s does NOT match the audit log (the database was changed outside Airlock):", what)
	for _, m := range mismatch {
		linef(w, "!!!   %s", m)
	}
}

// checkpointAnswer reports whether b is a JSON object carrying a
// "checkpoint" string, as GET /v1/audit/checkpoint answers.
func checkpointAnswer(b []byte) bool {
	var r struct {
		Checkpoint *string `json:"checkpoint"`
	}
	return json.Unmarshal(b, &r) == nil && r.Checkpoint != nil
}
