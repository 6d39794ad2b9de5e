package grants

import (
	"errors"
	"fmt"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/scope"
)

// CheckRequestInput refuses, as Request does and with its errors, what in
// holds that no target or configuration accepts: a scope statement that
// does not parse or names an action misspelled, a duration that is not a
// positive Go duration, a reason over MaxReasonLength or with control
// characters. The CLI checks its flags with it before asking, so that such
// a value is a usage error (exit 2), not a command that failed (exit 1).
// What depends on the server (the target, whether its kind takes the
// actions, the duration's cap, whether a reason is required) is Request's
// alone.
func CheckRequestInput(in RequestInput) error {
	if _, err := parseScope(in.Scope); err != nil {
		return scopeInvalid(err)
	}
	if _, err := parseDurationSyntax(in.Duration); err != nil {
		return err
	}
	return CheckText("reason", in.Reason)
}

// CheckText refuses a free-text field (a reason or comment) as every
// decision, end and disable does whatever the configuration: longer than
// MaxReasonLength once trimmed, or holding control characters. Whether it
// may be empty is the caller's to say.
func CheckText(field, v string) error {
	_, err := checkText(field, v, false)
	return err
}

// parseScope reads a request's scope statements, their actions spelled
// as the gateways and policies compare them, whatever the target.
func parseScope(stmts []string) (scope.Scope, error) {
	sc, err := scope.Parse(stmts)
	if err == nil {
		err = checkActionCase(sc)
	}
	return sc, err
}

// scopeInvalid is a refused scope as the API says it: the statement's
// index in the field (scope[i]) where the error names one.
func scopeInvalid(err error) error {
	var se *scope.Error
	if errors.As(err, &se) {
		return apierr.Invalid(fmt.Sprintf("scope[%d]", se.Index), "%s", se.Msg)
	}
	return apierr.Invalid("scope", "%v", err)
}
