package grants

import (
	"fmt"

	"github.com/airlock-dev/airlock/internal/actionname"
	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/scope"
)

// checkActionCase refuses an action that is a gateway's action in
// another case (s3:deleteobject, s3:Deleteobject). IAM reads action names
// in any case, but gateways and policies compare them exactly: such a
// grant would allow nothing at the gateway, while a forbid naming
// s3:DeleteObject did not match it, so the decision and the record said
// that policy allowed a delete. Actions no gateway lists are left to
// scope.ValidateFor, as before.
func checkActionCase(sc scope.Scope) error {
	for i, st := range sc {
		for _, a := range st.Actions {
			if c, ok := actionname.Respelled(a); ok {
				return &scope.Error{Index: i, Statement: st.String(), Msg: fmt.Sprintf("action %s is spelled %s: Airlock compares actions exactly, as its gateways and policies do", apierr.Quote(a), c)}
			}
		}
	}
	return nil
}
