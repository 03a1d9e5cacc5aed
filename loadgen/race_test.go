//go:build race

package main

// raceEnabled lets the binary test build loadgen with -race too, so it reuses
// the race-instrumented packages the test binary was built from.
const raceEnabled = true
