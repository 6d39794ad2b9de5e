//go:build race

package s3iam

// raceOn: the race detector is on, under which allocation counts differ,
// so allocation bounds hold only without it.
const raceOn = true
