package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestOverrideListen(t *testing.T) {
	dir := inConfigDir(t)
	c, err := Parse("airlock.yaml", []byte(quickstartYAML()+"store: postgres://airlock@db.internal:5432/airlock?sslmode=verify-full\n"))
	if err != nil {
		t.Fatal(err)
	}
	// Only what is given changes.
	if err := c.Override(Overrides{ListenAPI: "127.0.0.1:9700", ListenPostgres: "127.0.0.2:5432"}); err != nil {
		t.Fatal(err)
	}
	want := Listen{API: "127.0.0.1:9700", AWS: "127.0.0.1:8701", Postgres: "127.0.0.2:5432"}
	if c.Listen != want {
		t.Fatalf("Listen = %+v, want %+v", c.Listen, want)
	}
	if c.DataDir != filepath.Join(dir, "airlock-data") {
		t.Fatalf("DataDir changed to %s without --data-dir", c.DataDir)
	}
	// Ephemeral ports, as the multi-process tests use.
	if err := c.Override(Overrides{ListenAPI: "127.0.0.1:0", ListenAWS: "127.0.0.1:0", ListenPostgres: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	// --data-dir is relative to the working directory.
	if err := c.Override(Overrides{DataDir: "replica-2"}); err != nil {
		t.Fatal(err)
	}
	if wd, _ := filepath.Abs("."); c.DataDir != filepath.Join(wd, "replica-2") {
		t.Fatalf("DataDir = %s, want %s", c.DataDir, filepath.Join(wd, "replica-2"))
	}
}

func TestOverrideListenErrors(t *testing.T) {
	inConfigDir(t)
	for _, tc := range []struct {
		o    Overrides
		want string
	}{
		{Overrides{ListenAPI: "8700"}, `airlock.yaml: --listen-api: "8700" is not host:port`},
		{Overrides{ListenAWS: "127.0.0.1:99999"}, `--listen-aws: port in "127.0.0.1:99999" must be a number`},
		// A flag colliding with the file's listener names both.
		{Overrides{ListenPostgres: "127.0.0.1:8700"}, `--listen-postgres: "127.0.0.1:8700" collides with listen.api ("127.0.0.1:8700")`},
		{Overrides{ListenAPI: "0.0.0.0:9000", ListenAWS: "127.0.0.1:9000"}, `--listen-aws: "127.0.0.1:9000" collides with --listen-api`},
	} {
		c, err := Parse("airlock.yaml", []byte(quickstartYAML()))
		if err != nil {
			t.Fatal(err)
		}
		before := c.Listen
		err = c.Override(tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Override(%+v) = %v, want an error containing %q", tc.o, err, tc.want)
		}
		if c.Listen != before {
			t.Errorf("Override(%+v) failed but changed Listen to %+v", tc.o, c.Listen)
		}
	}
}

// TestOverridesCheck: the flags are checked alone before the file is read,
// so a flag is refused only for what is wrong with the flags themselves: a
// --listen-aws on the default API address is for Override to weigh
// against the file, which may move listen.api.
func TestOverridesCheck(t *testing.T) {
	for _, tc := range []struct {
		o    Overrides
		want string
	}{
		{Overrides{}, ""},
		{Overrides{ListenAWS: DefaultAPIAddr}, ""},
		{Overrides{ListenAPI: "127.0.0.1:0", ListenAWS: "127.0.0.1:0", ListenPostgres: "127.0.0.1:0"}, ""},
		{Overrides{ListenAPI: "8700"}, `--listen-api: "8700" is not host:port`},
		{Overrides{ListenAPI: "[::]:9000", ListenAWS: "127.0.0.1:9000"}, `--listen-aws: "127.0.0.1:9000" collides with --listen-api ("[::]:9000")`},
	} {
		err := tc.o.Check()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)) {
			t.Errorf("Check(%+v) = %v, want %q", tc.o, err, tc.want)
		}
	}
}
