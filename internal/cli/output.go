package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/airlock-dev/airlock/internal/textesc"
)

// Human output prints strings that came from the network or from other
// users: grant reasons, comments, identity names, S3 keys, SQL, error
// messages. A terminal would act on control characters in them (a
// carriage return and ESC[2K rewrite the line, forging a transcript), so
// every line of table output goes through linef or row, which escape them
// visibly (textesc). JSON output (-o json) is written as is.

// linef prints one line: the formatted text, escaped, and a newline. The
// format itself must be one line.
func linef(w io.Writer, format string, args ...any) {
	fmt.Fprintln(w, textesc.String(fmt.Sprintf(format, args...)))
}

// row prints one tabwriter row: each cell escaped (so a tab or newline in
// a value cannot shift the columns), separated by tabs.
func row(w io.Writer, cells ...any) {
	s := make([]string, len(cells))
	for i, c := range cells {
		s[i] = textesc.String(fmt.Sprint(c))
	}
	fmt.Fprintln(w, strings.Join(s, "\t"))
}

// checkEnvValues refuses credential values a terminal would act on: the
// export lines are meant to be evaluated by a shell, so they cannot be
// escaped, and no genuine credential, host or path the server sends has
// control characters.
func checkEnvValues(vars []envVar) error {
	for _, v := range vars {
		if textesc.Needs(v.value) {
			// The value is not shown: it may be the secret.
			return exitf(1, "the server sent a %s with control characters; refusing to print it", v.name)
		}
	}
	return nil
}
