//go:build race

package grants

// raceOn: the race detector is on. It slows the redaction's scans
// tenfold, so TestRedactHeadersLinear (a growth check over megabytes of
// lines) runs in the Makefile's pass without it instead.
const raceOn = true
