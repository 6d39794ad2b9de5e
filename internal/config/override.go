package config

import (
	"errors"
	"path/filepath"
	"strings"
)

// Overrides are `airlock serve` flags that replace settings of the file,
// so that several replicas (with `store: postgres://…`) can run from one
// configuration file on one host, each on its own addresses. An empty field
// keeps the file's setting.
type Overrides struct {
	// ListenAPI, ListenAWS and ListenPostgres replace listen.api,
	// listen.aws and listen.postgres (--listen-api, --listen-aws,
	// --listen-postgres).
	ListenAPI, ListenAWS, ListenPostgres string
	// DataDir replaces data_dir (--data-dir). A relative path is resolved
	// against the working directory, as command-line paths are.
	DataDir string
}

// Check checks the flags by themselves, before any file is read: each
// listener given is host:port with a port number, and no two of them name
// one address. Their problems are the command line's (a usage error), not
// the file's, so they are reported without a file: one line each, naming
// the flag. Override still checks them against the file's listeners.
func (o Overrides) Check() error {
	d := newDecoder("")
	d.validateListen(&Listen{API: o.ListenAPI, AWS: o.ListenAWS, Postgres: o.ListenPostgres}, overridePaths)
	if len(d.errs.List) == 0 {
		return nil
	}
	lines := make([]string, len(d.errs.List))
	for i, e := range d.errs.List {
		lines[i] = e.Field + ": " + e.Msg
	}
	return errors.New(strings.Join(lines, "\n"))
}

// overridePaths names the flags that replace the listeners in messages.
var overridePaths = [3]string{"--listen-api", "--listen-aws", "--listen-postgres"}

// Override applies o to c and checks the resulting listeners with the same
// rules as the file's (host:port, a port number, no two listeners on one
// address). Problems name the flag; c is unchanged when there are any.
func (c *Config) Override(o Overrides) error {
	l := c.Listen
	paths := listenPaths
	for i, f := range []struct {
		v   string
		dst *string
	}{{o.ListenAPI, &l.API}, {o.ListenAWS, &l.AWS}, {o.ListenPostgres, &l.Postgres}} {
		if f.v != "" {
			*f.dst, paths[i] = f.v, overridePaths[i]
		}
	}
	file := c.file
	if file == "" {
		file = c.Path
	}
	d := newDecoder(file)
	// Only the file's listeners have positions: a problem with a flag has
	// none, rather than the top of the file.
	for _, p := range listenPaths {
		if at, ok := c.pos[p]; ok {
			d.pos[p] = at
		}
	}
	d.validateListen(&l, paths)
	if err := d.problems(); err != nil {
		return err
	}
	c.Listen = l
	if o.DataDir != "" {
		c.DataDir = absPath(filepath.Clean(o.DataDir))
	}
	return nil
}
