//go:build race

package sessions

// raceOn: the race detector is on. It allocates on its own account, so
// allocation bounds made without it do not hold under it.
const raceOn = true
