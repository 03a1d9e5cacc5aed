//go:build race

package ringlog

// raceEnabled: the race detector slows the ring tests about fivefold.
const raceEnabled = true
