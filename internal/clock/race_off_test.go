//go:build !race

package clock

// raceOn reports whether the race detector is on: allocation counts are
// not the program's under it.
const raceOn = false
