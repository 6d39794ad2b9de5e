//go:build !race

package pggw

// raceOn: see race_on_test.go.
const raceOn = false
