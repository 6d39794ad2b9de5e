package awsops

import (
	"slices"
	"testing"
)

// TestLambdaFunctionNameForms: every form Lambda's FunctionName pattern
// takes is checked on the function Lambda would run. ACCOUNT:NAME (twelve
// digits, no "function:") names the function NAME in ACCOUNT, not a
// function named after the account at version NAME; likewise
// function:NAME and REGION:NAME (the pattern's optional "function:" and
// region parts) name the function NAME, not a function named "function"
// or after the region: a grant on "function:f*" or "function:us*" must
// not invoke every function.
func TestLambdaFunctionNameForms(t *testing.T) {
	const fn = "arn:aws:lambda:us-east-1:111122223333:function:"
	for _, tc := range []struct{ path, query, want string }{
		{"/2015-03-31/functions/resize/invocations", "", fn + "resize"},
		{"/2015-03-31/functions/resize:prod/invocations", "", fn + "resize:prod"},
		{"/2015-03-31/functions/111122223333:resize/invocations", "", fn + "resize"},
		{"/2015-03-31/functions/111122223333:resize:prod/invocations", "", fn + "resize:prod"},
		{"/2015-03-31/functions/111122223333:resize/invocations", "Qualifier=7", fn + "resize:7"},
		{"/2015-03-31/functions/111122223333:function:resize/invocations", "", fn + "resize"},
		{"/2015-03-31/functions/function:resize/invocations", "", fn + "resize"},
		{"/2015-03-31/functions/us-east-1:resize/invocations", "", fn + "resize"},
		{"/2015-03-31/functions/function:resize:prod/invocations", "", fn + "resize:prod"},
		{"/2015-03-31/functions/us-east-1:resize:prod/invocations", "", fn + "resize:prod"},
		{"/2015-03-31/functions/us-east-1:function:resize/invocations", "", fn + "resize"},
		{"/2015-03-31/functions/us-east-1:111122223333:function:resize:3/invocations", "", fn + "resize:3"},
		{"/2015-03-31/functions/us-east-1:111122223333:resize/invocations", "", fn + "resize"},
		// Nothing after a prefix: it is the name.
		{"/2015-03-31/functions/function/invocations", "", fn + "function"},
		{"/2015-03-31/functions/111122223333:function/invocations", "", fn + "function"},
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
		{"/2015-03-31/functions/eu-west-1:resize/invocations", "", "AccessDeniedException"},
		{"/2015-03-31/functions/us-gov-west-1:resize/invocations", "", "AccessDeniedException"},
		{"/2015-03-31/functions/us-east-1:444455556666:function:resize/invocations", "", "AccessDeniedException"},
		{"/2015-03-31/functions/us-east-1:function:resize:prod:x/invocations", "", "InvalidParameterValueException"},
		{"/2015-03-31/functions/111122223333:resize:prod:x/invocations", "", "InvalidParameterValueException"},
		{"/2015-03-31/functions/111122223333:resize:prod/invocations", "Qualifier=dev", "InvalidParameterValueException"},
		// A case variant of Qualifier, which the mapper does not read.
		{"/2015-03-31/functions/resize/invocations", "qualifier=prod", "InvalidRequestContentException"},
		{"/2015-03-31/functions/resize/invocations", "QUALIFIER=3", "InvalidRequestContentException"},
	} {
		mustRefuse(t, lambdaReq("POST", tc.path, tc.query), tc.code)
	}
}
