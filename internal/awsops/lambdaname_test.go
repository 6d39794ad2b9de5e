package awsops

import (
	"slices"
	"testing"
)

// TestLambdaFunctionNameForms: every form Lambda's FunctionName pattern
// takes is checked on the function Lambda would run. ACCOUNT:NAME (twelve
// digits, no "function:") names the function NAME in ACCOUNT, not a
// function named after the account at version NAME.
func TestLambdaFunctionNameForms(t *testing.T) {
	const fn = "arn:aws:lambda:us-east-1:111122223333:function:"
	for _, tc := range []struct{ path, query, want string }{
		{"/2015-03-31/functions/resize/invocations", "", fn + "resize"},
		{"/2015-03-31/functions/resize:prod/invocations", "", fn + "resize:prod"},
		{"/2015-03-31/functions/111122223333:resize/invocations", "", fn + "resize"},
		{"/2015-03-31/functions/111122223333:resize:prod/invocations", "", fn + "resize:prod"},
		{"/2015-03-31/functions/111122223333:resize/invocations", "Qualifier=7", fn + "resize:7"},
		{"/2015-03-31/functions/111122223333:function:resize/invocations", "", fn + "resize"},
		// Not twelve digits: a name and a qualifier, as before.
		{"/2015-03-31/functions/11112222333:resize/invocations", "", fn + "11112222333:resize"},
	} {
		op := mustMap(t, lambdaReq("POST", tc.path, tc.query))
		if want := []Check{{"lambda:InvokeFunction", tc.want}}; !slices.Equal(op.Checks, want) {
			t.Errorf("%s?%s: checks %v, want %v", tc.path, tc.query, op.Checks, want)
		}
	}
	for _, tc := range []struct{ path, query, code string }{
		{"/2015-03-31/functions/444455556666:resize/invocations", "", "AccessDeniedException"},
		{"/2015-03-31/functions/111122223333:resize:prod:x/invocations", "", "InvalidParameterValueException"},
		{"/2015-03-31/functions/111122223333:resize:prod/invocations", "Qualifier=dev", "InvalidParameterValueException"},
	} {
		mustRefuse(t, lambdaReq("POST", tc.path, tc.query), tc.code)
	}
}
