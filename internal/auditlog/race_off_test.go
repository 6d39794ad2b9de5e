//go:build !race

package auditlog

// raceOn: see race_on_test.go.
const raceOn = false
