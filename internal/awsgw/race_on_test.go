//go:build race

package awsgw

// raceOn: the race detector is on. It makes sync.Pool drop a share of
// what is put back, so allocation bounds hold only without it.
const raceOn = true
