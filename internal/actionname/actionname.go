// Package actionname knows how the gateways spell the actions they check
// (S3's in s3iam, the other AWS services' in awsops, postgres's verbs), so
// that a name in another case (s3:Deleteobject) can be refused where it
// is written: gateways, policies and records compare actions exactly.
package actionname

import (
	"slices"
	"strings"
	"sync"

	"github.com/airlock-dev/airlock/internal/awsops"
	"github.com/airlock-dev/airlock/internal/s3iam"
	"github.com/airlock-dev/airlock/internal/scope"
)

// known maps each action a gateway checks, lower-cased, to its spelling.
var known = sync.OnceValue(func() map[string]string {
	m := map[string]string{}
	for _, list := range [][]string{s3iam.Actions(), awsops.Actions(), scope.PostgresActions()} {
		for _, a := range list {
			m[strings.ToLower(a)] = a
		}
	}
	return m
})

// Respelled returns a gateway's spelling of a when a names one of its
// actions in another case ("s3:DeleteObject" for "s3:Deleteobject"), and
// false for an action spelled as a gateway spells it or one no gateway
// lists.
func Respelled(a string) (string, bool) {
	c, ok := known()[strings.ToLower(a)]
	return c, ok && c != a
}

// InAnotherCase returns a gateway's action that match accepts only in
// another case: none that match accepts as spelled, and the shortest
// (then the first sorted) whose lower-cased name folded accepts, the
// likeliest meant. It says whether there is one. A `like` pattern on actions ("ec2:DescribeinStance*") that
// matches a gateway's action only so matches nothing a request carries.
func InAnotherCase(match, folded func(string) bool) (string, bool) {
	var other string
	for _, a := range spellings() {
		if match(a) {
			return "", false
		}
		if (other == "" || len(a) < len(other)) && folded(strings.ToLower(a)) {
			other = a
		}
	}
	return other, other != ""
}

// spellings are known's values, sorted.
var spellings = sync.OnceValue(func() []string {
	out := make([]string, 0, len(known()))
	for _, a := range known() {
		out = append(out, a)
	}
	slices.Sort(out)
	return out
})
