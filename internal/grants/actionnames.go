package grants

import (
	"fmt"
	"strings"
	"sync"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/awsops"
	"github.com/airlock-dev/airlock/internal/s3iam"
	"github.com/airlock-dev/airlock/internal/scope"
)

// knownActions maps each action a gateway checks, lower-cased, to its
// spelling there: S3's (s3iam), the other AWS services' (awsops) and
// postgres's.
var knownActions = sync.OnceValue(func() map[string]string {
	m := map[string]string{}
	for _, list := range [][]string{s3iam.Actions(), awsops.Actions(), scope.PostgresActions()} {
		for _, a := range list {
			m[strings.ToLower(a)] = a
		}
	}
	return m
})

// checkActionCase refuses an action that is a gateway's action in
// another case (s3:deleteobject, s3:Deleteobject). IAM reads action names
// in any case, but gateways and policies compare them exactly: such a
// grant would allow nothing at the gateway, while a forbid naming
// s3:DeleteObject did not match it, so the decision and the record said
// that policy allowed a delete. Actions no gateway lists are left to
// scope.ValidateFor, as before.
func checkActionCase(sc scope.Scope) error {
	known := knownActions()
	for i, st := range sc {
		for _, a := range st.Actions {
			if c, ok := known[strings.ToLower(a)]; ok && c != a {
				return &scope.Error{Index: i, Statement: st.String(), Msg: fmt.Sprintf("action %s is spelled %s: Airlock compares actions exactly, as its gateways and policies do", apierr.Quote(a), c)}
			}
		}
	}
	return nil
}
