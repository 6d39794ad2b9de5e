package server

import (
	"testing"

	"github.com/airlock-dev/airlock/internal/config"
)

// TestConsoleSSORedirect: behind a load balancer that ends TLS, a redirect
// derived from the request would send the browser back to http:// and to
// whatever host the balancer forwarded; listen.public.api names the
// address the browser must return to, and an explicit sso.redirect_url
// still wins.
func TestConsoleSSORedirect(t *testing.T) {
	for _, tc := range []struct {
		name, public, explicit, want string
	}{
		{"no public address: derived from each request", "", "", ""},
		{"public API address", "https://airlock.example.com", "", "https://airlock.example.com/console/sso/callback"},
		{"public API address with a trailing slash", "https://airlock.example.com:8443/", "", "https://airlock.example.com:8443/console/sso/callback"},
		{"explicit redirect_url wins", "https://airlock.example.com", "https://login-cb.example.com/console/sso/callback", "https://login-cb.example.com/console/sso/callback"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{SSO: &config.SSO{Issuer: "https://idp.example.com", ClientID: "airlock", RedirectURL: tc.explicit}}
			cfg.Listen.Public.API = tc.public
			sso := consoleSSO(cfg)
			if sso == nil {
				t.Fatal("consoleSSO returned nil with sso configured")
			}
			if sso.RedirectURL != tc.want {
				t.Errorf("redirect URL %q, want %q", sso.RedirectURL, tc.want)
			}
		})
	}
}
