package workload_test

import (
	"slices"
	"testing"

	"github.com/airlock-dev/airlock/internal/workload"
)

// TestBindingsOf: an identity's bindings are described as its record shows
// them; a subject-only one equals the Auth of the tokens it maps.
func TestBindingsOf(t *testing.T) {
	const iss = "https://issuer.example"
	v, err := workload.New([]workload.Issuer{{URL: iss, Audience: "airlock"}}, []workload.Binding{
		{Identity: "a", Issuer: iss, Subject: "sub-a"},
		{Identity: "b", Issuer: iss, Claims: map[string]string{"workflow": "release", "repository": "acme/deploy"}},
		{Identity: "c", Issuer: iss, Subject: "sub-c", Claims: map[string]string{"kubernetes.io/namespace": "ops"}},
	}, workload.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string][]string{
		"a": {workload.Result{Issuer: iss, Subject: "sub-a"}.Auth()},
		"b": {"oidc:" + iss + " repository=acme/deploy workflow=release"},
		"c": {"oidc:" + iss + " sub-c kubernetes.io/namespace=ops"},
		"d": nil,
	} {
		if got := v.BindingsOf(id); !slices.Equal(got, want) {
			t.Errorf("BindingsOf(%s) = %q, want %q", id, got, want)
		}
	}
}
