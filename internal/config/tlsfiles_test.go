package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/airlock-dev/airlock/internal/tlscert"
)

// TestTLSFilesChecked: a tls.cert_file and tls.key_file that exist but
// cannot serve (not PEM, a key of another certificate, the two swapped, a
// directory) stopped `airlock serve` with crypto/tls's words alone ("tls:
// tls: private key does not match public key"), naming neither file. They
// are configuration problems, reported with their place like the others;
// a usable pair loads.
func TestTLSFilesChecked(t *testing.T) {
	dir := inConfigDir(t)
	// Two certificates with their keys, from two CAs.
	for _, sub := range []string{"a", "b"} {
		if err := os.Mkdir(sub, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, _, err := tlscert.Ensure(filepath.Join(dir, sub), []string{"127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile("notes.txt", []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, cert, key string
		want            []loc
	}{
		{"key of another certificate", "a/gateway.pem", "b/gateway.key", []loc{{"airlock.yaml:4:14: tls.cert_file",
			`"` + filepath.Join(dir, "a/gateway.pem") + `" with tls.key_file "` + filepath.Join(dir, "b/gateway.key") + `" is not a usable certificate and key: private key does not match public key`}}},
		{"not PEM", "notes.txt", "a/gateway.key", []loc{{"airlock.yaml:4:14: tls.cert_file", "is not a usable certificate and key: failed to find any PEM data in certificate input"}}},
		{"swapped", "a/gateway.key", "a/gateway.pem", []loc{{"airlock.yaml:4:14: tls.cert_file", "PEM inputs may have been switched"}}},
		{"directory", "a", "a/gateway.key", []loc{{"airlock.yaml:4:14: tls.cert_file", `"` + filepath.Join(dir, "a") + `" is a directory, not a PEM file`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("airlock.yaml", []byte("data_dir: d\npolicies: policies\ntls:\n  cert_file: "+tc.cert+"\n  key_file: "+tc.key+"\n"))
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("want configuration problems, got %v", err)
			}
			checkErrors(t, errs, tc.want)
		})
	}
	c, err := Parse("airlock.yaml", []byte("data_dir: d\npolicies: policies\ntls:\n  cert_file: a/gateway.pem\n  key_file: a/gateway.key\n"))
	if err != nil {
		t.Fatalf("a usable pair: %v", err)
	}
	if c.TLS.CertFile != filepath.Join(dir, "a/gateway.pem") {
		t.Errorf("cert_file %q", c.TLS.CertFile)
	}
}
