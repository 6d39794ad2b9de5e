package awsgw

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/sigv4"
)

// target is a configured Target, ready to sign and send.
type target struct {
	Target
	// base is the custom endpoint, or nil for AWS itself.
	base *url.URL
	// rt carries the upstream requests. They go to it directly, not
	// through an http.Client: a RoundTripper never follows a redirect
	// (S3's PermanentRedirect for a wrong region goes back to the client as
	// is; following it would send the request somewhere that was not
	// configured), and the client would copy every request's headers in
	// case it did.
	rt http.RoundTripper
	// signer re-signs for the upstream. It caches derived keys per
	// access key, so one serves static keys and every grant's role
	// credentials alike.
	signer *sigv4.Signer
	// static is used when there is no role to assume.
	static aws.Credentials
	role   *roleCreds
	// services are the Endpoints overrides, parsed (svcforward.go).
	services map[string]*url.URL
}

func newTarget(t Target, rt http.RoundTripper) (*target, error) {
	if t.Name == "" {
		return nil, fmt.Errorf("awsgw: a target has no name")
	}
	if t.Region == "" {
		return nil, fmt.Errorf("awsgw: target %q: region is required", t.Name)
	}
	if (t.AccessKeyID == "") != (t.SecretAccessKey == "") {
		return nil, fmt.Errorf("awsgw: target %q: give both the access key id and the secret access key, or neither", t.Name)
	}
	if t.AccessKeyID == "" && t.RoleARN == "" {
		return nil, fmt.Errorf("awsgw: target %q: no upstream credentials (static keys or role_arn)", t.Name)
	}
	tt := &target{
		Target: t,
		rt:     rt,
		signer: &sigv4.Signer{},
	}
	if t.Endpoint != "" {
		u, err := url.Parse(t.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("awsgw: target %q: endpoint %q is not an http(s) base URL", t.Name, t.Endpoint)
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		u.RawPath = ""
		tt.base = u
	}
	svcs, err := parseServiceEndpoints(t)
	if err != nil {
		return nil, err
	}
	tt.services = svcs
	if t.RoleARN != "" {
		rc, err := newRoleCreds(t, rt)
		if err != nil {
			return nil, err
		}
		tt.role = rc
	} else {
		tt.static = aws.Credentials{AccessKeyID: t.AccessKeyID, SecretAccessKey: t.SecretAccessKey, Source: "airlock target " + t.Name}
	}
	return tt, nil
}

// credentials returns the upstream credentials for a call under gr.
func (t *target) credentials(ctx context.Context, gr *gateway.Grant) (aws.Credentials, error) {
	if t.role == nil {
		return t.static, nil
	}
	return t.role.get(ctx, gr)
}

// forget drops per-grant state when the grant's session ends.
func (t *target) forget(grantID string) {
	if t.role != nil {
		t.role.forget(grantID)
	}
}
