package config

import "gopkg.in/yaml.v3"

// Keys names the files holding the server's two secret keys, for replicas
// that must all hold the same ones (see internal/serverkeys and
// docs/replicas.md). Each path is resolved like DataDir; an empty one means
// the file of that name in DataDir. The environment variables
// AIRLOCK_CREDENTIAL_KEY and AIRLOCK_LOG_SIGNING_KEY, when set, take
// precedence over both.
type Keys struct {
	// CredentialKeyFile holds the 32-byte key grant credentials are derived
	// from (data_dir/credential.key by default).
	CredentialKeyFile string `yaml:"credential_key_file"`
	// LogSigningKeyFile holds the log's checkpoint signing key, a note
	// signer key (data_dir/log-signing.key by default).
	LogSigningKeyFile string `yaml:"log_signing_key_file"`
}

func (d *decoder) keys(n *yaml.Node, path string, k *Keys) {
	d.mapping(n, path, "a mapping of key files (credential_key_file, log_signing_key_file)", []field{
		{"credential_key_file", func(p string, v *yaml.Node) { k.CredentialKeyFile = d.str(v, p) }},
		{"log_signing_key_file", func(p string, v *yaml.Node) { k.LogSigningKeyFile = d.str(v, p) }},
	})
}
