//go:build race

package storage_test

// raceEnabled is set when the tests run with the race detector, which makes
// the long, CPU-bound tests too slow: make test runs those again without it.
const raceEnabled = true
