//go:build race

package main

// raceEnabled is set when the tests run with the race detector; the fleet's
// timing test runs without it (make test runs it again so), since the
// detector's load is not what it measures.
const raceEnabled = true
