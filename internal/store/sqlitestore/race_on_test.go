//go:build race

package sqlitestore

// raceOn: the race detector is on. It instruments the transpiled SQLite
// too, so a test that writes tens of MiB through it takes minutes: such
// tests run in the Makefile's pass without it.
const raceOn = true
