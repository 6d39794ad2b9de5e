//go:build !race

package sessions

// raceOn: see race_on_test.go.
const raceOn = false
