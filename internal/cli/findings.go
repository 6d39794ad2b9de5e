package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/airlock-dev/airlock/internal/jsonlist"
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
			"the one that requested the grant). REFUSED is yes where identity_binding: refuse turned the call away.\n" +
			"Every finding is listed: the server answers 1,000 at a time, and each page is printed as it comes\n" +
			"(the table's columns are aligned within each page).",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := emptyFlag(cmd, "day"); err != nil { // all days, else
				return err
			}
			if err := dayFlag(cmd, day); err != nil {
				return err
			}
			// The server answers a page at a time; every page is
			// printed as it comes, so that the CLI holds one page, not
			// every finding of the log.
			if a.output == "json" {
				arr := jsonlist.Writer[model.Finding]{W: a.out}
				if err := a.client().Findings(cmd.Context(), day, arr.Add); err != nil {
					return describe(err)
				}
				return arr.Close()
			}
			header := true
			err := a.client().Findings(cmd.Context(), day, func(fs []model.Finding) error {
				// One table per page, each aligned on its own (a
				// tabwriter holds every row until it is flushed).
				w := a.table()
				if header {
					fmt.Fprintln(w, "TIME\tKIND\tIDENTITY\tGRANT\tINSTANCE\tOTHERS\tREFUSED")
					header = false
				}
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
			})
			if err != nil {
				return describe(err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&day, "day", "", "findings raised on this UTC day (YYYY-MM-DD)")
	return cmd
}
