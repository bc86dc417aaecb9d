//go:build race

package metrics_test

// raceEnabled: the race detector's runtime allocates now and then on its
// own, so allocation counts mean nothing under -race.
const raceEnabled = true
