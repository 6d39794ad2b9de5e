package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/serverkeys"
	"github.com/airlock-dev/airlock/internal/textesc"
)

// serverKeysCmd is `airlock server-keys DIR`: the keys every replica of one
// PostgreSQL-backed deployment must share, made once and then given to each
// replica (see docs/replicas.md).
func (a *app) serverKeysCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "server-keys DIR",
		Short: "Generate the credential key and log signing key that every replica shares (files in DIR, mode 0600)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := serverkeys.Generate(args[0])
			if err != nil {
				return err
			}
			// The ways a replica takes the keys, as the server reads
			// them (serverkeys.Load): the README's replicas section names
			// the files in the configuration's keys section, and the
			// message said only "copy both to every replica's data_dir".
			// The paths are absolute: the configuration resolves a
			// relative one against its own directory, not this one. They
			// are quoted as YAML reads a double-quoted string (Go's
			// escapes are YAML's), so the lines can be pasted whatever
			// the path holds.
			cred, sign := absPath(k.CredentialFrom), absPath(k.SignerFrom)
			fmt.Fprintf(a.out, "wrote %s and %s (mode 0600). Give every replica the same two (docs/replicas.md):\n"+
				"  name them in the configuration every replica reads:\n"+
				"    keys:\n"+
				"      credential_key_file: %s\n"+
				"      log_signing_key_file: %s\n"+
				"  or copy both, with their names, into each replica's data_dir.\n",
				textesc.String(k.CredentialFrom), textesc.String(k.SignerFrom), strconv.Quote(cred), strconv.Quote(sign))
			return nil
		},
	}
}
