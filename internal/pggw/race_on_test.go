//go:build race

package pggw

// raceOn: the race detector is on. It allocates on its own account and
// makes sync.Pool drop a share of what is put back, so allocation bounds
// made without it do not hold under it (TestIdleConnectionMemory has its
// own bounds for it).
const raceOn = true
