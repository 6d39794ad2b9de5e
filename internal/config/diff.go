package config

import (
	"reflect"
	"strings"
)

// Differences names the top-level settings (by their keys in the file:
// "identities", "targets", …) whose values differ between c and o, in the
// file's key order. Where in the file they were written does not count.
func (c *Config) Differences(o *Config) []string {
	var out []string
	a, b := reflect.ValueOf(c).Elem(), reflect.ValueOf(o).Elem()
	for i, f := range reflect.VisibleFields(a.Type()) {
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || key == "" || key == "-" {
			continue
		}
		if !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()) {
			out = append(out, key)
		}
	}
	return out
}
