//go:build !unix

package credenv

// private is a no-op where file ownership is not Unix's: the cache
// directory there is the user's own profile directory.
func private(string) error { return nil }
