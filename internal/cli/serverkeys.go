package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/serverkeys"
)

// serverKeysCmd is `airlock server-keys DIR`: the keys every replica of one
// PostgreSQL-backed deployment must share, made once and then copied to each
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
			fmt.Fprintf(a.out, "wrote %s and %s (copy both to every replica's data_dir, or see docs/replicas.md)\n", k.CredentialFrom, k.SignerFrom)
			return nil
		},
	}
}
