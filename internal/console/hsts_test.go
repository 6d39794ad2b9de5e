package console_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestHSTSOverTLS: a console the browser reaches over https (TLS here,
// or a proxy ending TLS in front of an https:// public address) sends
// Strict-Transport-Security, so that the browser does not try it over
// plain http again, where anyone on the wire could answer. It sent none.
// Not over plain http (a browser ignores it there, and the loopback demo
// must stay reachable), and not for an IP address or localhost, which
// it would fix to https on every port.
func TestHSTSOverTLS(t *testing.T) {
	ts := tlsConsole(t, newEnv(t, nil))
	behind := newEnvFrom(t, nil, strings.Replace(testConfig, "  api: 127.0.0.1:0\n",
		"  api: 127.0.0.1:0\n  public:\n    api: https://airlock.example.test\n", 1))
	plain := newEnv(t, nil)
	// Redirects not followed: the sign-in redirect carries it too.
	tlsClient := &http.Client{Transport: ts.Client().Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	for _, tc := range []struct {
		name, base, host string
		client           *http.Client
		want             string
	}{
		{"over TLS", ts.URL, "airlock.example.test:8700", tlsClient, "max-age=31536000"},
		{"over TLS, name without port", ts.URL, "Airlock.Example.Test", tlsClient, "max-age=31536000"},
		{"behind an https proxy", behind.url, "airlock.example.test", plainClient(), "max-age=31536000"},
		{"over TLS to an IP address", ts.URL, "", tlsClient, ""},
		{"over TLS to localhost", ts.URL, "localhost:8700", tlsClient, ""},
		{"over TLS to [::1]", ts.URL, "[::1]:8700", tlsClient, ""},
		{"plain http", plain.url, "airlock.example.test", plainClient(), ""},
	} {
		for _, path := range []string{"/console/login", "/console/queue"} {
			req, _ := http.NewRequest("GET", tc.base+path, nil)
			if tc.host != "" {
				req.Host = tc.host
			}
			resp, err := tc.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Strict-Transport-Security"); got != tc.want {
				t.Errorf("%s, %s: Strict-Transport-Security %q, want %q", tc.name, path, got, tc.want)
			}
		}
	}
}
