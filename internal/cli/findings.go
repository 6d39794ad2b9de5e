package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/model"
)

// findingsCmd is `airlock findings`: the shared identities and moved
// credentials Airlock has flagged.
func (a *app) findingsCmd() *cobra.Command {
	var day string
	cmd := &cobra.Command{
		Use:   "findings [--day YYYY-MM-DD]",
		Short: "Shared identities and moved credentials",
		Long: "Lists the findings in the log: shared-identity (one identity active from two or more instances within\n" +
			"the findings window) and credential-moved (a grant's gateway credentials used from another address than\n" +
			"the one that requested the grant). REFUSED is yes where identity_binding: refuse turned the call away.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fs, err := a.client().Findings(cmd.Context(), day)
			if err != nil {
				return describe(err)
			}
			if a.output == "json" {
				if fs == nil {
					fs = []model.Finding{}
				}
				return a.printJSON(fs)
			}
			w := a.table()
			fmt.Fprintln(w, "TIME\tKIND\tIDENTITY\tGRANT\tINSTANCE\tOTHERS\tREFUSED")
			for _, f := range fs {
				refused := "no"
				if f.Refused {
					refused = "yes"
				}
				// Instances carry workload-token claims (a branch, a
				// workflow name), which are the token's to choose.
				row(w, ts(f.At), f.Kind, f.Identity, dash(f.Grant), f.Instance,
					dash(strings.Join(f.Others, ", ")), refused)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&day, "day", "", "findings raised on this UTC day (YYYY-MM-DD)")
	return cmd
}
