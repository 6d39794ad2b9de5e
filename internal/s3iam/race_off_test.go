//go:build !race

package s3iam

// raceOn: the race detector is on (see race_on_test.go).
const raceOn = false
