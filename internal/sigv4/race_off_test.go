//go:build !race

package sigv4

// raceOn: the race detector is on (see race_on_test.go).
const raceOn = false
