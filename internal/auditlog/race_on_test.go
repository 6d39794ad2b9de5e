//go:build race

package auditlog

// raceOn: the race detector is on. It slows findFrame's scan threefold,
// so TestFindFrameLinear (a growth check) runs in the Makefile's pass
// without it instead.
const raceOn = true
