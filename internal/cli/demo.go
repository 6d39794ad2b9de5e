package cli

import (
	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/demo"
)

func (a *app) demoCmd() *cobra.Command {
	var dir string
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo [--dir D] [--keep]",
		Short: "Run the walkthrough end to end in one process on a temporary directory",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return demo.Run(cmd.Context(), a.out, dir, keep)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "run in this directory instead of a temporary one (kept afterwards)")
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the temporary directory")
	return cmd
}
