package config

import (
	"crypto/rand"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlock-dev/airlock/internal/witness/cosig"
)

func witnessKey(t *testing.T, name string) string {
	t.Helper()
	s, err := cosig.GenerateSigner(name, rand.Reader, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s.VerifierKey()
}

func TestAuditWitnesses(t *testing.T) {
	inConfigDir(t)
	k1 := witnessKey(t, "witness.example.com/w1")
	c, err := Parse("airlock.yaml", []byte(`data_dir: d
policies: policies
audit:
  witnesses:
    - kind: tlog-witness
      url: https://witness.example.com/w1
      key: `+k1+`
    - {kind: post, url: "http://127.0.0.1:9000/cp?token=x", timeout: 3s}
    - {name: archive, kind: command, command: [/usr/local/bin/ship, --to, archive]}
`))
	if err != nil {
		t.Fatal(err)
	}
	w := c.Audit.Witnesses
	if len(w) != 3 || w[0].Key != k1 || w[0].URL != "https://witness.example.com/w1" ||
		w[1].Timeout.Duration != 3*time.Second || w[2].Name != "archive" || len(w[2].Command) != 3 {
		t.Fatalf("witnesses = %+v", w)
	}
}

func TestAuditWitnessErrors(t *testing.T) {
	k1 := witnessKey(t, "w.example/1")
	_, logKey, err := note.GenerateKey(rand.Reader, "airlock") // an Ed25519 log key, type 0x01
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		yaml string
		want []loc
	}{
		{"unknown key", `audit:
  witnesses:
    - {kind: post, url: "https://x.example", secret: s}
`, []loc{{"airlock.yaml:5:46: audit.witnesses[0].secret", `unknown key "secret"; allowed keys: name, kind, url, key, command, timeout`}}},
		{"unknown audit key", `audit:
  witness: []
`, []loc{{"airlock.yaml:4:3: audit.witness", `unknown key "witness" (did you mean "witnesses"?)`}}},
		{"plain http elsewhere", `audit:
  witnesses:
    - {kind: post, url: "http://witness.example.com/cp"}
`, []loc{{"airlock.yaml:5:25: audit.witnesses[0].url", "plain http:// is allowed only to a loopback address"}}},
		{"missing kind and url", `audit:
  witnesses:
    - {kind: tlog-witness, key: ` + k1 + `}
    - {url: "https://x.example"}
    - {kind: webhook, url: "https://x.example"}
`, []loc{
			{"airlock.yaml:5:7: audit.witnesses[0].url", "required"},
			{"airlock.yaml:6:7: audit.witnesses[1].kind", "required"},
			{"airlock.yaml:7:14: audit.witnesses[2].kind", `got "webhook"`},
		}},
		{"bad witness key", `audit:
  witnesses:
    - {kind: tlog-witness, url: "https://x.example"}
    - {kind: tlog-witness, url: "https://x.example", key: "` + logKey + `"}
    - {kind: tlog-witness, url: "https://x.example", key: ` + k1 + `}
    - {kind: tlog-witness, url: "https://y.example", key: ` + k1 + `}
`, []loc{
			{"airlock.yaml:5:7: audit.witnesses[0].key", "required for a tlog-witness"},
			{"airlock.yaml:6:59: audit.witnesses[1].key", "not 0x04"},
			{"airlock.yaml:8:59: audit.witnesses[3].key", "listed twice"},
		}},
		{"fields of another kind", `audit:
  witnesses:
    - {kind: command, command: [x], url: "https://x.example"}
    - {kind: command}
    - {kind: post, url: "https://x.example", key: ` + k1 + `}
    - {kind: post, url: "https://u:p@x.example"}
`, []loc{
			{"airlock.yaml:5:42: audit.witnesses[0].url", "only for kinds tlog-witness and post"},
			{"airlock.yaml:6:7: audit.witnesses[1].command", "required"},
			{"airlock.yaml:7:51: audit.witnesses[2].key", "only for kind: tlog-witness"},
			{"airlock.yaml:8:25: audit.witnesses[3].url", "must not contain credentials"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inConfigDir(t)
			if err := os.WriteFile("airlock.yaml", []byte("data_dir: d\npolicies: policies\n"+tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := Load("airlock.yaml")
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load = %+v, %v", c, err)
			}
			checkErrors(t, errs, tt.want)
			if strings.Contains(errs.Error(), "u:p@") {
				t.Error("credentials echoed")
			}
		})
	}
}
